/**
 * Rules every log store enforces the same way: what a valid batch, read
 * range and hard state look like. Shared so the implementations cannot drift.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { Entry, HardState, LogIndex, Term } from "../raft/types.ts";
import { LogCompactedError, LogUnavailableError } from "./errors.ts";
import type { SnapshotMeta } from "./log_store.ts";

function isIndexLike(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

/**
 * Asserts that `entries` may be appended to a log spanning
 * `[firstIndex, lastIndex]`: contiguous with it (possibly overwriting a
 * suffix), contiguous within, with terms that never decrease.
 *
 * @param termBefore The term stored at `entries[0].index - 1`.
 */
export function assertAppendable(
  entries: readonly Entry[],
  firstIndex: LogIndex,
  lastIndex: LogIndex,
  termBefore: (index: LogIndex) => Term,
): void {
  const first = entries[0];
  if (first === undefined) return;
  assert(
    first.index >= firstIndex && first.index <= lastIndex + 1,
    `Cannot append entries starting at index ${first.index} as the log spans [${firstIndex}, ${lastIndex}]: the batch must start in [${firstIndex}, ${
      lastIndex + 1
    }]`,
  );
  let previousTerm = termBefore((first.index - 1) as LogIndex);
  let expectedIndex = first.index;
  for (const entry of entries) {
    assert(
      entry.index === expectedIndex,
      `Cannot append a batch with a gap: expected index ${expectedIndex}, got ${entry.index}`,
    );
    assert(
      isIndexLike(entry.term) && entry.term >= previousTerm,
      `Cannot append entry ${entry.index} with term ${entry.term}: terms must not decrease (previous term is ${previousTerm})`,
    );
    assert(
      entry.type === "normal" || entry.type === "confChange",
      `Cannot append entry ${entry.index} with type '${entry.type}': expected 'normal' or 'confChange'`,
    );
    assert(
      entry.data instanceof Uint8Array,
      `Cannot append entry ${entry.index}: 'data' must be a Uint8Array`,
    );
    previousTerm = entry.term;
    expectedIndex = (expectedIndex + 1) as LogIndex;
  }
}

/** Asserts that a hard state has the right shape. */
export function assertHardState(hardState: HardState): void {
  assert(
    isIndexLike(hardState.term) && isIndexLike(hardState.commit),
    `Cannot store hard state: 'term' and 'commit' must be non-negative integers: current values are ${hardState.term} and ${hardState.commit}`,
  );
  assert(
    hardState.vote === null || typeof hardState.vote === "string",
    `Cannot store hard state: 'vote' must be a string or null`,
  );
}

/** Asserts that snapshot metadata has the right shape. */
export function assertSnapshotMeta(meta: SnapshotMeta): void {
  assert(
    isIndexLike(meta.index) && isIndexLike(meta.term),
    `Cannot compact: 'index' and 'term' must be non-negative integers: current values are ${meta.index} and ${meta.term}`,
  );
  assert(
    Array.isArray(meta.confState.voters) &&
      Array.isArray(meta.confState.votersOutgoing) &&
      Array.isArray(meta.confState.learners),
    "Cannot compact: 'confState' must hold 'voters', 'votersOutgoing' and 'learners' arrays",
  );
}

/**
 * Checks a compaction to `meta` and decides what it keeps: the entries after
 * `meta.index` survive only when the log holds that entry with `meta.term`
 * (Raft §7); otherwise the whole log goes.
 *
 * @param current The store's snapshot metadata now.
 * @param termAt The stored term at an index in `[current.index, lastIndex]`.
 * @returns Whether the entries after `meta.index` are kept.
 * @throws {LogCompactedError} When `meta` is before the current snapshot.
 */
export function planCompaction(
  meta: SnapshotMeta,
  current: SnapshotMeta,
  lastIndex: LogIndex,
  termAt: (index: LogIndex) => Term,
): boolean {
  assertSnapshotMeta(meta);
  if (meta.index < current.index) {
    throw new LogCompactedError(meta.index, (current.index + 1) as LogIndex);
  }
  if (meta.index === current.index) {
    assert(
      meta.term === current.term,
      `Cannot compact to index ${meta.index} with term ${meta.term}: the snapshot there has term ${current.term}`,
    );
  }
  return meta.index <= lastIndex && termAt(meta.index) === meta.term;
}

/**
 * Checks a read of `[lo, hi)` against a log spanning `[firstIndex, lastIndex]`.
 *
 * @throws {RangeError} When `lo > hi` or `maxBytes < 0`.
 * @throws {LogCompactedError} When `lo < firstIndex`.
 * @throws {LogUnavailableError} When `hi > lastIndex + 1`.
 */
export function checkReadRange(
  lo: LogIndex,
  hi: LogIndex,
  maxBytes: number,
  firstIndex: LogIndex,
  lastIndex: LogIndex,
): void {
  if (!(lo <= hi)) {
    throw new RangeError(
      `Cannot read entries: 'lo' must not exceed 'hi': current values are ${lo} and ${hi}`,
    );
  }
  if (!(maxBytes >= 0)) {
    throw new RangeError(
      `Cannot read entries: 'maxBytes' must be non-negative: current value is ${maxBytes}`,
    );
  }
  if (lo < firstIndex) throw new LogCompactedError(lo, firstIndex);
  if (hi > lastIndex + 1) {
    throw new LogUnavailableError((hi - 1) as LogIndex, lastIndex);
  }
}

/**
 * Checks a term lookup at `index` against a log whose snapshot ends at
 * `snapshotIndex` and whose last index is `lastIndex`.
 */
export function checkTermIndex(
  index: LogIndex,
  snapshotIndex: LogIndex,
  lastIndex: LogIndex,
): void {
  if (index < snapshotIndex) {
    throw new LogCompactedError(index, (snapshotIndex + 1) as LogIndex);
  }
  if (index > lastIndex) throw new LogUnavailableError(index, lastIndex);
}

/** The size an entry counts for in a bounded read: its data's bytes. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength;
}
