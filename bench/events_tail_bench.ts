/**
 * Watch streams at the tail of the events history: 16 streams, each with
 * its own selector, follow one newly applied revision (one `kv.set` of a
 * 256-byte value) on a real SQLite state store. Baseline: every stream
 * pages the store itself (a scan and a decode per stream and revision);
 * against it, the streams share a node's decoded tail
 * (`services/events/tail.ts`: one scan and decode per revision). Divide by
 * 16 for per-stream costs. Temp files under /tmp, removed on unload.
 *
 * Run: deno task bench
 */
import type { LogIndex } from "../src/raft/types.ts";
import { SqliteStateStore } from "../src/storage/sqlite_state_store.ts";
import {
  type EventPosition,
  EventsReads,
  type HistoryEvent,
  HistoryTail,
} from "../src/services/events/api.ts";
import { historyKey } from "../src/services/events/keys.ts";
import { encodeRecord } from "../src/services/events/records.ts";

const STREAMS = 16;

const dir = Deno.makeTempDirSync({ prefix: "aspen_bench_tail_" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(dir, { recursive: true });
});

/** A store, its readers' positions, and one step: apply a revision, page every stream. */
function follower(name: string, shared: boolean): () => void {
  const store = new SqliteStateStore({ path: `${dir}/${name}.db` });
  const reads = new EventsReads(store, shared ? new HistoryTail(store) : null);
  const positions: EventPosition[] = Array.from(
    { length: STREAMS },
    () => ({ from: 1n }),
  );
  const value = new Uint8Array(256).fill(7);
  let index = 0;
  return () => {
    index++;
    const event: HistoryEvent = {
      revision: BigInt(index),
      index: 0,
      type: "kv.set",
      key: new Uint8Array([2, 0x70, index % STREAMS, 0]),
      after: {
        value,
        encoding: "bytes",
        versionstamp: new Uint8Array(10),
      },
      before: null,
    };
    store.apply({
      puts: [{
        key: historyKey(event.revision, 0),
        value: encodeRecord(event),
        encoding: "bytes",
        versionstamp: new Uint8Array(10) as never,
        expireAtMs: null,
      }],
      deletes: [],
      appliedIndex: index as LogIndex,
    });
    for (let s = 0; s < STREAMS; s++) {
      const page = reads.page(positions[s]!, {
        limit: 256,
        keep: (e) => e.key !== undefined && e.key[2] === s,
      });
      positions[s] = page.next;
    }
  };
}

const alone = follower("alone", false);
const shared = follower("shared", true);

Deno.bench("16 streams, each reading the store", {
  group: "16 watch streams follow 1 new revision",
  baseline: true,
}, alone);

Deno.bench("16 streams sharing the node's decoded tail", {
  group: "16 watch streams follow 1 new revision",
}, shared);
