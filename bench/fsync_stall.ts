/**
 * Does persisting the Raft log stall the event loop? Measures how late a 1 ms
 * timer fires on the main thread (a stand-in for network callbacks) while the
 * log store saves 100-entry batches (synchronous=FULL, one fsync each):
 * with no writes (the anchor), with the writes on the main thread, and with
 * the same writes in a Worker.
 *
 * Run: deno run --allow-read --allow-write --allow-env bench/fsync_stall.ts [--seconds 3]
 */
import { SqliteLogStore } from "../src/storage/sqlite_log_store.ts";
import type { Entry, LogIndex, Term } from "../src/raft/types.ts";

const seconds = Number(Deno.args[Deno.args.indexOf("--seconds") + 1] ?? "3") ||
  3;

function batch(first: number, count: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({
    term: 1 as Term,
    index: (first + i) as LogIndex,
    type: "normal" as const,
    data: new Uint8Array(256),
  }));
}

/** Timer lateness samples (ms) while `work` runs for the given time. */
async function measureLateness(
  durationMs: number,
  work: () => Promise<number>,
): Promise<{ lateness: number[]; batches: number }> {
  const lateness: number[] = [];
  let expected = performance.now() + 1;
  const timer = setInterval(() => {
    const now = performance.now();
    lateness.push(Math.max(0, now - expected));
    expected = now + 1;
  }, 1);
  const deadline = performance.now() + durationMs;
  let batches = 0;
  while (performance.now() < deadline) batches += await work();
  clearInterval(timer);
  return { lateness, batches };
}

function summary(
  name: string,
  { lateness, batches }: { lateness: number[]; batches: number },
): string {
  const sorted = [...lateness].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return `| ${name} | ${batches} | ${at(0.5).toFixed(2)} | ${
    at(0.99).toFixed(2)
  } | ${(sorted.at(-1) ?? 0).toFixed(2)} |`;
}

const dir = await Deno.makeTempDir({ prefix: "aspen-stall-" });
try {
  const idle = await measureLateness(seconds * 1000, async () => {
    await new Promise((r) => setTimeout(r, 5));
    return 0;
  });

  const store = SqliteLogStore.open({ path: `${dir}/main.sqlite` });
  let next = 1;
  const main = await measureLateness(seconds * 1000, async () => {
    store.append(batch(next, 100));
    next += 100;
    await new Promise((r) => setTimeout(r, 0));
    return 1;
  });
  store.close();

  const worker = new Worker(new URL("./_fsync_worker.ts", import.meta.url), {
    type: "module",
  });
  const pending: ((value: number) => void)[] = [];
  worker.onmessage = () => pending.shift()?.(1);
  worker.postMessage({ open: `${dir}/worker.sqlite` });
  let nextW = 1;
  const inWorker = await measureLateness(seconds * 1000, () => {
    const done = new Promise<number>((resolve) => pending.push(resolve));
    worker.postMessage({ first: nextW, count: 100 });
    nextW += 100;
    return done;
  });
  worker.terminate();

  console.log(
    `Event-loop lateness of a 1 ms timer while saving 100 x 256 B batches (FULL), ${seconds} s each, ${
      new Date().toISOString()
    }`,
  );
  console.log("| case | batches saved | p50 ms | p99 ms | max ms |");
  console.log("| --- | --- | --- | --- | --- |");
  console.log(summary("no writes (anchor)", idle));
  console.log(summary("log store on the main thread", main));
  console.log(summary("log store in a Worker", inWorker));
} finally {
  await Deno.remove(dir, { recursive: true });
}
