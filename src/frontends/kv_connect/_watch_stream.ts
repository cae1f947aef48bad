/**
 * The body of a KV Connect `watch` answer: 4-byte little-endian
 * length-prefixed `WatchOutput` frames, each a full snapshot of the keys
 * sent whenever a versionstamp moved (see `changeFrame`), and a zero-length ping
 * whenever nothing was sent for `pingIntervalMs`, served by the shared watch
 * stream loop (`../common/watch_stream.ts`). Private to `kv_connect/`.
 *
 * @module
 */
import type { KvBackend } from "../../services/kv/api.ts";
import type { KvEntry } from "../../model/types.ts";
import { entriesMoved, watchStream } from "../common/watch_stream.ts";
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
  const moved = previous === null || entriesMoved(previous, current);
  if (!moved) return null;
  const keys: PbWatchKeyOutput[] = current.map((entry) => ({
    changed: true,
    entryIfChanged: entry === null ? null : toPbEntry(entry),
  }));
  return watchFrame(
    encodeWatchOutput({ status: SnapshotReadStatus.SR_SUCCESS, keys }),
  );
}

/**
 * Streams the watch of `keys` on `backend` until the reader cancels (the
 * server cancels the body when the client goes away) or the backend ends
 * the watch. `onEnd` runs once when it ends, however it ends.
 *
 * @throws What `backend.watch` refuses at once (after calling `onEnd`).
 */
export function watchResponseStream(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  pingIntervalMs: number,
  onEnd: () => void = () => {},
): ReadableStream<Uint8Array> {
  let previous: readonly (KvEntry | null)[] | null = null;
  return watchStream(backend, keys, {
    frame: (entries) => {
      const frame = changeFrame(previous, entries);
      previous = entries;
      return frame;
    },
    keepAlive: watchFrame(new Uint8Array(0)),
    keepAliveMs: pingIntervalMs,
    onEnd,
  });
}
