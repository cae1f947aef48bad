/**
 * The simulated watcher clients of the events service (issue 17): each
 * follows a key selector with types `kv.*` and logs every open, event,
 * `synced`, `compacted` answer and drop as a {@linkcode WatchStep} for
 * `events_checker.ts`. One {@linkcode Watcher.segment} is one stream: open
 * on a node at the watcher's position, read for the plan's events or time
 * (or until `synced`), drop; a `compacted` answer moves the position to the
 * window's floor. `events_run.ts` decides when and where streams open.
 *
 * @module
 */
import { encodeKey } from "../model/key_codec.ts";
import {
  type EventPosition,
  type KeySelector,
  type TypeMatcher,
  typeMatcher,
  type WatchRequest,
} from "../services/events/api.ts";
import type { EventQueue } from "./event_queue.ts";
import type { WatcherLog, WatchStep } from "./events_checker.ts";
import {
  type SimEventsPort,
  type SimWatch,
  WATCH_PROGRESS_MS,
  type WatchRead,
} from "./events_node.ts";

/** How long opening a watch may take before the watcher tries another node, ms. */
const openTimeoutMs = 300;
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
export const WATCH_SELECTORS: readonly {
  describe: string;
  selector: KeySelector;
}[] = [
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

/** What a watcher's streams use of the run. */
export interface StreamContext {
  readonly queue: EventQueue;
  readonly counts: EventsCounts;
  /** Tells the simulation promise jobs were started (a timer fired). */
  ran(): void;
  readonly trace: ((line: string) => void) | null;
}

/** How long one stream is read. */
export interface StreamPlan {
  /** Events read at most. */
  readonly eventsMax: number;
  /** Time it stays open at most, ms. */
  readonly budgetMs: number;
  /** Stop at the first `synced` frame (the catch-up after healing). */
  readonly untilSynced: boolean;
}

/** One simulated watcher client: its selector, position and log. */
export class Watcher {
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

  /**
   * One stream: opens it on `port` at the watcher's position and reads it
   * until its plan's budget (or, with `untilSynced`, its `synced` frame),
   * a `compacted` answer or its end.
   *
   * @returns False when it could not be opened.
   */
  async segment(
    context: StreamContext,
    node: string,
    port: SimEventsPort,
    plan: StreamPlan,
  ): Promise<boolean> {
    const abort = new AbortController();
    this.current = { watch: null, abort };
    const position = this.position;
    const request: WatchRequest = {
      selector: this.selector,
      types: this.types,
      position,
      progressMs: WATCH_PROGRESS_MS,
    };
    const opening = port.open(request, abort.signal);
    context.queue.after(openTimeoutMs, () => {
      if (this.current?.abort === abort && this.current.watch === null) {
        abort.abort();
        context.ran();
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
      context.counts.openFailed++;
      this.current = null;
      return false;
    }
    this.steps.push({ kind: "open", node, position, atMs: context.queue.now });
    if (opened.kind === "compacted") {
      this.current = null;
      this.#compacted(context, node, opened.fromRevision, {
        compactRevision: opened.compactRevision,
        low: opened.applied,
        high: opened.applied,
      });
      return true;
    }
    const watch = opened.watch;
    this.current = { watch, abort };
    context.counts.opened++;
    if ("after" in position) context.counts.resumedAfter++;
    context.queue.after(plan.budgetMs, () => {
      abort.abort();
      context.ran();
    });
    const reason = await this.#read(context, node, watch, abort, plan);
    abort.abort();
    watch.close();
    this.current = null;
    if (reason !== null) {
      this.steps.push({ kind: "drop", reason, atMs: context.queue.now });
    }
    return true;
  }

  /** Logs a `compacted` answer; the watcher starts again at the window's floor. */
  #compacted(
    context: StreamContext,
    node: string,
    fromRevision: bigint,
    at: { compactRevision: bigint; low: bigint; high: bigint },
  ): void {
    context.counts.compacted++;
    this.steps.push({
      kind: "compacted",
      node,
      fromRevision,
      compactRevision: at.compactRevision,
      appliedLow: at.low,
      appliedHigh: at.high,
      atMs: context.queue.now,
    });
    context.trace?.(
      `events ${this.name} compacted on ${node}: from ${fromRevision}, window at ${at.compactRevision}`,
    );
    this.position = { from: at.compactRevision };
  }

  /**
   * Reads frames until the plan's events (or its `synced` frame), the
   * abort, or the stream's end.
   *
   * @returns Why the stream was dropped (null after a `compacted` frame).
   */
  async #read(
    context: StreamContext,
    node: string,
    watch: SimWatch,
    abort: AbortController,
    plan: StreamPlan,
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
        context.counts.ended++;
        return "stream ended";
      }
      switch (frame.kind) {
        case "event":
          events++;
          context.counts.events++;
          this.steps.push({ kind: "event", event: frame.event });
          this.position = {
            after: { revision: frame.event.revision, index: frame.event.index },
          };
          break;
        case "synced":
        case "progress":
          this.steps.push({ kind: "synced", revision: frame.revision });
          if (plan.untilSynced) {
            this.synced = true;
            return "synced";
          }
          break;
        case "compacted":
          this.#compacted(context, node, frame.fromRevision, {
            compactRevision: frame.compactRevision,
            low: read.appliedLow,
            high: read.appliedHigh,
          });
          return null;
      }
    }
    return "events";
  }
}
