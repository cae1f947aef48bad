/**
 * The events part of one seed's run (`--services events`, issue 17):
 *
 * - the reference: after every entry a replica applies, its history
 *   records of that revision and the window's floor, kept per revision by
 *   the first replica to apply it (before any compaction deletes them) and
 *   compared on every other (`events_checker.ts`'s `EventsReference`);
 * - watchers (2–4 per seed): each follows a prefix of the keys the KV
 *   clients write (or every key) with types `kv.*`, from revision 1 or a
 *   random revision, reads frames for a random number of events or a random
 *   time, drops the stream, and resumes on a random running node after its
 *   last event (`{from}` while it has seen none); a node that is down,
 *   paused or does not answer in time is left for another (bounded tries);
 * - the compaction nemesis: every node's `EventsLeader` compacts on its own
 *   (see `events_node.ts`), and now and then a `compact` at a random
 *   revision below the head is proposed on the leader.
 *
 * After healing, every watcher resumes once more on the leader until its
 * stream says `synced` (`catchUp`: the simulator demands it within a
 * budget). Then every watcher's log is checked against the reference
 * (`checkWatcher`). A broken property is the run's violation, with
 * `events` in front.
 *
 * @module
 */
import {
  type EventPosition,
  EVENTS_META,
  type HistoryEvent,
} from "../services/events/api.ts";
import {
  decodeU64,
  historyRange,
  parseHistoryKey,
} from "../services/events/keys.ts";
import { decodeRecord } from "../services/events/records.ts";
import type { KvStateMachine } from "../services/state_machine.ts";
import type { EventQueue } from "./event_queue.ts";
import { checkWatcher, EventsReference } from "./events_checker.ts";
import type { SimEventsPort } from "./events_node.ts";
import {
  type EventsCounts,
  type StreamContext,
  WATCH_SELECTORS,
  Watcher,
} from "./events_watchers.ts";
import type { InvariantChecker } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";

export type { EventsCounts };

/** Records one revision holds at most (one entry's changes are bounded). */
const recordsPerRevisionMax = 10_000;
/** The highest revision a watcher starts from (runs commit 100–300 entries). */
const startRevisionMax = 80;
/** Tries to open a stream in a row before a watcher rests, then tries again. */
const openTriesMax = 20;
/** A watcher's rest after failed tries, ms. */
const restMs = 200;
/** Frames one stream reads at most before the watcher drops it. */
const segmentEventsMax = 60;
/** Longest a stream is kept before the watcher drops it, ms. */
const segmentMsMax = 1_200;
/** Steps one watcher's log keeps at most (a longer run stops the watcher). */
const stepsMax = 200_000;
/** How long one catch-up stream may read after healing, ms. */
const catchUpSegmentMs = 2_000;

/** JSON of bigints, for violations. */
function bigints(_: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}` : value;
}

/** The reference, watchers and compaction nemesis of the events service in one run. */
export class EventsProperties {
  readonly #queue: EventQueue;
  readonly #ports: () => readonly { id: string; port: SimEventsPort | null }[];
  readonly #leader: () => SimEventsPort | null;
  readonly #issueUntilMs: number;
  readonly #random: SeededRandom;
  readonly #nemesis: SeededRandom;
  readonly #checker: InvariantChecker;
  readonly #ran: () => void;
  readonly #trace: ((line: string) => void) | null;
  readonly #reference = new EventsReference();
  readonly #watchers: Watcher[] = [];
  #stopped = false;
  readonly #context: StreamContext;
  readonly counts: EventsCounts = {
    opened: 0,
    events: 0,
    resumedAfter: 0,
    compacted: 0,
    openFailed: 0,
    ended: 0,
    compactions: 0,
    floorMax: 0,
  };

  /**
   * @param ports Every node's id and events port (null while down).
   * @param leader The port of a node that leads now, or null.
   * @param ran Tells the simulation promise jobs were started (a timer fired).
   */
  constructor(
    queue: EventQueue,
    ports: () => readonly { id: string; port: SimEventsPort | null }[],
    leader: () => SimEventsPort | null,
    issueUntilMs: number,
    makeRandom: (label: string) => SeededRandom,
    checker: InvariantChecker,
    ran: () => void,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#ports = ports;
    this.#leader = leader;
    this.#issueUntilMs = issueUntilMs;
    this.#random = makeRandom("events:watchers");
    this.#nemesis = makeRandom("events:nemesis");
    this.#checker = checker;
    this.#ran = ran;
    this.#trace = trace;
    this.#context = { queue, counts: this.counts, ran, trace };
  }

  /** The reference history (the hooks' properties read it too). */
  get reference(): EventsReference {
    return this.#reference;
  }

  /** Starts the watchers and the compaction nemesis. */
  start(): void {
    const random = this.#random;
    const count = random.between(2, 4);
    for (let i = 0; i < count; i++) {
      const entry = random.pick(WATCH_SELECTORS);
      const start: EventPosition = random.chance(0.5)
        ? { from: 1n }
        : { from: BigInt(random.between(1, startRevisionMax)) };
      const watcher = new Watcher(`w${i + 1}`, entry, start);
      this.#watchers.push(watcher);
      this.#trace?.(
        `events watcher ${watcher.name} ${entry.describe} from ${
          "from" in start ? start.from : ""
        }`,
      );
      // Some start late, from a revision compaction may have passed.
      const delayMs = random.between(0, Math.floor(this.#issueUntilMs / 3));
      watcher.running = this.#run(watcher, delayMs);
    }
    this.#scheduleCompaction();
  }

  /**
   * Replica `nodeId` applied an entry (`reset` false): records its history
   * records and floor in the reference. A replaced state (`reset`) records
   * nothing: its revisions were applied elsewhere first.
   */
  applied(nodeId: string, kv: KvStateMachine, reset: boolean): void {
    if (reset) return;
    const store = kv.store;
    const revision = BigInt(store.appliedIndex());
    const rows = store.scan({
      ...historyRange(revision, revision + 1n),
      limit: recordsPerRevisionMax,
    });
    const events: HistoryEvent[] = rows.map((row) => {
      const at = parseHistoryKey(row.key);
      return decodeRecord(at.revision, at.index, row.value);
    });
    if (rows.length >= recordsPerRevisionMax) {
      this.#checker.fail(
        `events reference on '${nodeId}': revision ${revision} holds ${rows.length} records or more, beyond what the simulator reads (${recordsPerRevisionMax})`,
      );
      return;
    }
    const floor = decodeU64(store.meta(EVENTS_META.floor));
    if (Number(floor) > this.counts.floorMax) {
      this.counts.floorMax = Number(floor);
    }
    const problem = this.#reference.record(revision, events, floor);
    if (problem !== null) {
      this.#checker.fail(`events reference on '${nodeId}': ${problem}`);
    }
  }

  /** At the end of the run: stops the watchers and checks every log. */
  finish(): void {
    this.stop();
    for (const watcher of this.#watchers) {
      const problem = checkWatcher(watcher.log(), this.#reference);
      if (problem !== null) {
        this.#checker.fail(`events: ${problem}`);
        return;
      }
    }
  }

  /** Stops every watcher and closes its stream. */
  stop(): void {
    this.#stopped = true;
    for (const watcher of this.#watchers) {
      watcher.current?.abort.abort();
      watcher.current?.watch?.close();
      watcher.current = null;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) =>
      this.#queue.after(ms, () => {
        this.#ran();
        resolve();
      })
    );
  }

  #running(watcher: Watcher): boolean {
    return !this.#stopped && this.#queue.now < this.#issueUntilMs &&
      watcher.steps.length < stepsMax;
  }

  async #run(watcher: Watcher, delayMs: number): Promise<void> {
    await this.#sleep(delayMs);
    let tries = 0;
    while (this.#running(watcher)) {
      const live = this.#ports().filter((entry) => entry.port !== null);
      if (live.length === 0 || tries >= openTriesMax) {
        tries = 0;
        await this.#sleep(restMs);
        continue;
      }
      tries++;
      const { id, port } = this.#random.pick(live);
      const opened = await watcher.segment(this.#context, id, port!, {
        eventsMax: this.#random.between(1, segmentEventsMax),
        budgetMs: this.#random.between(20, segmentMsMax),
        untilSynced: false,
      });
      if (opened) tries = 0;
      else await this.#sleep(this.#random.between(5, 50));
    }
  }

  /**
   * After healing: every watcher resumes once more, on the leader, until
   * its stream says `synced` (everything up to the leader's head sent).
   * Done when {@linkcode caughtUp}.
   */
  catchUp(): void {
    this.#stopped = false;
    for (const watcher of this.#watchers) void this.#finalSegment(watcher);
  }

  /** Every watcher caught up since {@linkcode catchUp}. */
  get caughtUp(): boolean {
    return this.#watchers.every((watcher) => watcher.synced);
  }

  /** Watchers that have not caught up, for the violation. */
  get behind(): string[] {
    return this.#watchers.filter((watcher) => !watcher.synced).map((
      watcher,
    ) => `${watcher.name} at ${JSON.stringify(watcher.position, bigints)}`);
  }

  async #finalSegment(watcher: Watcher): Promise<void> {
    await watcher.running;
    for (let attempt = 0; attempt < openTriesMax; attempt++) {
      if (this.#stopped || watcher.synced) return;
      const leader = this.#leaderPort();
      if (leader === null) {
        await this.#sleep(restMs);
        continue;
      }
      await watcher.segment(this.#context, leader.id, leader.port, {
        eventsMax: Number.MAX_SAFE_INTEGER,
        budgetMs: catchUpSegmentMs,
        untilSynced: true,
      });
    }
  }

  /** The leader's id and port, or null. */
  #leaderPort(): { id: string; port: SimEventsPort } | null {
    const port = this.#leader();
    if (port === null) return null;
    const entry = this.#ports().find((candidate) => candidate.port === port);
    return entry === undefined ? null : { id: entry.id, port };
  }

  /** Now and then, a `compact` at a random revision below the head, on the leader. */
  #scheduleCompaction(): void {
    const random = this.#nemesis;
    const next = () => {
      if (this.#stopped || this.#queue.now >= this.#issueUntilMs) return;
      const leader = this.#leader();
      if (leader !== null) {
        const window = leader.window();
        if (window.head > window.floor + 1n) {
          const span = Number(window.head - window.floor);
          const below = Number(window.floor) + random.between(1, span);
          this.counts.compactions++;
          this.#trace?.(`events nemesis compact below ${below}`);
          leader.compact(below).catch(() => {});
          this.#ran();
        }
      }
      this.#queue.after(random.between(100, 1_500), next);
    };
    this.#queue.after(random.between(100, 1_500), next);
  }
}
