/**
 * `aspen events watch | list | status`: the cluster's events history
 * (issue 17). A watch prints a line per event (`R.I TYPE KEY VALUE`, tab
 * separated; `--json`: one JSON object a line) until interrupted (Ctrl-C,
 * SIGTERM: exit 0) or `--count`; it resumes on another node after a drop
 * with no gap and no duplicate, and exits 1 with `compacted at N` when its
 * start is below the history window. Keys are given as in `aspen kv`.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import type { AspenEvent, EventsSelector } from "../../mod.ts";
import { EVENTS_LIMITS } from "../../src/protocol/http_api_events.ts";
import { globals, interrupted, parseCount } from "./lease.ts";
import {
  clientOf,
  jsonValue,
  parseKey,
  printJson,
  printTable,
  showKey,
  showValue,
  UsageError,
} from "./_context.ts";

/** The selector and type options `watch` and `list` share. */
interface SelectorOptions {
  readonly prefix?: string;
  readonly start?: string;
  readonly end?: string;
  readonly types?: readonly string[];
  readonly fromRevision?: number;
  readonly prevValue?: boolean;
}

function parseTypes(text: string): string[] {
  const types = text.split(",").map((t) => t.trim());
  if (
    types.length > EVENTS_LIMITS.typesMax || types.some((t) => t === "")
  ) {
    throw new UsageError(
      `Invalid --types '${text}': expected 1 to ${EVENTS_LIMITS.typesMax} comma-separated types, e.g. kv.set,leader.changed or kv.*`,
    );
  }
  return types;
}

function parseRevision(value: string): number {
  return parseCount(value, "revision", 0);
}

/**
 * The selector the options name: `[PREFIX]` or `--prefix K`, or `--start K
 * --end K`, or nothing (every key).
 *
 * @throws {UsageError} For both a prefix and a range, half a range, or a bad key.
 */
export function selectorOf(
  positional: string | undefined,
  options: SelectorOptions,
): EventsSelector {
  if (positional !== undefined && options.prefix !== undefined) {
    throw new UsageError(
      "Invalid selector: give the prefix as an argument or with --prefix, not both",
    );
  }
  const prefix = positional ?? options.prefix;
  const { start, end } = options;
  if (prefix !== undefined && (start !== undefined || end !== undefined)) {
    throw new UsageError(
      "Invalid selector: give a prefix or --start and --end, not both",
    );
  }
  if ((start === undefined) !== (end === undefined)) {
    throw new UsageError("Invalid range: give both --start and --end");
  }
  if (prefix !== undefined) return { prefix: parseKey(prefix) };
  if (start !== undefined && end !== undefined) {
    return { start: parseKey(start), end: parseKey(end) };
  }
  return {};
}

/** An event as scripts read it: its wire fields, values as `kv get --json`. */
export function eventJson(event: AspenEvent): Record<string, unknown> {
  const shown: Record<string, unknown> = {
    id: event.id,
    revision: event.revision,
    index: event.index,
    type: event.type,
  };
  if (event.key !== undefined) shown.key = JSON.parse(showKey(event.key));
  if (event.value !== undefined) shown.value = jsonValue(event.value);
  if (event.versionstamp !== undefined) {
    shown.versionstamp = event.versionstamp;
  }
  if (event.prevVersionstamp !== undefined) {
    shown.prevVersionstamp = event.prevVersionstamp;
  }
  if (event.prevValue !== undefined) {
    shown.prevValue = jsonValue(event.prevValue);
  }
  if (event.cause !== undefined) shown.cause = event.cause;
  if (event.data !== undefined) shown.data = event.data;
  return shown;
}

/** An event as people read it: `R.I TYPE KEY VALUE` (facts as JSON), tab separated. */
export function eventLine(event: AspenEvent): string {
  if (event.key === undefined) {
    return [event.id, event.type, JSON.stringify(event.data ?? {})].join("\t");
  }
  const cells = [
    event.id,
    event.type,
    showKey(event.key),
    showValue(event.value ?? null),
  ];
  if (event.cause !== undefined && event.cause !== "write") {
    cells.push(`(${event.cause})`);
  }
  return cells.join("\t");
}

function printEvent(event: AspenEvent, json: boolean | undefined): void {
  console.log(json ? JSON.stringify(eventJson(event)) : eventLine(event));
}

function selectorCommand(name: string): Command<[string | undefined]> {
  return new Command(name)
    .argument("[prefix]", "key prefix: JSON list or a bare word")
    .option("--prefix <key>", "key prefix (as the argument)")
    .option("--start <key>", "first key of a range (inclusive)")
    .option("--end <key>", "end of the range (exclusive)")
    .option(
      "--types <types>",
      "comma-separated types or globs (default kv.*), e.g. kv.set,leader.changed or *",
      parseTypes,
    )
    .option(
      "--from-revision <n>",
      "first revision (inclusive)",
      parseRevision,
    )
    .option("--prev-value", "show each KV event's previous value") as Command<
      [string | undefined]
    >;
}

function watchCommand(): CommandUnknownOpts {
  return selectorCommand("watch")
    .description(
      "Print each matching event as it happens (from --from-revision: the history first), until interrupted",
    )
    .option(
      "--progress-ms <ms>",
      "quiet time before the node confirms progress (100 to 600000)",
      (v) => parseCount(v, "progress-ms", EVENTS_LIMITS.progressMsMin),
    )
    .option(
      "--count <n>",
      "exit after this many events; default: until interrupted",
      (v) => parseCount(v, "count", 1),
    )
    .action(async (prefix, options, command) => {
      const global = globals(command);
      const opts = options as SelectorOptions & {
        progressMs?: number;
        count?: number;
      };
      const selector = selectorOf(prefix, opts);
      using client = clientOf(global);
      const stop = interrupted();
      try {
        // Refused before anything is sent (exit 2), then a first read that
        // fails fast (exit 3 or 4): the watch itself reconnects forever.
        // (A TypeError or RangeError is a usage error: exit 2.)
        const frames = client.events.watch(selector, {
          types: opts.types,
          fromRevision: opts.fromRevision,
          prevValue: opts.prevValue,
          progressMs: opts.progressMs,
          signal: stop.signal,
        });
        await client.events.status();
        let printed = 0;
        for await (const frame of frames) {
          if (frame.kind !== "event") continue;
          printEvent(frame.event, global.json);
          printed++;
          if (opts.count !== undefined && printed >= opts.count) break;
        }
      } finally {
        stop.stop();
      }
    });
}

function listCommand(): CommandUnknownOpts {
  return selectorCommand("list")
    .description(
      "Print one page of matching events from the history (default: from the window's start)",
    )
    .option(
      "--after <id>",
      "continue strictly after this event id (R.I, a previous page's cursor)",
    )
    .option("--to-revision <n>", "last revision (inclusive)", parseRevision)
    .option(
      "--limit <n>",
      `most events (1 to ${EVENTS_LIMITS.listLimitMax}, default ${EVENTS_LIMITS.listLimitDefault})`,
      (v) => parseCount(v, "limit", 1),
    )
    .action(async (prefix, options, command) => {
      const global = globals(command);
      const opts = options as SelectorOptions & {
        after?: string;
        toRevision?: number;
        limit?: number;
      };
      const selector = selectorOf(prefix, opts);
      using client = clientOf(global);
      const page = await client.events.list({
        selector,
        types: opts.types,
        fromRevision: opts.fromRevision,
        after: opts.after,
        toRevision: opts.toRevision,
        limit: opts.limit,
        prevValue: opts.prevValue,
      });
      if (global.json) {
        printJson({ ...page, events: page.events.map(eventJson) });
        return;
      }
      for (const event of page.events) printEvent(event, false);
      if (page.cursor !== undefined) {
        console.error(`more events: continue with --after ${page.cursor}`);
      }
    });
}

function statusCommand(): CommandUnknownOpts {
  return new Command("status")
    .description(
      "Show the answering node's history window, head and watch streams",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const status = await client.events.status();
      if (global.json) {
        printJson(status);
        return;
      }
      printTable(
        [
          "COMPACT-REVISION",
          "HEAD-REVISION",
          "EVENTS",
          "BYTES",
          "BYTES-MAX",
          "STREAMS",
        ],
        [[
          String(status.compactRevision),
          String(status.headRevision),
          String(status.events),
          String(status.bytes),
          String(status.bytesMax),
          String(status.streams),
        ]],
      );
    });
}

/** `aspen events …` */
export function eventsCommand(): CommandUnknownOpts {
  const selectorHelp = `
Select keys with a prefix (the argument or --prefix), or with --start and
--end; without either, every key. Keys are JSON lists in the HTTP API's
wire form, or a bare word (one part), as in 'aspen kv'. Cluster events
(leader.changed, member.*) carry no key: only --types filters them. Exit 1
'compacted at N' when the start is below the history window.

Examples:
  aspen events watch '["orders"]' --url http://127.0.0.1:8080 --token T
  aspen events watch --start '["a"]' --end '["m"]' --from-revision 120 --json
  aspen events watch --types 'leader.changed,member.*'
  aspen events list orders --from-revision 1 --limit 50
`;
  return new Command("events")
    .description("Watch and list the cluster's events history")
    .addCommand(watchCommand().addHelpText("after", selectorHelp))
    .addCommand(listCommand().addHelpText("after", selectorHelp))
    .addCommand(statusCommand());
}
