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
import type { LogStore, SaveRequest } from "./log_store.ts";

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

/** Milliseconds the Worker has to load before the writer fails. */
const LOAD_TIMEOUT_MS = 10_000;

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
  /** The first failure; every later write fails with it. */
  #failure: Error | null = null;

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
      this.#fail(
        new LogWriteError(
          "WorkerError",
          `Log writer worker failed: ${event.message}`,
        ),
      );
    };
    // The Worker posts id 0 once loaded; without it in time it never will.
    const loadTimer = setTimeout(
      () =>
        this.#fail(
          new LogWriteError(
            "WorkerError",
            `Log writer worker did not start within ${LOAD_TIMEOUT_MS} ms`,
          ),
        ),
      LOAD_TIMEOUT_MS,
    );
    this.#pending.set(0, {
      resolve: () => clearTimeout(loadTimer),
      reject: () => clearTimeout(loadTimer),
    });
    // A failed open fails every later write (the node then stops accepting
    // writes); it must never surface as an unhandled rejection.
    this.#call({ op: "open", path }).catch((error: Error) => this.#fail(error));
  }

  save(request: SaveRequest): Promise<void> {
    return this.#call({ op: "save", request });
  }

  compact(meta: SnapshotMeta): Promise<void> {
    return this.#call({ op: "compact", meta });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (this.#failure === null) await this.#call({ op: "close" });
    } finally {
      this.#closed = true;
      this.#worker.terminate();
    }
  }

  #call(message: Record<string, unknown>): Promise<void> {
    // After a failure the Worker may be gone: fail fast instead of hanging.
    if (this.#failure !== null) return Promise.reject(this.#failure);
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

  #fail(error: Error): void {
    this.#failure ??= error;
    this.#failAll(error);
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }
}
