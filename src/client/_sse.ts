/**
 * A `text/event-stream` GET that reconnects: events as `{id, data}`, a
 * dropped connection resumed on the next node with `Last-Event-ID`, until
 * the caller's signal or the client's close. Final refusals (bad request,
 * auth, limits) end it with their typed error. Private to `src/client/`.
 *
 * @module
 */
import { CLUSTER_ID_HEADER } from "./_transport.ts";
import { sleepFor } from "./_timers.ts";
import {
  AuthError,
  errorFromWire,
  InvalidRequestError,
  LimitExceededError,
} from "./errors.ts";

/** Pauses before reconnecting, ms, by consecutive failures (last repeats). */
const RECONNECT_MS = [0, 100, 200, 500, 1_000];

/** What the streams need beyond the transport: how to reach a node. */
export interface StreamConnector {
  /** The node URLs, the preferred first. */
  readonly urls: () => readonly string[];
  readonly token: string | undefined;
  readonly clusterId: string | undefined;
  readonly fetch: typeof fetch;
  /** Aborted when the client closes. */
  readonly closed: AbortSignal;
}

/** One server-sent event. */
export interface ServerEvent {
  /** Its `id:` field ("" when none). */
  readonly id: string;
  /** Its `event:` field ("" when none: a `message`). */
  readonly event: string;
  /** Its `data:` lines, joined by newlines. */
  readonly data: string;
}

function isFinal(error: unknown): boolean {
  return error instanceof InvalidRequestError ||
    error instanceof LimitExceededError || error instanceof AuthError;
}

/**
 * Characters one event (its lines not yet dispatched) may hold: far above
 * any frame a node sends (an event with a 64 KiB value and previous value
 * in base64 is under 200,000), so a broken stream cannot grow memory
 * without bound.
 */
export const SSE_FRAME_CHARS_MAX = 1024 * 1024;

/**
 * Parses an event stream's bytes into events (comments are keep-alives).
 *
 * @throws {LimitExceededError} When one event exceeds `frameCharsMax` characters.
 */
export async function* parseEvents(
  body: ReadableStream<Uint8Array>,
  frameCharsMax: number = SSE_FRAME_CHARS_MAX,
): AsyncGenerator<ServerEvent> {
  const decoder = new TextDecoder();
  let buffered = "";
  let id = "";
  let event = "";
  let data: string[] = [];
  let dataChars = 0;
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline = buffered.search(/\r?\n/);
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(
        newline + (buffered[newline] === "\r" ? 2 : 1),
      );
      newline = buffered.search(/\r?\n/);
      if (line === "") {
        if (data.length > 0) yield { id, event, data: data.join("\n") };
        data = [];
        dataChars = 0;
        // The id persists (the last event id); the type is per event.
        event = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") {
        data.push(value);
        dataChars += value.length + 1;
      }
    }
    // What is left is one event's start: complete events were dispatched.
    if (buffered.length + dataChars > frameCharsMax) {
      throw new LimitExceededError(
        "limitExceeded",
        `Cannot read the event stream: an event exceeds ${frameCharsMax} characters`,
        { details: { limit: "sseFrameChars", max: frameCharsMax } },
      );
    }
  }
}

/**
 * Events of `GET path` from the cluster's nodes, reconnecting as the
 * module doc says; `lastEventId` is the resume point of the first request.
 *
 * @throws {AspenError} A final refusal (bad request, auth, limit).
 */
export async function* eventStream(
  connector: StreamConnector,
  path: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<ServerEvent> {
  const stop = AbortSignal.any(
    signal === undefined ? [connector.closed] : [signal, connector.closed],
  );
  let lastEventId = "";
  let failures = 0;
  let offset = 0;
  while (!stop.aborted) {
    const urls = connector.urls();
    const url = urls[offset % urls.length]!.replace(/\/+$/, "");
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (connector.token !== undefined) {
      headers.authorization = `Bearer ${connector.token}`;
    }
    if (connector.clusterId !== undefined) {
      headers[CLUSTER_ID_HEADER] = connector.clusterId;
    }
    if (lastEventId !== "") headers["last-event-id"] = lastEventId;
    let delivered = false;
    try {
      const response = await connector.fetch(url + path, {
        headers,
        signal: stop,
      });
      if (!response.ok || response.body === null) {
        let body: unknown = null;
        try {
          body = await response.json();
        } catch {
          // No typed body: the status names the refusal.
        }
        throw errorFromWire(response.status, body, url);
      }
      for await (const event of parseEvents(response.body)) {
        delivered = true;
        failures = 0;
        if (event.id !== "") lastEventId = event.id;
        yield event;
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
