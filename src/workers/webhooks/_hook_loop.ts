/**
 * One claimed hook's delivery loop, private to the webhook worker
 * ({@link ./worker.ts}): ONE serial loop per hook, so its deliveries are
 * ordered and at most one is in flight.
 *
 * - It pages the history strictly after the hook's cursor (≤ 100 events a
 *   page) with the hook's selector and types, plus `hook.test` and
 *   `hook.gap` when the types do not cover them (those go to their own
 *   hook only: an event whose `data.hook` is another hook is dropped).
 * - Per event and attempt ({@link ./_hook_steps.ts}): `begin`, send, `finish`
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
import type {
  EventsListRequest,
  WireEvent,
} from "../../protocol/http_api_events.ts";
import type { WireClaim } from "../../protocol/http_api_hooks.ts";
import { sleepFor } from "./_sleep.ts";
import {
  type HookLoopContext,
  HookSteps,
  type LoopEnd,
  LoopStop,
  ReplayGivenUp,
  type Retrying,
} from "./_hook_steps.ts";

export type {
  DeliveryReport,
  HookLoopContext,
  LoopEnd,
} from "./_hook_steps.ts";

/** Events of one history page at most. */
export const PAGE_EVENTS_MAX = 100;
/**
 * Longest wait of a caught-up hook for the head to move, ms: it then looks
 * at its claim's replay again.
 */
export const IDLE_WAIT_MS = 1_000;

/** Delivery records read at a loop's start to find an attempt left `unknown`. */
const UNKNOWN_LOOKBACK = 10;

/** The events that go to one hook only. */
const OWN_EVENT_TYPES = ["hook.test", "hook.gap"] as const;

/** Where a history read continues. */
type Position = { readonly after: string } | { readonly fromRevision: number };

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
  readonly #steps: HookSteps;
  readonly #types: string[];
  #retrying: Retrying | null;
  /**
   * The newest main attempt in the log when it ended `unknown` (a worker
   * gone mid-attempt): the next attempt of that event follows its number,
   * so no (event, attempt) is logged twice.
   */
  #unknown: { readonly event: string; readonly attempt: number } | null = null;
  /**
   * The replay (its `seq`) this loop finished: a claim answered before the
   * server applied its `replay-done` may still show it; a new replay has a
   * higher `seq`.
   */
  #replayDoneSeq: number | null = null;

  constructor(claim: WireClaim, context: HookLoopContext, signal: AbortSignal) {
    this.#claim = claim;
    this.#context = context;
    this.#signal = signal;
    this.#steps = new HookSteps(context, signal);
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
   */
  update(claim: WireClaim): void {
    if (claim.hook !== this.#claim.hook || claim.token !== this.#claim.token) {
      throw new RangeError(
        `Cannot update hook loop '${this.#claim.hook}' with another claim: '${claim.hook}' token ${claim.token}`,
      );
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
    const page = await this.#steps.step(() =>
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
    const page = await this.#steps.step(() =>
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
      const again = await this.#steps.attempt(
        this.#claim,
        event,
        attempt,
        false,
        retrying,
      );
      this.#retrying = again;
      if (again === null) return;
    }
  }

  /**
   * One page of the claim's replay, if one is pending. True when it did
   * some work (the main cursor is looked at again before the next page).
   */
  async #replayStep(): Promise<boolean> {
    const replay = this.#claim.replay;
    if (replay === null || replay.seq === this.#replayDoneSeq) return false;
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
      await this.#steps.step(() =>
        this.#context.calls.replayDone({
          hook: this.#claim.hook,
          token: this.#claim.token,
          // Names this replay: one asked for meanwhile is kept.
          seq: replay.seq,
        })
      );
      this.#replayDoneSeq = replay.seq;
      this.#context.notice(`replay to revision ${replay.toRevision} done`);
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
      retrying = await this.#steps.attempt(
        this.#claim,
        event,
        attempt,
        true,
        retrying,
      );
      if (retrying === null) return;
    }
  }
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
