/**
 * Reads of the replicated events history on one node's applied state: the
 * window (floor, head, count, bytes) and pages of events from a position.
 * A position is "strictly after event (R, I)" or "from revision R"; one
 * below the floor is {@linkcode EventsCompactedError} (nothing is skipped
 * silently).
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import { decodeU64, EVENTS_META, historyKey, parseHistoryKey } from "./keys.ts";
import { decodeRecord, type HistoryEvent } from "./records.ts";
import type { HistoryTail, TailRow } from "./tail.ts";

/** Where a read starts. */
export type EventPosition =
  | { readonly after: { readonly revision: bigint; readonly index: number } }
  | { readonly from: bigint };

/** The window as this node holds it. */
export interface EventsWindow {
  /** The oldest revision held (compaction deleted everything below). */
  readonly floor: bigint;
  /** This node's applied revision. */
  readonly head: bigint;
  readonly count: number;
  readonly bytes: number;
}

/** The position asked for is below the window. */
export class EventsCompactedError extends Error {
  override name = "EventsCompactedError";
  constructor(readonly fromRevision: bigint, readonly compactRevision: bigint) {
    super(
      `Cannot read events from revision ${fromRevision}: the history starts at revision ${compactRevision} (compacted)`,
    );
  }
}

/** One page. */
export interface EventsPage {
  /** Matching events, in order. */
  readonly events: HistoryEvent[];
  /** Where the next read continues. */
  readonly next: EventPosition;
  /** Every matching event up to this revision has been returned. */
  readonly through: bigint;
  /** Whether the read reached the head (nothing more to read now). */
  readonly done: boolean;
}

/** Rows one page scans at most (matching or not). */
export const EVENTS_SCAN_ROWS_MAX = 1024;

/** The revision a position needs held. */
export function positionRevision(position: EventPosition): bigint {
  return "after" in position ? position.after.revision : position.from;
}

/** Reads over a store. */
export class EventsReads {
  readonly #store: Pick<StateStore, "scan" | "meta" | "appliedIndex">;
  readonly #tail: HistoryTail | null;

  /** `tail`: a decoded tail of `store` that pages read from when it covers them. */
  constructor(
    store: Pick<StateStore, "scan" | "meta" | "appliedIndex">,
    tail: HistoryTail | null = null,
  ) {
    this.#store = store;
    this.#tail = tail;
  }

  /** The window now. */
  window(): EventsWindow {
    return {
      floor: decodeU64(this.#store.meta(EVENTS_META.floor)),
      head: BigInt(this.#store.appliedIndex()),
      count: Number(decodeU64(this.#store.meta(EVENTS_META.count))),
      bytes: Number(decodeU64(this.#store.meta(EVENTS_META.bytes))),
    };
  }

  /**
   * Throws when `position` is below the window.
   *
   * @throws {EventsCompactedError}
   */
  check(position: EventPosition): void {
    const floor = decodeU64(this.#store.meta(EVENTS_META.floor));
    const revision = positionRevision(position);
    if (revision < floor) throw new EventsCompactedError(revision, floor);
  }

  /**
   * Up to `limit` events matching `keep` from `position`, up to revision
   * `to` (inclusive; default the head), scanning at most
   * {@linkcode EVENTS_SCAN_ROWS_MAX} rows.
   *
   * @throws {EventsCompactedError} When `position` is below the window.
   */
  page(
    position: EventPosition,
    options: {
      readonly limit: number;
      readonly to?: bigint;
      readonly keep?: (event: HistoryEvent) => boolean;
      /** Stop once the kept records reach this many bytes (at least one is returned). */
      readonly bytesMax?: number;
    },
  ): EventsPage {
    this.check(position);
    const head = BigInt(this.#store.appliedIndex());
    const to = options.to === undefined || options.to > head
      ? head
      : options.to;
    const start = "after" in position
      ? historyKey(position.after.revision, position.after.index + 1)
      : historyKey(position.from, 0);
    const end = historyKey(to + 1n, 0);
    const events: HistoryEvent[] = [];
    if (positionRevision(position) > to) {
      return { events, next: position, through: to, done: true };
    }
    const first = "after" in position
      ? { revision: position.after.revision, index: position.after.index + 1 }
      : { revision: position.from, index: 0 };
    const rows = this.#tail?.rows(first, to, EVENTS_SCAN_ROWS_MAX) ??
      this.#scan(start, end);
    let last: TailRow | null = null;
    let bytes = 0;
    let full = false;
    const bytesMax = options.bytesMax ?? Infinity;
    for (const row of rows) {
      const event = row.event;
      last = row;
      if (options.keep === undefined || options.keep(event)) {
        events.push(event);
        bytes += row.bytes;
        if (events.length >= options.limit || bytes >= bytesMax) {
          full = true;
          break;
        }
      }
    }
    if (last === null || (!full && rows.length < EVENTS_SCAN_ROWS_MAX)) {
      // Everything up to `to` was read.
      return { events, next: { from: to + 1n }, through: to, done: true };
    }
    return {
      events,
      next: { after: { revision: last.revision, index: last.index } },
      // Every event of revisions before the last one read was seen.
      through: last.revision - 1n,
      done: false,
    };
  }

  /** History rows in `[start, end)` from the store, decoded. */
  #scan(start: Uint8Array, end: Uint8Array): TailRow[] {
    return this.#store.scan({ start, end, limit: EVENTS_SCAN_ROWS_MAX }).map(
      (row) => {
        const at = parseHistoryKey(row.key);
        return {
          revision: at.revision,
          index: at.index,
          event: decodeRecord(at.revision, at.index, row.value),
          bytes: row.value.length,
        };
      },
    );
  }
}
