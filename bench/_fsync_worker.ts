/// <reference lib="deno.worker" />
/** Worker side of bench/fsync_stall.ts: saves batches off the main thread. */
import { SqliteLogStore } from "../src/storage/sqlite_log_store.ts";
import type { LogIndex, Term } from "../src/raft/types.ts";

let store: SqliteLogStore | null = null;
self.onmessage = (
  event: MessageEvent<{ open?: string; first?: number; count?: number }>,
) => {
  const { open, first, count } = event.data;
  if (open !== undefined) {
    store = SqliteLogStore.open({ path: open });
    return;
  }
  store!.append(Array.from({ length: count! }, (_, i) => ({
    term: 1 as Term,
    index: (first! + i) as LogIndex,
    type: "normal" as const,
    data: new Uint8Array(256),
  })));
  self.postMessage("saved");
};
