/**
 * The change feed: a {@linkcode ChangeSink} that keeps a bounded window of
 * the most recent applied entries' changes (bounded by entries AND bytes) and
 * lets in-process subscribers pull them from a revision on.
 *
 * A subscription is only a cursor into the shared window, so a slow
 * subscriber never grows memory: when the entries after its cursor have been
 * dropped from the window (or a snapshot replaced the state), its next
 * {@linkcode ChangeSubscription.take} throws {@linkcode ChangeFeedCompactedError}
 * and it must re-read the state it follows. Subscribing from a revision older
 * than the window throws the same error.
 *
 * Pure: no clock, no timers; waiting is a promise resolved by the next
 * {@linkcode ChangeFeed.applied} or {@linkcode ChangeFeed.reset}.
 *
 * @module
 */
import type { ChangeEvent, ChangeSink, Revision } from "./changes.ts";

/** Default entries the window keeps. */
export const CHANGE_FEED_ENTRIES_MAX = 4096;
/** Default bytes (keys and values, plus a fixed cost per change) the window keeps. */
export const CHANGE_FEED_BYTES_MAX = 16 * 1024 * 1024;
/** Default subscriptions open at once. */
export const CHANGE_FEED_SUBSCRIBERS_MAX = 10_000;
/** Bytes counted per change on top of its key and values. */
const CHANGE_OVERHEAD_BYTES = 64;

/** Options of {@linkcode ChangeFeed}. */
export interface ChangeFeedOptions {
  /** Entries (with at least one change) kept at most. Default {@linkcode CHANGE_FEED_ENTRIES_MAX}. */
  readonly entriesMax?: number;
  /** Bytes kept at most. Default {@linkcode CHANGE_FEED_BYTES_MAX}. */
  readonly bytesMax?: number;
  /** Subscriptions open at once at most. Default {@linkcode CHANGE_FEED_SUBSCRIBERS_MAX}. */
  readonly subscribersMax?: number;
  /** The revision the state is at when the feed starts (the applied index). Default 0. */
  readonly revision?: Revision;
}

/** Keeps only the changes a subscriber wants. */
export type ChangeFilter = (event: ChangeEvent) => boolean;

/**
 * The changes after a revision are no longer in the window (the subscriber
 * fell behind, asked for too old a revision, or a snapshot replaced the
 * state): re-read the state and subscribe again from the feed's revision.
 */
export class ChangeFeedCompactedError extends Error {
  override name = "ChangeFeedCompactedError";
  /**
   * @param requestedRevision The revision the subscriber had read up to.
   * @param oldestRevision The oldest revision one can subscribe from now.
   */
  constructor(
    readonly requestedRevision: Revision,
    readonly oldestRevision: Revision,
  ) {
    super(
      `Cannot read changes after revision ${requestedRevision}: the feed keeps only the changes after revision ${oldestRevision}; re-read the state`,
    );
  }
}

/** Too many subscriptions are open at once. */
export class ChangeFeedFullError extends Error {
  override name = "ChangeFeedFullError";
  constructor(readonly max: number) {
    super(
      `Cannot subscribe to the change feed: ${max} subscriptions are open already`,
    );
  }
}

interface WindowEntry {
  readonly revision: Revision;
  readonly changes: readonly ChangeEvent[];
  readonly bytes: number;
}

/** A pull cursor on the feed. */
export interface ChangeSubscription {
  /** Every wanted change has been taken up to this revision. */
  readonly revision: Revision;
  /**
   * The wanted changes after {@linkcode revision} (in log order), and moves
   * the cursor to the feed's revision. Empty when nothing wanted happened.
   *
   * @throws {ChangeFeedCompactedError} When some of those changes left the window.
   */
  take(): ChangeEvent[];
  /**
   * Resolves once the feed moved past this cursor (or was reset), at once if
   * it did already; also when `signal` aborts or the subscription closes.
   */
  wait(signal?: AbortSignal): Promise<void>;
  /** Ends the subscription (idempotent). */
  close(): void;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Cannot create change feed: '${name}' must be a positive integer: current value is ${value}`,
    );
  }
  return value;
}

function sizeOf(changes: readonly ChangeEvent[]): number {
  let bytes = 0;
  for (const change of changes) {
    bytes += CHANGE_OVERHEAD_BYTES + change.key.byteLength +
      (change.before?.value.byteLength ?? 0) +
      (change.after?.value.byteLength ?? 0);
  }
  return bytes;
}

/** The bounded window of recent changes and its subscriptions. */
export class ChangeFeed implements ChangeSink {
  readonly entriesMax: number;
  readonly bytesMax: number;
  readonly subscribersMax: number;
  /** Retained entries, oldest first, from `#head` on. */
  #window: WindowEntry[] = [];
  #head = 0;
  #bytes = 0;
  #revision: Revision;
  /** Every change after this revision is retained. */
  #floor: Revision;
  /** Bumped by each reset: subscriptions from an older epoch are compacted. */
  #epoch = 0;
  #subscribers = 0;
  /** Resolved by the next move; made only when a wait needs it. */
  #moved: PromiseWithResolvers<void> | null = null;

  /** @throws {RangeError} When a bound is not a positive integer. */
  constructor(options: ChangeFeedOptions = {}) {
    this.entriesMax = positive(
      "entriesMax",
      options.entriesMax ?? CHANGE_FEED_ENTRIES_MAX,
    );
    this.bytesMax = positive(
      "bytesMax",
      options.bytesMax ?? CHANGE_FEED_BYTES_MAX,
    );
    this.subscribersMax = positive(
      "subscribersMax",
      options.subscribersMax ?? CHANGE_FEED_SUBSCRIBERS_MAX,
    );
    this.#revision = options.revision ?? 0n;
    this.#floor = this.#revision;
  }

  /** The revision of the last entry the feed saw. */
  get revision(): Revision {
    return this.#revision;
  }

  /** The oldest revision one can subscribe from. */
  get oldestRevision(): Revision {
    return this.#floor;
  }

  /** Entries in the window now. */
  get entryCount(): number {
    return this.#window.length - this.#head;
  }

  /** Bytes counted in the window now. */
  get byteCount(): number {
    return this.#bytes;
  }

  /** Subscriptions open now. */
  get subscriberCount(): number {
    return this.#subscribers;
  }

  applied(revision: Revision, changes: readonly ChangeEvent[]): void {
    // Revisions only grow; anything else is treated as a new state.
    if (revision <= this.#revision) this.#clear(revision);
    this.#revision = revision;
    if (changes.length > 0) {
      const bytes = sizeOf(changes);
      this.#window.push({ revision, changes, bytes });
      this.#bytes += bytes;
      this.#trim();
    }
    this.#wake();
  }

  reset(revision: Revision): void {
    this.#clear(revision);
    this.#revision = revision;
    this.#wake();
  }

  /**
   * A cursor that takes the changes after `fromRevision` (default: the
   * feed's revision, i.e. only what comes next) that `filter` keeps.
   *
   * @throws {ChangeFeedCompactedError} When `fromRevision` is older than the window.
   * @throws {ChangeFeedFullError} When {@linkcode subscribersMax} are open already.
   */
  subscribe(
    fromRevision: Revision = this.#revision,
    filter: ChangeFilter = () => true,
  ): ChangeSubscription {
    if (fromRevision < this.#floor) {
      throw new ChangeFeedCompactedError(fromRevision, this.#floor);
    }
    if (this.#subscribers >= this.subscribersMax) {
      throw new ChangeFeedFullError(this.subscribersMax);
    }
    this.#subscribers++;
    // deno-lint-ignore no-this-alias
    const feed = this;
    const epoch = this.#epoch;
    let cursor = fromRevision;
    let closed = false;
    /** The pending wait, resolved early by close(). */
    let waiting: PromiseWithResolvers<void> | null = null;
    return {
      get revision() {
        return cursor;
      },
      take: () => {
        if (closed) return [];
        if (epoch !== feed.#epoch || cursor < feed.#floor) {
          throw new ChangeFeedCompactedError(cursor, feed.#floor);
        }
        const taken = feed.#after(cursor, filter);
        cursor = feed.#revision;
        return taken;
      },
      wait: async (signal?: AbortSignal) => {
        if (
          closed || signal?.aborted === true || epoch !== feed.#epoch ||
          cursor < feed.#revision
        ) return;
        // One reaction on the current wake-up promise and one abort listener,
        // both gone once this wait ends: repeated waits leave nothing behind.
        const done = Promise.withResolvers<void>();
        waiting = done;
        const onAbort = () => done.resolve();
        signal?.addEventListener("abort", onAbort, { once: true });
        feed.#moved ??= Promise.withResolvers<void>();
        feed.#moved.promise.then(() => done.resolve());
        try {
          await done.promise;
        } finally {
          signal?.removeEventListener("abort", onAbort);
          if (waiting === done) waiting = null;
        }
      },
      close: () => {
        if (closed) return;
        closed = true;
        feed.#subscribers--;
        waiting?.resolve();
      },
    };
  }

  /**
   * Resolves once the feed's revision passes `revision` or the feed is
   * reset (at once if it did already), or when `signal` aborts. Holds no
   * subscription: readers of the replicated history use it to learn that
   * more was applied.
   */
  async waitPast(revision: Revision, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true || this.#revision > revision) return;
    const done = Promise.withResolvers<void>();
    const onAbort = () => done.resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#moved ??= Promise.withResolvers<void>();
    this.#moved.promise.then(() => done.resolve());
    try {
      await done.promise;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The kept changes after `cursor`, in log order. */
  #after(cursor: Revision, filter: ChangeFilter): ChangeEvent[] {
    // Binary search for the first retained entry after the cursor.
    let low = this.#head;
    let high = this.#window.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#window[middle]!.revision <= cursor) low = middle + 1;
      else high = middle;
    }
    const taken: ChangeEvent[] = [];
    for (let i = low; i < this.#window.length; i++) {
      for (const change of this.#window[i]!.changes) {
        if (filter(change)) taken.push(change);
      }
    }
    return taken;
  }

  #trim(): void {
    while (
      this.entryCount > this.entriesMax ||
      (this.#bytes > this.bytesMax && this.entryCount > 0)
    ) {
      const oldest = this.#window[this.#head]!;
      this.#head++;
      this.#bytes -= oldest.bytes;
      this.#floor = oldest.revision;
    }
    // Drop the evicted prefix once it is as long as what is kept.
    if (this.#head > 0 && this.#head >= this.entryCount) {
      this.#window = this.#window.slice(this.#head);
      this.#head = 0;
    }
  }

  #clear(revision: Revision): void {
    this.#window = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#floor = revision;
    this.#epoch++;
  }

  #wake(): void {
    const moved = this.#moved;
    if (moved === null) return;
    this.#moved = null;
    moved.resolve();
  }
}
