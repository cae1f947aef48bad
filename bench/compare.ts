/**
 * `deno task bench:compare`: the same workloads against Aspen and its
 * anchors (etcd, Deno KV, a do-nothing HTTP server), one target after
 * another on this machine, printed as one table and written as JSON to
 * `bench/results/compare-<time>.json`.
 *
 * ```sh
 * deno run --unstable-kv --unstable-net --allow-run --allow-read --allow-write \
 *   --allow-env --allow-sys --allow-net=127.0.0.1 bench/compare.ts --quick
 * ```
 *
 * Options: `--duration <s>` per cell (default 5), `--clients 1,16,64,256`,
 * `--value-size <bytes>` (default 256), `--targets a,b` (default all),
 * `--workloads put,get,mixed,cas` (default all four) and the coordination
 * workloads `lock,keepalive` (`bench/_coordination.ts`; 16 clients unless
 * `--clients` says otherwise; only the Aspen and etcd targets run them;
 * `--workload` is the same option), the events workloads `watch` (16
 * prefix watchers under concurrent writers, events/s delivered) and `hooks`
 * (puts with and without 10 webhook hooks, Aspen only) of `bench/_watch.ts`
 * (64 writers when only they run, unless `--clients` says otherwise; run
 * only when asked), `--quick` (put and get, 16 clients, 2 s),
 * `--no-failover`, `--aspen-driver client|http`, `--out <dir>`,
 * `--work-dir <dir>` (data folders' parent).
 *
 * `raw-1` and `raw-3` are Aspen driven by raw `fetch` calls to its HTTP API
 * (the ceiling of the HTTP path without the client module), each on its own
 * fresh cluster.
 *
 * Aspen is driven through its client module (`connect(urls).kv` from
 * `mod.ts`, JSON bodies), or with `--aspen-driver http` through raw
 * `fetch` calls to its HTTP API. Exits 1 when a target that was
 * available produced no numbers, 2 on bad options, 3 on the overall time bound.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  findEtcd,
  type RunningCluster,
  startAspenCluster,
  startEtcdCluster,
  startNullHttp,
} from "./_clusters.ts";
import {
  AspenClientDriver,
  AspenHttpDriver,
  BENCH_ASPEN_TOKEN,
  DenoKvDriver,
  EtcdHttpDriver,
  NullHttpDriver,
} from "./_drivers.ts";
import {
  ASPEN_KEEPALIVE_CALL,
  AspenCoordinationDriver,
  BENCH_LEASE_TTL_MS,
  COORDINATION_CELLS,
  COORDINATION_WORKLOADS,
  type CoordinationDriver,
  type CoordinationWorkload,
  ETCD_KEEPALIVE_CALL,
  EtcdCoordinationDriver,
  KEEPALIVE_LEASES,
  prepareLeases,
  runCoordinationCell,
} from "./_coordination.ts";
import {
  AspenWatchDriver,
  EtcdWatchDriver,
  EVENT_CELLS,
  EVENT_WARMUP_MS,
  EVENT_WORKLOADS,
  EVENT_WRITERS_DEFAULT,
  eventLines,
  type EventWorkload,
  runHookCells,
  runWatchCell,
  webhookWorkerStarter,
} from "./_watch.ts";
import { type FailoverMeasurement, measureFailover } from "./_failover.ts";
import type { RunnerSpec } from "./_kvconnect_runner.ts";
import {
  type CellMeasurement,
  describeError,
  KeySpace,
  type KvDriver,
  prepareKeys,
  runCell,
  type Workload,
  WORKLOADS,
} from "./_load.ts";
import { spawnChild, stopAllChildren, stopChild } from "./_processes.ts";
import {
  type CompareResult,
  coordinationRatios,
  formatCoordinationTable,
  formatTable,
  RESULT_FORMAT_VERSION,
  type TargetName,
  type TargetResult,
  TARGETS,
} from "./_report.ts";

/** Targets that run the coordination workloads. */
const COORDINATION_TARGETS: readonly TargetName[] = [
  "aspen-1",
  "aspen-3",
  "raw-1",
  "raw-3",
  "etcd-1",
  "etcd-3",
];

/** Parsed options. */
export interface CompareOptions {
  readonly durationMs: number;
  readonly clients: readonly number[];
  readonly valueBytes: number;
  readonly targets: readonly TargetName[];
  /** KV workloads first, then coordination ones, each in their fixed order. */
  readonly workloads: readonly AnyWorkload[];
  readonly quick: boolean;
  readonly failover: boolean;
  /** How Aspen is driven: the client module (default) or raw HTTP API requests. */
  readonly driver: "client" | "http";
  readonly outDir: string;
  /** Parent of the run's temporary folder (the system's when empty). */
  readonly workDir: string;
}

/** A KV, a coordination or an events workload. */
export type AnyWorkload = Workload | CoordinationWorkload | EventWorkload;
const ALL_WORKLOADS: readonly AnyWorkload[] = [
  ...WORKLOADS,
  ...COORDINATION_WORKLOADS,
  ...EVENT_WORKLOADS,
];

const EXIT_NO_NUMBERS = 1;
const EXIT_USAGE = 2;
const EXIT_TIME_BOUND = 3;
/** Most clients of one cell. */
const CLIENTS_MAX = 1024;
/** Longest cell, in seconds. */
const DURATION_SECONDS_MAX = 600;
/** Ms the key preparation of a target may take. */
const PREPARE_TIMEOUT_MS = 60_000;
/** Ms per cell on top of its duration (preparation, slow replies). */
const CELL_SLACK_MS = 15_000;
/** Ms per target for starting and stopping it. */
const TARGET_SLACK_MS = 90_000;

/**
 * Reads the command line.
 *
 * @throws {RangeError} When a value is out of range or names an unknown target or workload.
 */
export function parseCompareOptions(args: readonly string[]): CompareOptions {
  const { values } = parseArgs({
    args: [...args],
    options: {
      duration: { type: "string" },
      clients: { type: "string" },
      "value-size": { type: "string", default: "256" },
      targets: { type: "string", default: TARGETS.join(",") },
      workloads: { type: "string" },
      workload: { type: "string" },
      quick: { type: "boolean", default: false },
      "no-failover": { type: "boolean", default: false },
      "aspen-driver": { type: "string", default: "client" },
      out: {
        type: "string",
        default: new URL("./results", import.meta.url).pathname,
      },
      "work-dir": { type: "string" },
    },
    strict: true,
  });
  const quick = values.quick;
  if (values.workload !== undefined && values.workloads !== undefined) {
    throw new RangeError(
      "Cannot run as '--workload' and '--workloads' are the same option: give one",
    );
  }
  const workloadText = values.workloads ?? values.workload;
  const workloads = listOf(
    workloadText ?? (quick ? "put,get" : WORKLOADS.join(",")),
    ALL_WORKLOADS,
    workloadText === values.workload ? "--workload" : "--workloads",
  );
  const onlyCoordination = workloads.every((w) =>
    isCoordination(w) || isEvent(w)
  );
  const onlyEvents = workloads.every((w) => isEvent(w));
  const seconds = Number(values.duration ?? (quick ? "2" : "5"));
  if (!(seconds > 0 && seconds <= DURATION_SECONDS_MAX)) {
    throw new RangeError(
      `Cannot run as '--duration' must be in (0, ${DURATION_SECONDS_MAX}] seconds: current value is '${values.duration}'`,
    );
  }
  const clients = (values.clients ??
    (onlyEvents
      ? String(EVENT_WRITERS_DEFAULT)
      : quick || onlyCoordination
      ? "16"
      : "1,16,64,256"))
    .split(",").map(Number);
  if (
    clients.some((c) => !Number.isSafeInteger(c) || c < 1 || c > CLIENTS_MAX)
  ) {
    throw new RangeError(
      `Cannot run as '--clients' must list integers in [1, ${CLIENTS_MAX}]: current value is '${values.clients}'`,
    );
  }
  const valueBytes = Number(values["value-size"]);
  if (
    !Number.isSafeInteger(valueBytes) || valueBytes < 1 || valueBytes > 60_000
  ) {
    throw new RangeError(
      `Cannot run as '--value-size' must be an integer in [1, 60000] bytes: current value is '${
        values["value-size"]
      }'`,
    );
  }
  const targets = listOf(values.targets, TARGETS, "--targets");
  const driver = values["aspen-driver"];
  if (driver !== "client" && driver !== "http") {
    throw new RangeError(
      `Cannot run as '--aspen-driver' must be 'client' or 'http': current value is '${driver}'`,
    );
  }
  return {
    durationMs: seconds * 1000,
    driver,
    clients,
    valueBytes,
    // Run in the fixed order, whatever order the command line gave.
    targets: TARGETS.filter((t) => targets.includes(t)),
    workloads: ALL_WORKLOADS.filter((w) => workloads.includes(w)),
    quick,
    failover: !quick && !values["no-failover"],
    outDir: values.out,
    workDir: values["work-dir"] ?? "",
  };
}

/** Whether `workload` is one of `bench/_coordination.ts`. */
export function isCoordination(
  workload: AnyWorkload,
): workload is CoordinationWorkload {
  return (COORDINATION_WORKLOADS as readonly string[]).includes(workload);
}

/** Whether `workload` is one of `bench/_watch.ts`. */
export function isEvent(workload: AnyWorkload): workload is EventWorkload {
  return (EVENT_WORKLOADS as readonly string[]).includes(workload);
}

function kvWorkloads(options: CompareOptions): Workload[] {
  return options.workloads.filter((w): w is Workload =>
    !isCoordination(w) && !isEvent(w)
  );
}

function eventWorkloads(options: CompareOptions): EventWorkload[] {
  return options.workloads.filter(isEvent);
}

function coordinationWorkloads(
  options: CompareOptions,
): CoordinationWorkload[] {
  return options.workloads.filter(isCoordination);
}

/** Cells one target runs at most (KV and coordination). */
function cellsPerTarget(options: CompareOptions): number {
  const coordination = coordinationWorkloads(options)
    .reduce((n, w) => n + COORDINATION_CELLS[w].length, 0);
  const events = eventWorkloads(options)
    .reduce((n, w) => n + EVENT_CELLS[w].length, 0);
  return (kvWorkloads(options).length + coordination + events) *
    options.clients.length;
}

function listOf<T extends string>(
  text: string,
  known: readonly T[],
  flag: string,
): T[] {
  const items = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = items.filter((item) => !known.includes(item as T));
  if (items.length === 0 || unknown.length > 0) {
    throw new RangeError(
      `Cannot run as '${flag}' must list some of ${
        known.join(", ")
      }: unknown '${unknown.join(",")}'`,
    );
  }
  return items as T[];
}

/** A started target: how to load it, and how to stop it. */
interface StartedTarget {
  readonly driver: KvDriver | null;
  readonly driverName: string;
  readonly cluster: RunningCluster | null;
  /** Runs every cell itself (the KV Connect child) instead of `driver`. */
  readonly runCells?: () => Promise<CellMeasurement[]>;
  /** Drives the coordination workloads, or null when the target has none. */
  readonly coordination?: CoordinationDriver;
  /** How `coordination` reaches the target. */
  readonly coordinationName?: string;
  stop(): Promise<void>;
}

/** Why a target cannot run here, or null when it can. */
async function unavailableReason(
  target: TargetName,
  options: CompareOptions,
): Promise<string | null> {
  if (
    kvWorkloads(options).length === 0 && !COORDINATION_TARGETS.includes(target)
  ) {
    return `it runs none of ${options.workloads.join(", ")}`;
  }
  if (
    kvWorkloads(options).length === 0 &&
    coordinationWorkloads(options).length === 0 &&
    eventsDriverName(target, options) === ""
  ) {
    return `it runs none of ${options.workloads.join(", ")}`;
  }
  if (target.startsWith("etcd-")) {
    const etcd = await findEtcd();
    return etcd.ok ? null : etcd.reason;
  }
  if (target === "denokv-local" && typeof Deno.openKv !== "function") {
    return "Deno.openKv is missing: run with --unstable-kv";
  }
  return null;
}

async function startTarget(
  target: TargetName,
  options: CompareOptions,
): Promise<StartedTarget> {
  const workDir = options.workDir;
  switch (target) {
    case "null-http": {
      const cluster = await startNullHttp(workDir);
      return {
        driver: new NullHttpDriver(cluster.urls[0]!),
        driverName: "fetch, JSON bodies of Aspen's size",
        cluster,
        stop: cluster.stop,
      };
    }
    case "raw-1":
    case "raw-3": {
      // The ceiling of the HTTP path: the same API without the client module.
      const cluster = await startAspenCluster({
        nodes: target === "raw-1" ? 1 : 3,
        workDir,
      });
      const leader = await cluster.leaderIndex();
      return {
        driver: new AspenHttpDriver([
          cluster.urls[leader]!,
          ...cluster.urls.filter((_, i) => i !== leader),
        ]),
        driverName: "Aspen HTTP API (raw fetch, JSON) at the leader",
        cluster,
        ...aspenCoordination(cluster.urls, leader),
        stop: cluster.stop,
      };
    }
    case "aspen-1":
    case "aspen-3": {
      const cluster = await startAspenCluster({
        nodes: target === "aspen-1" ? 1 : 3,
        workDir,
      });
      const leader = await cluster.leaderIndex();
      const urls = [
        cluster.urls[leader]!,
        ...cluster.urls.filter((_, i) => i !== leader),
      ];
      return {
        driver: options.driver === "client"
          ? new AspenClientDriver(urls)
          : new AspenHttpDriver(urls),
        driverName: options.driver === "client"
          ? "Aspen client module (connect(urls).kv, JSON), leader first"
          : "Aspen HTTP API (JSON, fetch) at the leader",
        cluster,
        ...aspenCoordination(cluster.urls, leader),
        stop: cluster.stop,
      };
    }
    case "etcd-1":
    case "etcd-3": {
      const etcd = await findEtcd();
      if (!etcd.ok) throw new Error(etcd.reason);
      const cluster = await startEtcdCluster({
        nodes: target === "etcd-1" ? 1 : 3,
        workDir,
        binary: etcd.path,
      });
      const leader = await cluster.leaderIndex();
      return {
        driver: new EtcdHttpDriver(cluster.urls[leader]!),
        driverName: "etcd HTTP/JSON gateway (/v3/kv) at the leader",
        coordination: new EtcdCoordinationDriver(cluster.urls[leader]!),
        coordinationName:
          "etcd HTTP/JSON gateway (/v3/lease, /v3/lock) at the leader",
        cluster,
        stop: cluster.stop,
      };
    }
    case "denokv-local": {
      const root = await Deno.makeTempDir({ dir: workDir, prefix: "denokv-" });
      const kv = await Deno.openKv(`${root}/kv.sqlite`);
      return {
        driver: new DenoKvDriver(kv),
        driverName: "Deno.openKv(path) in the load generator's process",
        cluster: null,
        stop: async () => {
          try {
            kv.close();
          } catch {
            // Already closed by the driver.
          }
          await Deno.remove(root, { recursive: true }).catch(() => {});
        },
      };
    }
    case "kvconnect-3":
      return await startKvConnect(options);
  }
}

/** The coordination driver of an Aspen target: raw HTTP at the leader. */
function aspenCoordination(urls: readonly string[], leader: number) {
  return {
    coordination: new AspenCoordinationDriver([
      urls[leader]!,
      ...urls.filter((_, i) => i !== leader),
    ]),
    coordinationName:
      "Aspen HTTP API (/v1/leases, /v1/locks; raw fetch, JSON) at the leader",
  };
}

/** Aspen-3 loaded by a child running stock `Deno.openKv(url)`. */
async function startKvConnect(options: CompareOptions): Promise<StartedTarget> {
  const cluster = await startAspenCluster({
    nodes: 3,
    workDir: options.workDir,
  });
  const leader = await cluster.leaderIndex();
  const token = BENCH_ASPEN_TOKEN;
  const spec: RunnerSpec = {
    url: `${cluster.urls[leader]}/kv`,
    workloads: kvWorkloads(options),
    clients: options.clients,
    durationMs: options.durationMs,
    valueBytes: options.valueBytes,
    prepareTimeoutMs: PREPARE_TIMEOUT_MS,
  };
  const runCells = async () => {
    const child = spawnChild("kvconnect-3 runner", Deno.execPath(), [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env",
      new URL("./_kvconnect_runner.ts", import.meta.url).pathname,
      JSON.stringify(spec),
    ], { DENO_KV_ACCESS_TOKEN: token });
    const cellCount = kvWorkloads(options).length * options.clients.length;
    const bound = PREPARE_TIMEOUT_MS +
      cellCount * (options.durationMs + CELL_SLACK_MS);
    const timer = setTimeout(() => stopChild(child), bound);
    try {
      const ready = await child.firstJson;
      if (ready.ready !== true) throw new Error(String(ready.error));
      const cells: CellMeasurement[] = [];
      for await (const line of child.jsonLines) {
        if (line.cell !== undefined) cells.push(line.cell as CellMeasurement);
        if (line.done === true) break;
      }
      for (const c of cells) {
        log(
          `kvconnect-3: ${c.workload} x${c.clients}: ${
            c.throughputPerSecond.toFixed(0)
          } ops/s, p99 ${c.latencyMs.p99.toFixed(2)} ms, ${c.errors} errors`,
        );
      }
      if (cells.length < cellCount) {
        throw new Error(
          `The KV Connect runner reported ${cells.length} of ${cellCount} cells: ${child.stderrTail()}`,
        );
      }
      return cells;
    } finally {
      clearTimeout(timer);
      await stopChild(child);
    }
  };
  return {
    driver: null,
    driverName:
      "stock Deno.openKv(url) (KV Connect) in a child process, at the leader",
    cluster,
    runCells,
    stop: cluster.stop,
  };
}

/**
 * Runs the coordination cells of one target. A workload whose preparation
 * fails (its routes missing, say) yields cells without operations that carry
 * the error, and the next workload still runs.
 */
async function runCoordination(
  target: TargetName,
  driver: CoordinationDriver,
  options: CompareOptions,
): Promise<CellMeasurement[]> {
  const cells: CellMeasurement[] = [];
  for (const workload of coordinationWorkloads(options)) {
    for (const clients of options.clients) {
      let leases: readonly string[] = [];
      for (const cell of COORDINATION_CELLS[workload]) {
        let measured: CellMeasurement;
        try {
          if (workload === "keepalive" && leases.length === 0) {
            leases = await prepareLeases(
              driver,
              KEEPALIVE_LEASES,
              BENCH_LEASE_TTL_MS,
              PREPARE_TIMEOUT_MS,
            );
          }
          measured = await runCoordinationCell(driver, {
            cell,
            clients,
            durationMs: options.durationMs,
            leases,
            prepareTimeoutMs: PREPARE_TIMEOUT_MS,
          });
        } catch (error) {
          measured = failedCell(cell, clients, error);
        }
        log(
          `${target}: ${cell} x${clients}: ${
            measured.throughputPerSecond.toFixed(0)
          } ${measured.unit}/s, ${
            (measured.callsPerSecond ?? 0).toFixed(0)
          } calls/s, p50 ${measured.latencyMs.p50.toFixed(2)} ms, p99 ${
            measured.latencyMs.p99.toFixed(2)
          } ms, ${measured.errors} errors, ${measured.violations} violations${
            measured.resends ? `, ${measured.resends} resends` : ""
          }${measured.firstError === null ? "" : ` (${measured.firstError})`}`,
        );
        cells.push(measured);
      }
    }
  }
  return cells;
}

/** How the events cells reach `target`, or "" when it runs none (etcd has no hooks). */
function eventsDriverName(
  target: TargetName,
  options: CompareOptions,
): string {
  if (target.startsWith("aspen-") || target.startsWith("raw-")) {
    return new AspenWatchDriver("", [""]).description;
  }
  if (target.startsWith("etcd-") && eventWorkloads(options).includes("watch")) {
    return new EtcdWatchDriver("", [""]).description;
  }
  return "";
}

/**
 * Runs the events cells of one target (`bench/_watch.ts`) at its leader:
 * the watch cell on Aspen and etcd, the hooks cells on Aspen only. A cell
 * that cannot run yields one without operations that carries the error.
 */
async function runEvents(
  target: TargetName,
  cluster: RunningCluster,
  options: CompareOptions,
): Promise<CellMeasurement[]> {
  const aspen = target.startsWith("aspen-") || target.startsWith("raw-");
  const etcd = target.startsWith("etcd-");
  if (!aspen && !etcd) return [];
  const leader = await cluster.leaderIndex();
  const url = cluster.urls[leader]!;
  // Watchers at the followers: a node takes at most 64 connections from one
  // address, which the leader's writers use up. One node watches itself.
  const followers = cluster.urls.filter((_, i) => i !== leader);
  const watchUrls = followers.length === 0 ? [url] : followers;
  const value = crypto.getRandomValues(new Uint8Array(options.valueBytes));
  const cells: CellMeasurement[] = [];
  for (const workload of eventWorkloads(options)) {
    if (workload === "hooks" && !aspen) continue;
    for (const clients of options.clients) {
      let measured: CellMeasurement[];
      try {
        measured = workload === "watch"
          ? [
            await runWatchCell(
              aspen
                ? new AspenWatchDriver(url, watchUrls)
                : new EtcdWatchDriver(url, watchUrls),
              {
                clients,
                durationMs: options.durationMs,
                value,
                warmupMs: EVENT_WARMUP_MS,
              },
            ),
          ]
          : await runHookCells(url, {
            clients,
            durationMs: options.durationMs,
            value,
            warmupMs: EVENT_WARMUP_MS,
            startWorker: await webhookWorkerStarter([
              url,
              ...followers,
            ]),
          });
      } catch (error) {
        measured = EVENT_CELLS[workload].map((cell) =>
          failedCell(cell, clients, error)
        );
      }
      for (const m of measured) {
        log(
          `${target}: ${m.workload} x${m.clients}: ${
            m.throughputPerSecond.toFixed(0)
          }/s, ${(m.callsPerSecond ?? 0).toFixed(0)} calls/s, p50 ${
            m.latencyMs.p50.toFixed(2)
          } ms, p99 ${
            m.latencyMs.p99.toFixed(2)
          } ms, ${m.errors} errors, ${m.violations} violations${
            m.firstError === null ? "" : ` (${m.firstError})`
          }`,
        );
      }
      cells.push(...measured);
    }
  }
  return cells;
}

/** A cell that could not run: no operation, the error as its first. */
function failedCell(
  cell: CellMeasurement["workload"],
  clients: number,
  error: unknown,
): CellMeasurement {
  return {
    workload: cell,
    clients,
    elapsedMs: 0,
    operations: 0,
    errors: 1,
    conflicts: 0,
    throughputPerSecond: 0,
    latencyMs: { p50: NaN, p99: NaN, max: NaN, mean: NaN },
    firstError: describeError(error),
    unit: "",
    calls: 0,
    callsPerSecond: 0,
    violations: 0,
  };
}

/** Runs every cell of one target, and the failover measurement on aspen-3. */
async function runTarget(
  target: TargetName,
  options: CompareOptions,
  onFailover: (outcome: FailoverMeasurement | string) => void,
): Promise<TargetResult> {
  const reason = await unavailableReason(target, options);
  if (reason !== null) {
    return {
      target,
      status: "skipped",
      reason,
      driver: "",
      startMs: null,
      cells: [],
    };
  }
  const begin = performance.now();
  let started: StartedTarget | null = null;
  const cells: CellMeasurement[] = [];
  try {
    started = await startTarget(target, options);
    const startMs = performance.now() - begin;
    log(`${target}: started in ${(startMs / 1000).toFixed(1)} s`);
    const kv = kvWorkloads(options);
    if (started.runCells !== undefined) {
      cells.push(...await started.runCells());
    } else if (kv.length > 0) {
      const driver = started.driver!;
      const keys = new KeySpace();
      const value = crypto.getRandomValues(new Uint8Array(options.valueBytes));
      if (kv.some((w) => w !== "put")) {
        await prepareKeys(driver, keys, value, PREPARE_TIMEOUT_MS);
      }
      for (const workload of kv) {
        for (const clients of options.clients) {
          const cell = await runCell(driver, {
            workload,
            clients,
            durationMs: options.durationMs,
            value,
            keys,
          });
          log(
            `${target}: ${workload} x${clients}: ${
              cell.throughputPerSecond.toFixed(0)
            } ops/s, p99 ${
              cell.latencyMs.p99.toFixed(2)
            } ms, ${cell.errors} errors`,
          );
          cells.push(cell);
        }
      }
      if (
        target === "aspen-3" && options.failover && started.cluster !== null
      ) {
        try {
          const failover = await measureFailover(started.cluster, {
            clients: 16,
            value,
            keys,
            warmupMs: 2_000,
            timeoutMs: 20_000,
            requestTimeoutMs: 1_000,
          });
          log(`aspen-3: failover ${JSON.stringify(failover)}`);
          onFailover(failover);
        } catch (error) {
          // A cluster that cannot fail over still produced its cells.
          onFailover(`the measurement failed: ${describeError(error)}`);
        }
      }
      await driver.close();
    }
    const coordination = started.coordination;
    const coordinationRan = coordination !== undefined &&
      coordinationWorkloads(options).length > 0;
    if (coordinationRan) {
      cells.push(...await runCoordination(target, coordination, options));
      await coordination.close();
    }
    const eventsRan = eventWorkloads(options).length > 0 &&
      started.cluster !== null && eventsDriverName(target, options) !== "";
    if (eventsRan) {
      cells.push(...await runEvents(target, started.cluster!, options));
    }
    const empty = cells.filter((c) => c.operations === 0);
    const processLogs = cells.some((c) => c.errors > 0)
      ? started.cluster?.children.map((c) => ({
        name: c.name,
        stderrTail: c.stderrTail(),
      }))
      : undefined;
    return {
      processLogs,
      target,
      status: empty.length === 0 ? "ran" : "failed",
      reason: empty.length === 0
        ? null
        : `no successful operation in ${
          empty.map((c) => `${c.workload} x${c.clients}`).join(", ")
        }: ${empty[0]!.firstError}`,
      driver: [
        ...(kv.length > 0 || (!coordinationRan && !eventsRan)
          ? [started.driverName]
          : []),
        ...(coordinationRan ? [started.coordinationName!] : []),
        ...(eventsRan ? [eventsDriverName(target, options)] : []),
      ].join("; "),
      startMs,
      cells,
    };
  } catch (error) {
    return {
      target,
      status: "failed",
      reason: describeError(error).split("\n")[0]!,
      driver: started?.driverName ?? "",
      startMs: null,
      cells,
    };
  } finally {
    await started?.stop();
  }
}

function log(line: string): void {
  console.error(`[compare] ${line}`);
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
    v8: Deno.version.v8,
  };
}

async function main(): Promise<number> {
  let options: CompareOptions;
  try {
    options = parseCompareOptions(Deno.args);
  } catch (error) {
    console.error(`bench/compare: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  const startedAt = new Date();
  const cellCount = cellsPerTarget(options);
  const boundMs = options.targets.length *
    (TARGET_SLACK_MS + PREPARE_TIMEOUT_MS +
      cellCount * (options.durationMs + CELL_SLACK_MS));
  // Every data folder of the run lives under one root, removed at the end.
  const runRoot = await Deno.makeTempDir({
    dir: options.workDir === "" ? undefined : options.workDir,
    prefix: "aspen-bench-",
  });
  const watchdog = setTimeout(async () => {
    console.error(
      `bench/compare: stopping after the time bound of ${boundMs} ms`,
    );
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
    Deno.exit(EXIT_TIME_BOUND);
  }, boundMs);
  const onSignal = async () => {
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const etcd = await findEtcd();
  const runOptions = { ...options, workDir: runRoot };
  let failover: FailoverMeasurement | null = null;
  let failoverError: string | null = null;
  const results: TargetResult[] = [];
  try {
    for (const target of options.targets) {
      log(`${target}: starting`);
      const result = await runTarget(target, runOptions, (outcome) => {
        if (typeof outcome === "string") failoverError = outcome;
        else failover = outcome;
      });
      if (result.status !== "ran") {
        log(`${target}: ${result.status}: ${result.reason}`);
      }
      results.push(result);
    }
  } finally {
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
    clearTimeout(watchdog);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const failoverSkippedReason = failover !== null
    ? null
    : !options.targets.includes("aspen-3")
    ? "aspen-3 was not among the targets"
    : !options.failover
    ? "not measured in --quick mode or with --no-failover"
    : kvWorkloads(options).length === 0
    ? "measured with the KV workloads only"
    : failoverError ?? "aspen-3 did not run";
  const result: CompareResult = {
    formatVersion: RESULT_FORMAT_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machine(), etcd: etcd.ok ? etcd.version : null },
    options: { ...options },
    targets: results,
    failover,
    failoverSkippedReason,
    ...(coordinationWorkloads(options).length === 0 ? {} : {
      coordination: {
        keepAliveCall: {
          aspen: ASPEN_KEEPALIVE_CALL,
          etcd: ETCD_KEEPALIVE_CALL,
        },
      },
    }),
  };
  await Deno.mkdir(options.outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  const jsonPath = `${options.outDir}/compare-${stamp}.json`;
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  printSummary(result, jsonPath);
  return results.some((r) => r.status === "failed") ? EXIT_NO_NUMBERS : 0;
}

function printSummary(result: CompareResult, jsonPath: string): void {
  const options = result.options as unknown as CompareOptions;
  console.log(
    `# Aspen comparison: ${options.workloads.join(", ")} at ${
      options.clients.join(", ")
    } clients, ${
      options.durationMs / 1000
    } s per cell, ${options.valueBytes}-byte values\n`,
  );
  if (kvWorkloads(options).length > 0) {
    console.log(formatTable(result.targets));
    console.log("");
  }
  const coordination = formatCoordinationTable(result.targets);
  if (coordination !== "") {
    console.log(coordination);
    if (coordinationWorkloads(options).length > 0) {
      console.log(`- keepalive call, Aspen: ${ASPEN_KEEPALIVE_CALL}`);
      console.log(`- keepalive call, etcd: ${ETCD_KEEPALIVE_CALL}`);
    }
    console.log("");
    for (const line of coordinationRatios(result.targets)) console.log(line);
    for (const line of eventLines(result.targets)) console.log(line);
    console.log("");
  }
  for (const t of result.targets) {
    const detail = t.status === "ran" ? t.driver : t.reason;
    console.log(`${t.status.padEnd(7)} ${t.target}: ${detail}`);
  }
  const f = result.failover;
  console.log(
    f === null
      ? `failover: not measured (${result.failoverSkippedReason})`
      : `failover: leader killed (SIGKILL) under ${f.clients} writers; first write sent after the kill succeeded after ${
        f.firstWriteAfterKillMs === null
          ? "none in time"
          : `${f.firstWriteAfterKillMs.toFixed(0)} ms`
      }; survivors agreed on a new leader after ${
        f.newLeaderMs === null
          ? "none in time"
          : `${f.newLeaderMs.toFixed(0)} ms`
      }; ${f.errorsDuringFailover} failed writes meanwhile`,
  );
  console.log(`results: ${jsonPath}`);
}

if (import.meta.main) {
  Deno.exit(await main());
}
