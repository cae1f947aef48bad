/**
 * Resends of stock-client writes (issue 12 item 0): a stock `Deno.openKv`
 * client resends a write whose answer it did not get (a dead entry node, a
 * reset connection) with the same bytes and no request id. The KV Connect
 * server tags such a write with the client id of its data-path token and a
 * SHA-256 of its body (see `KvResend`); this table keeps, in replicated
 * state, the first result of each (client, digest) applied recently, so a
 * mergeable write with the same client and digest is answered with that
 * result instead of applying again. Private to `src/services/kv/`.
 *
 * A record whose answer the entry node delivered is marked so (a
 * `resendDelivered` entry the node proposes shortly after answering): it no
 * longer answers anything, since an identical write after a delivered
 * answer is a new write, even on a restarted node that remembers nothing.
 *
 * Bounded by count ({@linkcode RESEND_RECORDS_MAX}, oldest dropped first) and
 * by age: a record older than {@linkcode RESEND_WINDOW_MS} (by the proposing
 * nodes' clocks, carried in the log) answers nothing and is pruned.
 *
 * | row    | key                                              | value                            |
 * | ------ | ------------------------------------------------ | -------------------------------- |
 * | record | `ff 6b 71` clientId `00` digest (32 bytes)       | MessagePack `[result, atMs, index, delivered]` |
 * | order  | `ff 6b 75` index (8 bytes BE) clientId `00` digest | empty: oldest first            |
 * | count  | `ff 6b 77`                                       | MessagePack count                |
 *
 * These rows are the KV service's keyspace `ff 6b` ({@linkcode KV_INTERNAL_KEYSPACE}).
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { LogIndex } from "../../raft/types.ts";
import { concatBytes, equalBytes, toHex } from "../../base/bytes.ts";
import { internalRowWriter, type Overlay } from "../../state/write_context.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { StateStore } from "../../state/state_store.ts";
import type {
  KvApplyResult,
  KvResend,
  KvResendMark,
  KvRow,
  Versionstamp,
} from "../../model/types.ts";

// One decoder, reused: msgpack's decode() builds a new one per call. (Rows
// are encoded by `rows` below, for the same reason.)
const msgpackDecoder = new Decoder();
const decode = (bytes: Uint8Array): unknown => msgpackDecoder.decode(bytes);

/** Resend records kept at most. */
export const RESEND_RECORDS_MAX = 50_000;
/** How long a record answers a resend, in ms of the proposers' clocks. */
export const RESEND_WINDOW_MS = 5 * 60_000;
/** Expired records pruned at most per recorded write. */
const PRUNE_PER_WRITE = 2;

/** Testing knobs of the resend table (planted bugs for the simulator). */
export interface ResendKnobs {
  /** The old behaviour: a resend is applied as a new write. */
  readonly ignoreResends?: boolean;
}

/** The KV service's own internal rows (resend records): `ff 6b`. */
export const KV_INTERNAL_KEYSPACE = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x6b]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x6c]),
} as const;
const RECORD = new Uint8Array([INTERNAL_KEY_BYTE, 0x6b, 0x71]);
const ORDER = new Uint8Array([INTERNAL_KEY_BYTE, 0x6b, 0x75]);
const ORDER_END = new Uint8Array([INTERNAL_KEY_BYTE, 0x6b, 0x76]);
const COUNT = new Uint8Array([INTERNAL_KEY_BYTE, 0x6b, 0x77]);
const encoder = new TextEncoder();
/** One MessagePack encoder for every row (`encode()` allocates one, and a 2 KiB buffer, per call). */
const rows = new Encoder();
/** MessagePack `false` and `true`: the last byte of a record (its `delivered`). */
const MSGPACK_FALSE = 0xc2;
const MSGPACK_TRUE = 0xc3;
/** MessagePack fixarray of 4: a record `[result, atMs, index, delivered]`. */
const RECORD_ARRAY_HEADER = 0x94;

/**
 * A record's bytes with `delivered` set: the same bytes as encoding
 * `[result, atMs, index, true]` again (the record was encoded from these
 * values), without decoding and encoding the result.
 */
function deliveredRecord(
  value: Uint8Array,
  decoded: readonly unknown[],
): Uint8Array {
  if (
    value[0] === RECORD_ARRAY_HEADER &&
    value[value.length - 1] === MSGPACK_FALSE
  ) {
    const out = value.slice();
    out[out.length - 1] = MSGPACK_TRUE;
    return out;
  }
  return rows.encode([decoded[0], decoded[1], decoded[2], true]);
}

function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

function part(resend: { clientId: string; digest: Uint8Array }): Uint8Array {
  return concatBytes(
    encoder.encode(resend.clientId),
    new Uint8Array([0]),
    resend.digest,
  );
}

/** Reads and records resend results for one state store. */
export class ResendTable {
  readonly #store: StateStore;
  readonly #knobs: ResendKnobs;

  constructor(store: StateStore, knobs: ResendKnobs = {}) {
    this.#store = store;
    this.#knobs = knobs;
  }

  /** The first result of an identical applied write, when `resend` may be its resend. */
  lookup(resend: KvResend): KvApplyResult | null {
    if (!resend.mergeable || this.#knobs.ignoreResends) return null;
    const row = this.#store.get(concatBytes(RECORD, part(resend)));
    if (row === null) return null;
    const [result, atMs, , delivered] = decode(row.value) as [
      KvApplyResult,
      number,
      number,
      boolean | undefined,
    ];
    if (delivered === true) return null;
    return atMs + RESEND_WINDOW_MS < resend.atMs ? null : result;
  }

  /**
   * Stages marks of delivered answers into `overlay`: each record still
   * holding the write of its index stops answering resends.
   */
  markDelivered(
    overlay: Overlay,
    marks: readonly KvResendMark[],
    stamp: Versionstamp,
  ): number {
    let marked = 0;
    for (const mark of marks) {
      const key = concatBytes(RECORD, part(mark));
      const row = overlay.get(toHex(key))?.row ?? this.#store.get(key);
      if (row === null || row === undefined) continue;
      const decoded = decode(row.value) as [KvApplyResult, number, number];
      if (decoded[2] !== mark.index) continue;
      internalRowWriter(overlay, stamp).put(
        key,
        deliveredRecord(row.value, decoded),
      );
      marked++;
    }
    return marked;
  }

  /** Stages the result of a write into `overlay`, pruning old records. */
  record(
    overlay: Overlay,
    resend: KvResend,
    index: LogIndex,
    result: KvApplyResult,
    stamp: Versionstamp,
  ): void {
    const { put, remove } = internalRowWriter(overlay, stamp);
    const own = part(resend);
    const recordKey = concatBytes(RECORD, own);
    let count = this.#count();
    const previous = this.#store.get(recordKey);
    if (previous === null) count++;
    else {
      const [, , previousIndex] = decode(previous.value) as [
        KvApplyResult,
        number,
        number,
      ];
      remove(concatBytes(ORDER, u64(previousIndex), own));
    }
    put(recordKey, rows.encode([result, resend.atMs, index, false]));
    put(concatBytes(ORDER, u64(index), own), new Uint8Array(0));
    // The oldest rows, read lazily: most writes stop at the first one (it
    // is recent and the table is not full), and a one-row scan is cheaper.
    // Same rows as one scan of PRUNE_PER_WRITE + 1: the store does not
    // change meanwhile (removals are staged in the overlay).
    let oldest = this.#oldest(1);
    let pruned = 0;
    for (let at = 0; at < PRUNE_PER_WRITE + 1; at++) {
      if (at === oldest.length && oldest.length === 1) {
        oldest = this.#oldest(PRUNE_PER_WRITE + 1);
      }
      const row = oldest[at];
      if (row === undefined) break;
      if (pruned >= PRUNE_PER_WRITE) break;
      const otherPart = row.key.subarray(ORDER.length + 8);
      if (equalBytes(otherPart, own)) continue;
      const otherKey = concatBytes(RECORD, otherPart);
      const other = this.#store.get(otherKey);
      const atMs = other === null
        ? 0
        : (decode(other.value) as [KvApplyResult, number])[1];
      if (
        count <= RESEND_RECORDS_MAX && atMs + RESEND_WINDOW_MS >= resend.atMs
      ) {
        break;
      }
      remove(row.key);
      if (other !== null) {
        remove(otherKey);
        count--;
      }
      pruned++;
    }
    put(COUNT, rows.encode(count));
  }

  #oldest(limit: number): KvRow[] {
    return this.#store.scan({
      start: ORDER,
      end: ORDER_END,
      limit,
      reverse: false,
    });
  }

  #count(): number {
    const row = this.#store.get(COUNT);
    return row === null ? 0 : decode(row.value) as number;
  }
}
