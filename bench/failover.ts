/**
 * Failover trials alone: for each trial a fresh 3-node Aspen (default
 * timeouts) under write load through the client module, its leader killed
 * with SIGKILL, timed by {@linkcode measureFailover} as in
 * `bench/compare.ts`. Prints one JSON line per trial and a summary (median,
 * max) of the time to the first successful write after the kill and to an
 * agreed new leader.
 *
 * ```sh
 * deno run --unstable-net --allow-run --allow-read --allow-write --allow-env \
 *   --allow-net=127.0.0.1 bench/failover.ts --trials 5
 * ```
 *
 * Options: `--trials <n>` (default 5), `--clients <n>` writers (default 16,
 * as `bench/compare.ts`), `--request-timeout <ms>` per write (default 1000,
 * as `bench/compare.ts`), `--warmup <ms>` of load before the kill (default
 * 2000), `--work-dir <dir>` (data folders' parent). Exits 1 when a trial
 * found no successful write after the kill, 2 on bad options.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startAspenCluster } from "./_clusters.ts";
import { type FailoverMeasurement, measureFailover } from "./_failover.ts";
import { KeySpace } from "./_load.ts";
import { stopAllChildren } from "./_processes.ts";

/** Ms after the kill before a trial gives up. */
const TRIAL_TIMEOUT_MS = 20_000;

function positive(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(
      `bench/failover: '--${name}' must be a positive integer: current value is '${raw}'`,
    );
    Deno.exit(2);
  }
  return value;
}

/** The median and maximum of `values` (null when empty). */
function summarize(
  values: readonly number[],
): { median: number; max: number } | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, max: sorted[sorted.length - 1]! };
}

function format(summary: { median: number; max: number } | null): string {
  return summary === null
    ? "none"
    : `median ${summary.median.toFixed(0)} ms, max ${
      summary.max.toFixed(0)
    } ms`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      trials: { type: "string", default: "5" },
      clients: { type: "string", default: "16" },
      "request-timeout": { type: "string", default: "1000" },
      warmup: { type: "string", default: "2000" },
      "work-dir": { type: "string" },
    },
    strict: true,
  });
  const trials = positive("trials", values.trials);
  const clients = positive("clients", values.clients);
  const requestTimeoutMs = positive(
    "request-timeout",
    values["request-timeout"],
  );
  const warmupMs = positive("warmup", values.warmup);
  const workDir = values["work-dir"] ?? (await Deno.makeTempDir({
    prefix: "aspen-failover-",
  }));
  const results: FailoverMeasurement[] = [];
  let missing = 0;
  try {
    for (let trial = 1; trial <= trials; trial++) {
      const cluster = await startAspenCluster({ nodes: 3, workDir });
      try {
        const value = crypto.getRandomValues(new Uint8Array(256));
        const measured = await measureFailover(cluster, {
          clients,
          value,
          keys: new KeySpace(),
          warmupMs,
          timeoutMs: TRIAL_TIMEOUT_MS,
          requestTimeoutMs,
        });
        if (measured.firstWriteAfterKillMs === null) missing++;
        results.push(measured);
        console.log(JSON.stringify({ trial, ...measured }));
      } finally {
        await cluster.stop();
      }
    }
  } finally {
    await stopAllChildren();
    if (values["work-dir"] === undefined) {
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
    }
  }
  const writes = results.flatMap((r) =>
    r.firstWriteAfterKillMs === null ? [] : [r.firstWriteAfterKillMs]
  );
  const leaders = results.flatMap((r) =>
    r.newLeaderMs === null ? [] : [r.newLeaderMs]
  );
  console.log(
    `failover over ${trials} trials (${clients} writers): first write after the kill ${
      format(summarize(writes))
    } [${writes.map((w) => w.toFixed(0)).join(", ")}]; agreed new leader ${
      format(summarize(leaders))
    } [${leaders.map((w) => w.toFixed(0)).join(", ")}]${
      missing > 0 ? `; ${missing} trials without a write` : ""
    }`,
  );
  if (missing > 0) Deno.exit(1);
}
