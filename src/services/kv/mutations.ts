/**
 * Applies the mutations of one atomic operation to an overlay over the
 * store, in order, so the same key may appear several times. Any failure
 * returns a message and the caller drops the overlay: all or nothing.
 * Private to `src/services/kv/`.
 *
 * @module
 */
import type {
  KvArithmeticMutation,
  KvMutation,
  KvRow,
  Versionstamp,
} from "../../model/types.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { Overlay } from "../../state/write_context.ts";
import { concatBytes, toHex } from "../../base/bytes.ts";

export type { Overlay } from "../../state/write_context.ts";

const SUFFIX_TAG = new Uint8Array([0x02]);
const SUFFIX_END = new Uint8Array([0x00]);
const textEncoder = new TextEncoder();

/** The key setSuffixVersionstampedKey writes: the key, then the versionstamp as a string key part. */
export function versionstampedKey(
  key: Uint8Array,
  versionstamp: Versionstamp,
): Uint8Array {
  return concatBytes(
    key,
    SUFFIX_TAG,
    textEncoder.encode(toHex(versionstamp)),
    SUFFIX_END,
  );
}

function readU64(data: Uint8Array): bigint {
  return new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
}

function writeU64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  // setBigUint64 reduces modulo 2^64, which is the wrapping sum.
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

function arithmetic(
  mutation: KvArithmeticMutation,
  current: KvRow | null,
  versionstamp: Versionstamp,
): KvRow | string {
  const { type, key, value } = mutation;
  if (value.encoding !== "le64") {
    return `Failed to perform '${type}' mutation on a non-U64 operand`;
  }
  if (
    type === "sum" &&
    (mutation.sumMin != null || mutation.sumMax != null ||
      mutation.sumClamp === true)
  ) {
    return "Cannot use min/max parameters with KvU64 operands";
  }
  const operand = readU64(value.data);
  let result = operand;
  if (current !== null) {
    if (current.encoding !== "le64" || current.value.length !== 8) {
      return `Failed to perform '${type}' mutation on a non-U64 value in the database`;
    }
    const old = readU64(current.value);
    result = type === "sum"
      ? old + operand
      : type === "min"
      ? (old < operand ? old : operand)
      : old > operand
      ? old
      : operand;
  }
  // As Deno KV: the result of sum/min/max never carries an expiry.
  return {
    key,
    value: writeU64(result),
    encoding: "le64",
    versionstamp,
    expireAtMs: null,
  };
}

/**
 * Applies `mutations` to `overlay`, reading through to `store`.
 *
 * @returns null on success, or the type-mismatch message of the first failing mutation.
 */
export function applyMutations(
  store: StateStore,
  overlay: Overlay,
  mutations: readonly KvMutation[],
  versionstamp: Versionstamp,
): string | null {
  const read = (key: Uint8Array, id: string): KvRow | null => {
    const pending = overlay.get(id);
    return pending !== undefined ? pending.row : store.get(key);
  };
  for (const mutation of mutations) {
    switch (mutation.type) {
      case "set":
      case "setSuffixVersionstampedKey": {
        const key = mutation.type === "set"
          ? mutation.key
          : versionstampedKey(mutation.key, versionstamp);
        const row: KvRow = {
          key,
          value: mutation.value.data,
          encoding: mutation.value.encoding,
          versionstamp,
          expireAtMs: mutation.expireAtMs ?? null,
        };
        overlay.set(toHex(key), { key, row });
        break;
      }
      case "delete":
        overlay.set(toHex(mutation.key), { key: mutation.key, row: null });
        break;
      default: {
        const id = toHex(mutation.key);
        const result = arithmetic(
          mutation,
          read(mutation.key, id),
          versionstamp,
        );
        if (typeof result === "string") return result;
        overlay.set(id, { key: mutation.key, row: result });
      }
    }
  }
  return null;
}
