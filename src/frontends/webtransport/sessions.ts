/**
 * Client streaming over WebTransport (the `h3` side of a node's QUIC
 * listener, path `/v1/wt`). Each bidirectional stream carries one request
 * and its answers as length-prefixed MessagePack frames (WebTransport in Deno
 * 2.9.6 never delivers a stream's end, so nothing relies on one):
 *
 * - request `{ method: "watch", token?, keys: Uint8Array[] }` (1 to 10 encoded keys);
 * - answers `{ entries: (null | { key, value: { encoding, data }, versionstamp })[] }`,
 *   first the current values, then one frame per change (served by the shared
 *   watch stream loop, `../common/watch_stream.ts`);
 * - or `{ error: { code, message } }`, after which the stream is closed
 *   (`badRequest`, `unauthorized`, `tooManyStreams`, `unavailable`: the
 *   node's stream budget or its watch bound is used up, or no read point
 *   could be confirmed).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { tokenAccepted, validateTokens } from "../common/auth.ts";
import { StreamBudget, StreamBudgetError } from "../common/stream_budget.ts";
import { type KvBackend, KvUnavailableError } from "../../services/kv/api.ts";
import { KvInvalidError, KvLimitError } from "../../model/errors.ts";
import { watchStream } from "../common/watch_stream.ts";
import { validateReadKey, validateWatchKeys } from "../../model/limits.ts";
import type { KvEntry } from "../../model/types.ts";
import { encodeFrame, FrameDecoder } from "../../protocol/frame.ts";

/** Largest request frame, in bytes (10 keys of 2 KiB fit easily). */
export const CLIENT_REQUEST_BYTES_MAX = 64 * 1024;
/** Streams one session may have open at once. */
export const CLIENT_STREAMS_PER_SESSION_MAX = 16;

function entryToFrame(entry: KvEntry | null) {
  return entry === null ? null : {
    key: entry.key,
    value: { encoding: entry.value.encoding, data: entry.value.data },
    versionstamp: entry.versionstamp,
  };
}

/**
 * Serves a client's WebTransport session until it closes.
 *
 * @param tokens Accepted access tokens (the data scope); empty refuses every request.
 * @param streams The node's shared budget of long-lived streams.
 */
export async function serveClientSession(
  session: WebTransport,
  backend: KvBackend,
  tokens: readonly string[],
  streams: StreamBudget = new StreamBudget(),
): Promise<void> {
  const accepted = validateTokens(tokens);
  const reader = session.incomingBidirectionalStreams.getReader();
  let open = 0;
  const closed: Promise<void> = session.closed.then(() => {}, () => {});
  try {
    for (;;) {
      const next = await Promise.race([
        reader.read(),
        closed.then(() => ({ done: true as const, value: undefined })),
      ]);
      if (next.done || next.value === undefined) return;
      const stream = next.value;
      if (open >= CLIENT_STREAMS_PER_SESSION_MAX) {
        await refuse(
          stream,
          "tooManyStreams",
          `At most ${CLIENT_STREAMS_PER_SESSION_MAX} streams per session`,
        );
        continue;
      }
      open++;
      void serveStream(stream, backend, accepted, streams, closed).finally(
        () => open--,
      );
    }
  } finally {
    reader.releaseLock();
  }
}

async function refuse(
  stream: WebTransportBidirectionalStream,
  code: string,
  message: string,
): Promise<void> {
  const writer = stream.writable.getWriter();
  try {
    await writer.write(encodeFrame(encode({ error: { code, message } })));
    await writer.close();
  } catch {
    // The client is gone.
  }
}

async function readRequest(
  stream: WebTransportBidirectionalStream,
): Promise<unknown> {
  const decoder = new FrameDecoder(CLIENT_REQUEST_BYTES_MAX);
  const reader = stream.readable.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) throw new TypeError("Stream ended before a request");
      const frames = decoder.push(value);
      if (frames.length > 0) return decode(frames[0]!);
    }
  } finally {
    reader.releaseLock();
  }
}

async function serveStream(
  stream: WebTransportBidirectionalStream,
  backend: KvBackend,
  tokens: readonly Uint8Array[],
  streams: StreamBudget,
  sessionClosed: Promise<void>,
): Promise<void> {
  let request: { method?: unknown; token?: unknown; keys?: unknown };
  try {
    request = await readRequest(stream) as typeof request;
  } catch (error) {
    await refuse(
      stream,
      "badRequest",
      `Invalid request: ${(error as Error).message}`,
    );
    return;
  }
  if (
    !(typeof request.token === "string" &&
      tokenAccepted(request.token, tokens))
  ) {
    await refuse(stream, "unauthorized", "Missing or wrong access token");
    return;
  }
  if (request.method !== "watch") {
    await refuse(
      stream,
      "badRequest",
      `Unknown method '${String(request.method)}' (expected 'watch')`,
    );
    return;
  }
  const keys = request.keys;
  try {
    if (!Array.isArray(keys) || !keys.every((k) => k instanceof Uint8Array)) {
      throw new TypeError("'keys' must be a list of encoded keys");
    }
    validateWatchKeys(keys.length);
    if (keys.length === 0) throw new RangeError("Watch needs at least one key");
    for (const key of keys) validateReadKey(key);
  } catch (error) {
    await refuse(stream, "badRequest", (error as Error).message);
    return;
  }
  let lease;
  try {
    lease = streams.acquire(request.token as string);
  } catch (error) {
    if (!(error instanceof StreamBudgetError)) throw error;
    await refuse(
      stream,
      error.scope === "node" ? "unavailable" : "tooManyStreams",
      error.message,
    );
    return;
  }
  // The shared watch stream loop (no keep-alives: QUIC keeps the session).
  let body: ReadableStream<Uint8Array>;
  try {
    body = watchStream(backend, keys as Uint8Array[], {
      frame: (entries) =>
        encodeFrame(encode({ entries: entries.map(entryToFrame) })),
      keepAlive: null,
      keepAliveMs: 0,
      onEnd: lease.release,
    });
  } catch (error) {
    await refuse(stream, ...refusalOf(error));
    return;
  }
  const reader = body.getReader();
  let ended = false;
  void sessionClosed.then(() => {
    if (!ended) reader.cancel().catch(() => {});
  });
  const writer = stream.writable.getWriter();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await writer.write(value);
    }
  } catch (error) {
    // The watch failed (no read point, too many watches): say so, then
    // close; if the client went away meanwhile, nothing more to do.
    try {
      const [code, message] = refusalOf(error);
      await writer.write(encodeFrame(encode({ error: { code, message } })));
      await writer.close();
    } catch {
      // The client went away or the session closed.
    }
  } finally {
    ended = true;
    lease.release();
    reader.cancel().catch(() => {});
    writer.releaseLock();
  }
}

/** The error frame's code and message for a refused or failed watch. */
function refusalOf(error: unknown): [string, string] {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof KvLimitError || error instanceof KvInvalidError) {
    return ["badRequest", message];
  }
  if (error instanceof KvUnavailableError) return ["unavailable", message];
  return ["internal", "Internal error"];
}
