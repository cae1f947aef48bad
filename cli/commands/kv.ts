/**
 * `aspen kv get | set | delete | list | atomic | watch`.
 *
 * Keys are JSON lists in the HTTP API's wire form (`'["users", 1]'`,
 * `'[{"type": "bigint", "value": "5"}]'`) or a bare word for a one-part
 * key. Values are stored as Deno KV stores them: a string (V8-serialized,
 * the default), any JSON value (`--json-value`), a u64 (`--u64`), or raw
 * bytes (`--bytes` for UTF-8 text, `--base64`).
 *
 * @module
 */
import {
  Command,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import { KvU64 } from "../../mod.ts";
import type { AtomicOperation, KvKey, KvListSelector } from "../../mod.ts";
import { fromBase64 } from "../../src/protocol/http_api_codec.ts";
import { TOKEN_PATTERN } from "../../src/protocol/http_api_leases.ts";
import { parseLeaseId, refusals } from "./lease.ts";
import {
  clientOf,
  EXIT,
  type GlobalOptions,
  jsonValue,
  parseKey,
  printJson,
  printTable,
  showKey,
  showValue,
  UsageError,
} from "./_context.ts";

const encoder = new TextEncoder();

/** Key examples shown under the help of every command taking a key. */
export const KEY_EXAMPLES = `
Keys are JSON lists in the HTTP API's wire form, or a bare word (one part):
  greeting                              ["greeting"]
  '["users", 1]'                        a string and a number
  '["flags", true]'                     a boolean
  '[{"type":"bigint","value":"5"}]'     a bigint (decimal string)
  '[{"type":"bytes","value":"aGk="}]'   bytes (padded base64)
  '[{"type":"number","value":"NaN"}]'   NaN, Infinity, -Infinity, -0

Examples:
  aspen kv set '["users", 1]' alice --url http://127.0.0.1:8080 --token T
  aspen kv get '["users", 1]' --json
  aspen kv list '["users"]' --limit 10
`;

function globals(command: { optsWithGlobals(): unknown }): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

function parseInteger(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `Invalid number '${value}': expected a non-negative integer`,
    );
  }
  return n;
}

function parseU64(value: string): KvU64 {
  if (!/^[0-9]{1,20}$/.test(value)) {
    throw new UsageError(`Invalid u64 '${value}': expected a decimal integer`);
  }
  try {
    return new KvU64(BigInt(value));
  } catch (error) {
    throw new UsageError(`Invalid u64 '${value}': ${(error as Error).message}`);
  }
}

function parseValue(
  text: string,
  options: {
    u64?: boolean;
    base64?: boolean;
    bytes?: boolean;
    jsonValue?: boolean;
  },
): unknown {
  if (options.u64) return parseU64(text);
  if (options.bytes) return encoder.encode(text);
  if (options.base64) {
    const bytes = fromBase64(text);
    if (bytes === null) {
      throw new UsageError(`Invalid value: not padded base64: '${text}'`);
    }
    return bytes;
  }
  if (options.jsonValue) {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new UsageError(
        `Invalid value: not valid JSON: ${(error as Error).message}`,
      );
    }
  }
  return text;
}

/** Splits `KEY=REST`, where KEY may be a JSON list holding `=`. */
export function splitKeyed(text: string, what: string): [KvKey, string] {
  if (text.startsWith("[")) {
    for (let i = text.indexOf("]="); i !== -1; i = text.indexOf("]=", i + 1)) {
      try {
        JSON.parse(text.slice(0, i + 1));
      } catch {
        continue;
      }
      return [parseKey(text.slice(0, i + 1)), text.slice(i + 2)];
    }
  } else if (text.includes("=")) {
    const i = text.indexOf("=");
    return [parseKey(text.slice(0, i)), text.slice(i + 1)];
  }
  throw new UsageError(`Invalid ${what} '${text}': expected KEY=VALUE`);
}

function printEntries(
  entries: readonly {
    key: KvKey;
    value: unknown;
    versionstamp: string | null;
  }[],
  json: boolean | undefined,
  cursor?: string | null,
): void {
  if (json) {
    const rows = entries.map((e) => ({
      key: JSON.parse(showKey(e.key)),
      value: jsonValue(e.value),
      versionstamp: e.versionstamp,
    }));
    printJson(cursor === undefined ? rows[0] : { entries: rows, cursor });
    return;
  }
  printTable(
    ["KEY", "VERSIONSTAMP", "VALUE"],
    entries.map((
      e,
    ) => [showKey(e.key), e.versionstamp ?? "-", showValue(e.value)]),
  );
  if (cursor) console.error(`more entries: continue with --cursor ${cursor}`);
}

function getCommand(): CommandUnknownOpts {
  return new Command("get")
    .description("Read one key")
    .argument("<key>", "key: JSON list or a bare word")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (key, options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const entry = await client.kv.get(parseKey(key), {
        consistency: options.eventual ? "eventual" : "strong",
      });
      printEntries([entry], global.json);
    });
}

function setCommand(): CommandUnknownOpts {
  return new Command("set")
    .description(
      "Write one key (a string unless --json-value, --u64, --bytes or --base64)",
    )
    .argument("<key>", "key: JSON list or a bare word")
    .argument("<value>", "the value")
    .addOption(
      new Option("--u64", "store the value as a KvU64").conflicts([
        "base64",
        "bytes",
        "jsonValue",
      ]),
    )
    .addOption(
      new Option("--bytes", "store UTF-8 text as raw bytes").conflicts([
        "base64",
        "jsonValue",
      ]),
    )
    .addOption(
      new Option("--base64", "the value is base64 raw bytes").conflicts(
        "jsonValue",
      ),
    )
    .option(
      "--json-value",
      "the value is JSON (stored V8-serialized, as Deno KV)",
    )
    .option(
      "--expire-in <ms>",
      "delete after this many milliseconds",
      parseInteger,
    )
    .option(
      "--lease <id>",
      "attach the key to this lease: deleted when it ends",
      parseLeaseId,
    )
    .action(async (key, value, options, command) => {
      const global = globals(command);
      const parsed = parseValue(value, options);
      using client = clientOf(global);
      const result = await refusals(
        () =>
          client.kv.set(parseKey(key), parsed, {
            expireIn: options.expireIn,
            lease: options.lease,
          }),
        options.lease,
      );
      if (global.json) printJson(result);
      else console.log(`versionstamp ${result.versionstamp}`);
    });
}

function deleteCommand(): CommandUnknownOpts {
  return new Command("delete")
    .description("Delete one key (absent keys too)")
    .argument("<key>", "key: JSON list or a bare word")
    .action(async (key, _options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      await client.kv.delete(parseKey(key));
      if (global.json) printJson({ ok: true });
      else console.log("deleted");
    });
}

function listCommand(): CommandUnknownOpts {
  return new Command("list")
    .description("List keys by prefix or range")
    .argument(
      "[prefix]",
      "key prefix: JSON list or a bare word (default: everything)",
    )
    .option("--start <key>", "first key (inclusive)")
    .option("--end <key>", "last key (exclusive)")
    .option("--limit <count>", "most entries to print", parseInteger, 100)
    .option("--reverse", "last key first")
    .option("--cursor <cursor>", "continue after this cursor")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (prefix, options, command) => {
      const global = globals(command);
      const start = options.start === undefined
        ? undefined
        : parseKey(options.start);
      const end = options.end === undefined ? undefined : parseKey(options.end);
      let selector: KvListSelector;
      if (prefix === undefined && start !== undefined && end !== undefined) {
        selector = { start, end };
      } else {
        const base = prefix === undefined ? [] : parseKey(prefix);
        selector = start !== undefined
          ? { prefix: base, start }
          : end !== undefined
          ? { prefix: base, end }
          : { prefix: base };
        if (start !== undefined && end !== undefined) {
          throw new UsageError(
            "Invalid range: give a prefix with --start or --end, not both",
          );
        }
      }
      if (options.limit < 1) {
        throw new UsageError("Invalid --limit: must be at least 1");
      }
      using client = clientOf(global);
      const iterator = client.kv.list(selector, {
        limit: options.limit,
        reverse: options.reverse,
        cursor: options.cursor,
        consistency: options.eventual ? "eventual" : "strong",
        batchSize: Math.min(options.limit, 1000),
      });
      const entries = await Array.fromAsync(iterator);
      const cursor = entries.length === options.limit ? iterator.cursor : null;
      printEntries(entries, global.json, cursor);
    });
}

type Step = (operation: AtomicOperation) => void;

function atomicCommand(): CommandUnknownOpts {
  const steps: Step[] = [];
  const add = (step: Step) => steps.push(step);
  const command = new Command("atomic")
    .description(
      "Commit checks and mutations atomically, in the order given; exit 1 when a check fails",
    )
    .option(
      "--check <key=versionstamp>",
      "the key must have this versionstamp ('null': absent)",
    )
    .option("--set <key=value>", "set to a string")
    .option("--set-json <key=json>", "set to a JSON value")
    .option("--set-u64 <key=n>", "set to a KvU64")
    .option("--delete <key>", "delete the key")
    .option("--sum <key=n>", "add n to the u64 (wrapping)")
    .option("--min <key=n>", "keep the smaller u64")
    .option("--max <key=n>", "keep the larger u64")
    .option("--expire-in <ms>", "expiry of every --set", parseInteger)
    .option(
      "--lease <id>",
      "attach every --set, --set-json, --set-u64 to this lease",
      parseLeaseId,
    )
    .option(
      "--check-fence <name=token>",
      "the token must hold the lock or election NAME",
    )
    .option("--check-lease <id>", "the lease must exist");
  const setOptions = () => ({
    expireIn: command.opts().expireIn,
    lease: command.opts().lease,
  });
  command.on("option:check-fence", (text: string) => {
    const at = text.lastIndexOf("=");
    const name = at === -1 ? "" : text.slice(0, at);
    const token = at === -1 ? "" : text.slice(at + 1);
    if (name === "" || !TOKEN_PATTERN.test(token)) {
      throw new UsageError(
        `Invalid check-fence '${text}': expected NAME=TOKEN, TOKEN 20 hex characters`,
      );
    }
    add((op) => op.checkFence(name, token));
  });
  command.on("option:check-lease", (text: string) => {
    const id = parseLeaseId(text);
    add((op) => op.checkLease(id));
  });
  command.on("option:check", (text: string) => {
    const [key, stamp] = splitKeyed(text, "check");
    if (stamp !== "null" && !/^[0-9a-f]{20}$/.test(stamp)) {
      throw new UsageError(
        `Invalid check '${text}': versionstamp must be 20 hex characters or 'null'`,
      );
    }
    add((op) =>
      op.check({ key, versionstamp: stamp === "null" ? null : stamp })
    );
  });
  command.on("option:set", (text: string) => {
    const [key, value] = splitKeyed(text, "set");
    add((op) => op.set(key, value, setOptions()));
  });
  command.on("option:set-json", (text: string) => {
    const [key, value] = splitKeyed(text, "set-json");
    const parsed = parseValue(value, { jsonValue: true });
    add((op) => op.set(key, parsed, setOptions()));
  });
  command.on("option:set-u64", (text: string) => {
    const [key, value] = splitKeyed(text, "set-u64");
    const n = parseU64(value);
    add((op) => op.set(key, n, { lease: command.opts().lease }));
  });
  command.on("option:delete", (text: string) => {
    const key = parseKey(text);
    add((op) => op.delete(key));
  });
  for (const type of ["sum", "min", "max"] as const) {
    command.on(`option:${type}`, (text: string) => {
      const [key, value] = splitKeyed(text, type);
      const n = parseU64(value).value;
      add((op) => op[type](key, n));
    });
  }
  command.action(async (_options, self) => {
    const global = globals(self);
    if (steps.length === 0) {
      throw new UsageError(
        "Nothing to commit: give --check, --check-fence, --check-lease, --set, --delete, --sum, --min or --max",
      );
    }
    using client = clientOf(global);
    const operation = client.kv.atomic();
    for (const step of steps) step(operation);
    const result = await refusals(
      () => operation.commit(),
      command.opts().lease,
    );
    if (global.json) printJson(result);
    else if (result.ok) console.log(`versionstamp ${result.versionstamp}`);
    if (!result.ok) {
      if (!global.json) console.error("aspen: check failed: nothing changed");
      Deno.exitCode = EXIT.failed;
    }
  });
  return command;
}

function watchCommand(): CommandUnknownOpts {
  return new Command("watch")
    .description(
      "Print the keys' entries, then each change as it happens (one line per changed key)",
    )
    .argument("<keys...>", "1 to 10 keys: JSON lists or bare words")
    .option(
      "--count <n>",
      "exit after this many updates (the first counts); default: until interrupted",
      parseInteger,
    )
    .action(async (keys, options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const parsed = keys.map(parseKey);
      // The watch itself reconnects forever: a first read fails fast (exit 3
      // or 4) when the node cannot be reached or refuses the token.
      await client.kv.get(parsed[0]!, { consistency: "eventual" });
      let previous: (string | null)[] | null = null;
      let updates = 0;
      for await (const entries of client.kv.watch(parsed)) {
        for (const [i, entry] of entries.entries()) {
          if (previous !== null && previous[i] === entry.versionstamp) continue;
          if (global.json) {
            console.log(JSON.stringify({
              key: JSON.parse(showKey(entry.key)),
              value: jsonValue(entry.value),
              versionstamp: entry.versionstamp,
            }));
          } else {
            console.log(
              [
                showKey(entry.key),
                entry.versionstamp ?? "-",
                showValue(entry.value),
              ].join("\t"),
            );
          }
        }
        previous = entries.map((e) => e.versionstamp);
        updates++;
        if (options.count !== undefined && updates >= options.count) break;
      }
    });
}

/** `aspen kv …` */
export function kvCommand(): CommandUnknownOpts {
  return new Command("kv")
    .description("Read and write keys")
    .addCommand(getCommand().addHelpText("after", KEY_EXAMPLES))
    .addCommand(setCommand().addHelpText("after", KEY_EXAMPLES))
    .addCommand(deleteCommand().addHelpText("after", KEY_EXAMPLES))
    .addCommand(listCommand().addHelpText("after", KEY_EXAMPLES))
    .addCommand(atomicCommand().addHelpText("after", KEY_EXAMPLES))
    .addCommand(watchCommand().addHelpText("after", KEY_EXAMPLES));
}
