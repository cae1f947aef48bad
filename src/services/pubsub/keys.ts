/**
 * The pub/sub service's keyspace, `ff 70`, private to `services/pubsub`.
 * Names (topics, groups, members) match `[A-Za-z0-9._-]+`, so a `00` byte
 * ends one; partitions are 2 bytes and offsets and times 8 bytes, big-endian,
 * so rows sort by them.
 *
 * | tag | row              | key after `ff 70 tag`                     | file          |
 * | --- | ---------------- | ----------------------------------------- | ------------- |
 * | 01  | topic            | topic                                     | records.ts    |
 * | 02  | partition        | topic 00 p                                | records.ts    |
 * | 03  | record           | topic 00 p offset                         | records.ts    |
 * | 04  | scheduled        | topic 00 id                               | topics.ts     |
 * | 05  | producer         | topic 00 producerId                       | topics.ts     |
 * | 06  | producer idle    | topic 00 lastSeenMs producerId            | topics.ts     |
 * | 0c  | schedule due     | dueMs topic 00 id                         | topics.ts     |
 * | 07  | group            | topic 00 group                            | groups.ts     |
 * | 08  | group partition  | topic 00 group 00 p                       | groups.ts     |
 * | 09  | in flight        | topic 00 group 00 p offset                | groups.ts     |
 * | 0a  | deadline         | dueMs topic 00 group 00 p offset          | groups.ts     |
 * | 0b  | member lease     | lease (8 bytes) topic 00 group 00 member  | groups.ts     |
 * | 0d  | topic count      | (none)                                    | records.ts    |
 * | 0e  | topic deleting   | topic                                     | topics.ts     |
 * | 0f  | age-retained     | topic                                     | topics.ts     |
 *
 * @module
 */
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";

/** The service's keyspace: `ff 70`. */
export const PUBSUB_KEYSPACE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x70]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x71]),
};

/** The keyspaces the service registers. */
export const PUBSUB_KEYSPACES: readonly KeyRange[] = [PUBSUB_KEYSPACE];

/** Row tags (the byte after `ff 70`). */
export const TAG = {
  topic: 0x01,
  partition: 0x02,
  record: 0x03,
  scheduled: 0x04,
  producer: 0x05,
  producerIdle: 0x06,
  group: 0x07,
  groupPartition: 0x08,
  inFlight: 0x09,
  deadline: 0x0a,
  memberLease: 0x0b,
  scheduleDue: 0x0c,
  topicCount: 0x0d,
  topicDeleting: 0x0e,
  ageRetained: 0x0f,
} as const;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** A key part: a name (ended by `00`), a u16, a u64 or raw bytes. */
export type KeyPart =
  | { readonly name: string }
  | { readonly u16: number }
  | { readonly u64: number }
  | { readonly bytes: Uint8Array };

/** `ff 70 tag` followed by `parts`. */
export function pubsubKey(
  tag: number,
  ...parts: readonly KeyPart[]
): Uint8Array {
  const chunks: Uint8Array[] = [new Uint8Array([INTERNAL_KEY_BYTE, 0x70, tag])];
  for (const part of parts) {
    if ("name" in part) {
      const bytes = utf8.encode(part.name);
      const chunk = new Uint8Array(bytes.length + 1);
      chunk.set(bytes);
      chunks.push(chunk);
    } else if ("u16" in part) {
      chunks.push(new Uint8Array([(part.u16 >> 8) & 0xff, part.u16 & 0xff]));
    } else if ("u64" in part) {
      chunks.push(u64Bytes(part.u64));
    } else {
      chunks.push(part.bytes);
    }
  }
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const key = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    key.set(chunk, at);
    at += chunk.length;
  }
  return key;
}

/** A safe non-negative integer as 8 big-endian bytes. */
export function u64Bytes(value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value));
  return bytes;
}

/** Reads 8 big-endian bytes at `at` as a number. */
export function readU64(key: Uint8Array, at: number): number {
  return Number(
    new DataView(key.buffer, key.byteOffset + at, 8).getBigUint64(0),
  );
}

/** Reads 2 big-endian bytes at `at`. */
export function readU16(key: Uint8Array, at: number): number {
  return (key[at]! << 8) | key[at + 1]!;
}

/**
 * Reads a `00`-ended name at `at`; returns it and the position after its
 * `00`.
 */
export function readName(key: Uint8Array, at: number): [string, number] {
  let end = at;
  while (end < key.length && key[end] !== 0x00) end++;
  return [utf8Decoder.decode(key.subarray(at, end)), end + 1];
}

/** Every key starting with `prefix`. */
export function prefixRange(prefix: Uint8Array): KeyRange {
  return { start: prefix, end: successor(prefix) };
}

/** The least key greater than every key with `prefix`. */
export function successor(prefix: Uint8Array): Uint8Array {
  const out = prefix.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xff) {
      out[i]!++;
      return out.subarray(0, i + 1);
    }
  }
  throw new RangeError("No successor of an all-ff prefix");
}
