/**
 * The body of `POST /v1/kv/watch`: JSON lines, one {@linkcode WatchFrame}
 * (every watched key's entry) first and then whenever a versionstamp moved,
 * and an empty line as a keep-alive whenever nothing was sent for a while.
 * Pull-based, so a slow reader holds back the backend instead of queueing
 * frames; the backend's watch collapses changes meanwhile.
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import type { KvEntry } from "../../model/types.ts";
import type { WatchFrame } from "../../protocol/http_api.ts";
import { encodeBody } from "../../protocol/http_api_codec.ts";
import { entryToWire } from "./kv.ts";
import { keyToWire } from "../../protocol/http_api_codec.ts";
import { decodeKey } from "../../model/key_codec.ts";

const KEEP_ALIVE = Symbol("keepAlive");
const NEWLINE = new Uint8Array([0x0a]);

function frameLine(
  keys: readonly Uint8Array[],
  entries: readonly (KvEntry | null)[],
): Uint8Array {
  const frame: WatchFrame = {
    entries: entries.map((entry, i) =>
      entry === null
        ? {
          key: keyToWire(decodeKey(keys[i]!)),
          value: null,
          versionstamp: null,
        }
        : entryToWire(entry)
    ),
  };
  const json = encodeBody(frame, "json");
  const line = new Uint8Array(json.length + 1);
  line.set(json);
  line[json.length] = 0x0a;
  return line;
}

/**
 * Streams the watch of `keys` until the reader cancels (the server cancels
 * the body when the client goes away) or the backend ends the watch.
 *
 * @param onEnd Called once when the stream ends, however it ends.
 */
export function watchLines(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  keepAliveMs: number,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  const abort = new AbortController();
  const iterator = backend.watch(keys, abort.signal)[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<readonly (KvEntry | null)[]>> | null =
    null;
  let ended = false;
  const stop = () => {
    abort.abort();
    if (!ended) onEnd();
    ended = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      pending ??= iterator.next();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const keepAlive = new Promise<typeof KEEP_ALIVE>((resolve) => {
        timer = setTimeout(() => resolve(KEEP_ALIVE), keepAliveMs);
      });
      let result:
        | IteratorResult<readonly (KvEntry | null)[]>
        | typeof KEEP_ALIVE;
      try {
        result = await Promise.race([pending, keepAlive]);
      } catch (error) {
        stop();
        controller.error(error);
        return;
      } finally {
        clearTimeout(timer);
      }
      if (result === KEEP_ALIVE) {
        controller.enqueue(NEWLINE);
        return;
      }
      pending = null;
      if (result.done) {
        stop();
        controller.close();
        return;
      }
      controller.enqueue(frameLine(keys, result.value));
    },
    cancel() {
      stop();
      // Not awaited: a pending next() settles first, once the abort wakes it.
      iterator.return?.()?.catch(() => {});
    },
  }, { highWaterMark: 0 });
}
