/**
 * The events service's public face: what other layers (node, front ends,
 * other services) may import. See `apply.ts` (history recording and
 * compaction), `reads.ts` (the window and pages), `selector.ts` (what a
 * stream follows) and `leader.ts` (compaction and leader announcements).
 *
 * @module
 */
export {
  appendEvents,
  EVENTS_SERVICE,
  eventsService,
  hooksLeaseDependent,
  recordBytes,
} from "./apply.ts";
export type { HookCommand } from "./hook_commands.ts";
export { BATCH_ATTEMPTS_MAX } from "./hook_commands.ts";
export {
  ADVANCE_EVENTS_MAX,
  cursorId,
  cursorRevision,
  DELIVERIES_KEPT,
  type DeliveryRecord,
  eventId,
  HOOK_OUTCOMES,
  type HookCursor,
  type HookKnobs,
  hookLag,
  hookMatches,
  type HookOutcome,
  HookReads,
  type HookRecord,
  HOOKS_MAX,
  type HookTarget,
  isHookRow,
  LATENCY_BOUNDS_MS,
  type OpenRef,
  parseEventId,
  queuePayload,
  REPLAY_EVENTS_MAX,
} from "./hooks.ts";
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
export { HistoryTail, type TailLimits, type TailRow } from "./tail.ts";
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
export type { HookCreate, HookReport, HooksPort } from "./hooks_port.ts";
export { HookAdvancer, pinnedRevision } from "./hook_leader.ts";
export {
  type EventForwarder,
  type HookTargets,
  type JobSink,
  NO_EXTRA_TARGETS,
  unsupportedTarget,
} from "./targets.ts";
