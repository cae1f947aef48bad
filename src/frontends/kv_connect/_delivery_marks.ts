/**
 * Tells the cluster which stock writes' answers this node delivered (issue
 * 12 item 0): their resend records then stop answering, so a client that
 * repeats an identical write on purpose after a node restart gets a new
 * write, not the old answer. Private to `kv_connect/`.
 *
 * A mark is proposed only {@linkcode DELIVERY_MARK_DELAY_MS} after its
 * answer was handed to the HTTP server, not at once: an answer handed over
 * is not yet received. Were the node killed between the two (the answer's
 * bytes still in the process), a mark proposed at once could commit while
 * the client, which never got the answer, resends; the resend would then
 * apply a second time. A node that lives on for the delay has sent its
 * answer's bytes long before. A repeat of the same write on this live node
 * cannot wait that long: {@linkcode DeliveryMark.urge} proposes it now (the
 * repeat shows this node handed the answer over; see `_resend_tracker.ts`).
 *
 * Marks are proposed in batches, one proposal in flight at a time; the
 * marks that come due meanwhile go in the next one. One timer, unref'd (it
 * never keeps a process alive).
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import { RESEND_MARKS_MAX } from "../../services/kv/api.ts";
import type { KvResendMark } from "../../model/types.ts";

/** Marks waiting at most; beyond, the oldest are dropped (they only age out later). */
export const DELIVERY_MARKS_PENDING_MAX = 10_000;
/** How long after its answer was handed over a mark is proposed, in ms. */
export const DELIVERY_MARK_DELAY_MS = 1_000;

/** A queued mark. */
export interface DeliveryMark {
  /** Proposes the mark now (and every mark queued before it); resolves as {@linkcode settled}. */
  urge(): Promise<void>;
  /** Resolves once the proposal carrying the mark has ended (committed, or failed: a mark is best effort). */
  readonly settled: Promise<void>;
}

interface Pending {
  readonly mark: KvResendMark;
  /** When it comes due, on the clock of `now`. */
  dueMs: number;
  readonly done: PromiseWithResolvers<void>;
}

/** Options of {@linkcode DeliveryMarks}. */
export interface DeliveryMarksOptions {
  /** Delay before a mark is proposed, in ms (0: at once). Default {@linkcode DELIVERY_MARK_DELAY_MS}. */
  readonly delayMs?: number;
  /** Monotonic clock, ms. Default `performance.now`. */
  readonly now?: () => number;
}

/** Delays and batches delivery marks into `resendDelivered` proposals. */
export class DeliveryMarks {
  readonly #backend: KvBackend;
  readonly #delayMs: number;
  readonly #now: () => number;
  /** Oldest first; due times never decrease (one constant delay). */
  #pending: Pending[] = [];
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDueMs = Infinity;

  constructor(backend: KvBackend, options: DeliveryMarksOptions = {}) {
    this.#backend = backend;
    this.#delayMs = options.delayMs ?? DELIVERY_MARK_DELAY_MS;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Queues a mark, proposed after the delay unless urged sooner. */
  add(mark: KvResendMark): DeliveryMark {
    const done = Promise.withResolvers<void>();
    if (this.#backend.markResendsDelivered === undefined) {
      done.resolve();
      return { urge: () => done.promise, settled: done.promise };
    }
    const pending: Pending = {
      mark,
      dueMs: this.#now() + this.#delayMs,
      done,
    };
    this.#pending.push(pending);
    if (this.#pending.length > DELIVERY_MARKS_PENDING_MAX) {
      this.#pending.shift()!.done.resolve();
    }
    this.#schedule();
    return {
      urge: () => {
        // Everything queued up to it comes due now (due times stay
        // ordered). Not queued any more: proposed, or dropped.
        const at = this.#pending.indexOf(pending);
        if (at === -1) return done.promise;
        const now = this.#now();
        for (let i = 0; i <= at; i++) {
          const other = this.#pending[i]!;
          other.dueMs = Math.min(other.dueMs, now);
        }
        this.#schedule();
        return done.promise;
      },
      settled: done.promise,
    };
  }

  #schedule(): void {
    if (this.#running) return; // #run reschedules when it ends.
    const head = this.#pending[0];
    if (head === undefined) return;
    const wait = head.dueMs - this.#now();
    if (wait <= 0) {
      this.#clearTimer();
      void this.#run();
      return;
    }
    if (this.#timer !== undefined && this.#timerDueMs <= head.dueMs) return;
    this.#clearTimer();
    this.#timerDueMs = head.dueMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDueMs = Infinity;
      this.#schedule();
    }, Math.ceil(wait));
    Deno.unrefTimer(this.#timer);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDueMs = Infinity;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      for (;;) {
        const now = this.#now();
        let due = 0;
        while (
          due < this.#pending.length && this.#pending[due]!.dueMs <= now
        ) due++;
        if (due === 0) break;
        const batch = this.#pending.splice(0, due);
        for (let i = 0; i < batch.length; i += RESEND_MARKS_MAX) {
          await this.#backend.markResendsDelivered!(
            batch.slice(i, i + RESEND_MARKS_MAX).map((p) => p.mark),
          ).catch(() => {});
        }
        for (const pending of batch) pending.done.resolve();
      }
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }
}
