/**
 * The history's head as one webhook worker follows it, private to the
 * worker: hook loops that caught up wait here for a revision past the one
 * they read, and ONE poll of `GET /v1/events/status` (every
 * {@linkcode HEAD_POLL_MS} while anyone waits) serves them all, so idle
 * hooks cost the cluster a request per interval, not one per hook.
 *
 * @module
 */
import type { HookWorkerCalls } from "../../client/hook_worker_calls.ts";
import { sleepFor } from "./_sleep.ts";

/** Pause between polls of the head while a loop waits, ms. */
export const HEAD_POLL_MS = 200;

interface Waiter {
  readonly after: number;
  readonly resolve: () => void;
}

/** Waits for the history's head to move. */
export class HeadWatch {
  readonly #calls: HookWorkerCalls;
  readonly #signal: AbortSignal;
  readonly #waiters = new Set<Waiter>();
  #head = 0;
  #polling = false;

  /**
   * @param calls The worker's protocol calls.
   * @param signal Stops the polling (the worker's stop).
   */
  constructor(calls: HookWorkerCalls, signal: AbortSignal) {
    this.#calls = calls;
    this.#signal = signal;
  }

  /**
   * Resolves once the head passed `after`, after `maxMs` (a loop also has
   * replays and refreshed claims to look at), or when `signal` aborts.
   */
  async wait(after: number, maxMs: number, signal: AbortSignal): Promise<void> {
    if (this.#head > after) return;
    const timeout = new AbortController();
    const both = AbortSignal.any([signal, timeout.signal]);
    let waiter: Waiter | undefined;
    const moved = new Promise<void>((resolve) => {
      waiter = { after, resolve };
      this.#waiters.add(waiter);
    });
    void this.#poll();
    try {
      await Promise.race([moved, sleepFor(maxMs, both)]);
    } finally {
      timeout.abort();
      this.#waiters.delete(waiter!);
    }
  }

  /** Polls while anyone waits (one poller at a time). */
  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      while (this.#waiters.size > 0 && !this.#signal.aborted) {
        try {
          const status = await this.#calls.status();
          this.#head = Math.max(this.#head, status.headRevision);
        } catch {
          // Unavailable for now: the waiters' own deadlines bound the wait.
        }
        for (const waiter of [...this.#waiters]) {
          if (this.#head > waiter.after) {
            this.#waiters.delete(waiter);
            waiter.resolve();
          }
        }
        if (this.#waiters.size > 0) await sleepFor(HEAD_POLL_MS, this.#signal);
      }
    } finally {
      this.#polling = false;
    }
  }
}
