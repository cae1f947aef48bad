/**
 * Writes the Raft log from the ready loop. After start-up the node only
 * writes its log (it keeps entries in memory), so writes can leave the main
 * thread: `node:sqlite` is synchronous, and an fsync on the main thread stalls
 * every network callback for its duration (bench/fsync_stall.ts measured a
 * 1 ms timer's p99 lateness at 12.3 ms with writes on the main thread against
 * 3.8 ms in a Worker and 4.1 ms with no writes, and the Worker saved 1.9× the
 * batches).
 *
 * @module
 */
import type { SnapshotMeta } from "../raft/types.ts";
import type { LogStore, SaveRequest } from "../storage/log_store.ts";

/** Ordered, asynchronous writes to the Raft log. */
export interface LogWriter {
  /** Persists entries and hard state durably (one transaction, one fsync). */
  save(request: SaveRequest): Promise<void>;
  /** Drops entries up to a snapshot. */
  compact(meta: SnapshotMeta): Promise<void>;
  close(): Promise<void>;
}

/** Writes on the calling thread (tests, in-memory stores). */
export class SyncLogWriter implements LogWriter {
  readonly #store: LogStore;

  constructor(store: LogStore) {
    this.#store = store;
  }

  save(request: SaveRequest): Promise<void> {
    this.#store.save(request);
    return Promise.resolve();
  }

  compact(meta: SnapshotMeta): Promise<void> {
    this.#store.compact(meta);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.#store.close();
    return Promise.resolve();
  }
}

/** A write that failed in the Worker, with the store error's name kept. */
export class LogWriteError extends Error {
  override name = "LogWriteError";
  /** The store error's class name, e.g. "StorageFullError". */
  readonly storeErrorName: string;

  constructor(storeErrorName: string, message: string) {
    super(message);
    this.storeErrorName = storeErrorName;
  }
}

type Reply = { id: number; ok: true } | {
  id: number;
  ok: false;
  name: string;
  message: string;
};

/** Writes a SQLite log in a dedicated Worker, in submission order. */
export class WorkerLogWriter implements LogWriter {
  readonly #worker: Worker;
  readonly #pending = new Map<
    number,
    { resolve: () => void; reject: (error: Error) => void }
  >();
  #nextId = 1;
  #closed = false;

  /** Opens the log at `path` inside a new Worker. */
  constructor(path: string) {
    this.#worker = new Worker(
      new URL("./_log_writer_worker.ts", import.meta.url),
      { type: "module" },
    );
    this.#worker.onmessage = (event: MessageEvent<Reply>) => {
      const reply = event.data;
      const waiter = this.#pending.get(reply.id);
      if (waiter === undefined) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiter.resolve();
      else waiter.reject(new LogWriteError(reply.name, reply.message));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#failAll(
        new LogWriteError(
          "WorkerError",
          `Log writer worker failed: ${event.message}`,
        ),
      );
    };
    void this.#call({ op: "open", path });
  }

  save(request: SaveRequest): Promise<void> {
    return this.#call({ op: "save", request });
  }

  compact(meta: SnapshotMeta): Promise<void> {
    return this.#call({ op: "compact", meta });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#call({ op: "close" });
    this.#closed = true;
    this.#worker.terminate();
  }

  #call(message: Record<string, unknown>): Promise<void> {
    if (this.#closed) {
      return Promise.reject(
        new LogWriteError("Closed", "Log writer is closed"),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, ...message });
    });
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }
}
