/**
 * The retry policy of webhook deliveries (issue 17, "Webhook delivery"):
 * what an attempt's answer means ({@linkcode classify}), how long a
 * receiver asked to wait ({@linkcode parseRetryAfter}), and when the next
 * attempt is due or why the hook is disabled ({@linkcode nextAttempt}).
 *
 * Pure: the caller passes the time and a random number (and records both
 * with the attempt), so a replayed or simulated run schedules the same.
 *
 * - Retries wait the schedule's steps (default 0, 5 s, 5 min, 30 min, 2 h,
 *   5 h, 10 h, 14 h, 20 h, 24 h; the last repeats), each ±10% jitter.
 * - 429, 502, 503 and 504 honour `Retry-After` (capped at 1 h) as a floor:
 *   the retry waits at least that, and never less than its step.
 * - A retry due after `firstFailureAtMs + retryWindowMs` is not made: the
 *   hook is disabled (`retryWindowExceeded`), its cursor on that event.
 *
 * @module
 */
import {
  type HookDeliveryOutcome,
  type HookDisableReason,
  validateRetrySchedule,
  validateRetryWindowMs,
} from "../../protocol/hook_targets.ts";

/** Jitter around each step: ±10%. */
export const JITTER_FRACTION = 0.1;
/** Longest `Retry-After` honoured, in ms (1 h). */
export const RETRY_AFTER_MS_MAX = 3_600_000;
/** Statuses whose `Retry-After` is honoured. */
export const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([
  429,
  502,
  503,
  504,
]);

/** A hook's retry policy, checked ({@linkcode retryPolicy}). */
export interface RetryPolicy {
  /** Delay before each retry, in ms; the last step repeats. */
  readonly scheduleMs: readonly number[];
  /** How long after the first failure retries go on, in ms. */
  readonly retryWindowMs: number;
}

/** A hook's retry settings as stored; absent fields take the defaults. */
export interface RetryPolicyOptions {
  /** Custom schedule: 1–20 steps of 0–24 h, the last ≥ 1 s. */
  readonly retryScheduleMs?: readonly number[];
  /** 60 s–30 days; default 3 days. */
  readonly retryWindowMs?: number;
}

/**
 * Checks a hook's retry settings.
 *
 * @param options The schedule and window; defaults for what is absent.
 * @returns The frozen policy.
 * @throws {HookTargetError} `invalidRetrySchedule` or `invalidRetryWindow`.
 */
export function retryPolicy(options: RetryPolicyOptions = {}): RetryPolicy {
  return Object.freeze({
    scheduleMs: validateRetrySchedule(options.retryScheduleMs),
    retryWindowMs: validateRetryWindowMs(options.retryWindowMs),
  });
}

/** The default policy: the schedule within 3 days. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = retryPolicy();

/**
 * How an attempt ended, from the response status or the error fetch threw.
 * `blocked` and `unknown` are never classified: the guard and the lease
 * decide them.
 */
export type ClassifiedOutcome = Extract<
  HookDeliveryOutcome,
  "ok" | "gone" | "failed" | "timeout" | "error"
>;

/**
 * Classifies an attempt: 2xx `ok`; 410 `gone` (disables the hook); any
 * other status `failed` (3xx too: redirects are not followed); an error
 * named `TimeoutError` (`AbortSignal.timeout`) `timeout`; any other error
 * `error` (connection refused or reset, TLS, DNS).
 *
 * @param result The HTTP status, or what the request threw.
 * @returns The outcome.
 * @throws {RangeError} For a number that is not an HTTP status (100–599).
 *
 * @example
 * ```ts
 * import { classify } from "./schedule.ts";
 * console.assert(classify(204) === "ok" && classify(302) === "failed");
 * ```
 */
export function classify(result: number | unknown): ClassifiedOutcome {
  if (typeof result === "number") {
    if (!Number.isInteger(result) || result < 100 || result > 599) {
      throw new RangeError(
        `Cannot classify status as it is not an HTTP status: current value is ${result}`,
      );
    }
    if (result >= 200 && result < 300) return "ok";
    return result === 410 ? "gone" : "failed";
  }
  const name = result instanceof Error || result instanceof DOMException
    ? result.name
    : "";
  return name === "TimeoutError" ? "timeout" : "error";
}

/** True for the statuses whose `Retry-After` is honoured (429, 502, 503, 504). */
export function honoursRetryAfter(status: number): boolean {
  return RETRY_AFTER_STATUSES.has(status);
}

/**
 * Reads a `Retry-After` header: delay-seconds or an HTTP-date.
 *
 * @param header The header's value (null or undefined when absent).
 * @param nowMs The current time, Unix ms (for an HTTP-date).
 * @returns The delay in ms, 0–{@linkcode RETRY_AFTER_MS_MAX} (a date in
 *   the past is 0), or undefined when absent or malformed.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./schedule.ts";
 * console.assert(parseRetryAfter("120", 0) === 120_000);
 * console.assert(parseRetryAfter("86400", 0) === 3_600_000);
 * ```
 */
export function parseRetryAfter(
  header: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (text.length === 0 || text.length > 64) return undefined;
  if (/^\d+$/.test(text)) {
    // Beyond 16 digits a number loses precision; it is far past the cap.
    const seconds = text.length > 16 ? Infinity : Number(text);
    return Math.min(seconds * 1000, RETRY_AFTER_MS_MAX);
  }
  // An HTTP-date names its weekday (RFC 9110: IMF-fixdate, RFC 850 or
  // asctime); Date.parse alone would also take "3" or "2026".
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const atMs = Date.parse(text);
  if (Number.isNaN(atMs)) return undefined;
  return Math.min(Math.max(atMs - nowMs, 0), RETRY_AFTER_MS_MAX);
}

/**
 * A step with ±10% jitter: `delayMs × (0.9 + 0.2 × random)`, rounded to
 * the millisecond.
 *
 * @param delayMs The step, in ms.
 * @param random A number in [0, 1), drawn and recorded by the caller.
 * @returns The jittered delay, in ms.
 * @throws {RangeError} When `random` is outside [0, 1).
 */
export function jitter(delayMs: number, random: number): number {
  if (!(random >= 0 && random < 1)) {
    throw new RangeError(
      `Cannot jitter delay as 'random' must be in [0, 1): current value is ${random}`,
    );
  }
  const factor = 1 - JITTER_FRACTION + 2 * JITTER_FRACTION * random;
  return Math.round(delayMs * factor);
}

/**
 * The schedule's step before a retry, without jitter.
 *
 * @param attempt The attempt that just failed (1 for the first): the
 *   retry is attempt + 1.
 * @param policy The hook's policy.
 * @returns The step, in ms (the last step once the schedule runs out).
 */
export function retryStepMs(attempt: number, policy: RetryPolicy): number {
  const steps = policy.scheduleMs;
  return steps[Math.min(attempt, steps.length) - 1]!;
}

/** What {@linkcode nextAttempt} needs about the attempt that just ended. */
export interface NextAttemptInput {
  /** The attempt that ended, 1 for the first. */
  readonly attempt: number;
  /** When the event's first attempt failed, Unix ms: the window starts there. */
  readonly firstFailureAtMs: number;
  /** Now, Unix ms. */
  readonly nowMs: number;
  /** How the attempt ended (not `ok`). */
  readonly outcome: Exclude<HookDeliveryOutcome, "ok">;
  /** The receiver's `Retry-After`, in ms, when its status honours one. */
  readonly retryAfterMs?: number;
  /** A number in [0, 1) for the jitter, drawn and recorded by the caller. */
  readonly random: number;
  /** The hook's policy. */
  readonly policy: RetryPolicy;
}

/** When to try again, or why to stop. */
export type NextAttempt =
  | {
    /** When the next attempt is due, Unix ms. */
    readonly nextAttemptAtMs: number;
  }
  | {
    /** Disable the hook for this reason; the cursor stays on the event. */
    readonly disable: HookDisableReason;
  };

/**
 * Decides what follows an attempt that did not succeed: `gone` and
 * `blocked` disable the hook; `failed`, `timeout`, `error` and `unknown`
 * retry after the schedule's step (jittered, at least `retryAfterMs`
 * capped at 1 h) unless that falls after the retry window.
 *
 * @param input The attempt, the clock, the random draw and the policy.
 * @returns `{nextAttemptAtMs}` (never after `firstFailureAtMs +
 *   retryWindowMs`) or `{disable}`.
 * @throws {RangeError} For an `ok` outcome, a bad attempt number, a
 *   failure time after now, or `random` outside [0, 1).
 *
 * @example
 * ```ts
 * import { DEFAULT_RETRY_POLICY, nextAttempt } from "./schedule.ts";
 * const next = nextAttempt({
 *   attempt: 2, firstFailureAtMs: 0, nowMs: 1_000, outcome: "failed",
 *   random: 0.5, policy: DEFAULT_RETRY_POLICY,
 * });
 * console.assert("nextAttemptAtMs" in next && next.nextAttemptAtMs === 6_000);
 * ```
 */
export function nextAttempt(input: NextAttemptInput): NextAttempt {
  checkNextAttemptInput(input);
  const { outcome, policy } = input;
  if (outcome === "gone") return { disable: "gone" };
  if (outcome === "blocked") return { disable: "targetBlocked" };
  const stepMs = jitter(retryStepMs(input.attempt, policy), input.random);
  const retryAfterMs = Math.min(input.retryAfterMs ?? 0, RETRY_AFTER_MS_MAX);
  const nextAttemptAtMs = input.nowMs + Math.max(stepMs, retryAfterMs);
  if (nextAttemptAtMs > input.firstFailureAtMs + policy.retryWindowMs) {
    return { disable: "retryWindowExceeded" };
  }
  return { nextAttemptAtMs };
}

function checkNextAttemptInput(input: NextAttemptInput): void {
  if ((input.outcome as HookDeliveryOutcome) === "ok") {
    throw new RangeError(
      "Cannot schedule a retry as the attempt succeeded: outcome is 'ok'",
    );
  }
  if (!Number.isSafeInteger(input.attempt) || input.attempt < 1) {
    throw new RangeError(
      `Cannot schedule a retry as 'attempt' must be a positive integer: current value is ${input.attempt}`,
    );
  }
  if (
    !Number.isFinite(input.firstFailureAtMs) || !Number.isFinite(input.nowMs) ||
    input.firstFailureAtMs > input.nowMs
  ) {
    throw new RangeError(
      `Cannot schedule a retry as 'firstFailureAtMs' must not be after 'nowMs': current values are ${input.firstFailureAtMs} and ${input.nowMs}`,
    );
  }
  const retryAfterMs = input.retryAfterMs;
  if (retryAfterMs !== undefined && !(retryAfterMs >= 0)) {
    throw new RangeError(
      `Cannot schedule a retry as 'retryAfterMs' must be non-negative: current value is ${retryAfterMs}`,
    );
  }
  if (!(input.random >= 0 && input.random < 1)) {
    throw new RangeError(
      `Cannot schedule a retry as 'random' must be in [0, 1): current value is ${input.random}`,
    );
  }
}
