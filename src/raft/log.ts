/**
 * The Raft log as the core sees it: every entry since the last snapshot, with
 * markers for what is durable (`stableIndex`), committed, and applied.
 *
 * Entries after `stableIndex` are unstable: the next `Ready` hands them to the
 * application to persist. Entries are applied only once both committed and
 * durable locally, so a restart never forgets something it applied.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { Entry, LogIndex, Term } from "./types.ts";

/** Bytes an entry counts for in size bounds. */
export function entryBytes(entry: Entry): number {
  return entry.data.byteLength + 16;
}

/** The in-memory log of one Raft core. */
export class RaftLog {
  /** entries[i] has index `offset + 1 + i`. */
  #entries: Entry[] = [];
  /** Index just before the first entry (the snapshot's index; 0 without one). */
  #offset: LogIndex;
  /** Term of the entry at `#offset`. */
  #offsetTerm: Term;
  /** Highest index known committed by a quorum. */
  committed: LogIndex;
  /** Highest index handed to the application for applying. */
  applying: LogIndex;
  /** Highest index the application has applied. */
  applied: LogIndex;
  /** Highest index known durable in local storage. */
  stableIndex: LogIndex;

  constructor(
    entries: readonly Entry[],
    committed: LogIndex,
    applied: LogIndex,
    offset = 0 as LogIndex,
    offsetTerm = 0 as Term,
  ) {
    this.#offset = offset;
    this.#offsetTerm = offsetTerm;
    for (const [i, entry] of entries.entries()) {
      assert(
        entry.index === offset + 1 + i,
        `Cannot restore log as it is not contiguous: expected index ${
          offset + 1 + i
        }, found ${entry.index}`,
      );
    }
    this.#entries = [...entries];
    this.stableIndex = this.lastIndex();
    assert(
      committed <= this.lastIndex(),
      `Cannot restore log as commit ${committed} is beyond last index ${this.lastIndex()}`,
    );
    assert(
      applied <= committed,
      `Cannot restore log as applied ${applied} is beyond commit ${committed}`,
    );
    this.committed = committed;
    this.applying = applied;
    this.applied = applied;
  }

  /** Index covered by the last snapshot (0 without one). */
  snapshotIndex(): LogIndex {
    return this.#offset;
  }

  /**
   * Drops entries up to `index` (which must be applied) after the
   * application took a snapshot there.
   */
  compact(index: LogIndex): void {
    if (index <= this.#offset) return;
    assert(
      index <= this.applied,
      `Cannot compact log to ${index} beyond applied index ${this.applied}`,
    );
    const t = this.term(index);
    assert(t !== undefined, `Cannot compact log to ${index}: no entry there`);
    this.#entries = this.#entries.slice(index - this.#offset);
    this.#offset = index;
    this.#offsetTerm = t;
  }

  /**
   * Replaces the whole log with a snapshot's position: the state up to
   * (`index`, `t`) comes from the snapshot, and nothing after it is kept.
   */
  restore(index: LogIndex, t: Term): void {
    assert(
      index > this.committed,
      `Cannot restore snapshot at ${index} at or below commit ${this.committed}`,
    );
    this.#entries = [];
    this.#offset = index;
    this.#offsetTerm = t;
    this.committed = index;
    this.applying = index;
    this.applied = index;
    this.stableIndex = index;
  }

  /** Index of the first entry held (offset + 1). */
  firstIndex(): LogIndex {
    return (this.#offset + 1) as LogIndex;
  }

  /** Index of the last entry held, or the offset when empty. */
  lastIndex(): LogIndex {
    return (this.#offset + this.#entries.length) as LogIndex;
  }

  /** Term of the last entry. */
  lastTerm(): Term {
    return this.term(this.lastIndex()) ?? (0 as Term);
  }

  /** Term at `index`, or undefined when it is compacted away or beyond the log. */
  term(index: LogIndex): Term | undefined {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset || index > this.lastIndex()) return undefined;
    return this.#entry(index).term;
  }

  /** True when the entry at `index` has term `t`. */
  matchTerm(index: LogIndex, t: Term): boolean {
    return this.term(index) === t;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as this one. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const ownTerm = this.lastTerm();
    return lastTerm > ownTerm ||
      (lastTerm === ownTerm && lastIndex >= this.lastIndex());
  }

  /** Entries in [lo, hi), at most `maxBytes` of them but always at least one. */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    assert(
      lo > this.#offset,
      `Cannot slice log from ${lo} as it is compacted up to ${this.#offset}`,
    );
    assert(
      hi <= this.lastIndex() + 1,
      `Cannot slice log to ${hi} beyond last index ${this.lastIndex()}`,
    );
    const out: Entry[] = [];
    let bytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.#entry(index as LogIndex);
      bytes += entryBytes(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** Entries not yet durable: what the next Ready asks to persist. */
  unstableEntries(): Entry[] {
    if (this.stableIndex >= this.lastIndex()) return [];
    return this.#entries.slice(this.stableIndex - this.#offset);
  }

  /** Committed, durable entries not yet handed out, bounded by bytes. */
  nextCommittedEntries(maxBytes: number, applyUnstable = false): Entry[] {
    const hi = applyUnstable
      ? this.lastIndex()
      : Math.min(this.committed, this.stableIndex);
    if (this.applying >= hi) return [];
    return this.slice(
      (this.applying + 1) as LogIndex,
      (hi + 1) as LogIndex,
      maxBytes,
    );
  }

  /** True when `nextCommittedEntries` would return something. */
  hasNextCommittedEntries(applyUnstable = false): boolean {
    const hi = applyUnstable
      ? this.lastIndex()
      : Math.min(this.committed, this.stableIndex);
    return this.applying < hi;
  }

  /** Appends entries that follow the log or replace a suffix that is not committed. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(
      first > this.committed,
      `Cannot overwrite committed entries: first new index ${first} is at or below commit ${this.committed}`,
    );
    assert(
      first <= this.lastIndex() + 1,
      `Cannot append at ${first} as the log ends at ${this.lastIndex()}`,
    );
    this.#entries.length = first - 1 - this.#offset;
    this.#entries.push(...entries);
    if (this.stableIndex >= first) this.stableIndex = (first - 1) as LogIndex;
  }

  /**
   * Follower side of AppendEntries: when the log matches at (`index`, `logTerm`),
   * appends what is new, advances commit, and returns the last index the
   * message covers; otherwise returns undefined.
   */
  maybeAppend(
    index: LogIndex,
    logTerm: Term,
    commit: LogIndex,
    entries: readonly Entry[],
  ): LogIndex | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = (index + entries.length) as LogIndex;
    const conflict = this.#findConflict(entries);
    if (conflict !== 0) {
      this.append(entries.slice(conflict - index - 1));
    }
    this.commitTo(Math.min(commit, lastNew) as LogIndex);
    return lastNew;
  }

  /** First index among `entries` that is missing or differs in term; 0 when all match. */
  #findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * Largest index ≤ `index` whose term is ≤ `t`: where a leader should probe
   * next after a rejection (the fast back-off of etcd's findConflictByTerm).
   */
  findConflictByTerm(index: LogIndex, t: Term): LogIndex {
    let i = Math.min(index, this.lastIndex());
    while (i > this.#offset) {
      const entryTerm = this.term(i as LogIndex);
      if (entryTerm !== undefined && entryTerm <= t) break;
      i--;
    }
    return i as LogIndex;
  }

  /** Raises the commit index; never lowers it. */
  commitTo(index: LogIndex): void {
    if (index <= this.committed) return;
    assert(
      index <= this.lastIndex(),
      `Cannot commit ${index} beyond last index ${this.lastIndex()}`,
    );
    this.committed = index;
  }

  /** Marks entries durable up to (`index`, `t`) unless the log changed since. */
  stableTo(index: LogIndex, t: Term): void {
    if (this.matchTerm(index, t) && index > this.stableIndex) {
      this.stableIndex = index;
    }
  }

  /** Records that entries up to `index` were handed to the application. */
  applyingTo(index: LogIndex): void {
    assert(
      index >= this.applying,
      `Applying index cannot go back from ${this.applying} to ${index}`,
    );
    this.applying = index;
  }

  /** Records that the application applied entries up to `index`. */
  appliedTo(index: LogIndex): void {
    assert(
      index >= this.applied,
      `Applied index cannot go back from ${this.applied} to ${index}`,
    );
    this.applied = index;
  }

  #entry(index: LogIndex): Entry {
    const entry = this.#entries[index - this.#offset - 1];
    assert(
      entry !== undefined && entry.index === index,
      `Log has no entry at ${index}`,
    );
    return entry;
  }
}
