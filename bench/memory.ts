/**
 * `deno task bench:memory`: the resident memory of each node of a
 * three-node Aspen while it takes `--puts` puts of fresh keys (256-byte
 * values, 64 clients through the client module): at the start, every
 * `--every` puts, after the last put, and after a forced Raft snapshot
 * with log compaction (SIGUSR1 to each node, see `bench/_aspen_node.ts`).
 *
 * At each point it reads `VmRSS` (and its anonymous and file-backed parts)
 * from `/proc/<pid>/status`, then asks each node (SIGUSR2) for
 * `Deno.memoryUsage()` after a full GC (the nodes run with
 * `--v8-flags=--expose-gc`) and its Raft indexes, and reads the size of the
 * latest Raft snapshot from the node's log line. Prints a table and writes
 * JSON to `bench/results/memory-<time>.json`.
 *
 * ```sh
 * deno task bench:memory --puts 50000 --every 10000
 * ```
 *
 * Options: `--puts <n>` (default 1,000,000), `--every <n>` (default
 * 100,000), `--clients <n>` (default 64), `--value-size <bytes>` (default
 * 256), `--snapshot-entries <n>` (the nodes' snapshot period, default
 * theirs: 10,000), `--out <dir>`, `--work-dir <dir>` (default `/tmp`). Exits 2 on bad
 * options, 3 on the time bound, 5 when the run failed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type RunningCluster, startAspenCluster } from "./_clusters.ts";
import { AspenClientDriver } from "./_drivers.ts";
import { describeError, KeySpace, pause, runCell } from "./_load.ts";
import { type Child, signalChild, stopAllChildren } from "./_processes.ts";
import { markdownTable } from "./_report.ts";

/** Parsed options. */
export interface MemoryOptions {
  readonly puts: number;
  readonly every: number;
  readonly clients: number;
  readonly valueBytes: number;
  /** Applied entries between two Raft snapshots; null for the node's default (10,000). */
  readonly snapshotEntries: number | null;
  readonly outDir: string;
  readonly workDir: string;
}

/** One node's memory at one point of the run. */
export interface NodeMemory {
  readonly node: string;
  readonly pid: number;
  /** `VmRSS`, `RssAnon`, `RssFile` of `/proc/<pid>/status`, in bytes, before the GC. */
  readonly rssBytes: number;
  readonly rssAnonBytes: number;
  readonly rssFileBytes: number;
  /** `VmHWM`: the highest RSS so far, in bytes. */
  readonly rssPeakBytes: number;
  /** `VmRSS` right after the node's full GC. */
  readonly rssAfterGcBytes: number;
  /** `Deno.memoryUsage()` after the full GC. */
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly role: string;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  /** Bytes of the latest Raft snapshot the node logged, or null. */
  readonly snapshotBytes: number | null;
  /** Bytes of the node's data folder on disk. */
  readonly dataDirBytes: number;
}

/** One point of the run. */
export interface MemoryPoint {
  readonly label: string;
  readonly puts: number;
  /** Puts per second of the chunk that led here (null at the start). */
  readonly putsPerSecond: number | null;
  readonly errors: number;
  readonly nodes: readonly NodeMemory[];
}

const EXIT_USAGE = 2;
const EXIT_TIME_BOUND = 3;
const EXIT_FAILED = 5;
/** Ms a node may take to answer a memory report. */
const REPORT_TIMEOUT_MS = 60_000;
/** Ms the forced snapshot may take on every node. */
const SNAPSHOT_TIMEOUT_MS = 300_000;
/** Ms the whole run may take (the largest run of this machine is far shorter). */
const RUN_BOUND_MS = 4 * 3600 * 1000;
/** Ms one put may take. */
const REQUEST_TIMEOUT_MS = 10_000;
/** Longest chunk of puts, in ms (the chunk ends at its put count first). */
const CHUNK_DURATION_MS_MAX = 3600 * 1000;
const MIB = 1024 * 1024;

function count(name: string, text: string, max: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Cannot run as '--${name}' must be an integer in [1, ${max}]: current value is '${text}'`,
    );
  }
  return value;
}

/**
 * Reads the command line.
 *
 * @throws {RangeError} When a value is out of range.
 */
export function parseMemoryOptions(args: readonly string[]): MemoryOptions {
  const { values } = parseArgs({
    args: [...args],
    options: {
      puts: { type: "string", default: "1000000" },
      every: { type: "string", default: "100000" },
      clients: { type: "string", default: "64" },
      "value-size": { type: "string", default: "256" },
      "snapshot-entries": { type: "string" },
      out: {
        type: "string",
        default: new URL("./results", import.meta.url).pathname,
      },
      "work-dir": { type: "string", default: "/tmp" },
    },
    strict: true,
  });
  const puts = count("puts", values.puts, 100_000_000);
  return {
    puts,
    every: count("every", values.every, puts),
    clients: count("clients", values.clients, 1024),
    valueBytes: count("value-size", values["value-size"], 60_000),
    snapshotEntries: values["snapshot-entries"] === undefined
      ? null
      : count("snapshot-entries", values["snapshot-entries"], 100_000_000),
    outDir: values.out,
    workDir: values["work-dir"],
  };
}

function log(line: string): void {
  console.error(`[memory] ${line}`);
}

/**
 * `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` of a process, in bytes, read
 * from `/proc/<pid>/status` by `cat` (Deno grants another process's `/proc`
 * files only with `--allow-all`).
 */
export async function readRss(pid: number): Promise<Record<string, number>> {
  const output = await new Deno.Command("cat", {
    args: [`/proc/${pid}/status`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!output.success) {
    throw new Error(
      `Cannot read /proc/${pid}/status: ${
        new TextDecoder().decode(output.stderr)
      }`,
    );
  }
  const text = new TextDecoder().decode(output.stdout);
  const fields: Record<string, number> = {};
  for (const name of ["VmRSS", "RssAnon", "RssFile", "VmHWM"]) {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    if (match === null) {
      throw new Error(`Cannot read ${name} of process ${pid}: not in status`);
    }
    fields[name] = Number(match[1]) * 1024;
  }
  return fields;
}

/** The latest "raft: snapshot {…}" line of a node's stderr, as its byte count. */
function latestSnapshotBytes(child: Child): number | null {
  const lines = child.stderrTail().split("\n").reverse();
  for (const line of lines) {
    const match = /raft: snapshot (\{.*\})/.exec(line);
    if (match === null) continue;
    try {
      const detail = JSON.parse(match[1]!) as { bytes?: number };
      return typeof detail.bytes === "number" ? detail.bytes : null;
    } catch {
      return null;
    }
  }
  return null;
}

async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) total += await folderBytes(full);
    else if (entry.isFile) total += (await Deno.stat(full)).size;
  }
  return total;
}

/** Asks a node for its memory report (SIGUSR2) and waits for the line. */
async function nodeReport(
  child: Child,
  lines: AsyncIterator<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  signalChild(child, "SIGUSR2");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `Node '${child.name}' sent no memory report within ${REPORT_TIMEOUT_MS} ms`,
          ),
        ),
      REPORT_TIMEOUT_MS,
    );
  });
  try {
    for (;;) {
      const next = await Promise.race([lines.next(), timeout]);
      if (next.done) throw new Error(`Node '${child.name}' exited`);
      if (next.value.memory !== undefined) return next.value;
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Reads every node's memory. */
async function measure(
  cluster: RunningCluster,
  lines: AsyncIterator<Record<string, unknown>>[],
): Promise<NodeMemory[]> {
  return await Promise.all(cluster.children.map(async (child, i) => {
    const rss = await readRss(child.pid);
    const report = await nodeReport(child, lines[i]!);
    const after = await readRss(child.pid);
    const memory = report.memory as Record<string, number>;
    const raft = report.raft as Record<string, number | string>;
    return {
      node: `n${i + 1}`,
      pid: child.pid,
      rssBytes: rss.VmRSS!,
      rssAnonBytes: rss.RssAnon!,
      rssFileBytes: rss.RssFile!,
      rssPeakBytes: rss.VmHWM!,
      rssAfterGcBytes: after.VmRSS!,
      heapUsedBytes: memory.heapUsed!,
      heapTotalBytes: memory.heapTotal!,
      externalBytes: memory.external!,
      role: String(raft.role),
      applied: Number(raft.applied),
      lastIndex: Number(raft.lastIndex),
      snapshotIndex: Number(raft.snapshotIndex),
      snapshotBytes: latestSnapshotBytes(child),
      dataDirBytes: await folderBytes(`${cluster.root}/n${i + 1}`),
    };
  }));
}

/** Forces a snapshot on every node and waits until each has compacted to its applied index. */
async function forceSnapshots(
  cluster: RunningCluster,
  lines: AsyncIterator<Record<string, unknown>>[],
): Promise<void> {
  const deadline = performance.now() + SNAPSHOT_TIMEOUT_MS;
  const pending = new Set(cluster.children.map((_, i) => i));
  for (const i of pending) signalChild(cluster.children[i]!, "SIGUSR1");
  while (pending.size > 0) {
    if (performance.now() > deadline) {
      throw new Error(
        `Cannot force snapshots: nodes ${
          [...pending].map((i) => `n${i + 1}`).join(", ")
        } did not compact within ${SNAPSHOT_TIMEOUT_MS} ms`,
      );
    }
    await pause(500);
    for (const i of [...pending]) {
      const report = await nodeReport(cluster.children[i]!, lines[i]!);
      const raft = report.raft as Record<string, number>;
      if (raft.snapshotIndex! >= raft.applied!) pending.delete(i);
    }
  }
}

function mib(bytes: number | null): string {
  return bytes === null ? "-" : (bytes / MIB).toFixed(1);
}

/** The printed table: one row per point and node. */
export function memoryTable(points: readonly MemoryPoint[]): string {
  const rows = points.flatMap((p) =>
    p.nodes.map((n) => [
      p.label,
      String(p.puts),
      p.putsPerSecond === null ? "-" : p.putsPerSecond.toFixed(0),
      `${n.node} (${n.role})`,
      mib(n.rssBytes),
      mib(n.rssAnonBytes),
      mib(n.rssAfterGcBytes),
      mib(n.rssPeakBytes),
      mib(n.heapUsedBytes),
      mib(n.externalBytes),
      String(n.lastIndex - n.snapshotIndex),
      mib(n.snapshotBytes),
      mib(n.dataDirBytes),
    ])
  );
  return markdownTable(
    [
      "point",
      "puts",
      "puts/s",
      "node",
      "RSS MiB",
      "anon MiB",
      "RSS after GC MiB",
      "peak RSS MiB",
      "heap used MiB",
      "external MiB",
      "log entries after snapshot",
      "last snapshot MiB",
      "data folder MiB",
    ],
    rows,
  );
}

async function run(
  options: MemoryOptions,
  runRoot: string,
): Promise<MemoryPoint[]> {
  const cluster = await startAspenCluster({
    nodes: 3,
    workDir: runRoot,
    denoFlags: ["--v8-flags=--expose-gc"],
    snapshotEntries: options.snapshotEntries ?? undefined,
  });
  try {
    const lines = cluster.children.map((c) =>
      c.jsonLines[Symbol.asyncIterator]()
    );
    const leader = await cluster.leaderIndex();
    const urls = [
      cluster.urls[leader]!,
      ...cluster.urls.filter((_, i) => i !== leader),
    ];
    const driver = new AspenClientDriver(urls, REQUEST_TIMEOUT_MS);
    const keys = new KeySpace();
    const value = crypto.getRandomValues(new Uint8Array(options.valueBytes));
    const points: MemoryPoint[] = [];
    const record = async (point: Omit<MemoryPoint, "nodes">) => {
      const nodes = await measure(cluster, lines);
      points.push({ ...point, nodes });
      log(
        `${point.label}: ${point.puts} puts${
          point.putsPerSecond === null
            ? ""
            : ` (${point.putsPerSecond.toFixed(0)}/s)`
        }; RSS ${
          nodes.map((n) => `${n.node} ${mib(n.rssBytes)}`).join(", ")
        } MiB; heap ${
          nodes.map((n) => mib(n.heapUsedBytes)).join(", ")
        } MiB; last snapshot ${
          nodes.map((n) => mib(n.snapshotBytes)).join(", ")
        } MiB`,
      );
    };
    await record({ label: "start", puts: 0, putsPerSecond: null, errors: 0 });
    let done = 0;
    let errors = 0;
    while (done < options.puts) {
      const chunk = Math.min(options.every, options.puts - done);
      const cell = await runCell(driver, {
        workload: "put",
        clients: options.clients,
        durationMs: CHUNK_DURATION_MS_MAX,
        value,
        keys,
        operationsMax: chunk,
      });
      done += cell.operations;
      errors += cell.errors;
      if (cell.operations === 0) {
        throw new Error(`Cannot put: no put succeeded: ${cell.firstError}`);
      }
      await record({
        label: done >= options.puts ? "end" : "puts",
        puts: done,
        putsPerSecond: cell.throughputPerSecond,
        errors,
      });
    }
    await driver.close();
    await forceSnapshots(cluster, lines);
    await record({
      label: "after compaction",
      puts: done,
      putsPerSecond: null,
      errors,
    });
    return points;
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<number> {
  let options: MemoryOptions;
  try {
    options = parseMemoryOptions(Deno.args);
  } catch (error) {
    console.error(`bench/memory: ${(error as Error).message}`);
    return EXIT_USAGE;
  }
  const startedAt = new Date();
  const runRoot = await Deno.makeTempDir({
    dir: options.workDir,
    prefix: "aspen-memory-",
  });
  const cleanUp = async () => {
    await stopAllChildren();
    await Deno.remove(runRoot, { recursive: true }).catch(() => {});
  };
  const watchdog = setTimeout(async () => {
    console.error(`bench/memory: stopping after ${RUN_BOUND_MS} ms`);
    await cleanUp();
    Deno.exit(EXIT_TIME_BOUND);
  }, RUN_BOUND_MS);
  const onSignal = async () => {
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const points = await run(options, runRoot);
    const result = {
      formatVersion: 1,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      options,
      machine: {
        nproc: navigator.hardwareConcurrency,
        os: `${Deno.build.os} ${Deno.build.arch}`,
        deno: Deno.version.deno,
      },
      points,
    };
    await Deno.mkdir(options.outDir, { recursive: true });
    const stamp = result.startedAt.replace(/[:.]/g, "-");
    const jsonPath = `${options.outDir}/memory-${stamp}.json`;
    await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
    console.log(
      `# Aspen memory: aspen-3, ${options.puts} puts of ${options.valueBytes} bytes (fresh keys, ${options.clients} clients), a Raft snapshot every ${
        options.snapshotEntries ?? "10000 (default)"
      } entries\n`,
    );
    console.log(memoryTable(points));
    console.log(`\nresults: ${jsonPath}`);
    return 0;
  } catch (error) {
    console.error(`bench/memory: the run failed: ${describeError(error)}`);
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
