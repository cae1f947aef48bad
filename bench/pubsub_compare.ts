/**
 * `deno task bench:pubsub`: Aspen's pub/sub (issue 18) against NATS
 * JetStream on this machine, one target after another, printed as one table
 * with each Aspen row's ratio to JetStream.
 *
 * ```sh
 * deno run --unstable-net --allow-run --allow-read --allow-write --allow-env \
 *   --allow-sys --allow-net=127.0.0.1 bench/pubsub_compare.ts --quick
 * ```
 *
 * Targets: `jetstream` (Debian's `nats-server -js` on 127.0.0.1, a
 * file-stored stream; skipped, saying why, when `nats-server` is missing),
 * `aspen-1` and `aspen-3` (local node processes, `bench/_clusters.ts`,
 * driven at the leader over raw HTTP). Rows (`bench/_pubsub_load.ts`):
 * `publish` (16 publishers, one message per call, each awaited),
 * `publish-batch` (the same publishers, 100 messages per call) and
 * `consume` (one consumer fetching 100 and acking each, until the
 * `publish` row's messages are consumed). Values are 1 KiB of random bytes.
 *
 * Options: `--messages N` per row (default 20,000; `--quick` 2,000),
 * `--publishers N` (16), `--batch N` (100), `--value-size B` (1,024),
 * `--partitions P` of Aspen's topics (1), `--targets a,b` (all),
 * `--aspen-body msgpack|json` (msgpack), `--nats-server PATH` (default:
 * on PATH, then `/usr/sbin`), `--work-dir DIR`, `--quick`, and
 * `--json` (print the result as JSON instead of the table). Exits 1 when a
 * target that was available produced no numbers or fell short in a row, 2 on
 * bad options, 3 on the overall time bound.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { BodyFormat } from "../src/protocol/http_api_codec.ts";
import { type RunningCluster, startAspenCluster } from "./_clusters.ts";
import { stopAllChildren } from "./_processes.ts";
import { AspenPubsubDriver } from "./_pubsub_aspen.ts";
import {
  findNatsServer,
  JetStreamDriver,
  type RunningJetStream,
  startJetStream,
} from "./_pubsub_jetstream.ts";
import {
  describeError,
  type PubsubDriver,
  type PubsubLoadOptions,
  runPubsubRows,
} from "./_pubsub_load.ts";
import {
  DURABILITY_NOTE,
  formatCalls,
  formatPubsubTable,
  PUBSUB_RESULT_FORMAT_VERSION,
  PUBSUB_TARGETS,
  type PubsubCompareResult,
  type PubsubTarget,
  type PubsubTargetResult,
} from "./_pubsub_report.ts";

/** Parsed options. */
export interface PubsubCompareOptions extends PubsubLoadOptions {
  readonly partitions: number;
  readonly targets: readonly PubsubTarget[];
  readonly format: BodyFormat;
  readonly quick: boolean;
  readonly json: boolean;
  /** Parent of the run's temporary folder (the system's when empty). */
  readonly workDir: string;
  /** The `nats-server` binary, or null to look on PATH and in /usr/sbin. */
  readonly natsServer: string | null;
}

const EXIT_SHORT = 1;
const EXIT_USAGE = 2;
const EXIT_TIME_BOUND = 3;
/** Most messages of one row. */
const MESSAGES_MAX = 1_000_000;
/** Most publishers. */
const PUBLISHERS_MAX = 256;
/** Ms per target for starting and stopping it. */
const TARGET_SLACK_MS = 90_000;

function integerOption(
  text: string,
  flag: string,
  min: number,
  max: number,
): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot run as '${flag}' must be an integer in [${min}, ${max}]: current value is '${text}'`,
    );
  }
  return value;
}

/**
 * Reads the command line.
 *
 * @throws {RangeError} When a value is out of range or names an unknown target.
 */
export function parsePubsubOptions(
  args: readonly string[],
): PubsubCompareOptions {
  const { values } = parseArgs({
    args: [...args],
    options: {
      messages: { type: "string" },
      publishers: { type: "string", default: "16" },
      batch: { type: "string", default: "100" },
      "value-size": { type: "string", default: "1024" },
      partitions: { type: "string", default: "1" },
      targets: { type: "string", default: PUBSUB_TARGETS.join(",") },
      "aspen-body": { type: "string", default: "msgpack" },
      "work-dir": { type: "string" },
      "nats-server": { type: "string" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const quick = values.quick;
  const messages = integerOption(
    values.messages ?? (quick ? "2000" : "20000"),
    "--messages",
    1,
    MESSAGES_MAX,
  );
  const batch = integerOption(values.batch, "--batch", 1, 1_000);
  const valueBytes = integerOption(
    values["value-size"],
    "--value-size",
    1,
    64 * 1024,
  );
  if (batch * valueBytes > 1_000_000) {
    throw new RangeError(
      `Cannot run as '--batch' times '--value-size' must be at most 1,000,000 bytes (one publish of Aspen): current value is ${
        batch * valueBytes
      }`,
    );
  }
  const names = values.targets.split(",").map((s) => s.trim()).filter((s) =>
    s !== ""
  );
  const unknown = names.filter((n) =>
    !(PUBSUB_TARGETS as readonly string[]).includes(n)
  );
  if (names.length === 0 || unknown.length > 0) {
    throw new RangeError(
      `Cannot run as '--targets' must list some of ${
        PUBSUB_TARGETS.join(", ")
      }: unknown '${unknown.join(",")}'`,
    );
  }
  const format = values["aspen-body"];
  if (format !== "msgpack" && format !== "json") {
    throw new RangeError(
      `Cannot run as '--aspen-body' must be 'msgpack' or 'json': current value is '${format}'`,
    );
  }
  return {
    messages,
    publishers: integerOption(
      values.publishers,
      "--publishers",
      1,
      PUBLISHERS_MAX,
    ),
    batch,
    valueBytes,
    partitions: integerOption(values.partitions, "--partitions", 1, 256),
    rowTimeoutMs: quick ? 60_000 : 300_000,
    // Run in the fixed order, whatever order the command line gave.
    targets: PUBSUB_TARGETS.filter((t) => names.includes(t)),
    format,
    quick,
    json: values.json,
    workDir: values["work-dir"] ?? "",
    natsServer: values["nats-server"] ?? null,
  };
}

/** A started target. */
interface Started {
  readonly driver: PubsubDriver;
  readonly version: string | null;
  readonly processes: () => { name: string; stderrTail: string }[];
  stop(): Promise<void>;
}

async function startTarget(
  target: PubsubTarget,
  options: PubsubCompareOptions,
): Promise<Started | string> {
  if (target === "jetstream") {
    const nats = await findNatsServer(
      options.natsServer === null ? undefined : [options.natsServer],
    );
    if (!nats.ok) return nats.reason;
    const server: RunningJetStream = await startJetStream(
      nats.path,
      options.workDir,
    );
    try {
      const driver = await JetStreamDriver.open(
        server.url,
        options.publishers,
        options.batch,
      );
      return {
        driver,
        version: nats.version,
        processes: () => [{
          name: server.child.name,
          stderrTail: server.child.stderrTail(),
        }],
        stop: async () => {
          await driver.close();
          await server.stop();
        },
      };
    } catch (error) {
      await server.stop();
      throw error;
    }
  }
  const cluster: RunningCluster = await startAspenCluster({
    nodes: target === "aspen-1" ? 1 : 3,
    workDir: options.workDir,
  });
  const leader = await cluster.leaderIndex();
  const driver = new AspenPubsubDriver({
    url: cluster.urls[leader]!,
    format: options.format,
    partitions: options.partitions,
    batch: options.batch,
  });
  return {
    driver,
    version: null,
    processes: () =>
      cluster.children.map((c) => ({
        name: c.name,
        stderrTail: c.stderrTail(),
      })),
    stop: async () => {
      await driver.close();
      await cluster.stop();
    },
  };
}

async function runTarget(
  target: PubsubTarget,
  options: PubsubCompareOptions,
): Promise<PubsubTargetResult> {
  let started: Started | string | null = null;
  try {
    started = await startTarget(target, options);
    if (typeof started === "string") {
      return {
        target,
        status: "skipped",
        reason: started,
        version: null,
        calls: null,
        rows: [],
      };
    }
    log(`${target}: started`);
    const rows = await runPubsubRows(
      started.driver,
      options,
      (line) => log(`${target}: ${line}`),
    );
    const short = rows.filter((r) => r.messages < options.messages);
    return {
      target,
      status: short.length === 0 ? "ran" : "failed",
      reason: short.length === 0
        ? null
        : `${
          short.map((r) => `${r.row} got ${r.messages} of ${options.messages}`)
            .join(", ")
        }: ${short[0]!.firstError}`,
      version: started.version,
      calls: started.driver.calls,
      rows,
      ...(short.length === 0 ? {} : { processLogs: started.processes() }),
    };
  } catch (error) {
    return {
      target,
      status: "failed",
      reason: describeError(error),
      version: null,
      calls: null,
      rows: [],
    };
  } finally {
    if (started !== null && typeof started !== "string") await started.stop();
  }
}

function log(line: string): void {
  console.error(`[pubsub] ${line}`);
}

function machine(): Record<string, unknown> {
  let memoryBytes: number | null = null;
  try {
    memoryBytes = Deno.systemMemoryInfo().total;
  } catch {
    // No --allow-sys: leave it out.
  }
  return {
    nproc: navigator.hardwareConcurrency,
    memoryBytes,
    os: `${Deno.build.os} ${Deno.build.arch}`,
    deno: Deno.version.deno,
  };
}

function printTable(result: PubsubCompareResult): void {
  const o = result.options as unknown as PubsubCompareOptions;
  console.log(
    `# Aspen pub/sub against JetStream: ${o.messages} messages of ${o.valueBytes} bytes per row, ${o.publishers} publishers, batches of ${o.batch}, Aspen topics of ${o.partitions} partition${
      o.partitions === 1 ? "" : "s"
    }\n`,
  );
  console.log(formatPubsubTable(result.targets));
  console.log("");
  for (const line of formatCalls(result.targets)) console.log(line);
  console.log("");
  for (const note of result.notes) console.log(`note: ${note}`);
}

async function main(): Promise<number> {
  let options: PubsubCompareOptions;
  try {
    options = parsePubsubOptions(Deno.args);
  } catch (error) {
    console.error(`bench/pubsub_compare: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  const startedAt = new Date();
  const boundMs = options.targets.length *
    (TARGET_SLACK_MS + 3 * options.rowTimeoutMs);
  const runRoot = await Deno.makeTempDir({
    dir: options.workDir === "" ? undefined : options.workDir,
    prefix: "aspen-pubsub-bench-",
  });
  const cleanUp = async () => {
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
  };
  const watchdog = setTimeout(async () => {
    console.error(
      `bench/pubsub_compare: stopping after the time bound of ${boundMs} ms`,
    );
    await cleanUp();
    Deno.exit(EXIT_TIME_BOUND);
  }, boundMs);
  const onSignal = async () => {
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const results: PubsubTargetResult[] = [];
  try {
    for (const target of options.targets) {
      log(`${target}: starting`);
      const result = await runTarget(target, { ...options, workDir: runRoot });
      if (result.status !== "ran") {
        log(`${target}: ${result.status}: ${result.reason}`);
      }
      results.push(result);
    }
  } finally {
    await cleanUp();
    clearTimeout(watchdog);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const result: PubsubCompareResult = {
    formatVersion: PUBSUB_RESULT_FORMAT_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: machine(),
    options: { ...options },
    targets: results,
    notes: [DURABILITY_NOTE],
  };
  if (options.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    printTable(result);
  }
  return results.some((r) => r.status === "failed") ? EXIT_SHORT : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
