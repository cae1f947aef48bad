/**
 * The pub/sub service's leader task: while this node leads, after each
 * applied batch (and at start) it computes when something next falls due,
 * `min(TopicReads.nextDueMs(), GroupReads.nextDueMs())` (a delayed message,
 * an age trim, a purge, a delivery deadline, the end of a pause), and
 * proposes `tick {nowMs}` with the leader's wall clock once that time has
 * come; again at once while a tick answers `more`. Never two ticks in
 * flight; a timer waits for a due time in the future; a failed proposal is
 * retried after `retryMs`.
 *
 * The age-trim due time reads every partition of every topic with age
 * retention, so it is cached: recomputed after each of this leader's
 * ticks and at least every `ageRecheckMs` (a publish to an empty
 * partition makes it earlier only by at most that).
 *
 * Apply sees only the time in the command, so every replica trims,
 * releases and expires the same.
 *
 * @module
 */
import type { Scheduled } from "../../base/clock.ts";
import type { LeaderTask, LeaderTaskContext } from "../../state/leader_task.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { PubsubCommand, PubsubResult } from "./commands.ts";
import { GroupReads } from "./group_reads.ts";
import { TopicReads } from "./topic_reads.ts";

/** Options of {@linkcode PubsubLeader}. */
export interface PubsubLeaderOptions {
  /** The local replica's applied state. */
  readonly store: StateStore;
  /** Pause before proposing again after a failed tick, ms. Default 1,000. */
  readonly retryMs?: number;
  /** Longest use of a cached age-trim due time, ms. Default 1,000. */
  readonly ageRecheckMs?: number;
  /** When topics next have releases or purges (default: {@linkcode TopicReads} over `store`). */
  readonly topicsDueMs?: () => number | null;
  /** When topics next have age trims (default: {@linkcode TopicReads} over `store`). */
  readonly ageDueMs?: () => number | null;
  /** When groups next fall due (default: {@linkcode GroupReads} over `store`). */
  readonly groupsDueMs?: () => number | null;
}

type Context = LeaderTaskContext<PubsubCommand, PubsubResult>;

/** The leader task of the pub/sub service. */
export class PubsubLeader implements LeaderTask<PubsubCommand, PubsubResult> {
  /** The task's name. */
  readonly name = "pubsub";
  readonly #retryMs: number;
  readonly #ageRecheckMs: number;
  readonly #topicsDueMs: () => number | null;
  readonly #ageDueMs: () => number | null;
  readonly #groupsDueMs: () => number | null;
  /** The cached age-trim due time and the monotonic time it was read (null: stale). */
  #age: { dueMs: number | null; readAtMs: number } | null = null;
  #context: Context | null = null;
  #inFlight = false;
  #timer: Scheduled | null = null;
  /** After a failed tick: no proposal before this monotonic time. */
  #backoffUntilMs = 0;
  /** Ticks proposed (for tests and metrics). */
  ticks = 0;

  /** @throws {RangeError} For a non-positive `retryMs` or `ageRecheckMs`. */
  constructor(options: PubsubLeaderOptions) {
    const retryMs = options.retryMs ?? 1_000;
    const ageRecheckMs = options.ageRecheckMs ?? 1_000;
    for (
      const [name, value] of [
        ["retryMs", retryMs],
        ["ageRecheckMs", ageRecheckMs],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create pub/sub leader as '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.#retryMs = retryMs;
    this.#ageRecheckMs = ageRecheckMs;
    const topics = new TopicReads(options.store);
    const groups = new GroupReads(options.store);
    this.#topicsDueMs = options.topicsDueMs ?? (() => topics.nextReleaseMs());
    this.#ageDueMs = options.ageDueMs ?? (() => topics.nextAgeTrimMs());
    this.#groupsDueMs = options.groupsDueMs ?? (() => groups.nextDueMs());
  }

  /** The earliest due time of topics and groups, or null (`nowMs`: monotonic, for the age cache). */
  nextDueMs(nowMs: number): number | null {
    if (
      this.#age === null || nowMs - this.#age.readAtMs >= this.#ageRecheckMs
    ) {
      this.#age = { dueMs: this.#ageDueMs(), readAtMs: nowMs };
    }
    let due: number | null = null;
    for (
      const at of [this.#topicsDueMs(), this.#age.dueMs, this.#groupsDueMs()]
    ) {
      if (at !== null && (due === null || at < due)) due = at;
    }
    return due;
  }

  start(context: Context): void {
    this.#context = context;
    this.#inFlight = false;
    this.#backoffUntilMs = 0;
    this.#age = null;
    context.onApplied(() => this.#check(context));
    this.#check(context);
  }

  stop(): void {
    this.#context = null;
    this.#cancelTimer();
  }

  #cancelTimer(): void {
    this.#timer?.cancel();
    this.#timer = null;
  }

  #live(context: Context): boolean {
    return this.#context === context && !context.signal.aborted;
  }

  /** Proposes a tick when one is due, else waits for the next due time. */
  #check(context: Context): void {
    if (!this.#live(context) || this.#inFlight) return;
    // Backing off: the retry timer checks again.
    const monotonicMs = context.clock.monotonicMs();
    if (monotonicMs < this.#backoffUntilMs) return;
    const due = this.nextDueMs(monotonicMs);
    this.#cancelTimer();
    const nowMs = context.clock.wallMs();
    if (due === null || due > nowMs) {
      // Wakes by the due time, and at least every ageRecheckMs to refresh
      // the cached age-trim time.
      const waitMs = due === null
        ? this.#ageRecheckMs
        : Math.min(due - nowMs, this.#ageRecheckMs);
      this.#timer = context.scheduler.after(
        waitMs,
        () => this.#check(context),
      );
      return;
    }
    void this.#tick(context, nowMs);
  }

  async #tick(context: Context, nowMs: number): Promise<void> {
    this.#inFlight = true;
    let next: "check" | "now" | "retry" = "check";
    try {
      this.ticks++;
      const result = await context.propose({ type: "tick", nowMs });
      if (!result.ok) next = "retry";
      else if (result.answer.type === "tick" && result.answer.more) {
        next = "now";
      }
    } catch {
      // Busy, or leadership lost (then the check below ends it).
      next = "retry";
    } finally {
      this.#inFlight = false;
      // Our tick may have trimmed what the cache says is due.
      this.#age = null;
    }
    if (!this.#live(context)) return;
    if (next === "now") {
      void this.#tick(context, context.clock.wallMs());
    } else if (next === "retry") {
      this.#cancelTimer();
      this.#backoffUntilMs = context.clock.monotonicMs() + this.#retryMs;
      this.#timer = context.scheduler.after(
        this.#retryMs,
        () => this.#check(context),
      );
    } else {
      this.#check(context);
    }
  }
}
