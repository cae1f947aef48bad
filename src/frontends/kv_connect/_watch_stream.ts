/**
 * The body of a KV Connect `watch` answer: 4-byte little-endian
 * length-prefixed `WatchOutput` frames, each a full snapshot of the keys
 * sent whenever a versionstamp moved (see `changeFrame`), and a zero-length ping
 * whenever nothing was sent for `pingIntervalMs`. Pull-based, so a slow
 * reader holds back the backend instead of queueing frames: the backend's
 * watch collapses changes meanwhile. Private to `kv_connect/`.
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import type { KvEntry } from "../../model/types.ts";
import { equalBytes } from "../../base/bytes.ts";
import { toPbEntry } from "./convert.ts";
import {
  encodeWatchOutput,
  type PbWatchKeyOutput,
  SnapshotReadStatus,
} from "./proto.ts";

/** Bytes of a frame's length prefix. */
export const WATCH_FRAME_PREFIX_BYTES = 4;

/** Prefixes `message` with its length (u32 little-endian). */
export function watchFrame(message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(WATCH_FRAME_PREFIX_BYTES + message.length);
  new DataView(frame.buffer).setUint32(0, message.length, true);
  frame.set(message, WATCH_FRAME_PREFIX_BYTES);
  return frame;
}

function sameVersion(a: KvEntry | null, b: KvEntry | null): boolean {
  if (a === null || b === null) return a === b;
  return equalBytes(a.versionstamp, b.versionstamp);
}

/**
 * The frame for `current`, or null when no versionstamp moved since
 * `previous`. Every key is sent as changed with its current entry, not only
 * the keys that moved: stock Deno 2.9.6's remote client turns a
 * `changed: false` key into an absent entry (its local backend keeps the
 * last value), so marking unchanged keys would show them as deleted. A
 * full snapshot per frame is what the protocol allows ("each message
 * represents a consistent snapshot") and costs at most 10 entries.
 */
function changeFrame(
  previous: readonly (KvEntry | null)[] | null,
  current: readonly (KvEntry | null)[],
): Uint8Array | null {
  const moved = previous === null ||
    current.some((entry, i) => !sameVersion(previous[i] ?? null, entry));
  if (!moved) return null;
  const keys: PbWatchKeyOutput[] = current.map((entry) => ({
    changed: true,
    entryIfChanged: entry === null ? null : toPbEntry(entry),
  }));
  return watchFrame(
    encodeWatchOutput({ status: SnapshotReadStatus.SR_SUCCESS, keys }),
  );
}

const PING = Symbol("ping");

/**
 * Streams the watch of `keys` on `backend` until the reader cancels (the
 * server cancels the body when the client goes away) or the backend ends
 * the watch. `onEnd` runs when it ends, however it ends (it may run twice).
 */
export function watchResponseStream(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  pingIntervalMs: number,
  onEnd: () => void = () => {},
): ReadableStream<Uint8Array> {
  const abort = new AbortController();
  const iterator = backend.watch(keys, abort.signal)[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<readonly (KvEntry | null)[]>> | null =
    null;
  let previous: readonly (KvEntry | null)[] | null = null;
  const stop = () => {
    abort.abort();
    onEnd();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Each pull enqueues exactly one frame (a change or a ping) or closes.
      while (true) {
        pending ??= iterator.next();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const ping = new Promise<typeof PING>((resolve) => {
          timer = setTimeout(() => resolve(PING), pingIntervalMs);
        });
        let result: IteratorResult<readonly (KvEntry | null)[]> | typeof PING;
        try {
          result = await Promise.race([pending, ping]);
        } catch (error) {
          stop();
          controller.error(error);
          return;
        } finally {
          clearTimeout(timer);
        }
        if (result === PING) {
          controller.enqueue(watchFrame(new Uint8Array(0)));
          return;
        }
        pending = null;
        if (result.done) {
          stop();
          controller.close();
          return;
        }
        const frame = changeFrame(previous, result.value);
        previous = result.value;
        if (frame !== null) {
          controller.enqueue(frame);
          return;
        }
      }
    },
    cancel() {
      stop();
      // Not awaited: a pending next() settles first, once the abort wakes it.
      iterator.return?.()?.catch(() => {});
    },
  }, { highWaterMark: 0 });
}
