/**
 * The `/v1/events/...` handlers (issue 17): `GET /v1/events/watch`, a
 * `text/event-stream` of the history from a position (resumable with
 * `Last-Event-ID: R.I`), `POST /v1/events/list`, a page of it, and `GET
 * /v1/events/status`, the window. Any node serves them from its applied
 * state. The protocol is in `protocol/http_api_events.ts`;
 * {@linkcode eventsRoutes} registers the routes.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import { HTTP_API_LIMITS, ROUTES } from "../../protocol/http_api.ts";
import {
  EVENT_TYPE_PATTERN,
  EVENTS_LIMITS,
  type EventsListResponse,
  type EventsStatusResponse,
  type WireEvent,
} from "../../protocol/http_api_events.ts";
import {
  describe,
  encodeBody,
  keyToWire,
  valueToWire,
  WireFormatError,
} from "../../protocol/http_api_codec.ts";
import { decodeKey } from "../../model/key_codec.ts";
import { versionstampToString } from "../../model/versionstamp.ts";
import {
  type EventPosition,
  EventsCompactedError,
  type EventsPort,
  type HistoryEvent,
  type KeySelector,
  matches,
  parseEventId as parseServiceEventId,
  SelectorError,
  type TypeMatcher,
  typeMatcher,
  type WatchFrame,
  WatchStreamsFullError,
} from "../../services/events/api.ts";
import { fields, keyBytes, optionalInteger } from "./_parse.ts";
import { reply } from "./_body.ts";
import { HttpApiError } from "./_errors.ts";
import { type RouteContext, streamLease } from "./_route_context.ts";
import { sseFrame, sseResponse } from "./_sse.ts";

/** Revisions stay below 2^53 (log indexes). */
const REVISION_MAX = Number.MAX_SAFE_INTEGER;

function bad(message: string): WireFormatError {
  return new WireFormatError("badRequest", message);
}

function eventsOf(node: NodeApi): EventsPort {
  if (node.events === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use events: this node serves none",
    );
  }
  return node.events;
}

/** Runs `work`, answering the events service's refusals as API errors. */
async function eventsCall<T>(work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof EventsCompactedError) {
      throw new HttpApiError("compacted", error.message, {
        fromRevision: Number(error.fromRevision),
        compactRevision: Number(error.compactRevision),
      });
    }
    if (error instanceof WatchStreamsFullError) {
      throw new HttpApiError("unavailable", error.message, {
        max: error.max,
      });
    }
    if (error instanceof SelectorError) {
      throw new HttpApiError("invalid", error.message);
    }
    throw error;
  }
}

/** An event in its wire form; `prevValue` only when asked for. */
export function eventToWire(
  event: HistoryEvent,
  prevValue: boolean,
): WireEvent {
  const base = {
    id: `${event.revision}.${event.index}`,
    revision: Number(event.revision),
    index: event.index,
    type: event.type,
  };
  if (event.key === undefined) {
    return event.data === undefined ? base : { ...base, data: event.data };
  }
  const after = event.after ?? null;
  const before = event.before ?? null;
  return {
    ...base,
    key: keyToWire(decodeKey(event.key)),
    value: after === null ? null : valueToWire(after.encoding, after.value),
    versionstamp: after === null
      ? null
      : versionstampToString(after.versionstamp),
    prevVersionstamp: before === null
      ? null
      : versionstampToString(before.versionstamp),
    ...(prevValue
      ? {
        prevValue: before === null
          ? null
          : valueToWire(before.encoding, before.value),
      }
      : {}),
    ...(event.cause === undefined ? {} : { cause: event.cause }),
  };
}

/** A wire selector (JSON wire keys) → its encoded form. */
export function selectorFromWire(
  wire: { prefix?: unknown; start?: unknown; end?: unknown },
): KeySelector {
  const { prefix, start, end } = wire;
  if (prefix !== undefined) {
    if (start !== undefined || end !== undefined) {
      throw bad(
        "Invalid selector: give either 'prefix' or 'start' and 'end', not both",
      );
    }
    return { kind: "prefix", prefix: keyBytes(prefix, "prefix") };
  }
  if (start === undefined && end === undefined) return { kind: "all" };
  if (start === undefined || end === undefined) {
    throw bad("Invalid selector: 'start' and 'end' go together");
  }
  const range = {
    kind: "range" as const,
    start: keyBytes(start, "start"),
    end: keyBytes(end, "end"),
  };
  return range;
}

/**
 * Type patterns from a body field (a list) or a query (comma-separated):
 * at most 16, each a name or a trailing-`*` glob; default `["kv.*"]`.
 *
 * @throws {WireFormatError} `badRequest`; {@linkcode HttpApiError} `limitExceeded` beyond 16.
 */
export function typePatterns(value: unknown, field: string): string[] {
  if (value === undefined) return ["kv.*"];
  const list = typeof value === "string"
    ? value.split(",").map((t) => t.trim())
    : value;
  if (
    !Array.isArray(list) || list.some((t) => typeof t !== "string")
  ) {
    throw bad(
      `Invalid '${field}': expected a list of type patterns, received ${
        describe(value)
      }`,
    );
  }
  if (list.length > EVENTS_LIMITS.typesMax) {
    throw new HttpApiError(
      "limitExceeded",
      `Invalid '${field}': at most ${EVENTS_LIMITS.typesMax} type patterns, received ${list.length}`,
      { limit: "types", max: EVENTS_LIMITS.typesMax },
    );
  }
  if (list.length === 0) {
    throw bad(`Invalid '${field}': expected at least one type pattern`);
  }
  for (const pattern of list as string[]) {
    if (!EVENT_TYPE_PATTERN.test(pattern)) {
      throw bad(
        `Invalid '${field}': '${
          pattern.slice(0, 64)
        }' is not a type name like 'kv.set' or a glob like 'kv.*'`,
      );
    }
  }
  return list as string[];
}

function typesFrom(value: unknown, field: string): TypeMatcher {
  const patterns = typePatterns(value, field);
  try {
    return typeMatcher(patterns);
  } catch (error) {
    if (error instanceof SelectorError) throw bad(error.message);
    throw error;
  }
}

/**
 * An event id `"R.I"` (`Last-Event-ID`, a list cursor) → the position
 * strictly after it.
 *
 * @throws {WireFormatError} `badRequest` for anything else.
 */
export function parseEventId(text: string, field: string): EventPosition {
  const at = parseServiceEventId(text.trim());
  if (at === null) {
    throw bad(
      `Invalid '${field}': expected an event id 'R.I' (revision.index), received '${
        text.slice(0, 40)
      }'`,
    );
  }
  return { after: { revision: BigInt(at.revision), index: at.index } };
}

const WATCH_PARAMETERS = [
  "prefix",
  "start",
  "end",
  "types",
  "fromRevision",
  "prevValue",
  "progressMs",
];

function jsonParameter(c: Context, name: string): unknown {
  const text = c.req.query(name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw bad(
      `Invalid '${name}': expected a URL-encoded JSON wire key, received '${
        text.slice(0, 64)
      }'`,
    );
  }
}

function integerParameter(
  c: Context,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const text = c.req.query(name);
  if (text === undefined) return undefined;
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw bad(
      `Invalid '${name}': expected an integer from ${min} to ${max}, received '${
        text.slice(0, 40)
      }'`,
    );
  }
  return value;
}

function booleanParameter(c: Context, name: string): boolean {
  const text = c.req.query(name);
  if (text === undefined || text === "0" || text === "false") return false;
  if (text === "1" || text === "true") return true;
  throw bad(
    `Invalid '${name}': expected 1 or 0, received '${text.slice(0, 40)}'`,
  );
}

/** A parsed watch request. */
export interface ParsedWatch {
  readonly selector: KeySelector;
  readonly types: TypeMatcher;
  readonly position?: EventPosition;
  readonly prevValue: boolean;
  readonly progressMs: number;
}

/** The watch's query and `Last-Event-ID` → the request, every field checked. */
export function parseWatchQuery(c: Context): ParsedWatch {
  for (const name of Object.keys(c.req.queries())) {
    if (!WATCH_PARAMETERS.includes(name)) {
      throw bad(
        `Invalid query: unknown parameter '${name.slice(0, 40)}' (expected ${
          WATCH_PARAMETERS.map((p) => `'${p}'`).join(", ")
        })`,
      );
    }
  }
  const selector = selectorFromWire({
    prefix: jsonParameter(c, "prefix"),
    start: jsonParameter(c, "start"),
    end: jsonParameter(c, "end"),
  });
  const types = typesFrom(c.req.query("types"), "types");
  const fromRevision = integerParameter(c, "fromRevision", 0, REVISION_MAX);
  const progressMs = integerParameter(
    c,
    "progressMs",
    EVENTS_LIMITS.progressMsMin,
    EVENTS_LIMITS.progressMsMax,
  ) ?? EVENTS_LIMITS.progressMsDefault;
  const lastEventId = c.req.header("last-event-id");
  const position: EventPosition | undefined =
    lastEventId !== undefined && lastEventId.trim() !== ""
      ? parseEventId(lastEventId, "Last-Event-ID")
      : fromRevision === undefined
      ? undefined
      : { from: BigInt(fromRevision) };
  return {
    selector,
    types,
    ...(position === undefined ? {} : { position }),
    prevValue: booleanParameter(c, "prevValue"),
    progressMs,
  };
}

const decoder = new TextDecoder();

function jsonText(value: unknown): string {
  return decoder.decode(encodeBody(value, "json"));
}

/** One watch frame as SSE bytes. */
export function watchFrameBytes(
  frame: WatchFrame,
  prevValue: boolean,
): Uint8Array {
  switch (frame.kind) {
    case "event":
      return sseFrame(
        {
          id: `${frame.event.revision}.${frame.event.index}`,
          event: frame.event.type,
        },
        jsonText(eventToWire(frame.event, prevValue)),
      );
    case "synced":
    case "progress":
      return sseFrame(
        { event: frame.kind },
        JSON.stringify({ revision: Number(frame.revision) }),
      );
    case "compacted":
      return sseFrame(
        { event: "compacted" },
        JSON.stringify({
          fromRevision: Number(frame.fromRevision),
          compactRevision: Number(frame.compactRevision),
        }),
      );
  }
}

function watch(ctx: RouteContext, c: Context): Promise<Response> {
  const request = parseWatchQuery(c);
  const events = eventsOf(ctx.node);
  const slot = streamLease(ctx.streams, c);
  return sseResponse(
    c.req.raw.signal,
    (signal) => eventsCall(() => events.watch(request, signal)),
    (frame) => watchFrameBytes(frame, request.prevValue),
    HTTP_API_LIMITS.watchKeepAliveMs,
    () => slot.release(),
  );
}

/** A parsed list request. */
export interface ParsedList {
  readonly selector: KeySelector;
  readonly types: TypeMatcher;
  readonly position: EventPosition | null;
  readonly toRevision?: number;
  readonly limit: number;
  readonly prevValue: boolean;
}

/** `EventsListRequest` → its fields, validated. */
export function parseEventsList(body: unknown): ParsedList {
  const f = fields(body, [
    "selector",
    "types",
    "fromRevision",
    "after",
    "toRevision",
    "limit",
    "prevValue",
  ]);
  const selector = f.selector === undefined
    ? { kind: "all" as const }
    : selectorFromWire(fields(f.selector, ["prefix", "start", "end"]));
  const fromRevision = optionalInteger(
    f.fromRevision,
    "fromRevision",
    0,
    REVISION_MAX,
  );
  const toRevision = optionalInteger(
    f.toRevision,
    "toRevision",
    0,
    REVISION_MAX,
  );
  if (f.after !== undefined && typeof f.after !== "string") {
    throw bad(
      `Invalid 'after': expected an event id 'R.I', received ${
        describe(f.after)
      }`,
    );
  }
  if (f.prevValue !== undefined && typeof f.prevValue !== "boolean") {
    throw bad(
      `Invalid 'prevValue': expected a boolean, received ${
        describe(f.prevValue)
      }`,
    );
  }
  const position: EventPosition | null = f.after !== undefined
    ? parseEventId(f.after as string, "after")
    : fromRevision === undefined
    ? null
    : { from: BigInt(fromRevision) };
  return {
    selector,
    types: typesFrom(f.types, "types"),
    position,
    ...(toRevision === undefined ? {} : { toRevision }),
    limit: optionalInteger(f.limit, "limit", 1, EVENTS_LIMITS.listLimitMax) ??
      EVENTS_LIMITS.listLimitDefault,
    prevValue: f.prevValue === true,
  };
}

/** Answers a list request from `events`. */
export function listEvents(
  events: EventsPort,
  request: ParsedList,
): EventsListResponse {
  const window = events.window();
  const position = request.position ?? { from: window.floor };
  const page = events.page(position, {
    limit: request.limit,
    keep: (event) => matches(request.selector, request.types, event),
    ...(request.toRevision === undefined
      ? {}
      : { to: BigInt(request.toRevision) }),
  });
  const next = page.next;
  return {
    events: page.events.map((event) => eventToWire(event, request.prevValue)),
    nextRevision: Number("from" in next ? next.from : next.after.revision),
    ...(page.done || !("after" in next)
      ? {}
      : { cursor: `${next.after.revision}.${next.after.index}` }),
    compactRevision: Number(window.floor),
    headRevision: Number(window.head),
  };
}

/** The window and the streams served. */
export function eventsStatus(events: EventsPort): EventsStatusResponse {
  const window = events.window();
  return {
    compactRevision: Number(window.floor),
    headRevision: Number(window.head),
    events: window.count,
    bytes: window.bytes,
    bytesMax: events.bytesMax,
    streams: events.streams(),
  };
}

/** Registers the `/v1/events/...` routes on `app`. */
export function eventsRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  app.get(ROUTES.eventsWatch, (c) => watch(ctx, c));
  app.post(ROUTES.eventsList, async (c) => {
    const request = parseEventsList(await body(c));
    const events = eventsOf(node);
    return reply(c, await eventsCall(() => listEvents(events, request)));
  });
  app.get(ROUTES.eventsStatus, (c) => reply(c, eventsStatus(eventsOf(node))));
}
