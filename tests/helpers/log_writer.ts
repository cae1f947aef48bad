/**
 * A child process for `tests/storage_crash_test.ts`: opens the SQLite log
 * store in DIR and appends deterministic batches forever (bounded), printing
 * each batch's last index to stdout after `save()` returns, i.e. once the
 * batch is acknowledged as synced. The test kills it with SIGKILL.
 *
 * Output lines: `open <journal_mode> <synchronous> <lastIndex>`, then one
 * index per batch; or `error <ErrorName>` (exit code 2) when the store
 * cannot be opened or written.
 *
 * Usage: deno run --allow-read=DIR --allow-write=DIR tests/helpers/log_writer.ts DIR
 *
 * @module
 */
import type {
  Entry,
  EntryType,
  LogIndex,
  NodeId,
  Term,
} from "../../src/raft/types.ts";
import { SqliteLogStore } from "../../src/storage/sqlite_log_store.ts";

/** Entries the writer appends in total before exiting on its own. */
export const WRITER_ENTRIES_MAX = 200_000;
/** Entries kept after each compaction. */
const KEEP_ENTRIES = 300;
/** Compact whenever the log holds more than this many entries. */
const COMPACT_ABOVE_ENTRIES = 1_500;

/** The entry the writer stores at `index`: a pure function of the index. */
export function generatedEntry(index: number): Entry {
  const sizeBytes = (index * 7919) % 300;
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) data[i] = (index * 131 + i * 17) & 0xff;
  const type: EntryType = index % 50 === 0 ? "confChange" : "normal";
  return { index: index as LogIndex, term: generatedTerm(index), type, data };
}

/** The term of the generated entry at `index` (never decreasing). */
export function generatedTerm(index: number): Term {
  return (index === 0 ? 0 : 1 + Math.floor(index / 97)) as Term;
}

/** How many entries the batch starting at `start` holds: 1 to 64. */
export function generatedBatchSize(start: number): number {
  return 1 + (Math.imul(start, 2654435761) >>> 0) % 64;
}

function print(line: string): void {
  const bytes = new TextEncoder().encode(line + "\n");
  let written = 0;
  while (written < bytes.length) {
    written += Deno.stdout.writeSync(bytes.subarray(written));
  }
}

function run(dir: string): void {
  const store = SqliteLogStore.open({ path: `${dir}/log.db` });
  const { journalMode, synchronous } = store.durability();
  print(`open ${journalMode} ${synchronous} ${store.lastIndex()}`);
  while (store.lastIndex() < WRITER_ENTRIES_MAX) {
    const start = store.lastIndex() + 1;
    const entries = Array.from(
      { length: generatedBatchSize(start) },
      (_, i) => generatedEntry(start + i),
    );
    const last = start + entries.length - 1;
    store.save({
      hardState: {
        term: generatedTerm(last),
        vote: "n1" as NodeId,
        commit: last as LogIndex,
      },
      entries,
    });
    print(String(last));
    if (last - store.firstIndex() + 1 > COMPACT_ABOVE_ENTRIES) {
      const index = last - KEEP_ENTRIES;
      store.compact({
        index: index as LogIndex,
        term: generatedTerm(index),
        confState: {
          voters: ["n1" as NodeId],
          votersOutgoing: [],
          learners: [],
        },
      });
    }
  }
  store.close();
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (dir === undefined) throw new TypeError("Usage: log_writer.ts DIR");
  try {
    run(dir);
  } catch (error) {
    print(`error ${error instanceof Error ? error.name : String(error)}`);
    Deno.exit(2);
  }
}
