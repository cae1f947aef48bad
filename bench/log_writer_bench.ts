/**
 * One `save` of the ready loop (entries plus the hard state, one
 * transaction, one fsync) through each log writer the runner can use, for
 * batches of 1, 16 and 256 entries of 256 bytes:
 *
 * - `SyncLogWriter` on a `SqliteLogStore` (WAL, synchronous=FULL), writing
 *   on the main thread;
 * - `WorkerLogWriter`, the same store in its Worker (the request and its
 *   entries are structured-cloned to the Worker and a reply comes back);
 * - baseline: local Deno KV's `atomic()` commit of the same number of
 *   256-byte sets (one fsync per commit).
 *
 * Entries/s = iter/s × the batch size (the names say so). Every write is
 * durable. Each store gets its own file under /tmp, removed on unload; the
 * iteration counts are fixed so the logs stay small and the file finishes
 * in well under a minute.
 *
 * Run: deno task bench, or
 * npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env --unstable-kv bench/log_writer_bench.ts
 *
 * @module
 */
import type {
  Entry,
  HardState,
  LogIndex,
  NodeId,
  Term,
} from "../src/raft/types.ts";
import type { SaveRequest } from "../src/storage/log_store.ts";
import { SqliteLogStore } from "../src/storage/sqlite_log_store.ts";
import {
  type LogWriter,
  SyncLogWriter,
  WorkerLogWriter,
} from "../src/storage/log_writer.ts";

const ENTRY_BYTES = 256;
const BATCH_SIZES = [1, 16, 256] as const;
/** Timed saves per bench: each costs an fsync (a few ms), so a fixed count bounds the run. */
const SAVES_TIMED = 150;
const SAVES_WARMUP = 10;

const directory = Deno.makeTempDirSync({
  dir: "/tmp",
  prefix: "aspen_log_writer_bench_",
});
const writers: LogWriter[] = [];
const kv = await Deno.openKv(`${directory}/deno_kv.sqlite`);
globalThis.addEventListener("unload", () => {
  // A SyncLogWriter closes its store at once; a WorkerLogWriter asks its
  // Worker to, and the Worker ends with the process.
  for (const writer of writers) void writer.close().catch(() => {});
  kv.close();
  Deno.removeSync(directory, { recursive: true });
});

const data = new Uint8Array(ENTRY_BYTES).map((_, i) => (i * 31) & 0xff);

/** Appends batches at the log's end, each with the hard state a leader would write. */
class BatchSource {
  #lastIndex = 0;

  next(count: number): SaveRequest {
    const start = this.#lastIndex + 1;
    const entries: Entry[] = Array.from({ length: count }, (_, i) => ({
      index: (start + i) as LogIndex,
      term: 1 as Term,
      type: "normal" as const,
      // A buffer of its own, as every proposal has: a structured clone to
      // the Worker copies a buffer shared by all entries only once.
      data: data.slice(),
    }));
    const hardState: HardState = {
      term: 1 as Term,
      vote: "n1" as NodeId,
      commit: this.#lastIndex as LogIndex,
    };
    this.#lastIndex += count;
    return { entries, hardState };
  }
}

let kvKey = 0;
async function kvCommit(count: number): Promise<void> {
  const atomic = kv.atomic();
  for (let i = 0; i < count; i++) atomic.set(["log", kvKey++], data);
  const result = await atomic.commit();
  if (!result.ok) {
    throw new Error("Cannot run the bench: Deno KV commit failed");
  }
}

async function openWorkerWriter(path: string): Promise<LogWriter> {
  const writer = new WorkerLogWriter(path);
  // An empty save waits for the Worker to load and open the store, so
  // start-up is not timed (and a Worker that cannot start fails here).
  await writer.save({});
  return writer;
}

for (const count of BATCH_SIZES) {
  const group = `save of ${count} × ${ENTRY_BYTES} B`;
  const perEntry = `entries/s = iter/s × ${count}`;
  const sync = new SyncLogWriter(
    SqliteLogStore.open({ path: `${directory}/sync_${count}.sqlite` }),
  );
  const worker = await openWorkerWriter(`${directory}/worker_${count}.sqlite`);
  writers.push(sync, worker);
  const syncBatches = new BatchSource();
  const workerBatches = new BatchSource();

  Deno.bench({
    name: `Deno KV atomic() of ${count} sets (${perEntry})`,
    group,
    baseline: true,
    n: SAVES_TIMED,
    warmup: SAVES_WARMUP,
    async fn() {
      await kvCommit(count);
    },
  });
  Deno.bench({
    name: `SyncLogWriter (main thread) save (${perEntry})`,
    group,
    n: SAVES_TIMED,
    warmup: SAVES_WARMUP,
    async fn(b) {
      const request = syncBatches.next(count);
      b.start();
      await sync.save(request);
      b.end();
    },
  });
  Deno.bench({
    name: `WorkerLogWriter save (${perEntry})`,
    group,
    n: SAVES_TIMED,
    warmup: SAVES_WARMUP,
    async fn(b) {
      const request = workerBatches.next(count);
      b.start();
      await worker.save(request);
      b.end();
    },
  });
}
