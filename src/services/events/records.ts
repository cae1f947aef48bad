/**
 * History records: one per event, at `(revision, index)` (`keys.ts`),
 * MessagePack with short field names. A KV event records the key, the row
 * after (absent for a delete) and the row before (absent when the key was
 * absent), and why a delete happened; any other event records its facts.
 *
 * @module
 */
import { decode, Decoder, Encoder } from "@msgpack/msgpack";
import type { ValueEncoding } from "../../model/types.ts";
import { AssertionError } from "../../base/assert.ts";

/** Why a KV key was deleted. */
export type DeleteCause = "write" | "expired" | "lease";

/** A KV row as an event carries it. */
export interface EventRow {
  readonly value: Uint8Array;
  readonly encoding: ValueEncoding;
  readonly versionstamp: Uint8Array;
  readonly expireAtMs?: number;
}

/** One event of the history. */
export interface HistoryEvent {
  readonly revision: bigint;
  readonly index: number;
  /** `kv.set`, `kv.delete`, `leader.changed`, … */
  readonly type: string;
  /** KV events: the encoded Deno KV key. */
  readonly key?: Uint8Array;
  /** KV events: the row after (null for a delete). */
  readonly after?: EventRow | null;
  /** KV events: the row before (null when absent). */
  readonly before?: EventRow | null;
  /** `kv.delete`: why. */
  readonly cause?: DeleteCause;
  /** Other events: their facts (MessagePack-representable). */
  readonly data?: Readonly<Record<string, unknown>>;
}

interface StoredRow {
  v: Uint8Array;
  e: ValueEncoding;
  s: Uint8Array;
  x?: number;
}

interface StoredRecord {
  t: string;
  k?: Uint8Array;
  a?: StoredRow | null;
  b?: StoredRow | null;
  c?: DeleteCause;
  d?: Record<string, unknown>;
}

const encoder = new Encoder();
const decoder = new Decoder();

function storedRow(row: EventRow | null | undefined): StoredRow | null {
  if (row === null || row === undefined) return null;
  return row.expireAtMs === undefined
    ? { v: row.value, e: row.encoding, s: row.versionstamp }
    : { v: row.value, e: row.encoding, s: row.versionstamp, x: row.expireAtMs };
}

function eventRow(row: StoredRow | null | undefined): EventRow | null {
  if (row === null || row === undefined) return null;
  return row.x === undefined
    ? { value: row.v, encoding: row.e, versionstamp: row.s }
    : { value: row.v, encoding: row.e, versionstamp: row.s, expireAtMs: row.x };
}

/** The stored bytes of an event (its revision and index are its key). */
export function encodeRecord(event: HistoryEvent): Uint8Array {
  const record: StoredRecord = { t: event.type };
  if (event.key !== undefined) {
    record.k = event.key;
    record.a = storedRow(event.after);
    record.b = storedRow(event.before);
    if (event.cause !== undefined) record.c = event.cause;
  }
  if (event.data !== undefined) record.d = { ...event.data };
  return encoder.encode(record).slice();
}

/**
 * The event stored at `(revision, index)`.
 *
 * @throws {AssertionError} When the bytes are not a record (a corrupt state).
 */
export function decodeRecord(
  revision: bigint,
  index: number,
  bytes: Uint8Array,
): HistoryEvent {
  const record = decoder.decode(bytes) as StoredRecord;
  if (record === null || typeof record !== "object" || !("t" in record)) {
    throw new AssertionError(
      `Cannot read history record ${revision}.${index}: not a record`,
    );
  }
  if (record.k === undefined) {
    return record.d === undefined
      ? { revision, index, type: record.t }
      : { revision, index, type: record.t, data: record.d };
  }
  const event: HistoryEvent = {
    revision,
    index,
    type: record.t,
    key: record.k,
    after: eventRow(record.a),
    before: eventRow(record.b),
    ...(record.c === undefined ? {} : { cause: record.c }),
  };
  return event;
}

/** Decodes any MessagePack (facts inside commands). */
export function decodeAny(bytes: Uint8Array): unknown {
  return decode(bytes);
}
