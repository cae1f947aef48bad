/**
 * The bound on a leader task's proposals: a token bucket (`perSecond`
 * refill, `burst` capacity) on the injected Clock/Scheduler, and at most
 * `inFlightMax` proposals waiting or in flight at once. Hand-written rather
 * than an npm limiter because it must run on the simulator's clock, not on
 * `Date.now` and `setTimeout`.
 *
 * @module
 */
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";

/** How fast one leader task may propose. */
export interface ProposalRate {
  /** Tokens added per second (sustained proposals per second). */
  readonly perSecond: number;
  /** Bucket capacity: proposals allowed back to back after a quiet spell. */
  readonly burst: number;
  /** Proposals waiting for a token or in flight at once, at most. */
  readonly inFlightMax: number;
}

/** The default bound: 20 proposals per second, bursts of 10, 4 at once. */
export const DEFAULT_PROPOSAL_RATE: ProposalRate = {
  perSecond: 20,
  burst: 10,
  inFlightMax: 4,
};

/** Checks a rate's fields (each a positive number; the counts integers). */
export function validateProposalRate(rate: ProposalRate): ProposalRate {
  const checks: [string, number, boolean][] = [
    ["perSecond", rate.perSecond, Number.isFinite(rate.perSecond)],
    ["burst", rate.burst, Number.isSafeInteger(rate.burst)],
    ["inFlightMax", rate.inFlightMax, Number.isSafeInteger(rate.inFlightMax)],
  ];
  for (const [name, value, ok] of checks) {
    if (!ok || value <= 0) {
      throw new RangeError(
        `Cannot bound proposals as '${name}' must be positive: current value is ${value}`,
      );
    }
  }
  return rate;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

/** A token bucket whose waiters are served first come, first served. */
export class TokenBucket {
  readonly #rate: ProposalRate;
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  #tokens: number;
  #lastMs: number;
  readonly #waiters: Waiter[] = [];
  #timer: Scheduled | null = null;

  constructor(rate: ProposalRate, clock: Clock, scheduler: Scheduler) {
    this.#rate = validateProposalRate(rate);
    this.#clock = clock;
    this.#scheduler = scheduler;
    this.#tokens = rate.burst;
    this.#lastMs = clock.monotonicMs();
  }

  /** Waiters queued now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves once a token is taken (waiters queue in order). */
  take(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#drain();
    });
  }

  /** Rejects every waiter and cancels the refill timer. */
  close(error: Error): void {
    this.#timer?.cancel();
    this.#timer = null;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  #refill(): void {
    const now = this.#clock.monotonicMs();
    const elapsed = Math.max(0, now - this.#lastMs);
    this.#lastMs = now;
    this.#tokens = Math.min(
      this.#rate.burst,
      this.#tokens + elapsed * this.#rate.perSecond / 1000,
    );
  }

  #drain(): void {
    this.#refill();
    while (this.#waiters.length > 0 && this.#tokens >= 1) {
      this.#tokens -= 1;
      this.#waiters.shift()!.resolve();
    }
    if (this.#waiters.length === 0 || this.#timer !== null) return;
    const delayMs = Math.ceil((1 - this.#tokens) * 1000 / this.#rate.perSecond);
    this.#timer = this.#scheduler.after(Math.max(1, delayMs), () => {
      this.#timer = null;
      this.#drain();
    });
  }
}
