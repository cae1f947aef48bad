/**
 * The reference {@linkcode LogStore}: entries in an array, nothing durable.
 * Every other implementation must answer exactly as this one does
 * (`runLogStoreConformance`).
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type {
  Entry,
  HardState,
  LogIndex,
  RecoveryBound,
  Term,
} from "../raft/types.ts";
import {
  EMPTY_HARD_STATE,
  EMPTY_SNAPSHOT_META,
  type LogStore,
  type SaveRequest,
  type SnapshotMeta,
} from "./log_store.ts";
import {
  assertAppendable,
  assertHardState,
  checkReadRange,
  checkTermIndex,
  entrySizeBytes,
  planCompaction,
} from "./_log_rules.ts";

function copyEntry(entry: Entry): Entry {
  return {
    index: entry.index,
    term: entry.term,
    type: entry.type,
    data: entry.data.slice(),
  };
}

function copySnapshotMeta(meta: SnapshotMeta): SnapshotMeta {
  return {
    index: meta.index,
    term: meta.term,
    confState: {
      voters: [...meta.confState.voters],
      votersOutgoing: [...meta.confState.votersOutgoing],
      learners: [...meta.confState.learners],
    },
  };
}

/**
 * An in-memory {@linkcode LogStore}, the reference implementation.
 *
 * @example
 * ```ts
 * import { MemoryLogStore } from "./memory_log_store.ts";
 * import type { LogIndex, Term } from "../raft/types.ts";
 * const store = new MemoryLogStore();
 * store.append([{ index: 1 as LogIndex, term: 1 as Term, type: "normal", data: new Uint8Array() }]);
 * console.assert(store.lastIndex() === 1);
 * ```
 */
export class MemoryLogStore implements LogStore {
  /** Entries after the snapshot: `#log[i]` has index `snapshot.index + 1 + i`. */
  #log: Entry[] = [];
  #hardState: HardState = EMPTY_HARD_STATE;
  #snapshot: SnapshotMeta = EMPTY_SNAPSHOT_META;
  #closed = false;

  append(entries: readonly Entry[]): void {
    this.save({ entries });
  }

  setHardState(hardState: HardState): void {
    this.save({ hardState });
  }

  save(request: SaveRequest): void {
    this.#assertOpen();
    const entries = request.entries ?? [];
    assertAppendable(
      entries,
      this.firstIndex(),
      this.lastIndex(),
      (index) => this.term(index),
    );
    if (request.hardState !== undefined) assertHardState(request.hardState);
    const first = entries[0];
    if (first !== undefined) {
      this.#log.length = first.index - this.firstIndex();
      for (const entry of entries) this.#log.push(copyEntry(entry));
    }
    if (request.hardState !== undefined) {
      this.#hardState = { ...request.hardState };
    }
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    this.#assertOpen();
    checkReadRange(lo, hi, maxBytes, this.firstIndex(), this.lastIndex());
    const result: Entry[] = [];
    let sizeBytes = 0;
    for (let index = lo; index < hi; index++) {
      const entry = this.#log[index - this.firstIndex()];
      assert(entry !== undefined, `Expected an entry at index ${index}`);
      sizeBytes += entrySizeBytes(entry);
      if (result.length > 0 && sizeBytes > maxBytes) break;
      result.push(copyEntry(entry));
    }
    return result;
  }

  term(index: LogIndex): Term {
    this.#assertOpen();
    checkTermIndex(index, this.#snapshot.index, this.lastIndex());
    if (index === this.#snapshot.index) return this.#snapshot.term;
    const entry = this.#log[index - this.firstIndex()];
    assert(entry !== undefined, `Expected an entry at index ${index}`);
    return entry.term;
  }

  firstIndex(): LogIndex {
    return (this.#snapshot.index + 1) as LogIndex;
  }

  lastIndex(): LogIndex {
    return (this.#snapshot.index + this.#log.length) as LogIndex;
  }

  hardState(): HardState {
    this.#assertOpen();
    return { ...this.#hardState };
  }

  snapshotMeta(): SnapshotMeta {
    this.#assertOpen();
    return copySnapshotMeta(this.#snapshot);
  }

  /** Always null: memory never holds a corrupt tail. */
  recoveryBound(): RecoveryBound | null {
    this.#assertOpen();
    return null;
  }

  compact(meta: SnapshotMeta): void {
    this.#assertOpen();
    const keepsSuffix = planCompaction(
      meta,
      this.#snapshot,
      this.lastIndex(),
      (index) => this.term(index),
    );
    this.#log = keepsSuffix
      ? this.#log.slice(meta.index - this.#snapshot.index)
      : [];
    this.#snapshot = copySnapshotMeta(meta);
  }

  close(): void {
    this.#closed = true;
  }

  #assertOpen(): void {
    assert(!this.#closed, "Cannot use a closed log store");
  }
}
