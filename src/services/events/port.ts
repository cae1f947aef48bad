/**
 * What front ends use of the events history on one node (the node's
 * `NodeEvents` implements it): the window, pages, and watch streams served
 * from this node's applied state.
 *
 * @module
 */
import type { EventPosition, EventsPage, EventsWindow } from "./reads.ts";
import type { HistoryEvent } from "./records.ts";
import type { KeySelector, TypeMatcher } from "./selector.ts";

/** One frame of a watch stream. */
export type WatchFrame =
  | { readonly kind: "event"; readonly event: HistoryEvent }
  | { readonly kind: "synced"; readonly revision: bigint }
  | { readonly kind: "progress"; readonly revision: bigint }
  | {
    readonly kind: "compacted";
    readonly fromRevision: bigint;
    readonly compactRevision: bigint;
  };

/** A watch's request. */
export interface WatchRequest {
  readonly selector: KeySelector;
  readonly types: TypeMatcher;
  /** Where to start; absent: the node's next revision. */
  readonly position?: EventPosition;
  /** Quiet time before a `progress` frame, ms. */
  readonly progressMs: number;
}

/** Too many watch streams on this node (503). */
export class WatchStreamsFullError extends Error {
  override name = "WatchStreamsFullError";
  constructor(readonly max: number) {
    super(`Cannot watch events: this node serves ${max} event streams already`);
  }
}

/** The events history as one node serves it. */
export interface EventsPort {
  /** The window now. */
  window(): EventsWindow;
  /** The window's byte cap (`--history-bytes-max`). */
  readonly bytesMax: number;
  /** Watch streams served now. */
  streams(): number;
  /**
   * One page of matching events.
   *
   * @throws {EventsCompactedError} Below the window.
   */
  page(
    position: EventPosition,
    options: {
      readonly limit: number;
      readonly to?: bigint;
      readonly keep: (event: HistoryEvent) => boolean;
      readonly bytesMax?: number;
    },
  ): EventsPage;
  /**
   * Opens a watch: checks the start (throws before any frame) and returns
   * its frames; ends when `signal` aborts or after a `compacted` frame.
   *
   * @throws {EventsCompactedError} When the start is below the window.
   * @throws {WatchStreamsFullError} When the node serves its maximum already.
   */
  watch(request: WatchRequest, signal: AbortSignal): AsyncIterable<WatchFrame>;
}
