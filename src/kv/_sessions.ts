/**
 * Exactly-once writes (Raft thesis §6.3): the results of recent writes that
 * carried a session (client id, sequence number), kept in replicated state
 * under the internal key space so a retried write is answered with its first
 * result instead of applying again. Bounded: the oldest entries beyond
 * {@linkcode SESSION_RESULTS_MAX} are dropped, so a retry later than that many
 * writes is applied again. Private to `src/kv/`.
 *
 * | row    | key                                           | value                          |
 * | ------ | --------------------------------------------- | ------------------------------ |
 * | result | `ff 73 72` clientId `00` seq (8 bytes BE)     | MessagePack of the apply result |
 * | order  | `ff 73 6f` index (8 bytes BE) clientId `00` seq | empty: oldest first            |
 * | count  | `ff 73 6e`                                    | MessagePack count              |
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import type { LogIndex } from "../raft/types.ts";
import { concatBytes, toHex } from "./_bytes.ts";
import type { Overlay } from "./_mutations.ts";
import { INTERNAL_KEY_BYTE } from "./_queue_keys.ts";
import type { StateStore } from "./state_store.ts";
import type { KvApplyResult, KvRow, KvSession, Versionstamp } from "./types.ts";

/** Results kept at most. */
export const SESSION_RESULTS_MAX = 10_000;

const RESULT = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x72]);
const ORDER = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6f]);
const ORDER_END = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x70]);
const COUNT = new Uint8Array([INTERNAL_KEY_BYTE, 0x73, 0x6e]);
const encoder = new TextEncoder();

function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

function sessionPart(session: KvSession): Uint8Array {
  return concatBytes(
    encoder.encode(session.clientId),
    new Uint8Array([0]),
    u64(session.seq),
  );
}

/** Reads and records session results for one state store. */
export class SessionTable {
  readonly #store: StateStore;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** The first result of this session's write, if it was applied before. */
  lookup(session: KvSession): KvApplyResult | null {
    const row = this.#store.get(concatBytes(RESULT, sessionPart(session)));
    return row === null ? null : decode(row.value) as KvApplyResult;
  }

  /**
   * Stages the result of a write into `overlay` (applied with it, atomically),
   * evicting the oldest result when the table is full.
   */
  record(
    overlay: Overlay,
    session: KvSession,
    index: LogIndex,
    result: KvApplyResult,
    stamp: Versionstamp,
  ): void {
    const part = sessionPart(session);
    const put = (key: Uint8Array, value: Uint8Array) => {
      const row: KvRow = {
        key,
        value,
        encoding: "bytes",
        versionstamp: stamp,
        expireAtMs: null,
      };
      overlay.set(toHex(key), { key, row });
    };
    put(concatBytes(RESULT, part), encode(result));
    put(concatBytes(ORDER, u64(index), part), new Uint8Array(0));
    let count = this.#count() + 1;
    if (count > SESSION_RESULTS_MAX) {
      const [oldest] = this.#store.scan({
        start: ORDER,
        end: ORDER_END,
        limit: 1,
        reverse: false,
      });
      if (oldest !== undefined) {
        const oldestPart = oldest.key.subarray(ORDER.length + 8);
        overlay.set(toHex(oldest.key), { key: oldest.key, row: null });
        const resultKey = concatBytes(RESULT, oldestPart);
        overlay.set(toHex(resultKey), { key: resultKey, row: null });
        count--;
      }
    }
    put(COUNT, encode(count));
  }

  #count(): number {
    const row = this.#store.get(COUNT);
    return row === null ? 0 : decode(row.value) as number;
  }
}
