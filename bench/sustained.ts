/**
 * `deno task bench:sustained`: a long mixed load (90% get, 10% put, as
 * compare's `mixed`) on a three-node Aspen through the client module, with
 * the leader killed (SIGKILL) at a fixed period and restarted on its data
 * folder a few seconds later, so the cluster is back to three nodes before
 * the next kill. Every second's completed operations and errors (by class:
 * outcome-unknown apart from everything else) are recorded; a progress
 * line is printed every 10 s, a summary at the end, the JSON written to
 * `bench/results/sustained-<time>.json` and the plot to
 * `bench/sustained.png` (rendered by headless Chromium).
 *
 * ```sh
 * deno task bench:sustained --duration 120 --kill-every 30
 * ```
 *
 * Options: `--duration <s>` (default 600), `--kill-every <s>` (default 60),
 * `--restart-after <s>` (default 3), `--clients <n>` (default 64),
 * `--value-size <bytes>` (default 256), `--out <dir>`, `--png <file>`,
 * `--work-dir <dir>` (the data folders' parent, default `/tmp`).
 *
 * Exits 0 when the only errors were outcome-unknown ones (the issue's
 * condition), 1 when there were others (still written and plotted), 2 on
 * bad options, 3 on the overall time bound, 4 when the plot cannot be
 * rendered (Chromium missing), 5 when the run itself failed (also when a
 * kill or restart failed: the results up to then are still written).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  killNode,
  restartNode,
  type RunningCluster,
  startAspenCluster,
} from "./_clusters.ts";
import { AspenClientDriver } from "./_drivers.ts";
import {
  type CellMeasurement,
  describeError,
  KeySpace,
  pause,
  prepareKeys,
  runCell,
} from "./_load.ts";
import { PlotRenderError, renderPng, sustainedSvg } from "./_plot.ts";
import { stopAllChildren } from "./_processes.ts";
import {
  type ErrorClass,
  OUTCOME_UNKNOWN,
  type SecondRecord,
  TimelineDriver,
} from "./_timeline.ts";
import {
  type KillRecord,
  recoverySeconds,
  type RunTotals,
  summarizeErrors,
} from "./_sustained_report.ts";

/** Parsed options. */
export interface SustainedOptions {
  readonly durationS: number;
  readonly killEveryS: number;
  readonly restartAfterS: number;
  readonly clients: number;
  readonly valueBytes: number;
  readonly outDir: string;
  readonly pngPath: string;
  readonly workDir: string;
}

const EXIT_OTHER_ERRORS = 1;
const EXIT_USAGE = 2;
const EXIT_TIME_BOUND = 3;
const EXIT_NO_PLOT = 4;
const EXIT_FAILED = 5;
/** Longest run, in seconds. */
const DURATION_S_MAX = 4 * 3600;
/** Seconds between progress lines. */
const PROGRESS_EVERY_S = 10;
/** Ms the cluster may take to agree on a leader around a kill. */
const LEADER_TIMEOUT_MS = 30_000;
/** Ms the key preparation may take. */
const PREPARE_TIMEOUT_MS = 60_000;
/** Ms on top of the duration for start, preparation, stop and plot. */
const RUN_SLACK_MS = 240_000;
/** Operations per second the cell's bound allows for (far above this machine's). */
const OPERATIONS_PER_SECOND_BOUND = 50_000;
/** Ms a request may take before the client gives up on it. */
const REQUEST_TIMEOUT_MS = 10_000;

function positive(name: string, text: string, max: number): number {
  const value = Number(text);
  if (!(value > 0 && value <= max)) {
    throw new RangeError(
      `Cannot run as '--${name}' must be in (0, ${max}]: current value is '${text}'`,
    );
  }
  return value;
}

/**
 * Reads the command line.
 *
 * @throws {RangeError} When a value is out of range.
 */
export function parseSustainedOptions(
  args: readonly string[],
): SustainedOptions {
  const { values } = parseArgs({
    args: [...args],
    options: {
      duration: { type: "string", default: "600" },
      "kill-every": { type: "string", default: "60" },
      "restart-after": { type: "string", default: "3" },
      clients: { type: "string", default: "64" },
      "value-size": { type: "string", default: "256" },
      out: {
        type: "string",
        default: new URL("./results", import.meta.url).pathname,
      },
      png: {
        type: "string",
        default: new URL("./sustained.png", import.meta.url).pathname,
      },
      "work-dir": { type: "string", default: "/tmp" },
    },
    strict: true,
  });
  const durationS = positive("duration", values.duration, DURATION_S_MAX);
  const killEveryS = positive("kill-every", values["kill-every"], durationS);
  const restartAfterS = positive(
    "restart-after",
    values["restart-after"],
    killEveryS,
  );
  const clients = positive("clients", values.clients, 1024);
  const valueBytes = positive("value-size", values["value-size"], 60_000);
  if (!Number.isInteger(clients) || !Number.isInteger(valueBytes)) {
    throw new RangeError(
      `Cannot run as '--clients' and '--value-size' must be integers: current values are '${values.clients}', '${
        values["value-size"]
      }'`,
    );
  }
  return {
    durationS,
    killEveryS,
    restartAfterS,
    clients,
    valueBytes,
    outDir: values.out,
    pngPath: values.png,
    workDir: values["work-dir"],
  };
}

function log(line: string): void {
  console.error(`[sustained] ${line}`);
}

/** Kills the leader once per period (while the run lasts) and restarts it a few seconds later. */
async function killLoop(
  cluster: RunningCluster,
  options: SustainedOptions,
  timeline: TimelineDriver,
  kills: KillRecord[],
): Promise<void> {
  for (let n = 1; n * options.killEveryS < options.durationS; n++) {
    const wait = n * options.killEveryS - timeline.elapsedSeconds();
    if (wait > 0) await pause(wait * 1000);
    const leader = await cluster.leaderIndex(LEADER_TIMEOUT_MS);
    const pid = cluster.children[leader]!.pid;
    const killedAtS = timeline.elapsedSeconds();
    killNode(cluster, leader);
    const killedAt = performance.now();
    let newLeader: number | null = null;
    let newLeaderMs: number | null = null;
    try {
      newLeader = await cluster.leaderIndex(LEADER_TIMEOUT_MS);
      newLeaderMs = performance.now() - killedAt;
    } catch (error) {
      log(`kill ${n}: no new leader: ${describeError(error)}`);
    }
    const restartWait = options.restartAfterS * 1000 -
      (performance.now() - killedAt);
    if (restartWait > 0) await pause(restartWait);
    const restartBegin = performance.now();
    const restartedAtS = timeline.elapsedSeconds();
    await restartNode(cluster, leader);
    const record: KillRecord = {
      n,
      killedAtS,
      node: leader,
      pid,
      newLeader,
      newLeaderMs,
      restartedAtS,
      restartMs: performance.now() - restartBegin,
    };
    kills.push(record);
    log(
      `kill ${n} at ${killedAtS.toFixed(1)} s: leader n${
        leader + 1
      } (pid ${pid}) SIGKILLed; new leader ${
        newLeader === null ? "none" : `n${newLeader + 1}`
      } after ${newLeaderMs?.toFixed(0) ?? "-"} ms; restarted at ${
        restartedAtS.toFixed(1)
      } s, listening after ${record.restartMs.toFixed(0)} ms`,
    );
  }
}

/** Prints one progress line per period from the timeline's complete seconds. */
function progress(timeline: TimelineDriver, fromS: number, toS: number): void {
  const window = timeline.seconds().slice(fromS, toS);
  if (window.length === 0) return;
  const sum = (f: (s: SecondRecord) => number) =>
    window.reduce((total, s) => total + f(s), 0);
  const seconds = window.length;
  log(
    `t=${String(toS).padStart(4)} s: ${
      (sum((s) => s.gets + s.puts) / seconds).toFixed(0).padStart(6)
    } ops/s (gets ${(sum((s) => s.gets) / seconds).toFixed(0)}, puts ${
      (sum((s) => s.puts) / seconds).toFixed(0)
    }); errors in the last ${seconds} s: ${
      sum((s) => s.outcomeUnknown)
    } ${OUTCOME_UNKNOWN}, ${sum((s) => s.otherErrors)} other`,
  );
}

/** What the run wrote. */
export interface SustainedResult {
  readonly formatVersion: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly options: SustainedOptions;
  readonly machine: Record<string, unknown>;
  readonly cell: CellMeasurement;
  /** Why the kills stopped before the end, or null when every kill and restart worked. */
  readonly killLoopError: string | null;
  readonly totals: RunTotals;
  /** Whether every error was an outcome-unknown one (the issue's condition). */
  readonly onlyOutcomeUnknown: boolean;
  readonly kills: readonly (KillRecord & { recoveryS: number | null })[];
  readonly errorClasses: readonly ErrorClass[];
  readonly seconds: readonly SecondRecord[];
  /** The nodes' stderr tails, when there were errors other than outcome-unknown. */
  readonly processLogs?: { name: string; stderrTail: string }[];
}

async function chromiumMissing(): Promise<string | null> {
  try {
    const output = await new Deno.Command("chromium", {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return output.success ? null : "'chromium --version' failed";
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "'chromium' is not installed (apt-get install -y chromium): the PNG plot needs it"
      : `cannot run 'chromium': ${(error as Error).message}`;
  }
}

async function run(
  options: SustainedOptions,
  runRoot: string,
): Promise<SustainedResult> {
  const startedAt = new Date();
  const cluster = await startAspenCluster({ nodes: 3, workDir: runRoot });
  try {
    const leader = await cluster.leaderIndex();
    log(`aspen-3 started, leader n${leader + 1}`);
    const urls = [
      cluster.urls[leader]!,
      ...cluster.urls.filter((_, i) => i !== leader),
    ];
    const client = new AspenClientDriver(urls, REQUEST_TIMEOUT_MS);
    const keys = new KeySpace();
    const value = crypto.getRandomValues(new Uint8Array(options.valueBytes));
    await prepareKeys(client, keys, value, PREPARE_TIMEOUT_MS);
    const timeline = new TimelineDriver(client);
    const kills: KillRecord[] = [];
    let printedS = 0;
    const ticker = setInterval(() => {
      const now = Math.floor(timeline.elapsedSeconds());
      progress(timeline, printedS, now);
      printedS = now;
    }, PROGRESS_EVERY_S * 1000);
    let cell: CellMeasurement;
    let killLoopError: string | null = null;
    try {
      // A failed kill or restart stops the kills; the load runs on and the
      // failure is reported with the results.
      const killing = killLoop(cluster, options, timeline, kills).catch(
        (error) => {
          killLoopError = describeError(error);
          log(`the kills stopped: ${killLoopError}`);
        },
      );
      cell = await runCell(timeline, {
        workload: "mixed",
        clients: options.clients,
        durationMs: options.durationS * 1000,
        value,
        keys,
        operationsMax: Math.ceil(
          options.durationS * OPERATIONS_PER_SECOND_BOUND,
        ),
      });
      await killing;
    } finally {
      clearInterval(ticker);
    }
    progress(timeline, printedS, Math.floor(timeline.elapsedSeconds()));
    await client.close();
    const seconds = timeline.seconds().slice(0, Math.ceil(options.durationS));
    const totals = summarizeErrors(seconds, cell.elapsedMs);
    const errorClasses = timeline.errorClasses();
    return {
      formatVersion: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options,
      machine: {
        nproc: navigator.hardwareConcurrency,
        os: `${Deno.build.os} ${Deno.build.arch}`,
        deno: Deno.version.deno,
      },
      cell,
      totals,
      killLoopError,
      onlyOutcomeUnknown: errorClasses.every((c) => c.kind === OUTCOME_UNKNOWN),
      kills: kills.map((k) => ({
        ...k,
        recoveryS: recoverySeconds(seconds, k.killedAtS),
      })),
      errorClasses,
      seconds,
      processLogs: totals.otherErrors > 0
        ? cluster.children.map((c) => ({
          name: c.name,
          stderrTail: c.stderrTail(),
        }))
        : undefined,
    };
  } finally {
    await cluster.stop();
  }
}

function printSummary(result: SustainedResult, jsonPath: string): void {
  const t = result.totals;
  const o = result.options;
  console.log(
    `# Aspen sustained run: aspen-3, ${o.clients} clients, mixed (90% get / 10% put), ${o.durationS} s, leader SIGKILL every ${o.killEveryS} s, restarted after ${o.restartAfterS} s\n`,
  );
  console.log(
    `operations: ${t.operations} (${t.gets} gets, ${t.puts} puts), ${
      t.throughputPerSecond.toFixed(0)
    } ops/s on average; latency p50 ${
      result.cell.latencyMs.p50.toFixed(2)
    } ms, p99 ${result.cell.latencyMs.p99.toFixed(2)} ms, max ${
      result.cell.latencyMs.max.toFixed(0)
    } ms`,
  );
  console.log(
    `errors: ${t.outcomeUnknown} ${OUTCOME_UNKNOWN}, ${t.otherErrors} other`,
  );
  for (const c of result.errorClasses) {
    console.log(
      `  ${c.operation} ${c.kind}: ${c.count} (first at ${
        c.times[0]?.toFixed(1)
      } s: ${c.firstMessage})`,
    );
  }
  console.log(
    "\n| kill | at (s) | leader | new leader after (ms) | restarted at (s) | listening after (ms) | back to half throughput (s) |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const k of result.kills) {
    console.log(
      `| ${k.n} | ${k.killedAtS.toFixed(1)} | n${k.node + 1} | ${
        k.newLeaderMs?.toFixed(0) ?? "none"
      } | ${k.restartedAtS.toFixed(1)} | ${k.restartMs.toFixed(0)} | ${
        k.recoveryS ?? "not within the run"
      } |`,
    );
  }
  console.log(
    `\n${
      result.onlyOutcomeUnknown
        ? "condition met: no errors other than outcome-unknown"
        : "condition NOT met: errors other than outcome-unknown (see above and processLogs in the JSON)"
    }`,
  );
  if (result.killLoopError !== null) {
    console.log(`the kills stopped early: ${result.killLoopError}`);
  }
  console.log(`results: ${jsonPath}`);
}

async function main(): Promise<number> {
  let options: SustainedOptions;
  try {
    options = parseSustainedOptions(Deno.args);
  } catch (error) {
    console.error(`bench/sustained: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  const missing = await chromiumMissing();
  if (missing !== null) {
    console.error(`bench/sustained: cannot plot: ${missing}`);
    return EXIT_NO_PLOT;
  }
  const runRoot = await Deno.makeTempDir({
    dir: options.workDir,
    prefix: "aspen-sustained-",
  });
  const cleanUp = async () => {
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
  };
  const boundMs = options.durationS * 1000 + RUN_SLACK_MS;
  const watchdog = setTimeout(async () => {
    console.error(`bench/sustained: stopping after the bound of ${boundMs} ms`);
    await cleanUp();
    Deno.exit(EXIT_TIME_BOUND);
  }, boundMs);
  const onSignal = async () => {
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const result = await run(options, runRoot);
    await Deno.mkdir(options.outDir, { recursive: true });
    const stamp = result.startedAt.replace(/[:.]/g, "-");
    const jsonPath = `${options.outDir}/sustained-${stamp}.json`;
    await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
    printSummary(result, jsonPath);
    const svg = sustainedSvg({
      title:
        `aspen-3 sustained: ${options.clients} clients, 90% get / 10% put, leader SIGKILL every ${options.killEveryS} s`,
      subtitle: `${result.startedAt}: ${
        result.totals.throughputPerSecond.toFixed(0)
      } ops/s on average; errors: ${result.totals.outcomeUnknown} outcome-unknown, ${result.totals.otherErrors} other`,
      seconds: result.seconds,
      marks: result.kills.flatMap((k) => [
        { t: k.killedAtS, label: `kill n${k.node + 1}`, kind: "kill" as const },
        {
          t: k.restartedAtS,
          label: `restart n${k.node + 1}`,
          kind: "restart" as const,
        },
      ]),
    });
    try {
      await renderPng(svg, options.pngPath, runRoot);
      console.log(`plot: ${options.pngPath}`);
    } catch (error) {
      if (!(error instanceof PlotRenderError)) throw error;
      console.error(`bench/sustained: ${error.message}`);
      return EXIT_NO_PLOT;
    }
    if (result.killLoopError !== null) return EXIT_FAILED;
    return result.onlyOutcomeUnknown ? 0 : EXIT_OTHER_ERRORS;
  } catch (error) {
    console.error(`bench/sustained: the run failed: ${describeError(error)}`);
    return EXIT_FAILED;
  } finally {
    clearTimeout(watchdog);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await cleanUp();
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}
