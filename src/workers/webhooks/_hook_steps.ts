/**
 * One delivery attempt of a hook loop and the protocol steps around it,
 * private to the webhook worker ({@link ./_hook_loop.ts}): `begin`, send
 * ({@linkcode deliver}), `finish` with the outcome and, for a failure, the
 * next attempt's time from {@linkcode nextAttempt} (its jitter drawn here
 * and so recorded), or a `disable`. A step whose answer is lost is sent
 * again (the server applies it once); `claimLost` and `compacted` stop the
 * loop.
 *
 * @module
 */
import type { HookWorkerCalls } from "../../client/hook_worker_calls.ts";
import type { AspenHooks } from "../../client/hooks.ts";
import {
  AspenError,
  ClaimLostError,
  InvalidRequestError,
  TimeoutError,
  UnavailableError,
} from "../../client/errors.ts";
import type { WireEvent } from "../../protocol/http_api_events.ts";
import type {
  HookFinishRequest,
  WireClaim,
} from "../../protocol/http_api_hooks.ts";
import type { HeadWatch } from "./_head_watch.ts";
import { sleepFor } from "./_sleep.ts";
import { deliver, type DeliveryResult } from "./deliver.ts";
import type { TargetGuard } from "./guard.ts";
import { nextAttempt, retryPolicy } from "./schedule.ts";
import { parseSecret, webhookId } from "./sign.ts";

/** Pause before repeating a step whose answer was lost, ms (doubling to the max). */
const STEP_RETRY_MS_MIN = 100;
const STEP_RETRY_MS_MAX = 2_000;
/** Attempts of one `begin` or `finish` whose answers are lost, at most. */
const STEP_TRIES_MAX = 50;

/** One attempt as the worker reports it (for its log line; no secrets). */
export interface DeliveryReport {
  readonly hook: string;
  readonly name: string;
  readonly event: string;
  readonly attempt: number;
  readonly replay: boolean;
  readonly outcome: DeliveryResult["outcome"];
  readonly status: number | null;
  readonly latencyMs: number;
  readonly error: string | null;
  readonly nextAttemptAtMs: number | null;
  readonly disable: HookFinishRequest["disable"] | null;
}

/** Why a loop ended. */
export type LoopEnd =
  /** The claim moved (or the lease ended). */
  | "claimLost"
  /** The worker disabled the hook (gone, retry window, blocked). */
  | "disabled"
  /** The history was compacted past the loop: claim again for the new cursor. */
  | "compacted"
  /** Stopped by the worker. */
  | "aborted";

/** What a loop needs from its worker. */
export interface HookLoopContext {
  /** The protocol's calls over the worker's client. */
  readonly calls: HookWorkerCalls;
  /** The worker's client's hooks (the delivery log). */
  readonly hooks: AspenHooks;
  /** The history's head, shared by the worker's loops. */
  readonly head: HeadWatch;
  readonly guard: TargetGuard;
  readonly clusterId: string;
  readonly report: (report: DeliveryReport) => void;
  /** Loop events for the operator's log (a replay done). */
  readonly notice: (message: string) => void;
  /** A number in [0, 1) for the jitter. */
  readonly random: () => number;
  /** Unix ms. */
  readonly nowMs: () => number;
}

/** An event being retried: its last attempt and when the next is due (Unix ms). */
export interface Retrying {
  readonly event: string;
  readonly attempt: number;
  readonly firstFailureAtMs: number;
  readonly nextAttemptAtMs: number;
}

/** The loop stops: a claim lost, a disable, a compaction, an abort. */
export class LoopStop extends Error {
  constructor(readonly end: LoopEnd) {
    super(`Hook loop stopped: ${end}`);
  }
}

/** Whether a failure may have left the step unapplied or unanswered: send it again. */
function retriable(error: unknown): boolean {
  return error instanceof UnavailableError || error instanceof TimeoutError;
}

/** A hook's attempts and protocol steps, under its loop's signal. */
export class HookSteps {
  readonly #context: HookLoopContext;
  readonly #signal: AbortSignal;

  constructor(context: HookLoopContext, signal: AbortSignal) {
    this.#context = context;
    this.#signal = signal;
  }

  /**
   * One attempt: begin, send, finish. Null when the event is done (ok);
   * else when to try it again.
   */
  async attempt(
    claim: WireClaim,
    event: WireEvent,
    attempt: number,
    replay: boolean,
    retrying: { firstFailureAtMs: number } | null,
  ): Promise<Retrying | null> {
    const step = { hook: claim.hook, token: claim.token, event: event.id };
    await this.step(() =>
      this.#context.calls.begin({
        ...step,
        attempt,
        ...(replay ? { replay: true } : {}),
      })
    );
    const startedAtMs = this.#context.nowMs();
    const result = await this.#send(claim, event, attempt, replay, startedAtMs);
    const nowMs = this.#context.nowMs();
    const firstFailureAtMs = Math.min(
      retrying?.firstFailureAtMs ?? startedAtMs,
      nowMs,
    );
    const next = result.outcome === "ok" ? null : nextAttempt({
      attempt,
      firstFailureAtMs,
      nowMs,
      outcome: result.outcome,
      ...(result.retryAfterMs === undefined
        ? {}
        : { retryAfterMs: result.retryAfterMs }),
      random: this.#context.random(),
      policy: retryPolicy({
        ...(claim.retrySchedule === null
          ? {}
          : { retryScheduleMs: claim.retrySchedule }),
        retryWindowMs: claim.retryWindowMs,
      }),
    });
    const nextAttemptAtMs = next !== null && "nextAttemptAtMs" in next
      ? next.nextAttemptAtMs
      : null;
    const disable = next !== null && "disable" in next ? next.disable : null;
    const finish: HookFinishRequest = {
      ...step,
      attempt,
      ...(replay ? { replay: true } : {}),
      status: result.status ?? null,
      latencyMs: result.latencyMs,
      outcome: result.outcome,
      ...(result.error === undefined ? {} : { error: result.error }),
      ...(nextAttemptAtMs === null ? {} : { nextAttemptAtMs }),
      // A replay past its window gives up the replay, not the hook.
      ...(disable === null || (replay && disable === "retryWindowExceeded")
        ? {}
        : { disable }),
    };
    await this.#finish(finish);
    this.#context.report({
      hook: claim.hook,
      name: claim.name,
      event: event.id,
      attempt,
      replay,
      outcome: result.outcome,
      status: result.status ?? null,
      latencyMs: result.latencyMs,
      error: result.error ?? null,
      nextAttemptAtMs,
      disable: finish.disable ?? null,
    });
    if (finish.disable !== undefined) throw new LoopStop("disabled");
    if (result.outcome === "ok") return null;
    if (disable !== null) throw new ReplayGivenUp();
    return {
      event: event.id,
      attempt,
      firstFailureAtMs,
      nextAttemptAtMs: nextAttemptAtMs!,
    };
  }

  /**
   * Sends one request. A target the library refuses to use (a bad URL,
   * header or secret: the server checks them at create, so this is a bug
   * upstream) is recorded as an `error` and follows the retry policy,
   * rather than leaving an attempt open at every claim.
   */
  async #send(
    claim: WireClaim,
    event: WireEvent,
    attempt: number,
    replay: boolean,
    startedAtMs: number,
  ): Promise<DeliveryResult> {
    try {
      return await deliver({
        url: claim.url,
        headers: claim.headers,
        body: new TextEncoder().encode(JSON.stringify(event)),
        id: webhookId(this.#context.clusterId, event.revision, event.index),
        timestampSec: Math.floor(startedAtMs / 1000),
        secrets: claim.secrets.map(parseSecret),
        attempt,
        ...(replay ? { replayOf: replayId(claim) } : {}),
        timeoutMs: claim.timeoutMs,
        guard: this.#context.guard,
        signal: this.#signal,
      });
    } catch (error) {
      if (this.#signal.aborted) throw new LoopStop("aborted");
      const text = error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error);
      return { latencyMs: 0, outcome: "error", error: text.slice(0, 256) };
    }
  }

  /** Sends `finish` until it is answered; a repeat of an applied one answers as it did. */
  async #finish(finish: HookFinishRequest): Promise<void> {
    let lost = false;
    for (let tries = 1;; tries++) {
      try {
        await this.#context.calls.finish(finish);
        return;
      } catch (error) {
        if (error instanceof ClaimLostError) throw new LoopStop("claimLost");
        // A disable applied by a lost answer leaves no open attempt to
        // match the repeat: the server refuses it as invalid.
        if (lost && error instanceof InvalidRequestError) return;
        if (!retriable(error) || tries >= STEP_TRIES_MAX) throw error;
        lost = true;
        await this.#pause(tries);
      }
    }
  }

  /** Runs a read or `begin` until it is answered; maps claimLost and compacted to a stop. */
  async step<T>(work: () => Promise<T>): Promise<T> {
    for (let tries = 1;; tries++) {
      if (this.#signal.aborted) throw new LoopStop("aborted");
      try {
        return await work();
      } catch (error) {
        if (error instanceof ClaimLostError) throw new LoopStop("claimLost");
        if (error instanceof AspenError && error.code === "compacted") {
          throw new LoopStop("compacted");
        }
        if (!retriable(error) || tries >= STEP_TRIES_MAX) throw error;
        await this.#pause(tries);
      }
    }
  }

  async #pause(tries: number): Promise<void> {
    const ms = Math.min(
      STEP_RETRY_MS_MAX,
      STEP_RETRY_MS_MIN * 2 ** Math.min(tries - 1, 8),
    );
    await sleepFor(ms, this.#signal);
    if (this.#signal.aborted) throw new LoopStop("aborted");
  }
}

/** A failed replay event past its retry window: the replay ends there. */
export class ReplayGivenUp extends Error {
  constructor() {
    super("Replay given up: its retry window passed");
  }
}

/**
 * The `aspen-replay` value: the hook and the replay's last revision (its
 * first moves with the side cursor, so it does not name the replay).
 */
export function replayId(claim: WireClaim): string {
  return `${claim.hook}.${claim.replay?.toRevision ?? 0}`;
}
