/**
 * The events history as this node serves it: pages and watch streams read
 * from the node's applied state (any node serves them; the same position
 * continues exactly on another, since every replica holds the same
 * records), woken by the node's change feed when more is applied.
 *
 * A watch reads a page at a time and yields frame by frame, so a stream
 * pulled slowly holds at most one page here; a reader overtaken by
 * compaction gets `compacted` and the stream ends.
 *
 * @module
 */
import type { ChangeFeed } from "../state/change_feed.ts";
import type { StateStore } from "../state/state_store.ts";
import {
  type EventPosition,
  EventsCompactedError,
  type EventsPage,
  type EventsPort,
  EventsReads,
  type EventsWindow,
  type HistoryEvent,
  HistoryTail,
  matches,
  type WatchFrame,
  type WatchRequest,
  WatchStreamsFullError,
} from "../services/events/api.ts";

/** Events one watch page reads at most. */
const WATCH_PAGE_EVENTS = 256;

/**
 * Record bytes one watch page holds at most: with the one frame the HTTP
 * body buffers, a slow reader holds about this much here (the limit
 * `EVENTS_LIMITS.watchBufferBytesMax`, 1 MiB, with room for JSON's growth).
 */
const WATCH_PAGE_BYTES = 256 * 1024;

/** Options of {@linkcode NodeEvents}. */
export interface NodeEventsOptions {
  readonly store: Pick<StateStore, "scan" | "meta" | "appliedIndex">;
  /** Wakes watches when more is applied. */
  readonly feed: Pick<ChangeFeed, "waitPast">;
  /** The window's byte cap, as status reports it. */
  readonly bytesMax: number;
  /** Watch streams at once. Default 1,000. */
  readonly streamsMax?: number;
  /** The clock progress frames are timed by. Default `Date.now`. */
  readonly now?: () => number;
  /** Testing knobs: the simulator's planted bug. Never set in production. */
  readonly knobs?: NodeEventsKnobs;
}

/** Testing knobs of {@linkcode NodeEvents}: only the simulator sets them. */
export interface NodeEventsKnobs {
  /**
   * Planted bug `watch-skip-on-resume`: a watch resumed after an event
   * (`position: {after}`) skips the first matching event it should send.
   */
  readonly skipOnResume?: boolean;
}

/** The node's {@linkcode EventsPort}. */
export class NodeEvents implements EventsPort {
  readonly #reads: EventsReads;
  readonly #feed: Pick<ChangeFeed, "waitPast">;
  readonly #streamsMax: number;
  readonly #now: () => number;
  readonly #skipOnResume: boolean;
  readonly bytesMax: number;
  #streams = 0;

  constructor(options: NodeEventsOptions) {
    // Streams at the tail share one decoded read of each new revision.
    this.#reads = new EventsReads(
      options.store,
      new HistoryTail(options.store),
    );
    this.#feed = options.feed;
    this.bytesMax = options.bytesMax;
    this.#streamsMax = options.streamsMax ?? 1_000;
    this.#now = options.now ?? Date.now;
    this.#skipOnResume = options.knobs?.skipOnResume === true;
  }

  window(): EventsWindow {
    return this.#reads.window();
  }

  streams(): number {
    return this.#streams;
  }

  page(
    position: EventPosition,
    options: {
      readonly limit: number;
      readonly to?: bigint;
      readonly keep: (event: HistoryEvent) => boolean;
      readonly bytesMax?: number;
    },
  ): EventsPage {
    return this.#reads.page(position, options);
  }

  watch(request: WatchRequest, signal: AbortSignal): AsyncIterable<WatchFrame> {
    const position = request.position ??
      { from: this.#reads.window().head + 1n };
    this.#reads.check(position);
    if (this.#streams >= this.#streamsMax) {
      throw new WatchStreamsFullError(this.#streamsMax);
    }
    return this.#frames(request, position, signal);
  }

  async *#frames(
    request: WatchRequest,
    start: EventPosition,
    signal: AbortSignal,
  ): AsyncGenerator<WatchFrame> {
    const keep = (event: HistoryEvent) =>
      matches(request.selector, request.types, event);
    let position = start;
    let synced = false;
    let quietSince = this.#now();
    // The planted bug (a testing knob): resume one event too far.
    let skip = this.#skipOnResume && "after" in start;
    this.#streams++;
    try {
      while (!signal.aborted) {
        let page: EventsPage;
        try {
          page = this.#reads.page(position, {
            limit: WATCH_PAGE_EVENTS,
            keep,
            bytesMax: WATCH_PAGE_BYTES,
          });
        } catch (error) {
          if (!(error instanceof EventsCompactedError)) throw error;
          yield {
            kind: "compacted",
            fromRevision: error.fromRevision,
            compactRevision: error.compactRevision,
          };
          return;
        }
        for (const event of page.events) {
          if (signal.aborted) return;
          if (skip) {
            skip = false;
            continue;
          }
          yield { kind: "event", event };
        }
        position = page.next;
        if (page.events.length > 0) quietSince = this.#now();
        if (!page.done) continue;
        if (!synced) {
          synced = true;
          quietSince = this.#now();
          yield { kind: "synced", revision: page.through };
        }
        const quietMs = this.#now() - quietSince;
        if (quietMs >= request.progressMs) {
          quietSince = this.#now();
          yield { kind: "progress", revision: page.through };
          continue;
        }
        await this.#waitPast(
          page.through,
          request.progressMs - quietMs,
          signal,
        );
      }
    } finally {
      this.#streams--;
    }
  }

  /** Until more than `revision` is applied, `ms` pass, or `signal` aborts. */
  async #waitPast(
    revision: bigint,
    ms: number,
    signal: AbortSignal,
  ): Promise<void> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => stop.abort(), Math.max(1, ms));
    try {
      await this.#feed.waitPast(revision, stop.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
