/**
 * The events service's public face: what other layers (node, front ends,
 * other services) may import. See `apply.ts` (history recording and
 * compaction), `reads.ts` (the window and pages), `selector.ts` (what a
 * stream follows) and `leader.ts` (compaction and leader announcements).
 *
 * @module
 */
export { EVENTS_SERVICE, eventsService, recordBytes } from "./apply.ts";
export {
  decodeEventsCommand,
  encodeEventsCommand,
  type EventsCommand,
  EventsError,
  type EventsResult,
  FACT_BYTES_MAX,
} from "./commands.ts";
export { EVENTS_KEYSPACE, EVENTS_META } from "./keys.ts";
export type { DeleteCause, EventRow, HistoryEvent } from "./records.ts";
export {
  type EventPosition,
  EVENTS_SCAN_ROWS_MAX,
  EventsCompactedError,
  type EventsPage,
  EventsReads,
  type EventsWindow,
  positionRevision,
} from "./reads.ts";
export {
  type KeySelector,
  matches,
  SelectorError,
  selectsKey,
  TYPE_PATTERNS_MAX,
  type TypeMatcher,
  typeMatcher,
} from "./selector.ts";
export {
  type EventsPort,
  type WatchFrame,
  type WatchRequest,
  WatchStreamsFullError,
} from "./port.ts";
export {
  COMPACT_ROWS_MAX,
  EventsLeader,
  type EventsLeaderOptions,
} from "./leader.ts";
