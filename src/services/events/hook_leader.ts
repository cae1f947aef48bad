/**
 * The leader task of queue hooks: after entries apply, each active queue
 * hook whose cursor is behind the head gets `hookAdvance {hook,
 * toRevision}`; apply enqueues the matching events (at most 1,000 per
 * entry) and moves the cursor in that entry, so each event is enqueued
 * exactly once whoever leads. One advance per hook in flight.
 *
 * @module
 */
import type { LeaderTask, LeaderTaskContext } from "../../state/leader_task.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { EventsCommand, EventsResult } from "./commands.ts";
import { HookReads, type HookRecord } from "./hooks.ts";

/** The lowest revision an active hook (or its replay) still needs; null without hooks. */
export function pinnedRevision(
  store: Pick<StateStore, "get" | "scan">,
): bigint | null {
  let pinned: number | null = null;
  for (const hook of new HookReads(store).all()) {
    if (hook.state !== "active") continue;
    for (const cursor of [hook.cursor, hook.replay?.cursor]) {
      if (cursor === undefined) continue;
      if (pinned === null || cursor.r < pinned) pinned = cursor.r;
    }
  }
  return pinned === null ? null : BigInt(pinned);
}

function behind(hook: HookRecord, head: number): boolean {
  return hook.cursor.i < 0 ? hook.cursor.r <= head : hook.cursor.r < head;
}

/** Advances queue hooks while this node leads. */
export class HookAdvancer implements LeaderTask<EventsCommand, EventsResult> {
  readonly name = "events.hooks";
  readonly #store: Pick<StateStore, "get" | "scan" | "appliedIndex">;
  readonly #inFlight = new Set<string>();
  #context: LeaderTaskContext<EventsCommand, EventsResult> | null = null;
  #scheduled = false;
  /** Advances proposed (tests, metrics). */
  advances = 0;

  constructor(store: Pick<StateStore, "get" | "scan" | "appliedIndex">) {
    this.#store = store;
  }

  start(context: LeaderTaskContext<EventsCommand, EventsResult>): void {
    this.#context = context;
    this.#inFlight.clear();
    context.onApplied(() => this.#schedule(context));
    context.scheduler.every(1_000, () => this.#schedule(context));
  }

  stop(): void {
    this.#context = null;
  }

  #schedule(context: LeaderTaskContext<EventsCommand, EventsResult>): void {
    if (this.#scheduled || this.#context !== context) return;
    this.#scheduled = true;
    context.scheduler.after(20, () => {
      this.#scheduled = false;
      this.#pass(context);
    });
  }

  #pass(context: LeaderTaskContext<EventsCommand, EventsResult>): void {
    if (this.#context !== context || context.signal.aborted) return;
    const head = Number(this.#store.appliedIndex());
    for (const hook of new HookReads(this.#store).all()) {
      if (hook.target.kind !== "queue" || hook.state !== "active") continue;
      if (!behind(hook, head) || this.#inFlight.has(hook.id)) continue;
      this.#inFlight.add(hook.id);
      this.advances++;
      context.propose({
        type: "hookAdvance",
        id: hook.id,
        toRevision: head,
        nowMs: context.clock.wallMs(),
      }).catch(() => {
        // Lost leadership or busy: the next pass (on whoever leads) retries.
      }).finally(() => {
        this.#inFlight.delete(hook.id);
        this.#schedule(context);
      });
    }
  }
}
