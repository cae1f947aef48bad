/**
 * The port through which a node persists its Raft log, hard state and
 * snapshot metadata. Implementations: {@linkcode MemoryLogStore} (the
 * reference) and {@linkcode SqliteLogStore}.
 *
 * The interface is synchronous and passes only plain data (no callbacks,
 * no class instances other than `Uint8Array`), so an implementation can later
 * be moved behind a Worker and called by message.
 *
 * Index conventions (as in etcd-io/raft): the snapshot covers every index up
 * to `snapshotMeta().index`; `firstIndex()` is that index + 1; `lastIndex()`
 * is the last stored entry's index, or the snapshot's index when no entry is
 * stored after it. `term(i)` answers for the snapshot's index too.
 *
 * @module
 */
import type {
  Entry,
  HardState,
  LogIndex,
  RecoveryBound,
  SnapshotMeta,
  Term,
} from "../raft/types.ts";

/** What a snapshot covers: everything up to and including `index` (the Raft core's type). */
export type { SnapshotMeta };

/** One atomic, durable write: hard state and entries together, one sync. */
export interface SaveRequest {
  /** The new hard state, if it changed. */
  readonly hardState?: HardState;
  /**
   * Entries to append, contiguous and in index order. Stored entries at or
   * after the first one's index are truncated first (a conflicting suffix).
   */
  readonly entries?: readonly Entry[];
  /**
   * `false` for a write of nothing but a hard state whose term and vote did
   * not change (only the commit index moved, which Raft may forget: it is
   * relearned from the leader): the store need not wait for the disk, and
   * the next synced write makes it durable with itself. Stores that cannot
   * tell the difference sync anyway. Default `true`.
   */
  readonly sync?: boolean;
}

/** A durable Raft log. Every write is durable when the call returns. */
export interface LogStore {
  /**
   * Appends a batch of entries in one transaction with one sync. Stored
   * entries at or after `entries[0].index` are truncated first.
   *
   * @throws {AssertionError} When the batch is not contiguous with the log
   * (it must start in `[firstIndex(), lastIndex() + 1]`) or within itself.
   * @throws {StorageFullError | StorageReadOnlyError | StorageCorruptedError}
   * When the write failed; the store then refuses every later write.
   */
  append(entries: readonly Entry[]): void;
  /** Stores the hard state durably. Same errors as {@linkcode append}. */
  setHardState(hardState: HardState): void;
  /** Stores hard state and entries atomically with one sync. Same errors as {@linkcode append}. */
  save(request: SaveRequest): void;
  /**
   * Entries in `[lo, hi)`, stopping once their data exceeds `maxBytes`; at
   * least one entry is returned whenever `lo < hi`.
   *
   * @throws {LogCompactedError} When `lo < firstIndex()`.
   * @throws {LogUnavailableError} When `hi > lastIndex() + 1`.
   * @throws {RangeError} When `lo > hi` or `maxBytes` is negative.
   */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[];
  /**
   * The term of the entry at `index`, or the snapshot's term at its index.
   *
   * @throws {LogCompactedError} When `index` is before the snapshot's index.
   * @throws {LogUnavailableError} When `index > lastIndex()`.
   */
  term(index: LogIndex): Term;
  /** The first index an entry may be read at: the snapshot's index + 1. */
  firstIndex(): LogIndex;
  /** The last stored entry's index, or the snapshot's index when the log is empty. */
  lastIndex(): LogIndex;
  /** The stored hard state; `{ term: 0, vote: null, commit: 0 }` when none was ever stored. */
  hardState(): HardState;
  /** The metadata of the latest snapshot; index and term 0 when none. */
  snapshotMeta(): SnapshotMeta;
  /**
   * What a corrupt tail dropped at open may have held (its last index and the
   * node's term then), or null when no tail was ever dropped. The Raft core
   * takes it as `RaftStorageState.recover`.
   */
  recoveryBound(): RecoveryBound | null;
  /**
   * Records a snapshot and drops the entries it covers, durably.
   *
   * When the log holds an entry at `meta.index` with `meta.term`, the entries
   * after it are kept (ordinary compaction). Otherwise (the snapshot is ahead
   * of the log, or the log conflicts with it) every entry is dropped and the
   * log continues at `meta.index + 1`, as Raft §7 prescribes on install.
   *
   * @throws {LogCompactedError} When `meta.index` is before the current snapshot's index.
   * @throws {StorageFullError | StorageReadOnlyError | StorageCorruptedError} As {@linkcode append}.
   */
  compact(meta: SnapshotMeta): void;
  /** Releases the store. Any later call is a bug. */
  close(): void;
}

/** The hard state of a store that never stored one. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({
  term: 0 as Term,
  vote: null,
  commit: 0 as LogIndex,
});

/** The snapshot metadata of a store that never compacted. */
export const EMPTY_SNAPSHOT_META: SnapshotMeta = Object.freeze({
  index: 0 as LogIndex,
  term: 0 as Term,
  confState: Object.freeze({ voters: [], votersOutgoing: [], learners: [] }),
});
