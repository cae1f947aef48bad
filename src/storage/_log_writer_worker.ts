/// <reference lib="deno.worker" />
/**
 * Worker side of {@linkcode WorkerLogWriter}: owns the SQLite log store and
 * applies writes in the order they arrive.
 *
 * @module
 */
import { SqliteLogStore } from "./sqlite_log_store.ts";
import type { SnapshotMeta } from "../raft/types.ts";
import type { SaveRequest } from "./log_store.ts";

type Request =
  | { id: number; op: "open"; path: string }
  | { id: number; op: "save"; request: SaveRequest }
  | { id: number; op: "compact"; meta: SnapshotMeta }
  | { id: number; op: "close" };

let store: SqliteLogStore | null = null;

self.onmessage = (event: MessageEvent<Request>) => {
  const message = event.data;
  try {
    switch (message.op) {
      case "open":
        store = SqliteLogStore.open({ path: message.path });
        break;
      case "save":
        store!.save(message.request);
        break;
      case "compact":
        store!.compact(message.meta);
        break;
      case "close":
        store?.close();
        store = null;
        break;
    }
    self.postMessage({ id: message.id, ok: true });
  } catch (error) {
    const e = error as Error;
    self.postMessage({
      id: message.id,
      ok: false,
      name: e.name ?? "Error",
      message: e.message ?? String(e),
    });
  }
};

// Tell the writer this module loaded: a Worker that cannot load (e.g. no read
// permission for this file) reports nothing else, so silence means failure.
self.postMessage({ id: 0, ok: true });
