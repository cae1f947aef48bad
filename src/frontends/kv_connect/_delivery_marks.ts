/**
 * Tells the cluster which stock writes' answers this node delivered (issue
 * 12 item 0): their resend records then stop answering, so a client that
 * repeats an identical write on purpose after a node restart gets a new
 * write, not the old answer. Marks are proposed in batches: one proposal in
 * flight at a time, the marks that arrive meanwhile go in the next one. No
 * timers. Private to `kv_connect/`.
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import { RESEND_MARKS_MAX } from "../../services/kv/api.ts";
import type { KvResendMark } from "../../model/types.ts";

/** Marks waiting at most; beyond, the oldest are dropped (they only age out later). */
export const DELIVERY_MARKS_PENDING_MAX = 10_000;

/** Batches delivery marks into `resendDelivered` proposals. */
export class DeliveryMarks {
  readonly #backend: KvBackend;
  #pending: KvResendMark[] = [];
  #next = Promise.withResolvers<void>();
  #running = false;

  constructor(backend: KvBackend) {
    this.#backend = backend;
  }

  /**
   * Queues a mark; resolves once the proposal carrying it has ended
   * (committed, or failed: a mark is best effort).
   */
  add(mark: KvResendMark): Promise<void> {
    if (this.#backend.markResendsDelivered === undefined) {
      return Promise.resolve();
    }
    this.#pending.push(mark);
    if (this.#pending.length > DELIVERY_MARKS_PENDING_MAX) {
      this.#pending.shift();
    }
    const done = this.#next.promise;
    if (!this.#running) void this.#run();
    return done;
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        const done = this.#next;
        this.#next = Promise.withResolvers<void>();
        for (let i = 0; i < batch.length; i += RESEND_MARKS_MAX) {
          await this.#backend.markResendsDelivered!(
            batch.slice(i, i + RESEND_MARKS_MAX),
          ).catch(() => {});
        }
        done.resolve();
      }
    } finally {
      this.#running = false;
    }
  }
}
