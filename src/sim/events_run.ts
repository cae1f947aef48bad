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
import { encodeKey } from "../model/key_codec.ts";
import {
  type EventPosition,
  EVENTS_META,
  type HistoryEvent,
  type KeySelector,
  type TypeMatcher,
  typeMatcher,
  type WatchRequest,
} from "../services/events/api.ts";
import { decodeRecord } from "../services/events/records.ts";
import { historyRange, parseHistoryKey } from "../services/events/keys.ts";
import { decodeU64 } from "../services/events/keys.ts";
import type { KvStateMachine } from "../services/state_machine.ts";
import type { EventQueue } from "./event_queue.ts";
import {
  checkWatcher,
  EventsReference,
  type WatcherLog,
  type WatchStep,
} from "./events_checker.ts";
import {
  type SimEventsPort,
  type SimWatch,
  WATCH_PROGRESS_MS,
  type WatchRead,
} from "./events_node.ts";
import type { InvariantChecker } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";

/** Records one revision holds at most (one entry's changes are bounded). */
const recordsPerRevisionMax = 10_000;
/** How long opening a watch may take before the watcher tries another node, ms. */
const openTimeoutMs = 300;
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

/** Counts of the events workload, for reports and tests. */
export interface EventsCounts {
  /** Streams opened. */
  opened: number;
  /** Events delivered to watchers. */
  events: number;
  /** Streams resumed after an event (`position: {after}`). */
  resumedAfter: number;
  /** `compacted` answers (at open or as a frame). */
  compacted: number;
  /** Opens that failed (node down, paused past the timeout, hold full). */
  openFailed: number;
  /** Streams that ended because their node died. */
  ended: number;
  /** Extra compactions the nemesis proposed. */
  compactions: number;
  /** The highest window floor any replica reached. */
  floorMax: number;
}

/** The keys the KV clients write, as the prefixes a watcher may follow. */
const selectors: readonly { describe: string; selector: KeySelector }[] = [
  { describe: "all", selector: { kind: "all" } },
  {
    describe: "prefix ['sim']",
    selector: { kind: "prefix", prefix: encodeKey(["sim"]) },
  },
  {
    describe: "prefix ['sum']",
    selector: { kind: "prefix", prefix: encodeKey(["sum"]) },
  },
  {
    describe: "prefix ['log']",
    selector: { kind: "prefix", prefix: encodeKey(["log"]) },
  },
  {
    describe: "range ['sim', 'k0'] to ['sim', 'k1']",
    selector: {
      kind: "range",
      start: encodeKey(["sim", "k0"]),
      end: encodeKey(["sim", "k1"]),
    },
  },
];

/** A rejection when `signal` aborts; `promise` itself otherwise. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error("aborted"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() =>
      signal.removeEventListener("abort", onAbort)
    );
  });
}

/** One simulated watcher client. */
class Watcher {
  readonly name: string;
  readonly describe: string;
  readonly selector: KeySelector;
  readonly types: TypeMatcher = typeMatcher(["kv.*"]);
  readonly steps: WatchStep[] = [];
  /** Where the next stream starts. */
  position: EventPosition;
  /** The stream open now, to close at the end. */
  current: { watch: SimWatch | null; abort: AbortController } | null = null;
  /** After healing, a stream of this watcher said `synced`. */
  synced = false;
  /** The faulty phase's loop (the catch-up waits for it). */
  running: Promise<void> = Promise.resolve();

  constructor(
    name: string,
    entry: { describe: string; selector: KeySelector },
    position: EventPosition,
  ) {
    this.name = name;
    this.describe = entry.describe;
    this.selector = entry.selector;
    this.position = position;
  }

  log(): WatcherLog {
    return {
      name: this.name,
      selector: this.selector,
      types: this.types,
      describe: this.describe,
      steps: this.steps,
    };
  }
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
  /** In the healed phase's catch-up (`catchUp`). */
  #catchingUp = false;
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
  }

  /** Starts the watchers and the compaction nemesis. */
  start(): void {
    const random = this.#random;
    const count = random.between(2, 4);
    for (let i = 0; i < count; i++) {
      const entry = random.pick(selectors);
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
      const opened = await this.#segment(watcher, id, port!, {
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
    this.#catchingUp = true;
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
      await this.#segment(watcher, leader.id, leader.port, {
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

  /**
   * One stream: opens it on `port` at the watcher's position and reads it
   * until its plan's budget (or, with `untilSynced`, its `synced` frame),
   * a `compacted` answer or its end.
   *
   * @returns False when it could not be opened.
   */
  async #segment(
    watcher: Watcher,
    node: string,
    port: SimEventsPort,
    plan: { eventsMax: number; budgetMs: number; untilSynced: boolean },
  ): Promise<boolean> {
    const abort = new AbortController();
    watcher.current = { watch: null, abort };
    const position = watcher.position;
    const request: WatchRequest = {
      selector: watcher.selector,
      types: watcher.types,
      position,
      progressMs: WATCH_PROGRESS_MS,
    };
    const opening = port.open(request, abort.signal);
    this.#queue.after(openTimeoutMs, () => {
      if (watcher.current?.abort === abort && watcher.current.watch === null) {
        abort.abort();
        this.#ran();
      }
    });
    let opened;
    try {
      opened = await abortable(opening, abort.signal);
    } catch {
      // Down, restarted, paused past the timeout or a full hold.
      opening.then((late) => {
        if (late.kind === "open") late.watch.close();
      }, () => {});
      this.counts.openFailed++;
      watcher.current = null;
      return false;
    }
    watcher.steps.push({ kind: "open", node, position, atMs: this.#queue.now });
    if (opened.kind === "compacted") {
      watcher.current = null;
      this.#compacted(watcher, node, opened.fromRevision, {
        compactRevision: opened.compactRevision,
        low: opened.applied,
        high: opened.applied,
      });
      return true;
    }
    const watch = opened.watch;
    watcher.current = { watch, abort };
    this.counts.opened++;
    if ("after" in position) this.counts.resumedAfter++;
    this.#queue.after(plan.budgetMs, () => {
      abort.abort();
      this.#ran();
    });
    const reason = await this.#read(watcher, node, watch, abort, plan);
    abort.abort();
    watch.close();
    watcher.current = null;
    if (reason !== null) {
      watcher.steps.push({ kind: "drop", reason, atMs: this.#queue.now });
    }
    return true;
  }

  /** Logs a `compacted` answer; the watcher starts again at the window's floor. */
  #compacted(
    watcher: Watcher,
    node: string,
    fromRevision: bigint,
    at: { compactRevision: bigint; low: bigint; high: bigint },
  ): void {
    this.counts.compacted++;
    watcher.steps.push({
      kind: "compacted",
      node,
      fromRevision,
      compactRevision: at.compactRevision,
      appliedLow: at.low,
      appliedHigh: at.high,
      atMs: this.#queue.now,
    });
    this.#trace?.(
      `events ${watcher.name} compacted on ${node}: from ${fromRevision}, window at ${at.compactRevision}`,
    );
    watcher.position = { from: at.compactRevision };
  }

  /**
   * Reads frames until the plan's events (or its `synced` frame), the
   * abort, or the stream's end.
   *
   * @returns Why the stream was dropped (null after a `compacted` frame).
   */
  async #read(
    watcher: Watcher,
    node: string,
    watch: SimWatch,
    abort: AbortController,
    plan: { eventsMax: number; untilSynced: boolean },
  ): Promise<string | null> {
    let events = 0;
    while (events < plan.eventsMax) {
      let read: WatchRead;
      try {
        read = await abortable(watch.next(), abort.signal);
      } catch {
        return abort.signal.aborted ? "budget" : "node down";
      }
      const frame = read.frame;
      if (frame === null) {
        if (abort.signal.aborted) return "budget";
        this.counts.ended++;
        return "stream ended";
      }
      switch (frame.kind) {
        case "event":
          events++;
          this.counts.events++;
          watcher.steps.push({ kind: "event", event: frame.event });
          watcher.position = {
            after: { revision: frame.event.revision, index: frame.event.index },
          };
          break;
        case "synced":
        case "progress":
          watcher.steps.push({ kind: "synced", revision: frame.revision });
          if (plan.untilSynced && this.#catchingUp) {
            watcher.synced = true;
            return "synced";
          }
          break;
        case "compacted":
          this.#compacted(watcher, node, frame.fromRevision, {
            compactRevision: frame.compactRevision,
            low: read.appliedLow,
            high: read.appliedHigh,
          });
          return null;
      }
    }
    return "events";
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
