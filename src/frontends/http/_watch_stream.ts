/**
 * The body of `POST /v1/kv/watch`: JSON lines, one {@linkcode WatchFrame}
 * (every watched key's entry) first and then whenever a versionstamp moved,
 * and an empty line as a keep-alive whenever nothing was sent for a while,
 * served by the shared watch stream loop (`../common/watch_stream.ts`).
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
import { watchStream } from "../common/watch_stream.ts";

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
 * @throws What `backend.watch` refuses at once (after calling `onEnd`).
 */
export function watchLines(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  keepAliveMs: number,
  onEnd: () => void,
): ReadableStream<Uint8Array> {
  return watchStream(backend, keys, {
    frame: (entries) => frameLine(keys, entries),
    keepAlive: NEWLINE,
    keepAliveMs,
    onEnd,
  });
}
