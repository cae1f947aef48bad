/**
 * The port the KV state machine writes through: a synchronous ordered store
 * of {@linkcode KvRow}s with an applied index, an expiry index and
 * snapshots. Implementations: {@linkcode MemoryStateStore} (the reference)
 * and {@linkcode SqliteStateStore}; both pass `runStateStoreConformance`.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";
import type { KvRow } from "../model/types.ts";

/** A range scan over `start ≤ key < end`. */
export interface ScanOptions {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  /** Rows returned at most (≥ 1). */
  readonly limit: number;
  /** Newest key first when true. */
  readonly reverse?: boolean;
}

/** Everything one applied log entry changes, applied atomically. */
export interface StateBatch {
  /** Rows to insert or replace. No key may appear twice in `puts` and `deletes` together. */
  readonly puts: readonly KvRow[];
  /** Keys to delete (absent keys are ignored). */
  readonly deletes: readonly Uint8Array[];
  /** The log index this batch brings the store to; greater than the current one. */
  readonly appliedIndex: LogIndex;
  /** Metadata entries to set (e.g. membership), by name. */
  readonly meta?: ReadonlyMap<string, Uint8Array>;
}

/** One bounded piece of an exported snapshot. */
export interface SnapshotChunk {
  /** The applied index the whole snapshot was taken at. */
  readonly appliedIndex: LogIndex;
  /** 0, 1, 2, … in order; an installer refuses gaps. */
  readonly sequence: number;
  /** Rows in key order, continuing the previous chunk. */
  readonly rows: readonly KvRow[];
  /** Metadata entries; carried by the first chunk only. */
  readonly meta: readonly (readonly [string, Uint8Array])[];
  /** True on the final chunk. */
  readonly last: boolean;
}

/** Receives a snapshot chunk by chunk; the old state stays in place until {@linkcode commit}. */
export interface SnapshotInstaller {
  /** Stages one chunk. @throws {RangeError} When chunks arrive out of order. */
  write(chunk: SnapshotChunk): void;
  /** Replaces the whole state atomically. @throws {RangeError} Unless the last chunk was written. */
  commit(): void;
  /** Drops everything staged; the store is unchanged. */
  abort(): void;
}

/** Default bound on a snapshot chunk's row bytes (keys plus values). */
export const SNAPSHOT_CHUNK_BYTES_MAX = 1024 * 1024;

/** The synchronous store the KV state machine is applied to. */
export interface StateStore {
  /** The row at `key`, or null. */
  get(key: Uint8Array): KvRow | null;
  /** Rows in `[start, end)`, at most `limit`, from one consistent state. */
  scan(options: ScanOptions): KvRow[];
  /** Applies a batch atomically: all of it or (on a crash) none of it. */
  apply(batch: StateBatch): void;
  /** The index of the last applied batch (0 for a fresh store). */
  appliedIndex(): LogIndex;
  /** A metadata entry, or null. */
  meta(name: string): Uint8Array | null;
  /** Up to `limit` keys whose deadline is ≤ `timestampMs`, earliest deadline first, then key order. */
  expiredKeys(timestampMs: number, limit: number): Uint8Array[];
  /**
   * Exports the state at the current applied index as chunks of at most
   * about `chunkBytesMax` row bytes. The view is fixed when this is called:
   * batches applied while iterating do not show.
   */
  exportSnapshot(chunkBytesMax?: number): Iterator<SnapshotChunk>;
  /** Starts installing a snapshot. At most one installer at a time. */
  beginInstall(): SnapshotInstaller;
  /**
   * Runs `work` so that every `apply()` inside it commits together, in one
   * transaction (a crash keeps all or none of them). Used to apply all the
   * entries of one Raft Ready at once.
   */
  batch<T>(work: () => T): T;
  /**
   * Makes every applied batch durable. The store may lag the Raft log on a
   * power loss (the log can rebuild it), but not once the log is compacted:
   * the node calls this before compacting.
   */
  sync(): void;
  /** Releases resources. */
  close(): void;
}

/** Bytes a row counts for toward a chunk bound. */
export function rowBytes(row: KvRow): number {
  return row.key.length + row.value.length + 32;
}
