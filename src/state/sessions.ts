/**
 * Exactly-once writes (Raft thesis §6.3): the results of recent writes that
 * carried a session (client id, sequence number), kept in replicated state
 * under the internal key space so a retried write is answered with its first
 * result instead of applying again. The state host consults it for the
 * commands of every service (see `host.ts`); private to `src/state/`.
 *
 * Each result is stored with a digest of its command (the service decides
 * what it covers: for KV, the operation without its session, with
 * clock-derived deadlines reduced to whether they are set): a session reused on a different write is refused (`sessionReused`)
 * instead of being answered with another write's result.
 *
 * Bounded: at most {@linkcode SESSION_RESULTS_MAX} results are kept; the
 * oldest go first. Evicting a result raises its client's eviction horizon
 * (the highest sequence number whose result was dropped), so a retry at or
 * below the horizon whose result is gone is answered `sessionExpired`
 * (outcome unknown), never applied again. Horizons are kept for the
 * {@linkcode SESSION_CLIENTS_MAX} clients whose results were evicted most
 * recently; a client dropped from that list loses the guarantee (its retry
 * of a write older than 10,000 writes and 100,000 evicting clients ago
 * applies again).
 *
 * | row      | key                                             | value                            |
 * | -------- | ----------------------------------------------- | -------------------------------- |
 * | result   | `ff 73 72` clientId `00` seq (8 bytes BE)       | MessagePack `[result, digest]`   |
 * | order    | `ff 73 6f` index (8 bytes BE) clientId `00` seq | empty: oldest first              |
 * | count    | `ff 73 6e`                                      | MessagePack count                |
 * | horizon  | `ff 73 68` clientId                             | MessagePack `[horizonSeq, index]` |
 * | h-order  | `ff 73 69` index (8 bytes BE) clientId          | empty: least recently evicted first |
 * | h-count  | `ff 73 6d`                                      | MessagePack count                |
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { LogIndex } from "../raft/types.ts";
import { concatBytes, equalBytes } from "../base/bytes.ts";
import { internalRowWriter, type Overlay } from "./write_context.ts";
import type { StateStore } from "./state_store.ts";
import type { Versionstamp } from "../model/types.ts";
import type { EnvelopeSession as KvSession } from "./envelope.ts";

// One encoder and one decoder, reused: msgpack's encode() and decode() build
// a new one per call (with its own 2 KiB buffer). Only small values (rows'
// records, results) go through them, so the encoder's buffer stays small.
const msgpackEncoder = new Encoder();
const msgpackDecoder = new Decoder();
const encode = (value: unknown): Uint8Array => msgpackEncoder.encode(value);
const decode = (bytes: Uint8Array): unknown => msgpackDecoder.decode(bytes);

const INTERNAL_KEY_BYTE = 0xff;

/** Results kept at most. */
export const SESSION_RESULTS_MAX = 10_000;
/** Clients whose eviction horizon is kept at most. */
export const SESSION_CLIENTS_MAX = 100_000;

/** Testing knobs of the session table (planted bugs for the simulator). */
export interface SessionKnobs {
  /** The old behaviour: a retry whose result was evicted applies again. */
  readonly reapplyAfterEviction?: boolean;
  /** Results kept at most, instead of {@linkcode SESSION_RESULTS_MAX} (the simulator evicts early). */
  readonly resultsMax?: number;
}

const RESULT = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x72]);
const ORDER = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6f]);
const ORDER_END = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x70]);
const COUNT = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6e]);
const HORIZON = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x68]);
const HORIZON_ORDER = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x69]);
const HORIZON_ORDER_END = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6a]);
const HORIZON_COUNT = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6d]);
/** Bytes of a session digest kept per result. */
export const SESSION_DIGEST_BYTES = 16;
const encoder = new TextEncoder();

function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

function readU64(bytes: Uint8Array): number {
  return Number(
    new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0),
  );
}

function sessionPart(session: KvSession): Uint8Array {
  return concatBytes(
    encoder.encode(session.clientId),
    new Uint8Array([0]),
    u64(session.seq),
  );
}

/** What the table knows of a session's write. */
export type SessionLookup =
  | { readonly kind: "new" }
  | { readonly kind: "applied"; readonly result: unknown }
  | { readonly kind: "reused" }
  | { readonly kind: "expired"; readonly horizon: number };

/** Reads and records session results for one state store. */
export class SessionTable {
  readonly #store: StateStore;
  readonly #knobs: SessionKnobs;

  constructor(store: StateStore, knobs: SessionKnobs = {}) {
    this.#store = store;
    this.#knobs = knobs;
  }

  /** What is known of this session's write with this digest. */
  lookup(session: KvSession, digest: Uint8Array): SessionLookup {
    const row = this.#store.get(concatBytes(RESULT, sessionPart(session)));
    if (row !== null) {
      const stored = decode(row.value);
      // Rows written before digests were kept hold the bare result.
      if (!Array.isArray(stored)) {
        return { kind: "applied", result: stored as unknown };
      }
      const [result, first] = stored as [unknown, Uint8Array];
      return equalBytes(first, digest)
        ? { kind: "applied", result }
        : { kind: "reused" };
    }
    if (this.#knobs.reapplyAfterEviction) return { kind: "new" };
    const horizon = this.#horizon(session.clientId);
    return horizon !== null && session.seq <= horizon
      ? { kind: "expired", horizon }
      : { kind: "new" };
  }

  /**
   * Stages the result of a write into `overlay` (applied with it, atomically),
   * evicting the oldest result when the table is full and raising that
   * result's client horizon.
   */
  record(
    overlay: Overlay,
    session: KvSession,
    digest: Uint8Array,
    index: LogIndex,
    result: unknown,
    stamp: Versionstamp,
  ): void {
    const { put, remove } = internalRowWriter(overlay, stamp);
    const part = sessionPart(session);
    put(concatBytes(RESULT, part), encode([result, digest]));
    put(concatBytes(ORDER, u64(index), part), new Uint8Array(0));
    let count = this.#count(COUNT) + 1;
    if (count > (this.#knobs.resultsMax ?? SESSION_RESULTS_MAX)) {
      const [oldest] = this.#store.scan({
        start: ORDER,
        end: ORDER_END,
        limit: 1,
        reverse: false,
      });
      if (oldest !== undefined) {
        const oldestPart = oldest.key.subarray(ORDER.length + 8);
        remove(oldest.key);
        remove(concatBytes(RESULT, oldestPart));
        count--;
        this.#raiseHorizon(oldestPart, index, put, remove);
      }
    }
    put(COUNT, encode(count));
  }

  /** Raises the horizon of the client of an evicted result. */
  #raiseHorizon(
    part: Uint8Array,
    index: LogIndex,
    put: (key: Uint8Array, value: Uint8Array) => void,
    remove: (key: Uint8Array) => void,
  ): void {
    const clientBytes = part.subarray(0, part.length - 9);
    const seq = readU64(part.subarray(part.length - 8));
    const key = concatBytes(HORIZON, clientBytes);
    const row = this.#store.get(key);
    let clients = this.#count(HORIZON_COUNT);
    let horizon = seq;
    if (row === null) {
      clients++;
    } else {
      const [previous, previousIndex] = decode(row.value) as [number, number];
      horizon = Math.max(previous, seq);
      remove(concatBytes(HORIZON_ORDER, u64(previousIndex), clientBytes));
    }
    put(key, encode([horizon, index]));
    put(concatBytes(HORIZON_ORDER, u64(index), clientBytes), new Uint8Array(0));
    if (clients > SESSION_CLIENTS_MAX) {
      // The least recently evicted other client (this one was just renewed).
      const oldest = this.#store.scan({
        start: HORIZON_ORDER,
        end: HORIZON_ORDER_END,
        limit: 2,
        reverse: false,
      }).find((r) =>
        !equalBytes(r.key.subarray(HORIZON_ORDER.length + 8), clientBytes)
      );
      if (oldest !== undefined) {
        remove(oldest.key);
        remove(
          concatBytes(HORIZON, oldest.key.subarray(HORIZON_ORDER.length + 8)),
        );
        clients--;
      }
    }
    put(HORIZON_COUNT, encode(clients));
  }

  #horizon(clientId: string): number | null {
    const row = this.#store.get(
      concatBytes(HORIZON, encoder.encode(clientId)),
    );
    return row === null ? null : (decode(row.value) as [number, number])[0];
  }

  #count(key: Uint8Array): number {
    const row = this.#store.get(key);
    return row === null ? 0 : decode(row.value) as number;
  }
}
