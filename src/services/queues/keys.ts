/**
 * Where queue state lives: rows in the same ordered store as user keys, under
 * the reserved first byte `0xff`, which no Deno KV key encoding starts with
 * (every key part begins with a type tag below `0x30`, and list selectors end
 * at `prefix + 0xff`). So snapshots, the state hash and both stores carry
 * queue state without knowing it exists, while validation refuses user
 * writes there and reads stop before it. Private to `src/services/queues/`.
 *
 * | row      | key                                                  | value (MessagePack)                                     |
 * | -------- | ---------------------------------------------------- | ------------------------------------------------------- |
 * | message  | `ff 71 6d` id                                        | `[queue, payload, readyAtMs, delivery, schedule, keysIfUndelivered, leaseDeadlineMs \| nil]` |
 * | ready    | `ff 71 72` queue `00` readyAtMs (8 bytes BE) id      | empty: the message waits, ordered by ready time         |
 * | lease    | `ff 71 6c` leaseDeadlineMs (8 bytes BE) id           | empty: the message is leased, ordered by lease end      |
 * | stats    | `ff 71 73` queue                                     | `[length, leasedCount, concurrencyMax \| nil]`          |
 *
 * A message has exactly one of a ready row or a lease row.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { assert } from "../../base/assert.ts";
import { concatBytes } from "../../base/bytes.ts";
import { VERSIONSTAMP_BYTES } from "../../model/versionstamp.ts";

import {
  INTERNAL_KEY_BYTE,
  INTERNAL_KEYS_START,
} from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";

export { INTERNAL_KEY_BYTE, INTERNAL_KEYS_START };

/** The queues service's keyspace: `ff 71`. */
export const QUEUES_KEYSPACE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x71]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x72]),
};

/**
 * The same keyspace in three ranges, the message records (`ff 71 6d`)
 * reported as change events: `set` when a message is enqueued, leased or
 * retried, `delete` when it is acked or dead-lettered.
 */
export const QUEUES_KEYSPACES: readonly KeyRange[] = [
  {
    start: QUEUES_KEYSPACE.start,
    end: new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6d]),
  },
  {
    start: new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6d]),
    end: new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6e]),
    changes: true,
  },
  {
    start: new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6e]),
    end: QUEUES_KEYSPACE.end,
  },
];

const MESSAGE = new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6d]);
const READY = new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x72]);
const LEASE = new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x6c]);
const STATS = new Uint8Array([INTERNAL_KEY_BYTE, 0x71, 0x73]);
const QUEUE_END = new Uint8Array([0]);
const textEncoder = new TextEncoder();

/** A stored queue message. */
export interface QueueMessageRecord {
  readonly queue: string;
  readonly payload: Uint8Array;
  /** When the message may be (re)delivered; meaningless while leased. */
  readonly readyAtMs: number;
  /** Deliveries so far (leases granted). */
  readonly delivery: number;
  readonly backoffSchedule: readonly number[];
  readonly keysIfUndelivered: readonly Uint8Array[];
  /** Set while leased. */
  readonly leaseDeadlineMs: number | null;
}

/** Per-queue counters and settings. */
export interface QueueStatsRecord {
  /** Messages in the queue, leased ones included. */
  readonly length: number;
  readonly leasedCount: number;
  readonly concurrencyMax: number | null;
}

function timeBytes(ms: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(ms));
  return out;
}

function queueBytes(queue: string): Uint8Array {
  return concatBytes(textEncoder.encode(queue), QUEUE_END);
}

/** The message row's key. */
export function messageKey(id: Uint8Array): Uint8Array {
  assert(id.length === VERSIONSTAMP_BYTES, "A message id has 10 bytes");
  return concatBytes(MESSAGE, id);
}

/** The ready row's key. */
export function readyKey(
  queue: string,
  readyAtMs: number,
  id: Uint8Array,
): Uint8Array {
  return concatBytes(READY, queueBytes(queue), timeBytes(readyAtMs), id);
}

/** Ready rows of `queue` with a ready time in `[fromMs, toMs)`. */
export function readyRange(
  queue: string,
  fromMs: number,
  toMs: number,
): { start: Uint8Array; end: Uint8Array } {
  const prefix = concatBytes(READY, queueBytes(queue));
  return {
    start: concatBytes(prefix, timeBytes(fromMs)),
    end: concatBytes(prefix, timeBytes(toMs)),
  };
}

/** The lease row's key. */
export function leaseKey(leaseDeadlineMs: number, id: Uint8Array): Uint8Array {
  return concatBytes(LEASE, timeBytes(leaseDeadlineMs), id);
}

/** Lease rows with a deadline before `toMs`. */
export function leaseRange(
  toMs: number,
): { start: Uint8Array; end: Uint8Array } {
  return { start: LEASE, end: concatBytes(LEASE, timeBytes(toMs)) };
}

/** The stats row's key. */
export function statsKey(queue: string): Uint8Array {
  return concatBytes(STATS, textEncoder.encode(queue));
}

/** The message id at the end of a ready or lease row's key. */
export function idOfIndexKey(key: Uint8Array): Uint8Array {
  return key.slice(key.length - VERSIONSTAMP_BYTES);
}

/** Encodes a message row's value. */
export function encodeMessage(message: QueueMessageRecord): Uint8Array {
  return encode([
    message.queue,
    message.payload,
    message.readyAtMs,
    message.delivery,
    message.backoffSchedule,
    message.keysIfUndelivered,
    message.leaseDeadlineMs,
  ]);
}

/**
 * Decodes a message row's value (written by {@linkcode encodeMessage}).
 *
 * @throws {AssertionError} When the row is not a message: the store is corrupt.
 */
export function decodeMessage(value: Uint8Array): QueueMessageRecord {
  const fields = decode(value) as unknown[];
  assert(
    Array.isArray(fields) && fields.length === 7,
    "A stored queue message has 7 fields",
  );
  const [queue, payload, readyAtMs, delivery, schedule, keys, lease] = fields;
  assert(
    typeof queue === "string" && payload instanceof Uint8Array &&
      typeof readyAtMs === "number" && typeof delivery === "number" &&
      Array.isArray(schedule) && Array.isArray(keys) &&
      (lease === null || typeof lease === "number"),
    "A stored queue message has the fields it was written with",
  );
  return {
    queue,
    payload,
    readyAtMs,
    delivery,
    backoffSchedule: schedule as number[],
    keysIfUndelivered: keys as Uint8Array[],
    leaseDeadlineMs: lease,
  };
}

/** Encodes a stats row's value. */
export function encodeStats(stats: QueueStatsRecord): Uint8Array {
  return encode([stats.length, stats.leasedCount, stats.concurrencyMax]);
}

/** Decodes a stats row's value. */
export function decodeStats(value: Uint8Array): QueueStatsRecord {
  const fields = decode(value) as unknown[];
  assert(
    Array.isArray(fields) && fields.length === 3 &&
      typeof fields[0] === "number" && typeof fields[1] === "number",
    "A stored queue stats row has 3 fields",
  );
  return {
    length: fields[0] as number,
    leasedCount: fields[1] as number,
    concurrencyMax: (fields[2] ?? null) as number | null,
  };
}
