/**
 * One claimed hook's delivery loop, private to the webhook worker
 * ({@link ./worker.ts}): ONE serial loop per hook, so its deliveries are
 * ordered and at most one is in flight.
 *
 * - It pages the history strictly after the hook's cursor (≤ 100 events a
 *   page) with the hook's selector and types, plus `hook.test` and
 *   `hook.gap` when the types do not cover them (those go to their own
 *   hook only: an event whose `data.hook` is another hook is dropped).
 * - Per event and attempt: `begin`, send ({@linkcode deliver}), `finish`
 *   with the outcome and, for a failure, the next attempt's time from
 *   {@linkcode nextAttempt} (its jitter drawn here and so recorded), or a
 *   `disable` (`gone`, `retryWindowExceeded`, `targetBlocked`). A retried
 *   event's attempt number continues the claim's `retrying`, and waits
 *   until its `nextAttemptAtMs`.
 * - A `begin` or `finish` whose answer is lost is sent again (the server
 *   applies it once); `claimLost` ends the loop.
 * - An attempt left `unknown` by a worker that died (the newest record of
 *   the log when the loop starts) is followed by the next attempt number,
 *   so no `(event, attempt)` is logged twice.
 * - Caught up, it waits for the history's head to move (one shared poll
 *   per worker, {@link ./_head_watch.ts}), at most a second.
 * - Once caught up, a replay (the claim's side cursor) re-delivers its
 *   events with `aspen-replay`, then `replay-done` drops it.
 *
 * @module
 */
import type { HookWorkerCalls } from "../../client/hook_worker_calls.ts";
import type { AspenHooks } from "../../client/hooks.ts";
import type { HeadWatch } from "./_head_watch.ts";
import {
  AspenError,
  ClaimLostError,
  InvalidRequestError,
  TimeoutError,
  UnavailableError,
} from "../../client/errors.ts";
import { sleepFor } from "./_sleep.ts";
import type {
  EventsListRequest,
  WireEvent,
} from "../../protocol/http_api_events.ts";
import type {
  HookFinishRequest,
  WireClaim,
} from "../../protocol/http_api_hooks.ts";
import { deliver, type DeliveryResult } from "./deliver.ts";
import type { TargetGuard } from "./guard.ts";
import { nextAttempt, retryPolicy } from "./schedule.ts";
import { parseSecret, webhookId } from "./sign.ts";

/** Events of one history page at most. */
export const PAGE_EVENTS_MAX = 100;
/**
 * Longest wait of a caught-up hook for the head to move, ms: it then looks
 * at its claim's replay again.
 */
export const IDLE_WAIT_MS = 1_000;
/** Pause before repeating a step whose answer was lost, ms (doubling to the max). */
const STEP_RETRY_MS_MIN = 100;
const STEP_RETRY_MS_MAX = 2_000;
/** Attempts of one `begin` or `finish` whose answers are lost, at most. */
const STEP_TRIES_MAX = 50;

/** Delivery records read at a loop's start to find an attempt left `unknown`. */
const UNKNOWN_LOOKBACK = 10;

/** The events that go to one hook only. */
const OWN_EVENT_TYPES = ["hook.test", "hook.gap"] as const;

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
  /** A number in [0, 1) for the jitter. */
  readonly random: () => number;
  /** Unix ms. */
  readonly nowMs: () => number;
}

/** An event being retried: its last attempt and when the next is due (Unix ms). */
interface Retrying {
  readonly event: string;
  readonly attempt: number;
  readonly firstFailureAtMs: number;
  readonly nextAttemptAtMs: number;
}

/** Where a history read continues. */
type Position = { readonly after: string } | { readonly fromRevision: number };

/** The loop stops: a claim lost, a disable, a compaction, an abort. */
class LoopStop extends Error {
  constructor(readonly end: LoopEnd) {
    super(`Hook loop stopped: ${end}`);
  }
}

/** Whether a failure may have left the step unapplied or unanswered: send it again. */
function retriable(error: unknown): boolean {
  return error instanceof UnavailableError || error instanceof TimeoutError;
}

/** The hook's types with `hook.test` and `hook.gap` added when not covered. */
export function typesWithOwnEvents(types: readonly string[]): string[] {
  const covers = (pattern: string, type: string) =>
    pattern === type || pattern === "*" ||
    (pattern.endsWith(".*") && type.startsWith(pattern.slice(0, -1)));
  const out = [...types];
  for (const type of OWN_EVENT_TYPES) {
    if (!out.some((pattern) => covers(pattern, type))) out.push(type);
  }
  return out;
}

/** Whether `event` goes to hook `hookId` (`hook.test`/`hook.gap` to their own hook only). */
export function eventForHook(event: WireEvent, hookId: string): boolean {
  if (event.type === "hook.test" || event.type === "hook.gap") {
    return event.data?.hook === hookId;
  }
  return true;
}

/** One claimed hook's serial delivery loop. */
export class HookLoop {
  /** The latest claim (the worker refreshes secrets, URL and replay). */
  #claim: WireClaim;
  readonly #context: HookLoopContext;
  readonly #signal: AbortSignal;
  readonly #types: string[];
  #retrying: Retrying | null;
  /**
   * The newest main attempt in the log when it ended `unknown` (a worker
   * gone mid-attempt): the next attempt of that event follows its number,
   * so no (event, attempt) is logged twice.
   */
  #unknown: { readonly event: string; readonly attempt: number } | null = null;
  /**
   * When this loop's `replay-done` was acknowledged (monotonic ms): a claim
   * asked for before then may still show that replay; one asked for after
   * shows a new one.
   */
  #replayDoneAtMs: number | null = null;

  constructor(claim: WireClaim, context: HookLoopContext, signal: AbortSignal) {
    this.#claim = claim;
    this.#context = context;
    this.#signal = signal;
    this.#types = typesWithOwnEvents(claim.types);
    this.#retrying = claim.retrying === null ? null : { ...claim.retrying };
  }

  /** The claim's fencing token. */
  get token(): number {
    return this.#claim.token;
  }

  /**
   * A newer answer of claim for this hook (same token): secrets, target,
   * replay.
   *
   * @param claim The hook's claim.
   * @param sentAtMs When that claim was asked for (`performance.now()`).
   */
  update(claim: WireClaim, sentAtMs: number): void {
    if (claim.hook !== this.#claim.hook || claim.token !== this.#claim.token) {
      throw new RangeError(
        `Cannot update hook loop '${this.#claim.hook}' with another claim: '${claim.hook}' token ${claim.token}`,
      );
    }
    if (this.#replayDoneAtMs !== null && sentAtMs > this.#replayDoneAtMs) {
      // Asked for after the replay was dropped: what it shows is current.
      this.#replayDoneAtMs = null;
    }
    this.#claim = claim;
  }

  /** Runs until the claim is lost, the hook disabled, or the signal aborts. */
  async run(): Promise<LoopEnd> {
    try {
      await this.#main();
      return "aborted";
    } catch (error) {
      if (error instanceof LoopStop) return error.end;
      if (this.#signal.aborted) return "aborted";
      throw error;
    }
  }

  async #main(): Promise<void> {
    this.#unknown = await this.#lastUnknown();
    let position: Position = this.#claim.cursor === null
      ? { fromRevision: this.#claim.fromRevision }
      : { after: this.#claim.cursor };
    while (!this.#signal.aborted) {
      const page = await this.#page(position);
      for (const event of page.events) {
        if (!eventForHook(event, this.#claim.hook)) continue;
        await this.#deliverMain(event);
      }
      position = page.next;
      if (page.events.length > 0 || page.more) continue;
      const replayed = await this.#replayStep();
      if (!replayed) {
        await this.#context.head.wait(page.head, IDLE_WAIT_MS, this.#signal);
      }
    }
    throw new LoopStop("aborted");
  }

  /** The newest main attempt of the log, when its outcome is `unknown`. */
  async #lastUnknown(): Promise<
    { readonly event: string; readonly attempt: number } | null
  > {
    const page = await this.#step(() =>
      this.#context.hooks.deliveries(this.#claim.hook, {
        limit: UNKNOWN_LOOKBACK,
      })
    );
    const newest = page.deliveries.find((d) => !d.replay);
    return newest?.outcome === "unknown"
      ? { event: newest.eventId, attempt: newest.attempt }
      : null;
  }

  /** One page after `position`, and where the next one starts. */
  async #page(
    position: Position,
    toRevision?: number,
  ): Promise<
    {
      events: readonly WireEvent[];
      next: Position;
      more: boolean;
      head: number;
    }
  > {
    const request: EventsListRequest = {
      selector: this.#claim.selector,
      types: this.#types,
      limit: PAGE_EVENTS_MAX,
      ...position,
      ...(toRevision === undefined ? {} : { toRevision }),
    };
    const page = await this.#step(() =>
      this.#context.calls.listEvents(request)
    );
    const last = page.events[page.events.length - 1];
    // Never behind where this read started, nor before its last event (a
    // node behind answers an empty page at the revision asked for).
    const floor = last !== undefined
      ? last.revision + 1
      : revisionAfter(position);
    const next: Position = page.cursor !== undefined
      ? { after: page.cursor }
      : page.nextRevision >= floor
      ? { fromRevision: page.nextRevision }
      : last !== undefined
      ? { after: last.id }
      : position;
    return {
      events: page.events,
      next,
      more: page.cursor !== undefined,
      head: page.headRevision,
    };
  }

  /** Delivers one event on the main cursor until it is done (ok) or the loop stops. */
  async #deliverMain(event: WireEvent): Promise<void> {
    for (;;) {
      const retrying = this.#retrying?.event === event.id
        ? this.#retrying
        : null;
      if (retrying !== null) {
        await sleepFor(
          retrying.nextAttemptAtMs - this.#context.nowMs(),
          this.#signal,
        );
        if (this.#signal.aborted) throw new LoopStop("aborted");
      }
      const unknown = this.#unknown?.event === event.id
        ? this.#unknown.attempt
        : 0;
      const attempt = Math.max(retrying?.attempt ?? 0, unknown) + 1;
      this.#unknown = null;
      const again = await this.#attempt(event, attempt, false, retrying);
      this.#retrying = again;
      if (again === null) return;
    }
  }

  /**
   * One attempt: begin, send, finish. Null when the event is done (ok);
   * else when to try it again.
   */
  async #attempt(
    event: WireEvent,
    attempt: number,
    replay: boolean,
    retrying: { firstFailureAtMs: number } | null,
  ): Promise<Retrying | null> {
    const claim = this.#claim;
    const step = { hook: claim.hook, token: claim.token, event: event.id };
    await this.#step(() =>
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
  async #step<T>(work: () => Promise<T>): Promise<T> {
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

  /**
   * One page of the claim's replay, if one is pending. True when it did
   * some work (the main cursor is looked at again before the next page).
   */
  async #replayStep(): Promise<boolean> {
    const replay = this.#claim.replay;
    if (replay === null || this.#replayDoneAtMs !== null) return false;
    const position: Position = replay.cursor === null
      ? { fromRevision: replay.fromRevision }
      : { after: replay.cursor };
    const page = await this.#page(position, replay.toRevision);
    let done = !page.more;
    try {
      for (const event of page.events) {
        if (!eventForHook(event, this.#claim.hook)) continue;
        await this.#replayEvent(event);
      }
    } catch (error) {
      if (!(error instanceof ReplayGivenUp)) throw error;
      done = true;
    }
    if (done) {
      await this.#step(() =>
        this.#context.calls.replayDone({
          hook: this.#claim.hook,
          token: this.#claim.token,
        })
      );
      this.#replayDoneAtMs = performance.now();
      this.#claim = { ...this.#claim, replay: null };
    } else {
      // The next page starts after this one (the claim's replay cursor is
      // only refreshed by the next claim).
      this.#claim = {
        ...this.#claim,
        replay: { ...replay, cursor: afterOf(page.next, replay.cursor) },
      };
    }
    return true;
  }

  async #replayEvent(event: WireEvent): Promise<void> {
    let retrying: Retrying | null = null;
    for (;;) {
      if (retrying !== null) {
        await sleepFor(
          retrying.nextAttemptAtMs - this.#context.nowMs(),
          this.#signal,
        );
        if (this.#signal.aborted) throw new LoopStop("aborted");
      }
      const attempt = retrying === null ? 1 : retrying.attempt + 1;
      retrying = await this.#attempt(event, attempt, true, retrying);
      if (retrying === null) return;
    }
  }
}

/** A failed replay event past its retry window: the replay ends there. */
class ReplayGivenUp extends Error {
  constructor() {
    super("Replay given up: its retry window passed");
  }
}

/**
 * The `aspen-replay` value: the hook and the replay's last revision (its
 * first moves with the side cursor, so it does not name the replay).
 */
function replayId(claim: WireClaim): string {
  return `${claim.hook}.${claim.replay?.toRevision ?? 0}`;
}

/** The first revision not yet fully read at `position`. */
function revisionAfter(position: Position): number {
  if ("fromRevision" in position) return position.fromRevision;
  // "R.I": revision R may hold more events after I; a page says so with a cursor.
  return Number(position.after.split(".")[0]) + 1;
}

function afterOf(position: Position, previous: string | null): string | null {
  return "after" in position ? position.after : previous;
}
