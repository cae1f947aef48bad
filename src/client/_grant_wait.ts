/**
 * The waiting loop shared by `locks.acquire` and `elections.campaign`: long
 * polls (each ≤ 60,000 ms and half the request deadline, so a quiet wait is
 * no timeout) until granted, the caller's `timeoutMs` passes, its signal
 * aborts or the holding lease is lost. Leaving without a grant asks once
 * more without waiting (a grant won in the race is the result), then
 * cancels: the cluster removes the waiter, or releases a grant won in
 * between, so no grant is orphaned. Private to `src/client/`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  COORDINATION_LIMITS,
  type LockCancelResponse,
} from "../protocol/http_api_leases.ts";
import type { HttpTransport } from "./_transport.ts";
import { sleepFor } from "./_timers.ts";
import {
  AcquireTimeoutError,
  LeaseLostError,
  UnavailableError,
} from "./errors.ts";

/** Attempts of the final cancel before its failure is thrown. */
const CANCEL_ATTEMPTS = 3;
/** Pause between cancel attempts, ms. */
const CANCEL_RETRY_MS = 200;

/** What {@linkcode waitForGrant} needs. */
export interface GrantWait<T> {
  readonly transport: HttpTransport;
  readonly name: string;
  readonly lease: string;
  /** Longest wait, ms; undefined: no limit. */
  readonly timeoutMs: number | undefined;
  /** The caller's signal. */
  readonly signal: AbortSignal | undefined;
  /** The holding lease's signal, when this client keeps it alive. */
  readonly leaseSignal: AbortSignal | undefined;
  /** One acquire or campaign call waiting up to `waitMs`; null: still queued. */
  readonly attempt: (waitMs: number) => Promise<T | null>;
}

/**
 * Checks a `timeoutMs` option.
 *
 * @throws {RangeError} When it is not a non-negative safe integer.
 */
export function checkTimeout(timeoutMs: number | undefined): void {
  if (
    timeoutMs !== undefined &&
    (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0)
  ) {
    throw new RangeError(
      `Cannot wait as 'timeoutMs' must be a non-negative integer: current value is ${timeoutMs}`,
    );
  }
}

/**
 * Waits for a grant as the module doc says.
 *
 * @throws {AcquireTimeoutError} After `timeoutMs` without a grant.
 * @throws {LeaseLostError} When the holding lease was lost while waiting.
 * @throws The signal's reason when the caller aborted.
 */
export async function waitForGrant<T>(wait: GrantWait<T>): Promise<T> {
  const started = performance.now();
  const pollMsMax = Math.max(
    0,
    Math.min(
      COORDINATION_LIMITS.waitMsMax,
      Math.floor(wait.transport.timeoutMs / 2),
    ),
  );
  for (;;) {
    const stop = stopReason(wait, started);
    if (stop !== null) return await leave(wait, stop);
    const remaining = wait.timeoutMs === undefined
      ? Infinity
      : wait.timeoutMs - (performance.now() - started);
    const granted = await wait.attempt(
      Math.max(0, Math.floor(Math.min(pollMsMax, remaining))),
    );
    if (granted !== null) return granted;
  }
}

function stopReason<T>(wait: GrantWait<T>, started: number): unknown {
  if (wait.signal?.aborted) return wait.signal.reason;
  if (wait.leaseSignal?.aborted) {
    const reason = wait.leaseSignal.reason;
    return reason instanceof LeaseLostError ? reason : new LeaseLostError(
      wait.lease,
      `Lease ${wait.lease} ended while waiting for ${wait.name}`,
      { cause: reason },
    );
  }
  if (
    wait.timeoutMs !== undefined &&
    performance.now() - started >= wait.timeoutMs
  ) {
    return new AcquireTimeoutError(wait.name, wait.timeoutMs);
  }
  return null;
}

/** One last ask without waiting, then cancel; throws `reason` unless granted. */
async function leave<T>(wait: GrantWait<T>, reason: unknown): Promise<T> {
  if (reason instanceof AcquireTimeoutError) {
    const granted = await wait.attempt(0);
    if (granted !== null) return granted;
  }
  if (!(reason instanceof LeaseLostError)) await cancel(wait);
  throw reason;
}

async function cancel<T>(wait: GrantWait<T>): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await wait.transport.request("POST", ROUTES.lockCancel, {
        name: wait.name,
        lease: wait.lease,
      }, "write") as LockCancelResponse;
      return;
    } catch (error) {
      if (!(error instanceof UnavailableError) || attempt >= CANCEL_ATTEMPTS) {
        throw error;
      }
      await sleepFor(CANCEL_RETRY_MS, wait.transport.closed);
    }
  }
}
