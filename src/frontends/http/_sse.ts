/**
 * Server-sent event bodies: one item of an async iterable per pull (so a
 * slow reader holds at most one encoded frame here and the iterable's own
 * page), a comment line as a keep-alive when nothing came for a while, and
 * a clean end however the stream ends (the reader goes away, the items end,
 * or one fails). Shared by the elections observe stream and the events
 * watch.
 *
 * @module
 */

/** Content type of an SSE stream. */
export const CONTENT_TYPE_EVENT_STREAM = "text/event-stream";

const encoder = new TextEncoder();
const KEEP_ALIVE = encoder.encode(": keep-alive\n\n");

/** One SSE frame: `id:` (optional), `event:` (optional) and one `data:` line of JSON text. */
export function sseFrame(
  fields: { readonly id?: string; readonly event?: string },
  data: string,
): Uint8Array {
  let text = "";
  if (fields.id !== undefined) text += `id: ${fields.id}\n`;
  if (fields.event !== undefined) text += `event: ${fields.event}\n`;
  return encoder.encode(`${text}data: ${data}\n\n`);
}

/**
 * The SSE body over `items`, each encoded by `frame`: one per pull, or a
 * keep-alive comment when none came for `keepAliveMs`; `abort` ends the
 * items when the reader cancels. `onEnd` runs once, however the stream
 * ends.
 */
export function sseBody<T>(
  items: AsyncIterable<T>,
  frame: (item: T) => Uint8Array,
  abort: AbortController,
  keepAliveMs: number,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  const iterator = items[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | null = null;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    abort.abort();
    onEnd();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      pending ??= iterator.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const quiet = new Promise<"quiet">((resolve) => {
        timer = setTimeout(() => resolve("quiet"), keepAliveMs);
      });
      try {
        const step = await Promise.race([pending, quiet]);
        if (step === "quiet") {
          controller.enqueue(KEEP_ALIVE);
          return;
        }
        pending = null;
        if (step.done === true) {
          end();
          controller.close();
          return;
        }
        controller.enqueue(frame(step.value));
      } catch (error) {
        end();
        controller.error(error);
      } finally {
        clearTimeout(timer);
      }
    },
    async cancel() {
      end();
      // The pending next resolves now that the signal aborted; then the
      // generator's finally releases its subscription and its slot.
      await pending?.catch(() => {});
      await iterator.return?.();
    },
  });
}

/**
 * Serves `open(signal)`'s items as an SSE response: the request's end
 * aborts them, and `onEnd` runs once when the stream ends. `open` throwing
 * (a refused start) ends the stream before any byte, calling `onEnd` first,
 * so the caller's error reply goes out.
 */
export async function sseResponse<T>(
  request: AbortSignal,
  open: (signal: AbortSignal) => Promise<AsyncIterable<T>> | AsyncIterable<T>,
  frame: (item: T) => Uint8Array,
  keepAliveMs: number,
  onEnd: () => void,
): Promise<Response> {
  const abort = new AbortController();
  const onRequestAbort = () => abort.abort();
  let items: AsyncIterable<T>;
  try {
    items = await open(abort.signal);
  } catch (error) {
    onEnd();
    throw error;
  }
  request.addEventListener("abort", onRequestAbort, { once: true });
  const body = sseBody(items, frame, abort, keepAliveMs, () => {
    request.removeEventListener("abort", onRequestAbort);
    onEnd();
  });
  return new Response(body, {
    headers: {
      "content-type": CONTENT_TYPE_EVENT_STREAM,
      "cache-control": "no-cache",
    },
  });
}
