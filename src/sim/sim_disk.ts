/**
 * A simulated disk: the durable log (snapshot metadata, entries, hard
 * state, recovery bound of a lost tail) and the state store's durable image
 * (taken at each `sync`). Writes reach it only when their fsync completes, a
 * few simulated ms after the runner asked; a crash before then loses them
 * (the "lose unsynced writes on crash" model). At restart the runner reads
 * the log through {@linkcode SimDisk.logStore} and the state is rebuilt from
 * the image and the log, as a real node's is.
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
import {
  EMPTY_HARD_STATE,
  type LogStore,
  type SaveRequest,
} from "../storage/log_store.ts";
import type { LogWriter } from "../storage/log_writer.ts";
import { MemoryLogStore } from "../storage/memory_log_store.ts";
import type { EventQueue } from "./event_queue.ts";
import type { InvariantChecker, TermAt } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";
import type { SimProcess } from "./sim_process.ts";

/** The state store's durable copy: the whole state at an applied index. */
export interface StateImage {
  readonly index: LogIndex;
  readonly data: Uint8Array;
}

/** A memory log store that reports a lost tail's recovery bound. */
class RecoveringLogStore implements LogStore {
  readonly #store: MemoryLogStore;
  readonly #recover: RecoveryBound | null;

  constructor(store: MemoryLogStore, recover: RecoveryBound | null) {
    this.#store = store;
    this.#recover = recover;
  }

  append(entries: readonly Entry[]): void {
    this.#store.append(entries);
  }
  setHardState(hardState: HardState): void {
    this.#store.setHardState(hardState);
  }
  save(request: SaveRequest): void {
    this.#store.save(request);
  }
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    return this.#store.entries(lo, hi, maxBytes);
  }
  term(index: LogIndex): Term {
    return this.#store.term(index);
  }
  firstIndex(): LogIndex {
    return this.#store.firstIndex();
  }
  lastIndex(): LogIndex {
    return this.#store.lastIndex();
  }
  hardState(): HardState {
    return this.#store.hardState();
  }
  snapshotMeta(): SnapshotMeta {
    return this.#store.snapshotMeta();
  }
  recoveryBound(): RecoveryBound | null {
    return this.#recover;
  }
  compact(meta: SnapshotMeta): void {
    this.#store.compact(meta);
  }
  close(): void {
    this.#store.close();
  }
}

/** One node's disk. */
export class SimDisk {
  readonly #id: string;
  readonly #queue: EventQueue;
  readonly #random: SeededRandom;
  readonly #checker: InvariantChecker;
  /** Durable snapshot metadata (index 0: none). */
  snapshotMeta: SnapshotMeta | null = null;
  /** Durable log after the snapshot: entry i has index i + 1 + durableOffset. */
  entries: Entry[] = [];
  hardState: HardState = EMPTY_HARD_STATE;
  /** Durable recovery bound after a lost tail (the SQLite store's "recover" row). */
  recover: RecoveryBound | null = null;
  /** The state store as last synced. */
  image: StateImage | null = null;
  /** Writes waiting for their fsync. */
  inFlight = 0;

  constructor(
    id: string,
    queue: EventQueue,
    random: SeededRandom,
    checker: InvariantChecker,
  ) {
    this.#id = id;
    this.#queue = queue;
    this.#random = random;
    this.#checker = checker;
  }

  /** Index of the durable snapshot (0 without one). */
  get offset(): number {
    return this.snapshotMeta?.index ?? 0;
  }

  /** Term of the durable entry at `index`, or undefined. */
  termAt: TermAt = (index) => {
    const offset = this.offset;
    if (index === offset) return this.snapshotMeta?.term ?? (0 as Term);
    if (index < offset) return undefined;
    return this.entries[index - offset - 1]?.term;
  };

  /** The durable log as a store the runner reads once at start. */
  logStore(): LogStore {
    const store = new MemoryLogStore();
    if (this.snapshotMeta !== null && this.snapshotMeta.index > 0) {
      store.compact(this.snapshotMeta);
    }
    store.save({ hardState: this.hardState, entries: this.entries });
    return new RecoveringLogStore(store, this.recover);
  }

  /**
   * A writer for one incarnation of `process`: its writes die with it. Like
   * the real log Worker, it writes in order, one at a time: a write starts
   * once the previous one is done. A write that need not sync (only the
   * commit index) takes under a simulated ms.
   */
  writer(process: SimProcess): LogWriter {
    const incarnation = process.incarnation;
    let previous: Promise<void> = Promise.resolve();
    const write = (persist: () => void, synced: boolean): Promise<void> => {
      this.inFlight++;
      const done = previous.then(() =>
        new Promise<void>((settle) => {
          const delay = !synced
            ? this.#random.between(0, 1)
            : this.#random.chance(0.05)
            ? this.#random.between(10, 40)
            : this.#random.between(1, 4);
          this.#queue.after(delay, () => {
            this.inFlight--;
            // Crashed before the fsync completed: the write is lost (and so
            // are the ones queued behind it, which find the same).
            if (process.incarnation === incarnation) persist();
            settle();
          });
        })
      );
      previous = done;
      return new Promise<void>((resolve) => {
        void done.then(() => {
          if (process.incarnation === incarnation) process.input(resolve);
        });
      });
    };
    return {
      save: (request) =>
        write(() => this.#save(request), request.sync !== false),
      compact: (meta) => write(() => this.#compact(meta), true),
      close: () => Promise.resolve(),
    };
  }

  /**
   * Up to `count` durable entries after the durable commit index fail their
   * checksum, so the store drops them at the next start and keeps the lost
   * tail's end as its recovery bound, as `SqliteLogStore` does. Only while
   * the process is down. Returns how many were dropped.
   */
  corruptTail(
    count: number,
    heldElsewhere: (index: LogIndex, term: Term) => boolean,
  ): number {
    const offset = this.offset;
    const last = offset + this.entries.length;
    const keep = Math.max(this.hardState.commit, offset, last - count);
    if (keep >= last) return 0;
    // The recovering node votes only for a log at least as up to date as
    // (last, its term). When no other node holds one, elections that need
    // its vote wait for ever (a known limit: the cluster waits, it never
    // loses data; README): not simulated, so liveness can be checked.
    const lastTerm = this.termAt(last as LogIndex);
    if (
      lastTerm !== this.hardState.term ||
      !heldElsewhere(last as LogIndex, lastTerm)
    ) return 0;
    this.entries.length = keep - offset;
    this.recover = {
      index: Math.max(this.recover?.index ?? 0, last) as LogIndex,
      term: Math.max(this.recover?.term ?? 0, this.hardState.term) as Term,
    };
    return last - keep;
  }

  #save(request: SaveRequest): void {
    const checker = this.#checker;
    const entries = request.entries ?? [];
    const first = entries[0];
    if (first !== undefined) {
      const offset = this.offset;
      if (first.index <= offset) {
        checker.fail(
          `storage: '${this.#id}' asked to persist index ${first.index} at or below its snapshot ${offset}`,
        );
        return;
      }
      this.entries.length = Math.min(
        this.entries.length,
        first.index - offset - 1,
      );
      this.entries.push(...entries);
      checker.observeDurableAppend(this.#id, entries, this.termAt);
    }
    if (request.hardState !== undefined) {
      this.hardState = request.hardState;
      checker.observeDurableHardState(this.#id, request.hardState);
    }
  }

  #compact(meta: SnapshotMeta): void {
    const image = this.image;
    if (image === null || image.index < meta.index) {
      this.#checker.fail(
        `storage: '${this.#id}' compacted its log to index ${meta.index} beyond its synced state (${
          image?.index ?? 0
        })`,
      );
      return;
    }
    const offset = this.offset;
    const keepsSuffix = this.termAt(meta.index) === meta.term;
    // Installing a snapshot from a leader replaces the whole log.
    this.entries = keepsSuffix ? this.entries.slice(meta.index - offset) : [];
    this.snapshotMeta = meta;
  }
}
