/**
 * A hash of a store's whole applied state, to compare replicas.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { StateStore } from "./state_store.ts";
import { concatBytes, toHex } from "../base/bytes.ts";

const ENCODING_BYTES = { v8: 1, le64: 2, bytes: 3 } as const;
/** Rows read per scan while hashing. */
const HASH_PAGE_ROWS = 1000;

/**
 * SHA-256 (hex) over the applied index and every row in key order: key,
 * value, encoding, versionstamp and deadline, each length-prefixed. Two
 * replicas that applied the same log have the same hash. Metadata is not
 * included.
 */
export function stateHash(store: StateStore): string {
  const hash = sha256.create();
  const header = new DataView(new ArrayBuffer(8));
  header.setBigUint64(0, BigInt(store.appliedIndex()));
  hash.update(new Uint8Array(header.buffer));
  let start: Uint8Array = new Uint8Array(0);
  const end = new Uint8Array([0xff, 0xff, 0xff, 0xff]);
  for (;;) {
    const rows = store.scan({ start, end, limit: HASH_PAGE_ROWS });
    for (const row of rows) {
      const fields = new DataView(new ArrayBuffer(17));
      fields.setUint32(0, row.key.length);
      fields.setUint32(4, row.value.length);
      fields.setUint8(8, ENCODING_BYTES[row.encoding]);
      fields.setBigInt64(9, BigInt(row.expireAtMs ?? -1));
      hash.update(new Uint8Array(fields.buffer));
      hash.update(row.key);
      hash.update(row.value);
      hash.update(row.versionstamp);
    }
    if (rows.length < HASH_PAGE_ROWS) break;
    start = concatBytes(rows[rows.length - 1]!.key, new Uint8Array([0]));
  }
  return toHex(hash.digest());
}
