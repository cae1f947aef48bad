/**
 * A small in-memory server speaking the events protocol of
 * `src/protocol/http_api_events.ts` (watch over SSE, list, status) with its
 * typed error bodies and bearer check, on 127.0.0.1 (one or more listeners
 * sharing one history, to test a watch resuming on another node). For the
 * client and CLI tests; the real node's events front end is tested
 * elsewhere.
 *
 * Its knobs make the faults a watch must survive: {@linkcode
 * FakeEventsServer.drop} cuts every open stream (optionally in the middle of
 * a frame), `replayOverlap` makes a resumed stream start some events early
 * (a buggy or lagging node), {@linkcode FakeEventsServer.compact} moves the
 * window's start, {@linkcode FakeEventsServer.overtake} sends open streams
 * a `compacted` frame, and
 * `refuseWatches` answers the next watches with a status.
 *
 * @module
 */
import { ERROR_STATUS, type ErrorCode } from "../../src/protocol/http_api.ts";
import {
  EVENTS_LIMITS,
  type EventsListRequest,
  type EventsStatusResponse,
  type WireEvent,
  type WireSelector,
} from "../../src/protocol/http_api_events.ts";
import {
  keyFromWire,
  keyToWire,
  toBase64,
} from "../../src/protocol/http_api_codec.ts";
import { encodeKey } from "../../src/model/key_codec.ts";
import type { KvKey } from "../../src/model/key_codec.ts";
import { valueToWire } from "../../src/client/_values.ts";
import {
  type KeySelector,
  matches,
  typeMatcher,
} from "../../src/services/events/selector.ts";

/** Options of {@linkcode startFakeEventsServer}. */
export interface FakeEventsServerOptions {
  /** Bearer token every route needs. Default: none needed. */
  readonly token?: string;
  /** Listeners (URLs) sharing the history. Default 1. */
  readonly listeners?: number;
}

/** What one watch request asked for. */
export interface WatchConnection {
  /** The listener's URL. */
  readonly url: string;
  readonly lastEventId: string | null;
  readonly query: URLSearchParams;
  /** The answer's status. */
  status: number;
}

interface Stream {
  readonly selector: KeySelector;
  readonly types: (type: string) => boolean;
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
  /** Position of the last event sent: index into the history. */
  sent: number;
  closed: boolean;
}

/** A running fake events server. */
export interface FakeEventsServer {
  readonly urls: readonly string[];
  /** Every watch request, in arrival order. */
  readonly watches: readonly WatchConnection[];
  /** Bodies of list requests, in order. */
  readonly lists: readonly EventsListRequest[];
  /** Open watch streams now. */
  streams(): number;
  /** Appends a `kv.set` of `value` (a JS value, as the client writes it). */
  set(key: KvKey, value: unknown): WireEvent;
  /** Appends a `kv.delete`. */
  delete(key: KvKey): WireEvent;
  /** Appends a non-KV event. */
  fact(type: string, data: Record<string, unknown>): WireEvent;
  /** Every event appended, in order. */
  history(): readonly WireEvent[];
  /** Cuts every open stream; with `midFrame`, after half of a next frame. */
  drop(midFrame?: boolean): void;
  /** Moves the window's start to `revision` (later watches below it get 410). */
  compact(revision: number): void;
  /** Sends every open stream a `compacted` frame (overtaken readers), then ends it. */
  overtake(): void;
  /** A resumed stream starts this many events before its Last-Event-ID. */
  replayOverlap: number;
  /** The next `count` watches are answered with `code`. */
  refuseWatches(count: number, code: ErrorCode): void;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function wireJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v) => v instanceof Uint8Array ? toBase64(v) : v,
  );
}

function errorResponse(code: ErrorCode, message: string, details = {}) {
  return Response.json({ error: { code, message, details } }, {
    status: ERROR_STATUS[code],
  });
}

function keySelectorOf(selector: WireSelector): KeySelector {
  if ("prefix" in selector) {
    return { kind: "prefix", prefix: encodeKey(keyFromWire(selector.prefix)) };
  }
  if ("start" in selector) {
    return {
      kind: "range",
      start: encodeKey(keyFromWire(selector.start)),
      end: encodeKey(keyFromWire(selector.end)),
    };
  }
  return { kind: "all" };
}

function eventFrame(event: WireEvent): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${wireJson(event)}\n\n`;
}

function markFrame(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Starts the fake server.
 *
 * @example
 * ```ts ignore
 * const server = startFakeEventsServer({ listeners: 2 });
 * server.set(["a"], "x");
 * await server.close();
 * ```
 */
export function startFakeEventsServer(
  options: FakeEventsServerOptions = {},
): FakeEventsServer {
  const events: WireEvent[] = [];
  const watches: WatchConnection[] = [];
  const lists: EventsListRequest[] = [];
  const streams = new Set<Stream>();
  let revision = 100;
  let compactRevision = 1;
  let refusals: { count: number; code: ErrorCode } = {
    count: 0,
    code: "unavailable",
  };
  let midFrameDrop = false;

  const keyOf = (event: WireEvent) =>
    event.key === undefined ? undefined : encodeKey(keyFromWire(event.key));
  const keep = (stream: Stream, event: WireEvent) =>
    matches(stream.selector, stream.types, {
      type: event.type,
      key: keyOf(event),
    });

  function send(stream: Stream, text: string): void {
    if (stream.closed) return;
    try {
      stream.controller.enqueue(encoder.encode(text));
    } catch {
      stream.closed = true;
      streams.delete(stream);
    }
  }

  function end(stream: Stream): void {
    if (stream.closed) return;
    stream.closed = true;
    streams.delete(stream);
    try {
      stream.controller.close();
    } catch {
      // The reader went away already.
    }
  }

  function pump(stream: Stream): void {
    while (!stream.closed && stream.sent < events.length) {
      const event = events[stream.sent]!;
      stream.sent++;
      if (keep(stream, event)) send(stream, eventFrame(event));
    }
  }

  function append(event: Omit<WireEvent, "id" | "revision" | "index">) {
    revision++;
    const full = { id: `${revision}.0`, revision, index: 0, ...event };
    events.push(full);
    for (const stream of [...streams]) {
      if (midFrameDrop) {
        const frame = eventFrame(full);
        send(stream, frame.slice(0, Math.floor(frame.length / 2)));
        end(stream);
      } else pump(stream);
    }
    midFrameDrop = false;
    return full;
  }

  /** Index in `events` of the first event after `id`, or of `fromRevision`. */
  function startOf(lastEventId: string | null, fromRevision: number): number {
    if (lastEventId !== null) {
      const [r, i] = lastEventId.split(".").map(Number) as [number, number];
      const after = events.findIndex((e) =>
        e.revision > r || (e.revision === r && e.index > i)
      );
      return after === -1 ? events.length : after;
    }
    const from = events.findIndex((e) => e.revision >= fromRevision);
    return from === -1 ? events.length : from;
  }

  function watch(request: Request, url: string): Response {
    const query = new URL(request.url).searchParams;
    const lastEventId = request.headers.get("last-event-id");
    const connection: WatchConnection = { url, lastEventId, query, status: 0 };
    watches.push(connection);
    if (refusals.count > 0) {
      refusals.count--;
      connection.status = ERROR_STATUS[refusals.code];
      return errorResponse(refusals.code, `Refused: ${refusals.code}`);
    }
    let selector: WireSelector = {};
    const prefix = query.get("prefix");
    const start = query.get("start");
    const endKey = query.get("end");
    if (prefix !== null) selector = { prefix: JSON.parse(prefix) };
    else if (start !== null && endKey !== null) {
      selector = { start: JSON.parse(start), end: JSON.parse(endKey) };
    }
    const types = query.get("types")?.split(",") ?? ["kv.*"];
    const fromText = query.get("fromRevision");
    const position = lastEventId !== null
      ? Number(lastEventId.split(".")[0])
      : fromText === null
      ? revision + 1
      : Number(fromText);
    if (position < compactRevision) {
      connection.status = 410;
      return errorResponse("compacted", "Below the window", {
        compactRevision,
      });
    }
    let first = startOf(lastEventId, position);
    if (lastEventId !== null) {
      first = Math.max(0, first - fake.replayOverlap);
    }
    connection.status = 200;
    let opened: Stream | null = null;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const stream: Stream = {
          selector: keySelectorOf(selector),
          types: typeMatcher(types),
          controller,
          sent: first,
          closed: false,
        };
        opened = stream;
        streams.add(stream);
        pump(stream);
        send(stream, markFrame("synced", { revision }));
      },
      cancel() {
        if (opened === null) return;
        opened.closed = true;
        streams.delete(opened);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream" },
    });
  }

  async function list(request: Request): Promise<Response> {
    const body = await request.json() as EventsListRequest;
    lists.push(body);
    const from = body.after !== undefined
      ? Number(body.after.split(".")[0])
      : body.fromRevision ?? compactRevision;
    if (from < compactRevision) {
      return errorResponse("compacted", "Below the window", {
        compactRevision,
      });
    }
    const selector = keySelectorOf(body.selector ?? {});
    const types = typeMatcher(body.types);
    const limit = body.limit ?? EVENTS_LIMITS.listLimitDefault;
    const to = body.toRevision ?? revision;
    const start = body.after === undefined
      ? startOf(null, from)
      : startOf(body.after, 0);
    const matching = events.slice(start).filter((e) =>
      e.revision <= to &&
      matches(selector, types, { type: e.type, key: keyOf(e) })
    );
    const page = matching.slice(0, limit);
    const more = matching.length > limit;
    return new Response(
      wireJson({
        events: page,
        nextRevision: more ? page.at(-1)!.revision : to + 1,
        ...(more ? { cursor: page.at(-1)!.id } : {}),
        compactRevision,
        headRevision: revision,
      }),
      { headers: { "content-type": "application/json" } },
    );
  }

  function status(): Response {
    const answer: EventsStatusResponse = {
      compactRevision,
      headRevision: revision,
      events: events.length,
      bytes: events.reduce((n, e) => n + wireJson(e).length, 0),
      bytesMax: 128 * 1024 * 1024,
      streams: streams.size,
    };
    return Response.json(answer);
  }

  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  const urlOf = (listener: number) =>
    `http://127.0.0.1:${servers[listener]!.addr.port}`;
  for (let listener = 0; listener < (options.listeners ?? 1); listener++) {
    servers.push(Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => {},
    }, async (request) => {
      if (
        options.token !== undefined &&
        request.headers.get("authorization") !== `Bearer ${options.token}`
      ) {
        return errorResponse("unauthorized", "Invalid bearer token");
      }
      const path = new URL(request.url).pathname;
      if (path === "/v1/events/watch") return watch(request, urlOf(listener));
      if (path === "/v1/events/list") return await list(request);
      if (path === "/v1/events/status") return status();
      return errorResponse("notFound", `No route ${path}`);
    }));
  }

  const fake: FakeEventsServer = {
    urls: servers.map((_, listener) => urlOf(listener)),
    watches,
    lists,
    replayOverlap: 0,
    streams: () => streams.size,
    set: (key, value) =>
      append({
        type: "kv.set",
        key: keyToWire(key),
        value: valueToWire(value),
        versionstamp: `${(revision + 1).toString(16).padStart(16, "0")}0000`,
        prevVersionstamp: null,
      }),
    delete: (key) =>
      append({
        type: "kv.delete",
        key: keyToWire(key),
        value: null,
        versionstamp: null,
        prevVersionstamp: null,
        cause: "write",
      }),
    fact: (type, data) => append({ type, data }),
    history: () => events,
    drop(midFrame = false) {
      if (midFrame) midFrameDrop = true;
      else for (const stream of [...streams]) end(stream);
    },
    compact(to) {
      compactRevision = to;
    },
    overtake() {
      for (const stream of [...streams]) {
        send(
          stream,
          markFrame("compacted", {
            fromRevision: events[stream.sent]?.revision ?? revision + 1,
            compactRevision,
          }),
        );
        end(stream);
      }
    },
    refuseWatches(count, code) {
      refusals = { count, code };
    },
    async close() {
      for (const stream of [...streams]) end(stream);
      await Promise.all(servers.map((s) => s.shutdown()));
    },
  };
  return fake;
}
