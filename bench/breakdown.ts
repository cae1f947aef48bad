/**
 * `deno task bench:breakdown`: where one request's time goes, stage by
 * stage. For put and get at 1 and 64 clients on a 1-node and a 3-node Aspen
 * (real processes, client module), it reads the leader's (and one
 * follower's) `aspen_stage_ms` histograms from `/metrics` before and after
 * each cell and prints, per stage, the observations, the mean and the
 * p50/p99 of that cell alone (interpolated within the histogram's buckets,
 * see src/node/write_stages.ts for the stages).
 *
 * ```sh
 * deno run --unstable-net --allow-run --allow-read --allow-write --allow-env \
 *   --allow-net=127.0.0.1 bench/breakdown.ts [--duration 3] [--clients 1,64] \
 *   [--nodes 1,3] [--workloads put,get] [--out bench/results]
 * ```
 *
 * Writes the tables as Markdown to `<out>/breakdown-<time>.md` as well.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type RunningCluster, startAspenCluster } from "./_clusters.ts";
import { AspenClientDriver, BENCH_ASPEN_TOKEN } from "./_drivers.ts";
import { KeySpace, prepareKeys, runCell, type Workload } from "./_load.ts";
import { stopAllChildren } from "./_processes.ts";
import { markdownTable } from "./_report.ts";

/** One stage's cumulative histogram as read from `/metrics`. */
interface StageHistogram {
  /** Upper bounds and cumulative counts, `+Inf` last. */
  readonly buckets: { le: number; count: number }[];
  readonly sum: number;
  readonly count: number;
}

type Scrape = Map<string, StageHistogram>;

const LINE =
  /^aspen_stage_ms_(bucket|sum|count)\{stage="([^"]+)"(?:,le="([^"]+)")?\} (\S+)$/;

/** Parses every `aspen_stage_ms` histogram of a `/metrics` text. */
export function parseStages(text: string): Scrape {
  const stages: Scrape = new Map();
  for (const line of text.split("\n")) {
    const match = LINE.exec(line);
    if (match === null) continue;
    const [, kind, stage, le, value] = match;
    let histogram = stages.get(stage!);
    if (histogram === undefined) {
      histogram = { buckets: [], sum: 0, count: 0 };
      stages.set(stage!, histogram);
    }
    const number = Number(value);
    if (kind === "bucket") {
      histogram.buckets.push({
        le: le === "+Inf" ? Infinity : Number(le),
        count: number,
      });
    } else if (kind === "sum") {
      (histogram as { sum: number }).sum = number;
    } else (histogram as { count: number }).count = number;
  }
  return stages;
}

/** The observations between two scrapes of the same histogram. */
function difference(
  after: StageHistogram,
  before: StageHistogram | undefined,
): StageHistogram {
  return {
    buckets: after.buckets.map((bucket, i) => ({
      le: bucket.le,
      count: bucket.count - (before?.buckets[i]?.count ?? 0),
    })),
    sum: after.sum - (before?.sum ?? 0),
    count: after.count - (before?.count ?? 0),
  };
}

/** The `q` quantile, interpolated linearly inside its bucket. */
export function quantile(histogram: StageHistogram, q: number): number {
  if (histogram.count === 0) return NaN;
  const rank = q * histogram.count;
  let previousLe = 0;
  let previousCount = 0;
  for (const { le, count } of histogram.buckets) {
    if (count >= rank) {
      if (le === Infinity) return previousLe;
      const inBucket = count - previousCount;
      const fraction = inBucket === 0 ? 1 : (rank - previousCount) / inBucket;
      return previousLe + (le - previousLe) * fraction;
    }
    previousLe = le;
    previousCount = count;
  }
  return previousLe;
}

async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`, {
    headers: { authorization: `Bearer ${BENCH_ASPEN_TOKEN}` },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`Cannot read ${url}/metrics: HTTP ${response.status}`);
  }
  return parseStages(text);
}

/** One table row per stage that saw observations in the cell. */
function rows(before: Scrape, after: Scrape): string[][] {
  const out: string[][] = [];
  for (const [stage, histogram] of after) {
    const cell = difference(histogram, before.get(stage));
    if (cell.count <= 0) continue;
    out.push([
      stage,
      String(cell.count),
      (cell.sum / cell.count).toFixed(3),
      quantile(cell, 0.5).toFixed(3),
      quantile(cell, 0.99).toFixed(3),
    ]);
  }
  return out;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "3" },
    clients: { type: "string", default: "1,64" },
    nodes: { type: "string", default: "1,3" },
    workloads: { type: "string", default: "put,get" },
    out: { type: "string", default: "bench/results" },
    "work-dir": { type: "string", default: "" },
  },
});
const durationMs = Number(values.duration) * 1000;
const clientCounts = values.clients.split(",").map(Number);
const nodeCounts = values.nodes.split(",").map(Number);
const workloads = values.workloads.split(",") as Workload[];
for (const n of [durationMs, ...clientCounts, ...nodeCounts]) {
  if (!Number.isFinite(n) || n <= 0) {
    console.error(
      "Cannot run: --duration, --clients and --nodes take positive numbers",
    );
    Deno.exit(2);
  }
}
for (const workload of workloads) {
  if (workload !== "put" && workload !== "get") {
    console.error(`Cannot run workload '${workload}': use put and/or get`);
    Deno.exit(2);
  }
}

const value = new Uint8Array(256).fill(7);
const workDir = values["work-dir"] === ""
  ? Deno.makeTempDirSync({ prefix: "aspen_breakdown_" })
  : values["work-dir"];
const sections: string[] = [];
const started = new Date();
let cluster: RunningCluster | null = null;
try {
  for (const nodes of nodeCounts) {
    console.error(`[breakdown] starting aspen-${nodes}`);
    cluster = await startAspenCluster({ nodes, workDir });
    const leader = await cluster.leaderIndex();
    const urls = [
      cluster.urls[leader]!,
      ...cluster.urls.filter((_, i) => i !== leader),
    ];
    const follower = urls[1];
    const driver = new AspenClientDriver(urls);
    const keys = new KeySpace();
    await prepareKeys(driver, keys, value, 30_000);
    for (const workload of workloads) {
      for (const clients of clientCounts) {
        const before = await scrape(urls[0]!);
        const followerBefore = follower === undefined
          ? null
          : await scrape(follower);
        const cell = await runCell(driver, {
          workload,
          clients,
          durationMs,
          value,
          keys,
        });
        const after = await scrape(urls[0]!);
        const title = `aspen-${nodes} ${workload} ×${clients}: ${
          Math.round(cell.throughputPerSecond)
        } ops/s, client p50 ${cell.latencyMs.p50.toFixed(2)} ms, p99 ${
          cell.latencyMs.p99.toFixed(2)
        } ms, ${cell.errors} errors`;
        const header = [
          "stage (leader)",
          "count",
          "mean ms",
          "p50 ms",
          "p99 ms",
        ];
        let text = `### ${title}\n\n${
          markdownTable(header, rows(before, after))
        }`;
        if (followerBefore !== null) {
          const followerAfter = await scrape(follower!);
          const followerRows = rows(followerBefore, followerAfter).filter((
            [stage],
          ) => stage === "loop.delay" || stage!.startsWith("http."));
          text += `\n\nFollower: ${
            followerRows.map(([stage, count, mean, p50, p99]) =>
              `${stage} n=${count} mean ${mean} p50 ${p50} p99 ${p99}`
            ).join("; ")
          }`;
        }
        sections.push(text);
        console.log(`\n${text}\n`);
      }
    }
    await driver.close();
    await cluster.stop();
    cluster = null;
  }
} finally {
  await cluster?.stop();
  await stopAllChildren();
}
await Deno.mkdir(values.out, { recursive: true });
const stamp = started.toISOString().replaceAll(":", "-").replace(".", "-");
const path = `${values.out}/breakdown-${stamp}.md`;
await Deno.writeTextFile(
  path,
  `# Stage breakdown, ${started.toISOString()}\n\n${sections.join("\n\n")}\n`,
);
console.error(`[breakdown] written: ${path}`);
if (values["work-dir"] === "") {
  await Deno.remove(workDir, { recursive: true }).catch(() => {});
}
