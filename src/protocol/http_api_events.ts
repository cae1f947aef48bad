/**
 * The events part of Aspen's HTTP protocol (issue 17): the replicated
 * events history, its watch stream and its listing. Routes are in
 * {@link ./http_api.ts} (`ROUTES`), error codes in its `ERROR_STATUS`
 * (`compacted` 410 with `details.compactRevision`), limits in
 * {@linkcode EVENTS_LIMITS}.
 *
 * - A **revision** is the log index of the entry that made a change (the
 *   first 16 hex digits of its versionstamp); JSON carries it as a number
 *   (log indexes stay below 2^53).
 * - Events are ordered by `(revision, index)`, identically on every node; an
 *   event's id is `"R.I"` (decimal), the SSE `id:` and `Last-Event-ID`.
 * - A **selector** picks KV keys: `{prefix}` (every key under that key
 *   prefix, the prefix itself excluded, as Deno KV's list) or `{start, end}`
 *   (keys in `[start, end)`); both are wire keys. `{}` selects every key.
 *   Non-KV events (`leader.changed`, `member.*`, …) carry no key: a selector
 *   never filters them out, only `types` does.
 * - **Types** are event type names (`kv.set`) or trailing-`*` globs
 *   (`kv.*`, `*`); at most {@linkcode EVENTS_LIMITS.typesMax}. Default
 *   `kv.*`.
 *
 * `GET /v1/events/watch` (`text/event-stream`) takes the query parameters
 * `prefix` or `start` and `end` (URL-encoded JSON wire keys), `types`
 * (comma-separated), `fromRevision` (inclusive; default: the node's next
 * revision), `prevValue=1`, `progressMs` (100–600,000, default 10,000);
 * `Last-Event-ID: R.I` resumes strictly after that event (it wins over
 * `fromRevision`). Frames:
 *
 * - `id: R.I` / `event: <type>` / `data: <WireEvent JSON>`;
 * - `event: synced` / `data: {"revision": N}` once the replay reached the
 *   node's applied revision (once per stream);
 * - `event: progress` / `data: {"revision": N}` after `progressMs` without a
 *   matching event: every matching event up to N was sent;
 * - `event: compacted` / `data: {"fromRevision": N, "compactRevision": M}`
 *   when the reader fell below the window; the stream then ends.
 *
 * A start below the window is refused up front with 410 `compacted`.
 *
 * @module
 */
import type { WireKey, WireValue, WireVersionstamp } from "./http_api.ts";

/** Limits of the events API; a request beyond one is refused (4xx), nothing changed. */
export const EVENTS_LIMITS = {
  /** Type patterns of one watch or list. */
  typesMax: 16,
  /** Events of one list page at most. */
  listLimitMax: 1_000,
  /** Default list page. */
  listLimitDefault: 100,
  /** Shortest progress interval, ms. */
  progressMsMin: 100,
  /** Longest progress interval, ms. */
  progressMsMax: 600_000,
  /** Default progress interval, ms. */
  progressMsDefault: 10_000,
  /** Watch streams one node serves at once (503 beyond). */
  watchStreamsMax: 1_000,
  /** Bytes a slow watch reader may hold buffered on the server. */
  watchBufferBytesMax: 1024 * 1024,
} as const;

/** An event type pattern: a name or a trailing-`*` glob. */
export const EVENT_TYPE_PATTERN = /^(\*|[a-z]+(\.[a-z]+)*(\.\*)?)$/;

/** Which KV keys a watch or list follows. */
export type WireSelector =
  | { readonly prefix: WireKey }
  | { readonly start: WireKey; readonly end: WireKey }
  // deno-lint-ignore ban-types
  | {};

/** Why a KV key was deleted. */
export type WireDeleteCause = "write" | "expired" | "lease";

/**
 * One event as the watch's `data:` and the list carry it. KV events fill
 * `key`, `value` (null for a delete), `versionstamp` (null for a delete),
 * `prevVersionstamp` (null when the key was absent), `prevValue` (only when
 * asked for; null when absent) and `cause`; other events carry their facts
 * in `data`.
 */
export interface WireEvent {
  readonly id: string;
  readonly revision: number;
  readonly index: number;
  readonly type: string;
  readonly key?: WireKey;
  readonly value?: WireValue | null;
  readonly versionstamp?: WireVersionstamp | null;
  readonly prevVersionstamp?: WireVersionstamp | null;
  readonly prevValue?: WireValue | null;
  readonly cause?: WireDeleteCause;
  /** Facts of a non-KV event (`leader.changed`: {term, leader, previous}; …). */
  readonly data?: Readonly<Record<string, unknown>>;
}

/** `event: synced` and `event: progress` data. */
export interface WireWatchMark {
  readonly revision: number;
}

/** `event: compacted` data (also the 410's details carry `compactRevision`). */
export interface WireWatchCompacted {
  readonly fromRevision: number;
  readonly compactRevision: number;
}

/** `POST /v1/events/list` */
export interface EventsListRequest {
  readonly selector?: WireSelector;
  readonly types?: readonly string[];
  /** Inclusive; default the window's start. */
  readonly fromRevision?: number;
  /** Strictly after this event id (`"R.I"`, a previous page's `cursor`); wins over `fromRevision`. */
  readonly after?: string;
  /** Inclusive; default the head. */
  readonly toRevision?: number;
  /** 1..{@linkcode EVENTS_LIMITS.listLimitMax}, default {@linkcode EVENTS_LIMITS.listLimitDefault}. */
  readonly limit?: number;
  /** Include `prevValue` in KV events. */
  readonly prevValue?: boolean;
}

/** Answer of `POST /v1/events/list`. */
export interface EventsListResponse {
  readonly events: readonly WireEvent[];
  /** Where the next page starts (the first revision not fully returned). */
  readonly nextRevision: number;
  /**
   * Present when the page stopped before `toRevision` (or the head): pass it
   * as the next request's `after` to continue exactly (a revision may hold
   * more events than one page).
   */
  readonly cursor?: string;
  /** The oldest revision still held (the window's start). */
  readonly compactRevision: number;
  /** The node's applied revision. */
  readonly headRevision: number;
}

/** Answer of `GET /v1/events/status`. */
export interface EventsStatusResponse {
  /** The oldest revision still held. */
  readonly compactRevision: number;
  /** The node's applied revision. */
  readonly headRevision: number;
  /** Revisions with events in the window, and their bytes. */
  readonly events: number;
  readonly bytes: number;
  /** The window's byte cap (`--history-bytes-max`). */
  readonly bytesMax: number;
  /** Watch streams this node serves now. */
  readonly streams: number;
}
