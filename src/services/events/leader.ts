/**
 * The events service's leader task:
 *
 * - once per leadership it proposes `leader {term, leader}` (apply records
 *   `leader.changed` only for a new term), retrying until it applied;
 * - every `intervalMs` it proposes `compact {belowRevision}`: the window
 *   keeps `keepMs` of history (by the revisions this leader saw applied at
 *   each pass; a new leader keeps everything for `keepMs` first) and at
 *   least `keepRevisions` revisions, never below the lowest pinned cursor
 *   (active hooks), all within `bytesMax`, which wins. One pass deletes at
 *   most {@linkcode COMPACT_ROWS_MAX} records, so one entry stays small.
 *
 * Times are this leader's; apply sees only the revision in the command.
 *
 * @module
 */
import type { LeaderTask, LeaderTaskContext } from "../../state/leader_task.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { EventsCommand, EventsResult } from "./commands.ts";
import { historyRange, parseHistoryKey } from "./keys.ts";
import { EventsReads } from "./reads.ts";
import { recordBytes } from "./apply.ts";

/** Records one compaction deletes at most. */
export const COMPACT_ROWS_MAX = 20_000;

/** Options of {@linkcode EventsLeader}. */
export interface EventsLeaderOptions {
  readonly store: Pick<StateStore, "scan" | "meta" | "appliedIndex">;
  /** This node's id (the `leader` of its announcement). */
  readonly nodeId: string;
  /** The current Raft term. */
  readonly term: () => number;
  /** Pause between compaction passes, ms. Default 10,000. */
  readonly intervalMs?: number;
  /** History kept by time, ms. Default 600,000. */
  readonly keepMs?: number;
  /** Revisions kept at least. Default 10,000. */
  readonly keepRevisions?: number;
  /** Bytes kept at most (wins). Default 128 MiB. */
  readonly bytesMax?: number;
  /** The lowest revision an active cursor still needs (null: none). */
  readonly pinned?: () => bigint | null;
  /** Called when the byte cap compacts past a pinned cursor. */
  readonly onOvertaken?: (from: bigint, to: bigint) => void;
}

/** The leader task of the events service. */
export class EventsLeader implements LeaderTask<EventsCommand, EventsResult> {
  readonly name = "events";
  readonly #options: EventsLeaderOptions;
  readonly #reads: EventsReads;
  readonly #intervalMs: number;
  readonly #keepMs: number;
  readonly #keepRevisions: bigint;
  readonly #bytesMax: number;
  #context: LeaderTaskContext<EventsCommand, EventsResult> | null = null;
  /** (wall ms, head) at each pass of this leadership, oldest first. */
  #samples: { atMs: number; head: bigint }[] = [];
  #busy = false;
  /** Compactions proposed (for tests and metrics). */
  compactions = 0;

  constructor(options: EventsLeaderOptions) {
    this.#options = options;
    this.#reads = new EventsReads(options.store);
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#keepMs = options.keepMs ?? 600_000;
    this.#keepRevisions = BigInt(options.keepRevisions ?? 10_000);
    this.#bytesMax = options.bytesMax ?? 128 * 1024 * 1024;
  }

  start(context: LeaderTaskContext<EventsCommand, EventsResult>): void {
    this.#context = context;
    this.#samples = [];
    void this.#announce(context);
    context.scheduler.every(this.#intervalMs, () => void this.#pass(context));
  }

  stop(): void {
    this.#context = null;
  }

  async #announce(
    context: LeaderTaskContext<EventsCommand, EventsResult>,
  ): Promise<void> {
    const term = this.#options.term();
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.#context !== context || context.signal.aborted) return;
      try {
        const result = await context.propose({
          type: "leader",
          term,
          leader: this.#options.nodeId,
        });
        if (result.ok) return;
      } catch {
        // Busy or not yet ready: try again shortly (stopped: the check above ends it).
      }
      await new Promise<void>((resolve) => {
        const timer = context.scheduler.after(
          Math.min(1_000, 50 * (attempt + 1)),
          () => resolve(),
        );
        context.signal.addEventListener("abort", () => {
          timer.cancel();
          resolve();
        }, { once: true });
      });
    }
  }

  /** The revision below which the window may go now (null: nothing to do). */
  target(nowMs: number): bigint | null {
    const window = this.#reads.window();
    const head = window.head;
    this.#samples.push({ atMs: nowMs, head });
    // Keep samples for the retention period (and one older).
    while (
      this.#samples.length > 2 &&
      this.#samples[1]!.atMs <= nowMs - this.#keepMs
    ) this.#samples.shift();
    const old = this.#samples[0]!;
    let below = old.atMs <= nowMs - this.#keepMs ? old.head + 1n : window.floor;
    const byCount = head + 1n - this.#keepRevisions;
    if (byCount < below) below = byCount;
    const pinned = this.#options.pinned?.() ?? null;
    if (pinned !== null && pinned < below) below = pinned;
    if (window.bytes > this.#bytesMax) {
      const capped = this.#capBelow(window.floor, window.bytes);
      if (capped > below) {
        if (pinned !== null && pinned < capped) {
          this.#options.onOvertaken?.(pinned, capped - 1n);
        }
        below = capped;
      }
    }
    if (below <= window.floor) return null;
    // One pass deletes at most COMPACT_ROWS_MAX records.
    const rows = this.#options.store.scan({
      ...historyRange(window.floor, below),
      limit: COMPACT_ROWS_MAX + 1,
    });
    if (rows.length > COMPACT_ROWS_MAX) {
      below = parseHistoryKey(rows[COMPACT_ROWS_MAX]!.key).revision;
      if (below <= window.floor) return null;
    }
    return below;
  }

  /** The lowest revision whose deletion of everything below brings the window under the cap. */
  #capBelow(floor: bigint, bytes: number): bigint {
    let excess = bytes - this.#bytesMax;
    let { start } = historyRange(floor, floor);
    const { end } = historyRange(0n, 0xffff_ffff_ffff_ffffn);
    for (let step = 0; step < 1_000; step++) {
      const rows = this.#options.store.scan({ start, end, limit: 1000 });
      if (rows.length === 0) break;
      for (const row of rows) {
        excess -= recordBytes(row.key, row.value);
        if (excess <= 0) return parseHistoryKey(row.key).revision + 1n;
      }
      const last = rows[rows.length - 1]!.key;
      start = new Uint8Array(last.byteLength + 1);
      start.set(last);
    }
    return BigInt(this.#options.store.appliedIndex()) + 1n;
  }

  async #pass(
    context: LeaderTaskContext<EventsCommand, EventsResult>,
  ): Promise<void> {
    if (this.#busy || this.#context !== context) return;
    this.#busy = true;
    try {
      const below = this.target(context.clock.wallMs());
      if (below === null) return;
      this.compactions++;
      await context.propose({ type: "compact", belowRevision: Number(below) });
    } catch {
      // Lost leadership or busy: the next pass (on whoever leads) retries.
    } finally {
      this.#busy = false;
    }
  }
}
