/**
 * The reconnecting `GET /v1/events/watch` stream behind
 * `client.events.watch`: wire frames in `(revision, index)` order, a dropped
 * connection (a node failing, a cut stream, a busy node) resumed on the next
 * node with `Last-Event-ID` set to the last event yielded, so the reader
 * sees no gap and no duplicate. Before any event it resumes from the
 * revision after the newest mark (`synced`, `progress`) yielded, or from the
 * caller's `fromRevision`. A 410 or a `compacted` frame ends it with a
 * {@linkcode CompactedError}; other final refusals (bad request, auth,
 * limits) with their typed error. Private to `src/client/`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import { WireFormatError } from "../protocol/http_api_codec.ts";
import type {
  WireEvent,
  WireWatchCompacted,
  WireWatchMark,
} from "../protocol/http_api_events.ts";
import { CLUSTER_ID_HEADER } from "./_transport.ts";
import { parseEvents, type ServerEvent, type StreamConnector } from "./_sse.ts";
import { sleepFor } from "./_timers.ts";
import {
  AuthError,
  CompactedError,
  errorFromWire,
  InvalidRequestError,
  LimitExceededError,
} from "./errors.ts";

/** Pauses before reconnecting, ms, by consecutive failed attempts (last repeats). */
const RECONNECT_MS = [0, 100, 250, 500, 1_000, 2_000];

/** Pattern of an event id, `R.I` in decimal. */
export const EVENT_ID = /^(0|[1-9][0-9]{0,15})\.(0|[1-9][0-9]{0,9})$/;

/** A frame of the watch as the wire carries it (`compacted` ends the stream instead). */
export type WireWatchFrame =
  | { readonly kind: "event"; readonly event: WireEvent }
  | { readonly kind: "synced" | "progress"; readonly revision: number };

/** Where a watch resumes: after an event, or from a revision. */
interface Position {
  readonly revision: number;
  readonly index: number;
  readonly id: string;
}

function isFinal(error: unknown): boolean {
  return error instanceof InvalidRequestError ||
    error instanceof LimitExceededError || error instanceof AuthError ||
    error instanceof CompactedError || error instanceof WireFormatError;
}

function isRevision(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

function parseData(event: ServerEvent, url: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(event.data);
  } catch (error) {
    throw new WireFormatError(
      "badRequest",
      `Malformed events frame from ${url}: ${(error as Error).message}`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new WireFormatError(
      "badRequest",
      `Malformed events frame from ${url}: expected an object`,
    );
  }
  return parsed as Record<string, unknown>;
}

/** The event of an `id:` frame, its id and order checked. */
function eventOf(event: ServerEvent, url: string): WireEvent {
  const data = parseData(event, url) as Partial<WireEvent>;
  const id = event.id === "" ? data.id : event.id;
  const match = typeof id === "string" ? EVENT_ID.exec(id) : null;
  if (
    match === null || typeof data.type !== "string" ||
    data.revision !== Number(match[1]) || data.index !== Number(match[2])
  ) {
    throw new WireFormatError(
      "badRequest",
      `Malformed event from ${url}: id '${id}' does not match its revision ${data.revision} and index ${data.index}`,
    );
  }
  return { ...data, id } as WireEvent;
}

function markOf(event: ServerEvent, url: string): number {
  const data = parseData(event, url) as Partial<WireWatchMark>;
  if (!isRevision(data.revision)) {
    throw new WireFormatError(
      "badRequest",
      `Malformed '${event.event}' frame from ${url}: no revision`,
    );
  }
  return data.revision;
}

function compactedOf(event: ServerEvent, url: string): CompactedError {
  const data = parseData(event, url) as Partial<WireWatchCompacted>;
  return new CompactedError(
    isRevision(data.fromRevision) ? data.fromRevision : null,
    isRevision(data.compactRevision) ? data.compactRevision : 0,
    { url },
  );
}

/** True when `event` comes after `position` in `(revision, index)` order. */
function isAfter(event: WireEvent, position: Position | null): boolean {
  return position === null || event.revision > position.revision ||
    (event.revision === position.revision && event.index > position.index);
}

/**
 * The frames of `GET /v1/events/watch?query` from the cluster's nodes,
 * reconnecting as the module doc says, until `signal` aborts, the client
 * closes, or a final refusal.
 *
 * @param query The selector, types, prevValue and progressMs parameters (no `fromRevision`).
 * @param fromRevision The first revision wanted; undefined for the node's next.
 * @throws {CompactedError} When the start (or a resume) is below the window.
 * @throws {AspenError} A final refusal (bad request, auth, limit).
 * @throws {WireFormatError} For a frame that does not follow the protocol.
 */
export async function* watchFrames(
  connector: StreamConnector,
  query: URLSearchParams,
  fromRevision: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<WireWatchFrame> {
  const stop = AbortSignal.any(
    signal === undefined ? [connector.closed] : [signal, connector.closed],
  );
  // The last event yielded (the resume point), and the newest revision
  // yielded, an event's or a mark's (older marks are stale; before any
  // event, every matching event up to a mark's revision was seen).
  let last: Position | null = null;
  let newest = -1;
  let failures = 0;
  let offset = 0;
  while (!stop.aborted) {
    const urls = connector.urls();
    const url = urls[offset % urls.length]!.replace(/\/+$/, "");
    const params = new URLSearchParams(query);
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (connector.token !== undefined) {
      headers.authorization = `Bearer ${connector.token}`;
    }
    if (connector.clusterId !== undefined) {
      headers[CLUSTER_ID_HEADER] = connector.clusterId;
    }
    // Last-Event-ID wins over fromRevision on the server; before any event,
    // the newest mark tells where nothing can have been missed.
    let asked: number | null = fromRevision ?? null;
    if (last !== null) {
      headers["last-event-id"] = last.id;
      asked = last.revision;
    } else if (newest >= 0) {
      asked = Math.max(fromRevision ?? 0, newest + 1);
    }
    if (last === null && asked !== null) {
      params.set("fromRevision", String(asked));
    }
    let delivered = false;
    try {
      const response = await connector.fetch(
        `${url}${ROUTES.eventsWatch}?${params}`,
        { headers, signal: stop },
      );
      if (!response.ok || response.body === null) {
        let body: unknown = null;
        try {
          body = await response.json();
        } catch {
          // No typed body: the status names the refusal.
        }
        const error = errorFromWire(response.status, body, url);
        if (error instanceof CompactedError && error.fromRevision === null) {
          throw new CompactedError(asked, error.compactRevision, {
            cause: error,
            url,
          });
        }
        throw error;
      }
      for await (const event of parseEvents(response.body)) {
        delivered = true;
        failures = 0;
        if (event.event === "compacted") throw compactedOf(event, url);
        if (event.event === "synced" || event.event === "progress") {
          const revision = markOf(event, url);
          // A lagging node after a reconnect: a mark never goes back in time.
          if (revision < newest) continue;
          newest = revision;
          yield { kind: event.event, revision };
          continue;
        }
        // Events carry their type as the SSE event name; others are ignored.
        if (event.event === "" || event.event === "message") continue;
        const wire = eventOf(event, url);
        if (!isAfter(wire, last)) continue; // already yielded
        last = { revision: wire.revision, index: wire.index, id: wire.id };
        newest = Math.max(newest, wire.revision);
        yield { kind: "event", event: wire };
      }
    } catch (error) {
      if (stop.aborted) return;
      // Anything else (a node down, unavailable, a cut stream) is retried.
      if (isFinal(error)) throw error;
    }
    // Dropped or refused: resume on the next node.
    if (!delivered) failures++;
    offset++;
    await sleepFor(
      RECONNECT_MS[Math.min(failures, RECONNECT_MS.length - 1)]!,
      stop,
    );
  }
}
