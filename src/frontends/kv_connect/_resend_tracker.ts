/**
 * What this node process knows of the stock-client writes it serves, to tell
 * a resend from a new write with the same bytes (issue 12 item 0). Private to
 * `kv_connect/`; in memory only, so a restarted node knows nothing.
 *
 * A write (client id, body digest) is *mergeable*, that is, may be answered
 * with the first result of an identical applied write, only when this
 * process holds no answer it delivered for that client and digest within
 * {@linkcode RESEND_WINDOW_MS}. An identical write still in flight here is
 * waited for first: if its client went away before its answer (the
 * connection reset, so the stock client resent), the new one is mergeable;
 * if its answer went out, the new one is a new write. So:
 *
 * - a client that sends the same write again after it got the answer (a
 *   repeated `sum`, say) through the same live node gets a new write;
 * - two identical writes in flight at once from one client are two writes
 *   (applied one after the other);
 * - a resend after the node died, or after the answer was lost on the way,
 *   is answered with the first result if the first attempt applied.
 *
 * @module
 */
import { RESEND_WINDOW_MS } from "../../services/kv/api.ts";
import type { DeliveryMark } from "./_delivery_marks.ts";
import { toHex } from "../../base/bytes.ts";

/** Writes remembered at most (the oldest idle ones are forgotten first). */
export const RESEND_TRACKED_MAX = 100_000;

interface Tracked {
  inFlight: number;
  deliveredAtMs: number | null;
  /** The delivery mark of the latest delivered answer. */
  mark: DeliveryMark | null;
  /** Resolves when no attempt is in flight any more. */
  idle: Promise<void> | null;
  release: (() => void) | null;
}

/** Identical writes in flight waited for at most, one after the other. */
const WAITS_MAX = 8;
/** Longest wait for the delivery mark of the previous identical write, in ms. */
const MARK_WAIT_MS = 2_000;

/** One write being served: whether it may merge, and how to end it. */
export interface TrackedWrite {
  readonly mergeable: boolean;
  /**
   * Ends the attempt; `delivered` when its answer (a result) is being sent
   * to a client still connected, with its queued delivery mark.
   */
  done(delivered: boolean, mark?: DeliveryMark): void;
}

/** Per-process memory of served stock writes. */
export class ResendTracker {
  readonly #entries = new Map<string, Tracked>();
  readonly #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /**
   * Starts serving a write of `clientId` with body digest `digest`, after
   * any identical write in flight here has ended.
   */
  async begin(clientId: string, digest: Uint8Array): Promise<TrackedWrite> {
    const key = `${clientId}/${toHex(digest)}`;
    for (let i = 0; i < WAITS_MAX; i++) {
      const busy = this.#entries.get(key);
      if (busy === undefined || busy.inFlight === 0) break;
      await busy.idle;
    }
    const now = this.#now();
    let entry = this.#entries.get(key);
    if (
      entry !== undefined && entry.inFlight === 0 &&
      entry.deliveredAtMs !== null &&
      entry.deliveredAtMs + RESEND_WINDOW_MS < now
    ) {
      entry.deliveredAtMs = null;
    }
    const mergeable = entry === undefined ||
      (entry.inFlight === 0 && entry.deliveredAtMs === null);
    // A repeat of a delivered write goes out only once the cluster knows the
    // earlier answer was delivered: were this one lost with the node, its
    // resend must not be answered with the earlier result.
    if (!mergeable && entry?.mark != null) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        entry.mark.urge(),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, MARK_WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    if (entry === undefined) {
      entry = {
        inFlight: 0,
        deliveredAtMs: null,
        mark: null,
        idle: null,
        release: null,
      };
    }
    if (entry.inFlight === 0) {
      let release!: () => void;
      entry.idle = new Promise<void>((resolve) => (release = resolve));
      entry.release = release;
    }
    // Most recently used last, so eviction takes the oldest first.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    entry.inFlight++;
    this.#evict();
    let ended = false;
    const tracked = entry;
    return {
      mergeable,
      done: (delivered, mark) => {
        if (ended) return;
        ended = true;
        tracked.inFlight--;
        if (delivered) {
          tracked.deliveredAtMs = this.#now();
          tracked.mark = mark ?? null;
        }
        if (tracked.inFlight === 0) {
          tracked.release?.();
          tracked.idle = null;
          tracked.release = null;
        }
      },
    };
  }

  /** Number of writes remembered. */
  get size(): number {
    return this.#entries.size;
  }

  #evict(): void {
    if (this.#entries.size <= RESEND_TRACKED_MAX) return;
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size <= RESEND_TRACKED_MAX) return;
      if (entry.inFlight === 0) this.#entries.delete(key);
    }
  }
}
