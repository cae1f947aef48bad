/**
 * `kv.watch()`: the `/v1/kv/watch` JSON-lines stream as a `ReadableStream`
 * of entry arrays, reconnecting (to the next node when one fails) until the
 * reader cancels or the client closes.
 *
 * @module
 */
import { ROUTES, type WatchFrame } from "../protocol/http_api.ts";
import { keyToWire } from "../protocol/http_api_codec.ts";
import type { HttpTransport } from "./_transport.ts";
import {
  AuthError,
  InvalidRequestError,
  LimitExceededError,
} from "./errors.ts";
import type { KvEntryMaybe, KvKey } from "./types.ts";

/** Pause before reconnecting a broken watch, in ms. */
const RECONNECT_MS = 200;

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    if (signal.aborted) done();
  });
}

/** Errors a reconnect cannot cure. */
function isFinal(error: unknown): boolean {
  return error instanceof InvalidRequestError ||
    error instanceof LimitExceededError || error instanceof AuthError;
}

async function* lines(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of body) {
    buffered += decoder.decode(chunk, { stream: true });
    let newline = buffered.indexOf("\n");
    while (newline !== -1) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
    }
  }
}

function sameVersions(
  a: readonly KvEntryMaybe<unknown>[] | null,
  b: readonly KvEntryMaybe<unknown>[],
): boolean {
  return a !== null && a.length === b.length &&
    a.every((entry, i) => entry.versionstamp === b[i]!.versionstamp);
}

/** Streams the entries of `keys`, now and after every change. */
export function watchStream<T extends readonly unknown[]>(
  transport: HttpTransport,
  keys: readonly KvKey[],
  raw: boolean,
  entryFromWire: (wire: WatchFrame["entries"][number]) => KvEntryMaybe<unknown>,
): ReadableStream<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
  type Snapshot = { [K in keyof T]: KvEntryMaybe<T[K]> };
  const cancelled = new AbortController();
  const signal = AbortSignal.any([cancelled.signal, transport.closed]);
  const body = { keys: keys.map((key) => keyToWire(key)) };
  let previous: readonly KvEntryMaybe<unknown>[] | null = null;
  return new ReadableStream<Snapshot>({
    start(controller) {
      // Runs in the background: start() must not wait for the whole watch.
      void (async () => {
        while (!signal.aborted) {
          try {
            const stream = await transport.stream(ROUTES.kvWatch, body, signal);
            for await (const line of lines(stream)) {
              if (line === "") continue; // keep-alive
              const frame = JSON.parse(line) as WatchFrame;
              const entries = frame.entries.map(entryFromWire);
              if (!raw && sameVersions(previous, entries)) continue;
              previous = entries;
              controller.enqueue(entries as unknown as Snapshot);
            }
          } catch (error) {
            if (signal.aborted) break;
            if (isFinal(error)) {
              controller.error(error);
              return;
            }
          }
          if (signal.aborted) break;
          await sleep(RECONNECT_MS, signal);
        }
        try {
          controller.close();
        } catch {
          // Already cancelled by the reader.
        }
      })();
    },
    cancel() {
      cancelled.abort();
    },
  });
}
