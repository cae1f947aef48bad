/**
 * The one Deno KV watch loop, on the node's {@linkcode ChangeFeed}: every
 * {@linkcode KvBackend} (local or Raft) serves `watch` through
 * {@linkcode KvWatchers}. A watch reads its keys once, then follows the feed
 * and updates only the slots whose keys changed (no re-read per applied
 * entry), yielding whenever a versionstamp moved. Changes that pile up while
 * the consumer is slow coalesce into the next yield, and nothing is queued
 * per watch beyond the feed's shared, bounded window: a watch that falls
 * behind it (compacted) re-reads the current values, so it never skips the
 * latest value.
 *
 * Bounds: at most `watchersMax` watches at once (refused as unavailable),
 * at most 10 keys per watch of at most 2049 bytes each (refused as a limit).
 *
 * @module
 */
import { equalBytes } from "../../base/bytes.ts";
import {
  type ChangeFeed,
  ChangeFeedCompactedError,
  ChangeFeedFullError,
  type ChangeSubscription,
} from "../../state/change_feed.ts";
import type { ChangeEvent } from "../../state/changes.ts";
import { validateReadKey, validateWatchKeys } from "../../model/limits.ts";
import type { KvEntry, ValueEncoding } from "../../model/types.ts";
import { KvUnavailableError } from "./api.ts";

/** Default watches open at once on one backend. */
export const KV_WATCHERS_MAX = 1000;

/** Options of {@linkcode KvWatchers}. */
export interface KvWatchersOptions {
  /** Watches open at once at most; more are refused as unavailable. Default {@linkcode KV_WATCHERS_MAX}. */
  readonly watchersMax?: number;
}

function sameVersion(a: KvEntry | null, b: KvEntry | null): boolean {
  if (a === null || b === null) return a === b;
  return equalBytes(a.versionstamp, b.versionstamp);
}

/** Whether any slot's versionstamp differs. */
export function entriesMoved(
  previous: readonly (KvEntry | null)[],
  current: readonly (KvEntry | null)[],
): boolean {
  return current.some((entry, i) => !sameVersion(previous[i] ?? null, entry));
}

function entryOf(change: ChangeEvent): KvEntry | null {
  if (change.kind !== "set" || change.after === undefined) return null;
  return {
    key: change.key,
    value: {
      encoding: change.after.encoding as ValueEncoding,
      data: change.after.value,
    },
    versionstamp: change.after.versionstamp,
  };
}

/** Serves watches over one state (read synchronously) and its change feed. */
export class KvWatchers {
  readonly watchersMax: number;
  readonly #feed: ChangeFeed;
  readonly #get: (key: Uint8Array) => KvEntry | null;
  readonly #closed = new AbortController();
  #open = 0;

  /**
   * @param feed The feed the state's changes go to (its `ChangeSink`).
   * @param get Reads one key's current entry from that state, synchronously.
   * @throws {RangeError} When `watchersMax` is not a positive integer.
   */
  constructor(
    feed: ChangeFeed,
    get: (key: Uint8Array) => KvEntry | null,
    options: KvWatchersOptions = {},
  ) {
    const max = options.watchersMax ?? KV_WATCHERS_MAX;
    if (!Number.isSafeInteger(max) || max <= 0) {
      throw new RangeError(
        `Cannot create KvWatchers: 'watchersMax' must be a positive integer: current value is ${max}`,
      );
    }
    this.watchersMax = max;
    this.#feed = feed;
    this.#get = get;
  }

  /** Watches open now. */
  get open(): number {
    return this.#open;
  }

  /**
   * Streams the entries of `keys`: first their current values (after
   * `start` resolved, e.g. a confirmed read point), then again whenever a
   * versionstamp moved, until `signal` aborts or {@linkcode close}. The
   * bounds are checked at once (this throws before anything is iterated);
   * the slot is released when `signal` aborts or the iteration ends.
   *
   * @throws {KvUnavailableError} When closed or `watchersMax` watches are open.
   * @throws {KvLimitError} For more than 10 keys or a key over 2049 bytes.
   */
  watch(
    keys: readonly Uint8Array[],
    signal: AbortSignal,
    start?: () => Promise<void>,
  ): AsyncIterable<readonly (KvEntry | null)[]> {
    if (this.#closed.signal.aborted) {
      throw new KvUnavailableError("Cannot watch: the backend is closed");
    }
    validateWatchKeys(keys.length);
    for (const key of keys) validateReadKey(key);
    if (this.#open >= this.watchersMax) {
      throw new KvUnavailableError(
        `Cannot watch: ${this.watchersMax} watches are open already`,
      );
    }
    this.#open++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#open--;
    };
    const stop = AbortSignal.any([signal, this.#closed.signal]);
    if (stop.aborted) release();
    else stop.addEventListener("abort", release, { once: true });
    return this.#loop([...keys], stop, start, release);
  }

  async *#loop(
    keys: readonly Uint8Array[],
    stop: AbortSignal,
    start: (() => Promise<void>) | undefined,
    release: () => void,
  ): AsyncGenerator<readonly (KvEntry | null)[]> {
    const wanted = (change: ChangeEvent) =>
      change.service === "kv" &&
      keys.some((key) => equalBytes(key, change.key));
    let subscription: ChangeSubscription | null = null;
    try {
      if (stop.aborted) return;
      await start?.();
      if (stop.aborted) return;
      // Read and subscribe in one synchronous step: no entry applies between.
      const resubscribe = (): (KvEntry | null)[] => {
        subscription?.close();
        subscription = null;
        try {
          subscription = this.#feed.subscribe(this.#feed.revision, wanted);
        } catch (error) {
          if (!(error instanceof ChangeFeedFullError)) throw error;
          throw new KvUnavailableError(error.message, { cause: error });
        }
        return keys.map((key) => this.#get(key));
      };
      let current = resubscribe();
      yield current;
      while (!stop.aborted) {
        await subscription!.wait(stop);
        if (stop.aborted) return;
        let next: (KvEntry | null)[];
        try {
          next = [...current];
          for (const change of subscription!.take()) {
            keys.forEach((key, i) => {
              if (equalBytes(key, change.key)) next[i] = entryOf(change);
            });
          }
        } catch (error) {
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
          // Fell behind the window (or a snapshot replaced the state).
          next = resubscribe();
        }
        if (entriesMoved(current, next)) {
          current = next;
          yield current;
        }
      }
    } finally {
      (subscription as ChangeSubscription | null)?.close();
      release();
    }
  }

  /** Ends every watch and refuses new ones. Idempotent. */
  close(): void {
    this.#closed.abort();
  }
}
