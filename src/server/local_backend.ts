/**
 * {@linkcode LocalKvBackend}: the reference {@linkcode KvBackend}, one
 * {@linkcode KvStateMachine} in this process with no Raft (a counter plays
 * the log index). Every read is strong, every commit decided at once. A
 * timer proposes expiry sweeps as the node runtime will. Watches follow the
 * state machine's change feed (see `watch.ts`), as on a Raft node.
 *
 * @module
 */
import { logIndex } from "../raft/types.ts";
import type {
  KvBackend,
  KvCommitResult,
  KvConsistency,
  KvReadRange,
} from "../services/kv/api.ts";
import { commitResultOf, KvUnavailableError } from "../services/kv/api.ts";
import { encodeKvEntry as encodeCommand } from "../services/entries.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { KvStateMachine } from "../services/state_machine.ts";
import type { StateStore } from "../state/state_store.ts";
import type {
  KvAtomicOperation,
  KvEntry,
  KvResendMark,
} from "../model/types.ts";
import { ChangeFeed, type ChangeFeedOptions } from "../state/change_feed.ts";
import { KvWatchers } from "../services/kv/watch.ts";

/** Options of {@linkcode LocalKvBackend}. */
export interface LocalKvBackendOptions {
  /** Lowercase UUID of the database. Default: a random one. */
  readonly databaseId?: string;
  /** The store to apply to. Default: a new {@linkcode MemoryStateStore}. */
  readonly store?: StateStore;
  /** Interval of expiry sweeps in ms; 0 disables them. Default 1000. */
  readonly expirySweepIntervalMs?: number;
  /** Keys one sweep deletes at most. Default 1000. */
  readonly expiryKeysPerSweepMax?: number;
  /** Concurrent watches at most; more are refused as unavailable. Default 1000. */
  readonly watchersMax?: number;
  /** Bounds of the change feed the watches follow. Default: the feed's defaults. */
  readonly changeFeed?: Omit<ChangeFeedOptions, "revision">;
  /** The clock, Unix ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Runs `run` now, returning its result or its exception as a promise. */
function settle<T>(run: () => T): Promise<T> {
  try {
    return Promise.resolve(run());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** A {@linkcode KvBackend} over one in-process state machine. */
export class LocalKvBackend implements KvBackend, Disposable {
  readonly databaseId: string;
  readonly stateMachine: KvStateMachine;
  /** The state machine's change feed. */
  readonly changes: ChangeFeed;
  readonly #now: () => number;
  readonly #watchers: KvWatchers;
  readonly #expiryKeysPerSweepMax: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  /** @throws {RangeError} For a negative sweep interval or a non-positive bound. */
  constructor(options: LocalKvBackendOptions = {}) {
    const interval = options.expirySweepIntervalMs ?? 1000;
    if (!Number.isSafeInteger(interval) || interval < 0) {
      throw new RangeError(
        `Cannot create LocalKvBackend: 'expirySweepIntervalMs' must be a non-negative integer: current value is ${interval}`,
      );
    }
    const watchersMax = options.watchersMax ?? 1000;
    this.#expiryKeysPerSweepMax = options.expiryKeysPerSweepMax ?? 1000;
    for (
      const [name, value] of [
        ["watchersMax", watchersMax],
        ["expiryKeysPerSweepMax", this.#expiryKeysPerSweepMax],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create LocalKvBackend: '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.databaseId = options.databaseId ?? crypto.randomUUID();
    const store = options.store ?? new MemoryStateStore();
    this.changes = new ChangeFeed({
      ...options.changeFeed,
      revision: BigInt(store.appliedIndex()),
    });
    this.stateMachine = new KvStateMachine(store, {}, {
      changes: this.changes,
    });
    this.#watchers = new KvWatchers(
      this.changes,
      (key) => this.stateMachine.get(key),
      { watchersMax },
    );
    this.#now = options.now ?? Date.now;
    if (interval > 0) {
      this.#timer = setInterval(() => this.sweepExpired(), interval);
    }
  }

  #apply(command: Parameters<typeof encodeCommand>[0]) {
    const index = logIndex(this.stateMachine.appliedIndex() + 1);
    return this.stateMachine.apply(index, encodeCommand(command));
  }

  #checkOpen(): void {
    if (this.#closed) throw new KvUnavailableError("The backend is closed");
  }

  /** Applies one expiry sweep at the current time; returns the keys deleted. */
  sweepExpired(): number {
    if (this.#closed) return 0;
    const result = this.#apply({
      type: "expire",
      timestampMs: this.#now(),
      keyCountMax: this.#expiryKeysPerSweepMax,
    });
    return result.ok ? result.expiredKeyCount : 0;
  }

  /** Reads every range from the current state (always strongly consistent here). */
  read(
    ranges: readonly KvReadRange[],
    _consistency: KvConsistency,
  ): Promise<KvEntry[][]> {
    // Synchronous, so all ranges come from one state.
    return settle(() => {
      this.#checkOpen();
      return ranges.map((range) =>
        this.stateMachine.readRange(
          range.start,
          range.end,
          range.limit,
          range.reverse,
        )
      );
    });
  }

  /**
   * Applies `operation` as the next log entry. Front ends validate it first
   * (early errors, with the clock); apply validates it again (the
   * authority): an invalid operation is a failure result, not an exception.
   *
   * @throws {KvUnavailableError} Once closed.
   */
  commit(operation: KvAtomicOperation): Promise<KvCommitResult> {
    return settle((): KvCommitResult => {
      this.#checkOpen();
      return commitResultOf(this.#apply({ type: "atomic", operation }));
    });
  }

  /** Applies the marks at once (see {@linkcode KvBackend.markResendsDelivered}). */
  markResendsDelivered(marks: readonly KvResendMark[]): Promise<void> {
    return settle(() => {
      this.#checkOpen();
      this.#apply({ type: "resendDelivered", marks });
    });
  }

  /** Watches open now. */
  get watchesOpen(): number {
    return this.#watchers.open;
  }

  /**
   * Yields the entries of `keys` now, then after every change that moves
   * one of their versionstamps, until `signal` aborts or the backend closes
   * (see {@linkcode KvWatchers.watch}).
   *
   * @throws {KvUnavailableError} When closed or watching too many already.
   * @throws {KvLimitError} For more than 10 keys or a key over 2049 bytes.
   */
  watch(
    keys: readonly Uint8Array[],
    signal: AbortSignal,
  ): AsyncIterable<readonly (KvEntry | null)[]> {
    this.#checkOpen();
    return this.#watchers.watch(keys, signal);
  }

  /** Stops the sweep timer and ends every watch. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#watchers.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
