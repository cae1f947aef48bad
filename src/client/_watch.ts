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
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { done, value: chunk } = await reader.read();
    if (done) return;
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

/**
 * The newest versionstamp delivered per key (null: none yet). Versionstamps
 * are fixed-width lowercase hex, so string order is version order.
 */
class NewestDelivered {
  readonly #newest: (string | null)[];

  constructor(keys: number) {
    this.#newest = new Array<string | null>(keys).fill(null);
  }

  /**
   * True when some key's entry is older than one already delivered for it: a
   * node that lags behind the one the watch saw before (after a reconnect).
   * An absent key (null versionstamp) cannot be ordered and is let through:
   * the node confirmed a read point before its first frame, so it is a
   * deletion newer than what was delivered.
   */
  isOlder(entries: readonly KvEntryMaybe<unknown>[]): boolean {
    return entries.some((entry, i) => {
      const newest = this.#newest[i] ?? null;
      return entry.versionstamp !== null && newest !== null &&
        entry.versionstamp < newest;
    });
  }

  record(entries: readonly KvEntryMaybe<unknown>[]): void {
    entries.forEach((entry, i) => {
      const newest = this.#newest[i] ?? null;
      if (
        entry.versionstamp !== null &&
        (newest === null || entry.versionstamp > newest)
      ) {
        this.#newest[i] = entry.versionstamp;
      }
    });
  }
}

/** Options of {@linkcode watchStream}. */
export interface WatchStreamOptions {
  /**
   * TEST ONLY: the planted bug `watch-back-in-time`, emit a reconnected
   * frame older than one delivered (the old behaviour). Never set in production.
   */
  readonly testingEmitOlder?: boolean;
}

/**
 * Streams the entries of `keys`, now and after every change. A frame holding
 * a versionstamp older than one already delivered for its key is dropped (a
 * lagging node after a reconnect), so the stream never goes back in time; a
 * stream that breaks before its first frame (a node that cannot confirm a
 * read point) moves the watch to the next node.
 */
export function watchStream<T extends readonly unknown[]>(
  transport: HttpTransport,
  keys: readonly KvKey[],
  raw: boolean,
  entryFromWire: (wire: WatchFrame["entries"][number]) => KvEntryMaybe<unknown>,
  options: WatchStreamOptions = {},
): ReadableStream<{ [K in keyof T]: KvEntryMaybe<T[K]> }> {
  type Snapshot = { [K in keyof T]: KvEntryMaybe<T[K]> };
  const cancelled = new AbortController();
  const signal = AbortSignal.any([cancelled.signal, transport.closed]);
  const body = { keys: keys.map((key) => keyToWire(key)) };
  let previous: readonly KvEntryMaybe<unknown>[] | null = null;
  const newest = new NewestDelivered(keys.length);
  let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
  return new ReadableStream<Snapshot>({
    start(controller) {
      // Runs in the background: start() must not wait for the whole watch.
      void (async () => {
        while (!signal.aborted) {
          let framed = false;
          let connected = false;
          try {
            const stream = await transport.stream(ROUTES.kvWatch, body, signal);
            connected = true;
            current = stream.getReader();
            // Cancelled in between: cancel() found no reader to cancel.
            if (signal.aborted) void current.cancel().catch(() => {});
            for await (const line of lines(current)) {
              if (line === "") continue; // keep-alive
              const frame = JSON.parse(line) as WatchFrame;
              framed = true;
              const entries = frame.entries.map(entryFromWire);
              if (!raw && sameVersions(previous, entries)) continue;
              if (!options.testingEmitOlder && newest.isOlder(entries)) {
                continue;
              }
              previous = entries;
              newest.record(entries);
              controller.enqueue(entries as unknown as Snapshot);
            }
          } catch (error) {
            if (signal.aborted) break;
            if (isFinal(error)) {
              controller.error(error);
              return;
            }
          }
          if (connected && !framed) {
            // The node answered but could not start the watch: try the next.
            transport.prefer(transport.urls[1] ?? null);
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
      // Closes the connection now, whatever the fetch does with the signal.
      void current?.cancel().catch(() => {});
    },
  });
}
