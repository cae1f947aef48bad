/**
 * `aspen hook create | list | get | delete | enable | disable |
 * rotate-secret | deliveries | replay | trigger`: durable hooks (issue 17).
 * Tables for people, `--json` for scripts. Bad input exits 2 (a flag, a
 * key, a URL, a header, a secret, a refusal as `invalid`); a refusal of
 * the cluster exits 1 (a name taken, no such hook, compacted), one line
 * either way.
 *
 * @module
 */
import {
  Command,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import type {
  AspenHook,
  HookCreateOptions,
  HookSelector,
  HookTarget,
} from "../../src/client/hooks.ts";
import type { HookOutcome } from "../../src/protocol/http_api_hooks.ts";
import {
  HOOK_DELIVERY_OUTCOMES,
  HookTargetError,
} from "../../src/protocol/hook_targets.ts";
import {
  clientOf,
  parseKey,
  printJson,
  printTable,
  showKey,
  UsageError,
} from "./_context.ts";
import { globals, parseCount } from "./lease.ts";

/** Runs `work`, a malformed webhook target being bad input (exit 2). */
async function checked<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof HookTargetError) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function list(text: string): string[] {
  return text.split(",").map((part) => part.trim()).filter((part) =>
    part !== ""
  );
}

/** `--header K=V`… as a record. */
function parseHeaders(values: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(
        `Invalid header '${
          value.slice(0, 64).split("=")[0]
        }': expected NAME=VALUE`,
      );
    }
    headers[value.slice(0, eq)] = value.slice(eq + 1);
  }
  return headers;
}

function selectorOf(
  options: { prefix?: string; start?: string; end?: string },
): HookSelector | undefined {
  const { prefix, start, end } = options;
  if (prefix !== undefined && (start !== undefined || end !== undefined)) {
    throw new UsageError("Invalid selector: give --prefix or --start/--end");
  }
  if ((start === undefined) !== (end === undefined)) {
    throw new UsageError("Invalid selector: --start and --end go together");
  }
  if (prefix !== undefined) return { prefix: parseKey(prefix) };
  if (start !== undefined && end !== undefined) {
    return { start: parseKey(start), end: parseKey(end) };
  }
  return undefined;
}

interface TargetFlags {
  webhook?: string;
  queue?: string;
  job?: string;
  forward?: string;
  secret?: string;
  header?: string[];
}

function targetOf(options: TargetFlags): HookTarget {
  const given = (["webhook", "queue", "job", "forward"] as const).filter((
    flag,
  ) => options[flag] !== undefined);
  if (given.length !== 1) {
    throw new UsageError(
      "Invalid target: give exactly one of --webhook URL, --queue Q, --job TYPE, --forward PEER",
    );
  }
  if (
    options.webhook === undefined &&
    (options.secret !== undefined || (options.header ?? []).length > 0)
  ) {
    throw new UsageError(
      "Invalid target: --secret and --header go with --webhook",
    );
  }
  if (options.webhook !== undefined) {
    const headers = parseHeaders(options.header ?? []);
    return {
      webhook: {
        url: options.webhook,
        ...(Object.keys(headers).length === 0 ? {} : { headers }),
      },
    };
  }
  if (options.queue !== undefined) return { queue: { queue: options.queue } };
  if (options.job !== undefined) return { job: { type: options.job } };
  return { forward: { peer: options.forward! } };
}

function createCommand(): CommandUnknownOpts {
  return new Command("create")
    .description(
      "Create a hook; a webhook's secret is printed this once",
    )
    .requiredOption("--name <name>", "unique name, [a-z0-9._-]{1,64}")
    .option("--prefix <key>", "follow the keys under this key")
    .option("--start <key>", "follow the keys from this key (with --end)")
    .option("--end <key>", "up to this key (excluded)")
    .option("--types <types>", "type patterns, comma-separated (default kv.*)")
    .option("--webhook <url>", "deliver to this URL (signed POSTs)")
    .option("--secret <secret>", "whsec_… signing secret (default random)")
    .option("--header <name=value>", "a header to send (repeatable)", collect)
    .option("--queue <queue>", "enqueue into this Aspen queue")
    .option("--job <type>", "run as jobs of this type")
    .option("--forward <peer>", "forward to this peer cluster")
    .option("--from-revision <n>", "first revision (default the next)")
    // `--timeout` after the command words arrives renamed (the global one is
    // the request deadline); the help shows it under its own name.
    .addOption(new Option("--timeout <ms>", "attempt timeout, 1000-30000 ms"))
    .addOption(new Option("--attempt-timeout <ms>").hideHelp())
    .option("--retry-window <ms>", "retry for this long, 60 s to 30 days")
    .option(
      "--retry-schedule <steps>",
      "delays before each retry, ms, comma-separated",
    )
    .action(async (options, command) => {
      const global = globals(command);
      const number = (value: string | undefined, what: string) =>
        value === undefined ? undefined : parseCount(value, what);
      const request: HookCreateOptions = {
        name: options.name,
        ...optional("selector", selectorOf(options)),
        ...optional(
          "types",
          options.types === undefined ? undefined : list(options.types),
        ),
        target: targetOf(options),
        ...optional("secret", options.secret),
        ...optional(
          "fromRevision",
          number(options.fromRevision, "revision"),
        ),
        ...optional("timeoutMs", number(options.attemptTimeout, "timeout")),
        ...optional(
          "retryWindowMs",
          number(options.retryWindow, "retry window"),
        ),
        ...optional(
          "retrySchedule",
          options.retrySchedule === undefined
            ? undefined
            : list(options.retrySchedule).map((step) =>
              parseCount(step, "retry step")
            ),
        ),
      };
      using client = clientOf(global);
      const created = await checked(() => client.hooks.create(request));
      if (global.json) {
        const { id, name, secret, cursor } = created;
        printJson({ id, name, secret, cursor });
        return;
      }
      console.log(
        `hook ${created.name} created: id ${created.id}, from revision ${created.fromRevision}`,
      );
      if (created.secret !== null) {
        console.log(`secret ${created.secret} (shown this once)`);
      }
    });
}

function optional<K extends string, V>(
  key: K,
  value: V | undefined,
): { [P in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [P in K]: V };
}

function showSelector(selector: HookSelector): string {
  if ("prefix" in selector) return `prefix ${showKey(selector.prefix)}`;
  if ("start" in selector) {
    return `range ${showKey(selector.start)} to ${showKey(selector.end)}`;
  }
  return "every key";
}

function showTarget(target: HookTarget): string {
  if ("webhook" in target) return `webhook ${target.webhook.url}`;
  if ("queue" in target) return `queue ${target.queue.queue}`;
  if ("job" in target) return `job ${target.job.type}`;
  return `forward ${target.forward.peer}`;
}

function showState(hook: AspenHook): string {
  return hook.state === "active"
    ? "active"
    : `disabled (${hook.disabledReason ?? "disabled"})`;
}

function showCursor(hook: AspenHook): string {
  return hook.cursor ?? `from revision ${hook.fromRevision}`;
}

function listCommand(): CommandUnknownOpts {
  return new Command("list")
    .description("List every hook")
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const hooks = await client.hooks.list();
      if (global.json) {
        printJson({ hooks });
        return;
      }
      printTable(
        ["ID", "NAME", "STATE", "CURSOR", "LAG", "WORKER", "TARGET"],
        hooks.map((hook) => [
          hook.id,
          hook.name,
          showState(hook),
          showCursor(hook),
          String(hook.lag),
          hook.worker ?? "no worker",
          showTarget(hook.target),
        ]),
      );
    });
}

function printHook(hook: AspenHook): void {
  const rows: [string, string][] = [
    ["id", hook.id],
    ["name", hook.name],
    ["state", showState(hook)],
    ["target", showTarget(hook.target)],
    ["selector", showSelector(hook.selector)],
    ["types", hook.types.join(",")],
    ["cursor", showCursor(hook)],
    ["lag", `${hook.lag} revisions`],
    ["worker", hook.worker ?? "no worker"],
  ];
  if (hook.retrying !== null) {
    rows.push([
      "retrying",
      `event ${hook.retrying.event} attempt ${hook.retrying.attempt}, next at ${
        new Date(hook.retrying.nextAttemptAtMs).toISOString()
      }`,
    ]);
  }
  rows.push([
    "deliveries",
    Object.entries(hook.deliveries).map(([k, v]) => `${k}=${v}`).join(" "),
  ]);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [key, value] of rows) {
    console.log(`${key.padEnd(width)}  ${value}`);
  }
}

/** `get`, `enable`, `disable`: one hook by id or name, shown after the call. */
function hookCommandOf(
  name: "get" | "enable" | "disable",
  description: string,
): CommandUnknownOpts {
  return new Command(name)
    .description(description)
    .argument("<hook>", "the hook's id or name")
    .action(async (ref, _options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const hook = await client.hooks[name](ref);
      if (global.json) printJson(hook);
      else printHook(hook);
    });
}

function deleteCommand(): CommandUnknownOpts {
  return new Command("delete")
    .description("Delete a hook and its delivery log")
    .argument("<hook>", "the hook's id or name")
    .action(async (ref, _options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      await client.hooks.delete(ref);
      if (global.json) printJson({ deleted: ref });
      else console.log(`hook ${ref} deleted`);
    });
}

function rotateCommand(): CommandUnknownOpts {
  return new Command("rotate-secret")
    .description(
      "Give a webhook hook a new secret (printed this once); the old one also signs for 24 h",
    )
    .argument("<hook>", "the hook's id or name")
    .option("--secret <secret>", "the new whsec_… secret (default random)")
    .action(async (ref, options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const rotated = await checked(() =>
        client.hooks.rotateSecret(ref, options.secret)
      );
      if (global.json) {
        const { id, name, secret, cursor } = rotated;
        printJson({ id, name, secret, cursor });
        return;
      }
      console.log(`secret ${rotated.secret} (shown this once)`);
    });
}

function parseOutcome(value: string): HookOutcome {
  if (!(HOOK_DELIVERY_OUTCOMES as readonly string[]).includes(value)) {
    throw new UsageError(
      `Invalid outcome '${value.slice(0, 32)}': expected one of ${
        HOOK_DELIVERY_OUTCOMES.join(", ")
      }`,
    );
  }
  return value as HookOutcome;
}

function deliveriesCommand(): CommandUnknownOpts {
  return new Command("deliveries")
    .description("Show a hook's delivery log, newest first")
    .argument("<hook>", "the hook's id or name")
    .option("--outcome <outcome>", HOOK_DELIVERY_OUTCOMES.join("|"))
    .option("--limit <n>", "records, 1 to 1000 (default 100)")
    .option("--cursor <cursor>", "a previous answer's cursor: older records")
    .action(async (ref, options, command) => {
      const global = globals(command);
      const outcome = options.outcome === undefined
        ? undefined
        : parseOutcome(options.outcome);
      const limit = options.limit === undefined
        ? undefined
        : parseCount(options.limit, "limit", 1);
      using client = clientOf(global);
      const page = await client.hooks.deliveries(ref, {
        ...optional("outcome", outcome),
        ...optional("limit", limit),
        ...optional("cursor", options.cursor),
      });
      if (global.json) {
        printJson(page);
        return;
      }
      printTable(
        [
          "EVENT",
          "ATTEMPT",
          "OUTCOME",
          "STATUS",
          "LATENCY_MS",
          "STARTED",
          "WORKER",
          "ERROR",
        ],
        page.deliveries.map((d) => [
          d.replay ? `${d.eventId} (replay)` : d.eventId,
          String(d.attempt),
          d.outcome,
          d.status === null ? "-" : String(d.status),
          String(d.latencyMs),
          new Date(d.startedAtMs).toISOString(),
          d.worker,
          d.error ?? "",
        ]),
      );
      if (page.cursor !== null) console.log(`more: --cursor ${page.cursor}`);
    });
}

function replayCommand(): CommandUnknownOpts {
  return new Command("replay")
    .description("Re-deliver a hook's events of a revision range, in order")
    .argument("<hook>", "the hook's id or name")
    .requiredOption("--from-revision <n>", "first revision (inclusive)")
    .requiredOption("--to-revision <n>", "last revision (inclusive)")
    .action(async (ref, options, command) => {
      const global = globals(command);
      const from = parseCount(options.fromRevision, "revision");
      const to = parseCount(options.toRevision, "revision");
      if (to < from) {
        throw new UsageError(
          `Invalid replay: --to-revision ${to} is below --from-revision ${from}`,
        );
      }
      using client = clientOf(global);
      await client.hooks.replay(ref, from, to);
      if (global.json) {
        printJson({ hook: ref, fromRevision: from, toRevision: to });
      } else {console.log(
          `hook ${ref}: replay of revisions ${from} to ${to} queued`,
        );}
    });
}

function triggerCommand(): CommandUnknownOpts {
  return new Command("trigger")
    .description("Send a hook.test event to this hook only")
    .argument("<hook>", "the hook's id or name")
    .option("--data <json>", "the event's data, a JSON object")
    .action(async (ref, options, command) => {
      const global = globals(command);
      let data: Record<string, unknown> | undefined;
      if (options.data !== undefined) {
        try {
          data = JSON.parse(options.data);
        } catch (error) {
          throw new UsageError(
            `Invalid --data: not valid JSON: ${(error as Error).message}`,
          );
        }
        if (typeof data !== "object" || data === null || Array.isArray(data)) {
          throw new UsageError("Invalid --data: expected a JSON object");
        }
      }
      using client = clientOf(global);
      await client.hooks.trigger(ref, data);
      if (global.json) printJson({ hook: ref, triggered: true });
      else console.log(`hook ${ref}: hook.test sent`);
    });
}

/** `aspen hook …` */
export function hookCommand(): CommandUnknownOpts {
  return new Command("hook")
    .description(
      "Durable hooks: deliver matching events to webhooks, queues, jobs or peers",
    )
    .addCommand(createCommand())
    .addCommand(listCommand())
    .addCommand(hookCommandOf("get", "Show a hook: state, cursor, lag, worker"))
    .addCommand(deleteCommand())
    .addCommand(
      hookCommandOf("enable", "Enable a hook: delivery resumes at its cursor"),
    )
    .addCommand(hookCommandOf("disable", "Disable a hook (its cursor stays)"))
    .addCommand(rotateCommand())
    .addCommand(deliveriesCommand())
    .addCommand(replayCommand())
    .addCommand(triggerCommand());
}
