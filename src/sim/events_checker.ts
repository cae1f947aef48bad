/**
 * The property of the events watch (issue 17), checked at the end of a
 * seed: every watcher's joined output equals the filtered committed
 * history, with no gap, no duplicate and nothing out of order, and a gap
 * only where a node said `compacted` and the resume position really was
 * below that node's window.
 *
 * The reference is {@linkcode EventsReference}: every history record of
 * every revision, as the first replica to apply the revision wrote it
 * (recorded right after the apply, so before any compaction deletes it),
 * and the window's floor after each revision. A watcher's log is a list of
 * {@linkcode WatchStep}s: each open (node and position), each event, each
 * `compacted` answer (with the node's applied revision then), each drop.
 * Pure: no clock, no I/O.
 *
 * @module
 */
import { toHex } from "../base/bytes.ts";
import {
  type EventPosition,
  type EventRow,
  type HistoryEvent,
  type KeySelector,
  matches,
  positionRevision,
  type TypeMatcher,
} from "../services/events/api.ts";

/** One step of a watcher's life, as its client saw it. */
export type WatchStep =
  | {
    readonly kind: "open";
    readonly node: string;
    readonly position: EventPosition;
    readonly atMs: number;
  }
  | { readonly kind: "event"; readonly event: HistoryEvent }
  /** A `synced` or `progress` frame: every match up to `revision` was sent. */
  | { readonly kind: "synced"; readonly revision: bigint }
  | {
    readonly kind: "compacted";
    readonly node: string;
    /** The revision the refused position needed. */
    readonly fromRevision: bigint;
    /** Where the node said its window starts. */
    readonly compactRevision: bigint;
    /** The node's applied revision when the read was asked… */
    readonly appliedLow: bigint;
    /** …and when the answer arrived (the node may apply in between). */
    readonly appliedHigh: bigint;
    readonly atMs: number;
  }
  | { readonly kind: "drop"; readonly reason: string; readonly atMs: number };

/** What one watcher followed and saw. */
export interface WatcherLog {
  readonly name: string;
  readonly selector: KeySelector;
  readonly types: TypeMatcher;
  /** Readable form of the selector, for violations. */
  readonly describe: string;
  readonly steps: readonly WatchStep[];
}

/** Short text of a row, for comparisons and violations. */
function rowText(row: EventRow | null | undefined): string {
  if (row === undefined) return "-";
  if (row === null) return "null";
  return `${toHex(row.value)}/${row.encoding}/${toHex(row.versionstamp)}/${
    row.expireAtMs ?? ""
  }`;
}

/** Everything an event carries, as text: two events are the same when their texts are. */
export function eventText(event: HistoryEvent): string {
  const key = event.key === undefined ? "" : ` key=${toHex(event.key)}`;
  const data = event.data === undefined ? "" : ` data=${
    JSON.stringify(
      event.data,
      (_, value) => typeof value === "bigint" ? `${value}n` : value,
    )
  }`;
  return `${event.revision}.${event.index} ${event.type}${key} after=${
    rowText(event.after)
  } before=${rowText(event.before)}${
    event.cause === undefined ? "" : ` cause=${event.cause}`
  }${data}`;
}

/** Every record of the committed history and the window's floor, per revision. */
export class EventsReference {
  /** Revision → its records in index order (empty: the entry recorded none). */
  readonly #records = new Map<bigint, readonly HistoryEvent[]>();
  /** Revision → the window's floor once it was applied. */
  readonly #floors = new Map<bigint, bigint>();
  #highest = 0n;

  /** The highest revision recorded. */
  get highest(): bigint {
    return this.#highest;
  }

  /**
   * A replica applied `revision`, which recorded `events`, leaving the
   * window's floor at `floor`.
   *
   * @returns A problem when another replica recorded the revision otherwise, else null.
   */
  record(
    revision: bigint,
    events: readonly HistoryEvent[],
    floor: bigint,
  ): string | null {
    const known = this.#records.get(revision);
    if (known === undefined) {
      this.#records.set(revision, events);
      this.#floors.set(revision, floor);
      if (revision > this.#highest) this.#highest = revision;
      return null;
    }
    const before = known.map(eventText).join("; ");
    const now = events.map(eventText).join("; ");
    if (before !== now) {
      return `revision ${revision} recorded [${now}] on one replica and [${before}] on another`;
    }
    if (this.#floors.get(revision) !== floor) {
      return `revision ${revision} left the floor at ${floor} on one replica and at ${
        this.#floors.get(revision)
      } on another`;
    }
    return null;
  }

  /**
   * The floors once each revision from `low` to `high` was applied (0
   * before anything).
   *
   * @returns The floors, or the first revision no replica recorded.
   */
  floorsIn(low: bigint, high: bigint): Set<bigint> | { missing: bigint } {
    const floors = new Set<bigint>();
    for (let revision = low; revision <= high; revision++) {
      const floor = revision === 0n ? 0n : this.#floors.get(revision);
      if (floor === undefined) return { missing: revision };
      floors.add(floor);
    }
    return floors;
  }

  /**
   * Every event up to `through` in order, kept by `keep`.
   *
   * @returns The events, or the first revision no replica recorded.
   */
  filtered(
    through: bigint,
    keep: (event: HistoryEvent) => boolean,
  ): HistoryEvent[] | { missing: bigint } {
    const events: HistoryEvent[] = [];
    for (let revision = 1n; revision <= through; revision++) {
      const records = this.#records.get(revision);
      if (records === undefined) return { missing: revision };
      for (const event of records) if (keep(event)) events.push(event);
    }
    return events;
  }
}

/** Index of the first event of `events` at or after `position`. */
function firstAt(
  events: readonly HistoryEvent[],
  position: EventPosition,
): number {
  const isAfter = (event: HistoryEvent) =>
    "after" in position
      ? event.revision > position.after.revision ||
        (event.revision === position.after.revision &&
          event.index > position.after.index)
      : event.revision >= position.from;
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (isAfter(events[middle]!)) high = middle;
    else low = middle + 1;
  }
  return low;
}

function positionText(position: EventPosition): string {
  return "after" in position
    ? `after ${position.after.revision}.${position.after.index}`
    : `from ${position.from}`;
}

/**
 * Checks one watcher's log against the reference.
 *
 * @returns The first problem, or null.
 */
export function checkWatcher(
  log: WatcherLog,
  reference: EventsReference,
): string | null {
  const where = `watcher ${log.name} (${log.describe})`;
  const keep = (event: HistoryEvent) => matches(log.selector, log.types, event);
  const filtered = reference.filtered(reference.highest, keep);
  if (!Array.isArray(filtered)) {
    return `${where}: no replica recorded revision ${filtered.missing} of the history`;
  }
  /** Where the next open must resume: what the watcher saw last, or its start. */
  let expectedPosition: EventPosition | null = null;
  /** The open position of the current segment (null between segments). */
  let open: EventPosition | null = null;
  let openNode = "";
  let next = 0;
  for (const step of log.steps) {
    switch (step.kind) {
      case "open": {
        if (
          expectedPosition !== null &&
          positionText(step.position) !== positionText(expectedPosition)
        ) {
          return `${where}: resumed ${
            positionText(step.position)
          } on '${step.node}' at ${step.atMs} ms, but its last position was ${
            positionText(expectedPosition)
          }`;
        }
        open = step.position;
        openNode = step.node;
        expectedPosition = step.position;
        next = firstAt(filtered, step.position);
        break;
      }
      case "event": {
        const got = eventText(step.event);
        const want = filtered[next];
        if (open === null) {
          return `${where}: event ${got} outside any open stream`;
        }
        if (want === undefined || eventText(want) !== got) {
          const seen = filtered.findIndex((event) => eventText(event) === got);
          const kind = seen === -1
            ? "an event not in the committed history"
            : seen < next
            ? "a duplicate or an event out of order"
            : `a gap of ${seen - next} event(s)`;
          return `${where}: ${kind} at position '${
            positionText(expectedPosition!)
          }' (stream opened '${
            positionText(open)
          }' on '${openNode}'): expected ${
            want === undefined ? "nothing yet" : eventText(want)
          }, received ${got}`;
        }
        next++;
        expectedPosition = {
          after: { revision: step.event.revision, index: step.event.index },
        };
        break;
      }
      case "synced": {
        const pending = filtered[next];
        if (open === null) {
          return `${where}: synced at ${step.revision} outside any open stream`;
        }
        if (pending !== undefined && pending.revision <= step.revision) {
          return `${where}: '${openNode}' said synced at revision ${step.revision} (stream opened '${
            positionText(open)
          }') without sending ${eventText(pending)}`;
        }
        break;
      }
      case "compacted": {
        const problem = checkCompacted(
          step,
          open,
          expectedPosition!,
          filtered[next],
          reference,
        );
        if (problem !== null) return `${where}: ${problem}`;
        // The allowed gap: the next open starts exactly at the floor.
        expectedPosition = { from: step.compactRevision };
        open = null;
        break;
      }
      case "drop":
        open = null;
        break;
    }
  }
  return null;
}

/**
 * A `compacted` answer is right only below the node's window at that time,
 * and only once the stream sent everything before the revision it needed.
 *
 * @param last Where the watcher stands: its last event, or where it opened.
 * @param pending The first matching event it has not received yet.
 */
function checkCompacted(
  step: Extract<WatchStep, { kind: "compacted" }>,
  open: EventPosition | null,
  last: EventPosition,
  pending: HistoryEvent | undefined,
  reference: EventsReference,
): string | null {
  if (open === null) {
    return `'${step.node}' said compacted at ${step.atMs} ms outside any open`;
  }
  // At the open the refused revision is the position's; later in the
  // stream it is where its reads had got to (never behind what it sent).
  if (step.fromRevision < positionRevision(last)) {
    return `'${step.node}' said compacted from revision ${step.fromRevision} for a watch at position '${
      positionText(last)
    }' (opened '${positionText(open)}')`;
  }
  if (pending !== undefined && pending.revision < step.fromRevision) {
    return `'${step.node}' said compacted from revision ${step.fromRevision} for a watch at position '${
      positionText(last)
    }' without sending ${eventText(pending)} first`;
  }
  const floors = reference.floorsIn(step.appliedLow, step.appliedHigh);
  const at = step.appliedLow === step.appliedHigh
    ? `its revision ${step.appliedLow}`
    : `its revisions ${step.appliedLow} to ${step.appliedHigh}`;
  if (!(floors instanceof Set)) {
    return `'${step.node}' said compacted at revision ${floors.missing}, which no replica recorded`;
  }
  if (!floors.has(step.compactRevision)) {
    return `'${step.node}' said the window starts at ${step.compactRevision} at ${at}, where the history's floor is ${
      [...floors].join(" or ")
    }`;
  }
  if (step.fromRevision >= step.compactRevision) {
    return `'${step.node}' said compacted for ${
      positionText(open)
    }, which is inside its window (floor ${step.compactRevision})`;
  }
  return null;
}
