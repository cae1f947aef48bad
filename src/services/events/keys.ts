/**
 * The events service's keyspace `ff 65` and its rows:
 *
 * | key                                  | value                                    |
 * | ------------------------------------ | ---------------------------------------- |
 * | `ff 65 68` revision u64 BE, index u32 BE | one history record (`records.ts`)     |
 *
 * and its metadata: `events.floor` (the oldest revision held: compaction
 * deleted every record below it), `events.bytes` and `events.count` (what
 * the window holds), `events.leader` (the last `leader.changed`: term and
 * leader, so a repeated announcement applies once).
 *
 * @module
 */
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";

/** The events service's keyspace: `ff 65`. */
export const EVENTS_KEYSPACE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x65]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x66]),
};

const HISTORY_TAG = 0x68;
const HISTORY_KEY_BYTES = 3 + 8 + 4;

/** Metadata names of the events service. */
export const EVENTS_META = {
  floor: "events.floor",
  bytes: "events.bytes",
  count: "events.count",
  leader: "events.leader",
  /** The entry (u64) and next event index (u32) of the last writer that was not the last of its entry. */
  next: "events.next",
} as const;

/** The key of the history record at `(revision, index)`. */
export function historyKey(revision: bigint, index: number): Uint8Array {
  const key = new Uint8Array(HISTORY_KEY_BYTES);
  key.set([INTERNAL_KEY_BYTE, 0x65, HISTORY_TAG]);
  const view = new DataView(key.buffer);
  view.setBigUint64(3, revision);
  view.setUint32(11, index);
  return key;
}

/** The `(revision, index)` of a history key. */
export function parseHistoryKey(
  key: Uint8Array,
): { revision: bigint; index: number } {
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return { revision: view.getBigUint64(3), index: view.getUint32(11) };
}

/** Every history key of revisions in `[from, to)`. */
export function historyRange(
  from: bigint,
  to: bigint,
): { start: Uint8Array; end: Uint8Array } {
  return { start: historyKey(from, 0), end: historyKey(to, 0) };
}

/** A u64 metadata value (8 bytes BE). */
export function encodeU64(value: bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, value);
  return bytes;
}

/** Reads a u64 metadata value (0 when absent). */
export function decodeU64(bytes: Uint8Array | null | undefined): bigint {
  if (bytes === null || bytes === undefined || bytes.byteLength !== 8) {
    return 0n;
  }
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0);
}
