/**
 * Log store throughput against the anchor, local Deno KV (one fsync per
 * commit). Every write is durable: SQLite with WAL and synchronous=FULL,
 * Deno KV with its defaults. Temp files under /tmp, removed on unload.
 *
 * Each group compares one SQLite append of N entries with one Deno KV
 * commit of N sets (baseline); divide by N for entries/s. The aim
 * (batches of 100 ≥ 10× Deno KV's sequential `set` rate) compares the
 * "append, batch of 100" per-entry rate with the "sequential set" group's
 * baseline.
 *
 * Run: deno task bench (needs --unstable-kv)
 */
import type { Entry, LogIndex, NodeId, Term } from "../src/raft/types.ts";
import { SqliteLogStore } from "../src/storage/sqlite_log_store.ts";

const ENTRY_SIZE_BYTES = 256;
/** Compact the bench logs once they hold this many entries, outside the timed part. */
const COMPACT_ABOVE_ENTRIES = 200_000;
const VERIFY_LOG_ENTRIES = 100_000;

const dir = Deno.makeTempDirSync({ prefix: "aspen_bench_" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(dir, { recursive: true });
});

const value = new Uint8Array(ENTRY_SIZE_BYTES).fill(7);

function batch(start: number, count: number): Entry[] {
  return Array.from({ length: count }, (_, i) => ({
    index: (start + i) as LogIndex,
    term: 1 as Term,
    type: "normal" as const,
    data: value,
  }));
}

function appender(name: string): (count: number) => void {
  const store = SqliteLogStore.open({ path: `${dir}/${name}.db` });
  return (count) => {
    store.append(batch(store.lastIndex() + 1, count));
    if (store.lastIndex() - store.firstIndex() > COMPACT_ABOVE_ENTRIES) {
      store.compact({
        index: store.lastIndex(),
        term: 1 as Term,
        confState: {
          voters: ["n1" as NodeId],
          votersOutgoing: [],
          learners: [],
        },
      });
    }
  };
}

const kv = await Deno.openKv(`${dir}/kv.sqlite`);
let kvKey = 0;

for (const size of [1, 10, 100, 1000]) {
  const group = `batch of ${size}`;
  const append = appender(`log_${size}`);
  Deno.bench({
    name: size === 1 ? "Deno KV set" : `Deno KV atomic of ${size} sets`,
    group,
    baseline: true,
    async fn() {
      if (size === 1) {
        await kv.set(["k", kvKey++], value);
        return;
      }
      const atomic = kv.atomic();
      for (let i = 0; i < size; i++) atomic.set(["k", kvKey++], value);
      await atomic.commit();
    },
  });
  Deno.bench({
    name: `SqliteLogStore append, batch of ${size}`,
    group,
    fn(b) {
      b.start();
      append(size);
      b.end();
    },
  });
}

const readPath = `${dir}/read.db`;
const readStore = SqliteLogStore.open({ path: readPath });
for (let start = 1; start <= VERIFY_LOG_ENTRIES; start += 1000) {
  readStore.append(batch(start, 1000));
}
await kv.set(["read"], value);

Deno.bench({
  name: "Deno KV get",
  group: "point read",
  baseline: true,
  async fn() {
    await kv.get(["read"]);
  },
});
Deno.bench({
  name: "SqliteLogStore entries() of 1",
  group: "point read",
  fn() {
    readStore.entries(5000 as LogIndex, 5001 as LogIndex, Infinity);
  },
});
Deno.bench({
  name: "SqliteLogStore entries() of 100",
  group: "range read",
  fn() {
    readStore.entries(5000 as LogIndex, 5100 as LogIndex, Infinity);
  },
});
Deno.bench({
  name: `SqliteLogStore.open() verifying all ${VERIFY_LOG_ENTRIES} entries`,
  group: "open",
  baseline: true,
  n: 5,
  fn() {
    SqliteLogStore.open({ path: readPath, verifyTailEntries: "all" }).close();
  },
});
Deno.bench({
  name: "SqliteLogStore.open() verifying the last 1000 entries",
  group: "open",
  n: 5,
  fn() {
    SqliteLogStore.open({ path: readPath, verifyTailEntries: 1000 }).close();
  },
});
