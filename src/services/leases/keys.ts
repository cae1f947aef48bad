/**
 * The leases keyspace `ff 6c`: rows and their codecs.
 *
 * | row      | key                                | value                             |
 * | -------- | ---------------------------------- | --------------------------------- |
 * | count    | `ff 6c 00`                         | MessagePack leases held           |
 * | record   | `ff 6c 01` id (8 bytes)            | MessagePack `[ttlMs, grantedAt, keyCount]` |
 * | attached | `ff 6c 02` id (8 bytes) user key   | empty (lease → key index)         |
 * | owner    | `ff 6c 03` user key                | id (8 bytes) (key → lease)        |
 *
 * The record's key is the contract of `api.ts` (`leaseRecordKey`).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { concatBytes, fromHex, toHex } from "../../base/bytes.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";

/** The key of the row that counts the leases held. */
export const LEASE_COUNT_KEY = new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x00]);

/** The range of every lease record (ordered by id). */
export const LEASE_RECORDS_RANGE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x01]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x02]),
};

/** A lease record as stored. */
export interface LeaseRecord {
  /** The granted TTL, ms. */
  readonly ttlMs: number;
  /** Revision (log index) of the grant. */
  readonly grantedAt: number;
  /** User keys attached. */
  readonly keyCount: number;
}

/** Encodes a lease record. */
export function encodeLeaseRecord(record: LeaseRecord): Uint8Array {
  return encode([record.ttlMs, record.grantedAt, record.keyCount]);
}

/** Decodes a lease record. */
export function decodeLeaseRecord(value: Uint8Array): LeaseRecord {
  const [ttlMs, grantedAt, keyCount] = decode(value) as [
    number,
    number,
    number,
  ];
  return { ttlMs, grantedAt, keyCount };
}

/** The id of a record key. */
export function idOfRecordKey(key: Uint8Array): string {
  return toHex(key.subarray(3, 11));
}

/** The attached row of `userKey` on lease `id`. */
export function attachedKey(id: string, userKey: Uint8Array): Uint8Array {
  return concatBytes(
    new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x02]),
    fromHex(id),
    userKey,
  );
}

/** Every attached row of lease `id`. */
export function attachedRange(id: string): KeyRange {
  const prefix = concatBytes(
    new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x02]),
    fromHex(id),
  );
  // The prefix's successor: drop trailing ff bytes, increment the last
  // (the tag byte 02 is never ff, so this ends).
  let last = prefix.length - 1;
  while (prefix[last] === 0xff) last--;
  const end = prefix.slice(0, last + 1);
  end[last] = prefix[last]! + 1;
  return { start: prefix, end };
}

/** The user key of an attached row. */
export function userKeyOfAttached(key: Uint8Array): Uint8Array {
  return key.slice(11);
}

/** The owner row of `userKey` (which lease it is attached to). */
export function ownerKey(userKey: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([INTERNAL_KEY_BYTE, 0x6c, 0x03]), userKey);
}

/** Encodes the count row. */
export function encodeCount(count: number): Uint8Array {
  return encode(count);
}

/** Decodes the count row (0 when absent). */
export function decodeCount(value: Uint8Array | undefined): number {
  return value === undefined ? 0 : decode(value) as number;
}
