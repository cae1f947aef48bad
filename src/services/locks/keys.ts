/**
 * Where the locks service keeps its state, all under `ff 6d` (the holder
 * rows' layout is the contract in `api.ts`; the rest is private to
 * `services/locks`). Names carry no control characters, so `00` ends a name
 * inside a key.
 *
 * | row    | key                                       | value (MessagePack)                              |
 * | ------ | ----------------------------------------- | ------------------------------------------------ |
 * | count  | `ff 6d 63`                                | `[names]`: names with a holder or a waiter        |
 * | leader | `ff 6d 65` name                           | `[token, lease, value, revision]` (change events) |
 * | holder | `ff 6d 68` name `00` token (10 bytes)     | `[lease, revision]`                               |
 * | lease  | `ff 6d 69` lease (8 bytes) name           | `[0, token]` holds, `[1, seq]` waits (change events) |
 * | name   | `ff 6d 6e` name                           | `[kind, permits, holders, waiters, nextSeq]`      |
 * | waiter | `ff 6d 77` name `00` seq (8 bytes BE)     | `[lease, revision, value \| nil]`                 |
 *
 * A name record exists exactly while the name has a holder or a waiter; its
 * counters equal its holder and waiter rows; each holder and waiter has one
 * lease row (the lease → names index `onLeaseEnded` scans).
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { assert } from "../../base/assert.ts";
import { concatBytes, fromHex, toHex } from "../../base/bytes.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";

const F = INTERNAL_KEY_BYTE;
const COUNT = new Uint8Array([F, 0x6d, 0x63]);
const LEADER = new Uint8Array([F, 0x6d, 0x65]);
const HOLDER = new Uint8Array([F, 0x6d, 0x68]);
const LEASE = new Uint8Array([F, 0x6d, 0x69]);
const NAME = new Uint8Array([F, 0x6d, 0x6e]);
const WAITER = new Uint8Array([F, 0x6d, 0x77]);
const NAME_END = new Uint8Array([0]);
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/**
 * The locks keyspace `ff 6d` in five ranges. Two are reported as change
 * events, so the node follows them in revision order without polling:
 * election leader rows (`ff 6d 65`: `set` when a leader is elected or
 * proclaims, `delete` when it resigns or its lease ends), followed by
 * observers, and lease rows (`ff 6d 69`: `set` when a lease starts waiting
 * or is granted, `delete` when it leaves), followed by waiting acquires.
 */
export const LOCKS_KEYSPACES: readonly KeyRange[] = [
  { start: new Uint8Array([F, 0x6d]), end: LEADER },
  { start: LEADER, end: new Uint8Array([F, 0x6d, 0x66]), changes: true },
  { start: new Uint8Array([F, 0x6d, 0x66]), end: LEASE },
  { start: LEASE, end: new Uint8Array([F, 0x6d, 0x6a]), changes: true },
  { start: new Uint8Array([F, 0x6d, 0x6a]), end: new Uint8Array([F, 0x6e]) },
];

/** What a name is: a lock or semaphore, or an election. */
export type LockKind = "lock" | "election";

/** A name's record. */
export interface NameRecord {
  readonly kind: LockKind;
  readonly permits: number;
  readonly holders: number;
  readonly waiters: number;
  /** The next waiter's sequence number (FIFO order). */
  readonly nextSeq: number;
}

/** A holder row's value. */
export interface HolderRecord {
  readonly lease: string;
  readonly revision: number;
}

/** A waiter row's value. */
export interface WaiterRecord {
  readonly lease: string;
  readonly revision: number;
  /** The election value it campaigns with (null for a lock). */
  readonly value: string | null;
}

/** A lease row's value: what the lease has on the name. */
export type LeaseHold =
  | { readonly kind: "holds"; readonly token: string }
  | { readonly kind: "waits"; readonly seq: number };

/** An election's leader row. */
export interface LeaderRecord {
  /** The leader's grant token. */
  readonly token: string;
  /** The leader's lease. */
  readonly lease: string;
  /** Its value (from its campaign or last proclaim). */
  readonly value: string;
  /** Revision of the grant or of the last proclaim. */
  readonly revision: number;
}

function nameBytes(name: string): Uint8Array {
  return concatBytes(textEncoder.encode(name), NAME_END);
}

function seqBytes(seq: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(seq));
  return out;
}

/** The names counter row. */
export function countKey(): Uint8Array {
  return COUNT;
}

/** The leader row of election `name` (a change event). */
export function leaderKey(name: string): Uint8Array {
  return concatBytes(LEADER, textEncoder.encode(name));
}

/** The holder rows of `name` (tokens in order). */
export function holderRange(name: string): KeyRange {
  const prefix = concatBytes(HOLDER, nameBytes(name));
  return { start: prefix, end: concatBytes(prefix, new Uint8Array([0xff])) };
}

/** The token (20 hex digits) at the end of a holder row's key. */
export function tokenOfHolderKey(key: Uint8Array): string {
  return toHex(key.subarray(key.length - 10));
}

/** The lease row of `lease` on `name`. */
export function leaseKey(lease: string, name: string): Uint8Array {
  return concatBytes(LEASE, fromHex(lease), textEncoder.encode(name));
}

/** Every lease row of `lease`. */
export function leaseRange(lease: string): KeyRange {
  const prefix = concatBytes(LEASE, fromHex(lease));
  return { start: prefix, end: concatBytes(prefix, new Uint8Array([0xff])) };
}

/** The name at the end of a lease row's key. */
export function nameOfLeaseKey(key: Uint8Array): string {
  return textDecoder.decode(key.subarray(LEASE.length + 8));
}

/** The record of `name`. */
export function nameKey(name: string): Uint8Array {
  return concatBytes(NAME, textEncoder.encode(name));
}

/** The waiter row of `name` with sequence number `seq`. */
export function waiterKey(name: string, seq: number): Uint8Array {
  return concatBytes(WAITER, nameBytes(name), seqBytes(seq));
}

/** The waiter rows of `name`, FIFO; with `beforeSeq`, only those queued before it. */
export function waiterRange(name: string, beforeSeq?: number): KeyRange {
  const prefix = concatBytes(WAITER, nameBytes(name));
  return {
    start: prefix,
    end: beforeSeq === undefined
      ? concatBytes(prefix, new Uint8Array([0xff]))
      : concatBytes(prefix, seqBytes(beforeSeq)),
  };
}

function fields(value: Uint8Array, count: number, what: string): unknown[] {
  const decoded = decode(value);
  assert(
    Array.isArray(decoded) && decoded.length === count,
    `A stored ${what} row has ${count} fields`,
  );
  return decoded;
}

/** Encodes a name record. */
export function encodeName(record: NameRecord): Uint8Array {
  return encode([
    record.kind === "lock" ? 0 : 1,
    record.permits,
    record.holders,
    record.waiters,
    record.nextSeq,
  ]);
}

/** Decodes a name record. @throws {AssertionError} For a corrupt row. */
export function decodeName(value: Uint8Array): NameRecord {
  const [kind, permits, holders, waiters, nextSeq] = fields(value, 5, "name");
  assert(
    (kind === 0 || kind === 1) && typeof permits === "number" &&
      typeof holders === "number" && typeof waiters === "number" &&
      typeof nextSeq === "number",
    "A stored name row has the fields it was written with",
  );
  return {
    kind: kind === 0 ? "lock" : "election",
    permits,
    holders,
    waiters,
    nextSeq,
  };
}

/** Encodes a holder row's value. */
export function encodeHolder(record: HolderRecord): Uint8Array {
  return encode([record.lease, record.revision]);
}

/** Decodes a holder row's value. @throws {AssertionError} For a corrupt row. */
export function decodeHolder(value: Uint8Array): HolderRecord {
  const [lease, revision] = fields(value, 2, "holder");
  assert(
    typeof lease === "string" && typeof revision === "number",
    "A stored holder row has a lease and a revision",
  );
  return { lease, revision };
}

/** Encodes a waiter row's value. */
export function encodeWaiter(record: WaiterRecord): Uint8Array {
  return encode([record.lease, record.revision, record.value]);
}

/** Decodes a waiter row's value. @throws {AssertionError} For a corrupt row. */
export function decodeWaiter(value: Uint8Array): WaiterRecord {
  const [lease, revision, text] = fields(value, 3, "waiter");
  assert(
    typeof lease === "string" && typeof revision === "number" &&
      (text === null || typeof text === "string"),
    "A stored waiter row has a lease, a revision and a value",
  );
  return { lease, revision, value: text };
}

/** Encodes a lease row's value. */
export function encodeLeaseHold(hold: LeaseHold): Uint8Array {
  return encode(hold.kind === "holds" ? [0, hold.token] : [1, hold.seq]);
}

/** Decodes a lease row's value. @throws {AssertionError} For a corrupt row. */
export function decodeLeaseHold(value: Uint8Array): LeaseHold {
  const [kind, what] = fields(value, 2, "lease");
  if (kind === 0 && typeof what === "string") {
    return { kind: "holds", token: what };
  }
  assert(
    kind === 1 && typeof what === "number",
    "A stored lease row holds or waits",
  );
  return { kind: "waits", seq: what };
}

/** Encodes a leader row's value. */
export function encodeLeader(record: LeaderRecord): Uint8Array {
  return encode([record.token, record.lease, record.value, record.revision]);
}

/** Decodes a leader row's value. @throws {AssertionError} For a corrupt row. */
export function decodeLeader(value: Uint8Array): LeaderRecord {
  const [token, lease, text, revision] = fields(value, 4, "leader");
  assert(
    typeof token === "string" && typeof lease === "string" &&
      typeof text === "string" && typeof revision === "number",
    "A stored leader row has a token, a lease, a value and a revision",
  );
  return { token, lease, value: text, revision };
}

/** Encodes the names counter. */
export function encodeCount(names: number): Uint8Array {
  return encode([names]);
}

/** Decodes the names counter. @throws {AssertionError} For a corrupt row. */
export function decodeCount(value: Uint8Array): number {
  const [names] = fields(value, 1, "count");
  assert(typeof names === "number", "The stored names counter is a number");
  return names;
}
