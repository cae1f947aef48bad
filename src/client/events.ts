/**
 * `client.events`: the cluster's events history (issue 17). `watch` follows
 * the KV changes under a prefix or in a range, and cluster events
 * (`leader.changed`, `member.*`, …), from a revision, resuming on any node
 * after a drop with no gap and no duplicate; `list` pages through the
 * window; `status` shows it. A start below the window throws
 * {@linkcode CompactedError}: nothing is skipped silently.
 *
 * @module
 */
import { compareBytes } from "../base/bytes.ts";
import { encodeKey } from "../model/key_codec.ts";
import { ROUTES } from "../protocol/http_api.ts";
import { keyFromWire, keyToWire } from "../protocol/http_api_codec.ts";
import {
  EVENT_TYPE_PATTERN,
  EVENTS_LIMITS,
  type EventsListRequest,
  type EventsListResponse,
  type EventsStatusResponse,
  type WireDeleteCause,
  type WireEvent,
  type WireSelector,
} from "../protocol/http_api_events.ts";
import type { HttpTransport } from "./_transport.ts";
import type { StreamConnector } from "./_sse.ts";
import { valueFromWire } from "./_values.ts";
import { EVENT_ID, watchFrames } from "./_events_watch.ts";
import { CompactedError } from "./errors.ts";
import type { KvKey } from "./types.ts";

/**
 * Which KV keys a watch or list follows: every key under `prefix` (the
 * prefix itself excluded, as `kv.list`), the keys in `[start, end)`, or
 * every key (`{}`). Cluster events carry no key and pass every selector.
 */
export type EventsSelector =
  | { readonly prefix: KvKey }
  | { readonly start: KvKey; readonly end: KvKey }
  | Record<string, never>;

/** Why a KV key was deleted: a write, its expiry, or its lease ending. */
export type EventDeleteCause = WireDeleteCause;

/**
 * One event of the history. KV events (`kv.set`, `kv.delete`) fill `key`,
 * `value` (null for a delete), `versionstamp` (null for a delete),
 * `prevVersionstamp` (null when the key was absent), `prevValue` (only when
 * asked for; null when absent) and `cause`; other events carry their facts
 * in `data` (`leader.changed`: `{term, leader, previous}`, …).
 */
export interface AspenEvent<T = unknown> {
  /** `"R.I"`: the resume point of a watch. */
  readonly id: string;
  /** The log index of the entry that made it. */
  readonly revision: number;
  /** Its place within the revision. */
  readonly index: number;
  /** `kv.set`, `kv.delete`, `leader.changed`, `member.added`, … */
  readonly type: string;
  /** KV events: the key. */
  readonly key?: KvKey;
  /** KV events: the value after (null for a delete). */
  readonly value?: T | null;
  /** KV events: the versionstamp after (null for a delete). */
  readonly versionstamp?: string | null;
  /** KV events: the versionstamp before (null when the key was absent). */
  readonly prevVersionstamp?: string | null;
  /** KV events, when asked for: the value before (null when absent). */
  readonly prevValue?: T | null;
  /** `kv.delete`: why. */
  readonly cause?: EventDeleteCause;
  /** Other events: their facts (`leader.changed`: `{term, leader, previous}`, …). */
  readonly data?: Readonly<Record<string, unknown>>;
}

/**
 * What a watch yields: an event; `synced` once a (re)connected stream's
 * replay reached the node's applied revision; `progress` after a quiet
 * `progressMs` (every matching event up to `revision` was yielded). A
 * mark's revision never goes back.
 */
export type EventsWatchFrame<T = unknown> =
  | { readonly kind: "event"; readonly event: AspenEvent<T> }
  | { readonly kind: "synced"; readonly revision: number }
  | { readonly kind: "progress"; readonly revision: number };

/** Options of {@linkcode AspenEvents.watch}. */
export interface EventsWatchOptions {
  /** Type names or trailing-`*` globs, 1 to 16. Default `["kv.*"]`. */
  readonly types?: readonly string[];
  /** First revision (inclusive). Default: the node's next revision. */
  readonly fromRevision?: number;
  /** Include each KV event's previous value. Default false. */
  readonly prevValue?: boolean;
  /** Quiet time before a `progress` frame, 100 to 600,000 ms. Default 10,000. */
  readonly progressMs?: number;
  /** Ends the iteration when aborted. */
  readonly signal?: AbortSignal;
}

/** Options of {@linkcode AspenEvents.list}. */
export interface EventsListOptions {
  /** Default every key. */
  readonly selector?: EventsSelector;
  /** Default `["kv.*"]`. */
  readonly types?: readonly string[];
  /** Inclusive. Default the window's start. */
  readonly fromRevision?: number;
  /** Strictly after this event id (`"R.I"`, a previous page's `cursor`); wins over `fromRevision`. */
  readonly after?: string;
  /** Inclusive. Default the head. */
  readonly toRevision?: number;
  /** 1 to 1,000 events. Default 100. */
  readonly limit?: number;
  /** Include each KV event's previous value. Default false. */
  readonly prevValue?: boolean;
}

/** One page of {@linkcode AspenEvents.list}. */
export interface EventsListPage<T = unknown> {
  /** The page's events, in `(revision, index)` order. */
  readonly events: readonly AspenEvent<T>[];
  /** Where the next page starts (the first revision not fully returned). */
  readonly nextRevision: number;
  /**
   * Present when the page stopped before `toRevision` (or the head): the
   * next page's `after`, which continues exactly (a revision may hold more
   * events than one page).
   */
  readonly cursor?: string;
  /** The oldest revision still held. */
  readonly compactRevision: number;
  /** The answering node's applied revision. */
  readonly headRevision: number;
}

/** The history window of the answering node ({@linkcode AspenEvents.status}). */
export type EventsStatus = EventsStatusResponse;

/**
 * The wire form of a selector, checked.
 *
 * @throws {TypeError} For a shape other than `{prefix}`, `{start, end}` or `{}`, or a malformed key.
 * @throws {RangeError} When `start` does not sort before `end`.
 */
export function selectorToWire(selector: EventsSelector): WireSelector {
  if (typeof selector !== "object" || selector === null) {
    throw new TypeError(
      `Invalid selector: expected {prefix}, {start, end} or {}: received ${selector}`,
    );
  }
  const fields = Object.keys(selector).sort().join(",");
  const given = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (fields === "") return {};
  if (fields === "prefix") {
    encodeKey(checkedKey(given.prefix, "prefix"));
    return { prefix: keyToWire(given.prefix!) };
  }
  if (fields === "end,start") {
    const start = encodeKey(checkedKey(given.start, "start"));
    const end = encodeKey(checkedKey(given.end, "end"));
    if (compareBytes(start, end) >= 0) {
      throw new RangeError(
        "Invalid selector: 'start' must sort before 'end'",
      );
    }
    return { start: keyToWire(given.start!), end: keyToWire(given.end!) };
  }
  throw new TypeError(
    `Invalid selector: expected {prefix}, {start, end} or {}: received fields '${fields}'`,
  );
}

function checkedKey(key: unknown, field: string): KvKey {
  if (!Array.isArray(key)) {
    throw new TypeError(`Invalid selector: '${field}' must be a key (a list)`);
  }
  return key as KvKey;
}

function checkTypes(types: readonly string[]): void {
  if (
    !Array.isArray(types) || types.length === 0 ||
    types.length > EVENTS_LIMITS.typesMax
  ) {
    throw new RangeError(
      `Invalid types: expected 1 to ${EVENTS_LIMITS.typesMax} patterns: received ${
        Array.isArray(types) ? types.length : typeof types
      }`,
    );
  }
  for (const type of types) {
    if (typeof type !== "string" || !EVENT_TYPE_PATTERN.test(type)) {
      throw new TypeError(
        `Invalid type pattern '${
          String(type).slice(0, 64)
        }': expected a name like 'kv.set' or a glob like 'kv.*'`,
      );
    }
  }
}

function checkRevision(value: number | undefined, field: string): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Invalid ${field}: expected a non-negative integer: received ${value}`,
    );
  }
}

function checkWithin(
  value: number | undefined,
  field: string,
  min: number,
  max: number,
): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid ${field}: must be ${min} to ${max}: received ${value}`,
    );
  }
}

/** An event as the client shows it: key and values decoded. */
export function eventFromWire<T>(wire: WireEvent): AspenEvent<T> {
  const event: Record<string, unknown> = {
    id: wire.id,
    revision: wire.revision,
    index: wire.index,
    type: wire.type,
  };
  if (wire.key !== undefined) event.key = keyFromWire(wire.key);
  if (wire.value !== undefined) {
    event.value = wire.value === null ? null : valueFromWire(wire.value);
  }
  if (wire.versionstamp !== undefined) event.versionstamp = wire.versionstamp;
  if (wire.prevVersionstamp !== undefined) {
    event.prevVersionstamp = wire.prevVersionstamp;
  }
  if (wire.prevValue !== undefined) {
    event.prevValue = wire.prevValue === null
      ? null
      : valueFromWire(wire.prevValue);
  }
  if (wire.cause !== undefined) event.cause = wire.cause;
  if (wire.data !== undefined) event.data = wire.data;
  return event as unknown as AspenEvent<T>;
}

/**
 * The events history: watch, list, status.
 *
 * @example
 * ```ts ignore
 * for await (const frame of client.events.watch({ prefix: ["orders"] })) {
 *   if (frame.kind === "event") console.log(frame.event.id, frame.event.key);
 * }
 * ```
 */
export class AspenEvents {
  readonly #transport: HttpTransport;
  readonly #streams: StreamConnector;

  /** Used by `connect`. */
  constructor(transport: HttpTransport, streams: StreamConnector) {
    this.#transport = transport;
    this.#streams = streams;
  }

  /**
   * Matching events in `(revision, index)` order, with `synced` and
   * `progress` marks, until `signal` aborts or the client closes. A dropped
   * stream resumes on the next node after the last event yielded
   * (`Last-Event-ID`): no gap, no duplicate. Unreachable and busy nodes are
   * retried, never thrown.
   *
   * @throws {TypeError} At once, for a malformed selector or type pattern.
   * @throws {RangeError} At once, for a revision, `progressMs` or type count out of range.
   * @throws {CompactedError} When the start, or a resume, is below the window.
   * @throws {InvalidRequestError} For a request the cluster refuses.
   * @throws {AuthError} For a missing or wrong token.
   */
  watch<T = unknown>(
    selector: EventsSelector = {},
    options: EventsWatchOptions = {},
  ): AsyncGenerator<EventsWatchFrame<T>> {
    const wire = selectorToWire(selector);
    const query = new URLSearchParams();
    if ("prefix" in wire) query.set("prefix", JSON.stringify(wire.prefix));
    if ("start" in wire) {
      query.set("start", JSON.stringify(wire.start));
      query.set("end", JSON.stringify(wire.end));
    }
    if (options.types !== undefined) {
      checkTypes(options.types);
      query.set("types", options.types.join(","));
    }
    checkRevision(options.fromRevision, "fromRevision");
    checkWithin(
      options.progressMs,
      "progressMs",
      EVENTS_LIMITS.progressMsMin,
      EVENTS_LIMITS.progressMsMax,
    );
    if (options.progressMs !== undefined) {
      query.set("progressMs", String(options.progressMs));
    }
    if (options.prevValue) query.set("prevValue", "1");
    return this.#watch<T>(query, options);
  }

  async *#watch<T>(
    query: URLSearchParams,
    options: EventsWatchOptions,
  ): AsyncGenerator<EventsWatchFrame<T>> {
    for await (
      const frame of watchFrames(
        this.#streams,
        query,
        options.fromRevision,
        options.signal,
      )
    ) {
      yield frame.kind === "event"
        ? { kind: "event", event: eventFromWire<T>(frame.event) }
        : frame;
    }
  }

  /**
   * One page of matching events; continue with `after: page.cursor` while
   * the page has a cursor.
   *
   * @throws {TypeError} For a malformed selector or type pattern.
   * @throws {RangeError} For a revision or limit out of range, or `toRevision` before `fromRevision`.
   * @throws {CompactedError} When `fromRevision` is below the window.
   */
  async list<T = unknown>(
    options: EventsListOptions = {},
  ): Promise<EventsListPage<T>> {
    const request: {
      -readonly [K in keyof EventsListRequest]: EventsListRequest[K];
    } = {};
    if (options.selector !== undefined) {
      request.selector = selectorToWire(options.selector);
    }
    if (options.types !== undefined) {
      checkTypes(options.types);
      request.types = [...options.types];
    }
    checkRevision(options.fromRevision, "fromRevision");
    checkRevision(options.toRevision, "toRevision");
    if (
      options.fromRevision !== undefined &&
      options.toRevision !== undefined &&
      options.toRevision < options.fromRevision
    ) {
      throw new RangeError(
        `Invalid toRevision: must be at least fromRevision ${options.fromRevision}: received ${options.toRevision}`,
      );
    }
    checkWithin(options.limit, "limit", 1, EVENTS_LIMITS.listLimitMax);
    if (options.after !== undefined) {
      if (typeof options.after !== "string" || !EVENT_ID.test(options.after)) {
        throw new TypeError(
          `Invalid after: expected an event id 'R.I': received '${
            String(options.after).slice(0, 40)
          }'`,
        );
      }
      request.after = options.after;
    }
    if (options.fromRevision !== undefined) {
      request.fromRevision = options.fromRevision;
    }
    if (options.toRevision !== undefined) {
      request.toRevision = options.toRevision;
    }
    if (options.limit !== undefined) request.limit = options.limit;
    if (options.prevValue) request.prevValue = true;
    let reply: EventsListResponse;
    try {
      reply = await this.#transport.request(
        "POST",
        ROUTES.eventsList,
        request,
        "idempotent",
      ) as EventsListResponse;
    } catch (error) {
      if (error instanceof CompactedError && error.fromRevision === null) {
        throw new CompactedError(
          options.after === undefined
            ? options.fromRevision ?? null
            : Number(options.after.split(".")[0]),
          error.compactRevision,
          { cause: error, url: error.url },
        );
      }
      throw error;
    }
    return {
      events: reply.events.map((wire) => eventFromWire<T>(wire)),
      nextRevision: reply.nextRevision,
      ...(reply.cursor === undefined ? {} : { cursor: reply.cursor }),
      compactRevision: reply.compactRevision,
      headRevision: reply.headRevision,
    };
  }

  /** The answering node's history window, head and watch streams. */
  async status(): Promise<EventsStatus> {
    const reply = await this.#transport.request(
      "GET",
      ROUTES.eventsStatus,
      undefined,
      "idempotent",
    ) as EventsStatusResponse;
    return { ...reply };
  }
}
