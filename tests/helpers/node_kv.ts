/** Small KV helpers shared by the node and runner tests. */
import { encodeKey } from "../../src/model/key_codec.ts";
import type { KvBackend } from "../../src/services/kv/api.ts";
import type { KvAtomicOperation } from "../../src/model/types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An atomic operation that sets the one-part key `[key]` to the string `value`. */
export function setOperation(key: string, value: string): KvAtomicOperation {
  return {
    checks: [],
    mutations: [{
      type: "set",
      key: encodeKey([key]),
      value: { encoding: "bytes", data: encoder.encode(value) },
    }],
    enqueues: [],
  };
}

/** A strong read of the one-part key `[key]` as a string, or null when absent. */
export async function readValue(
  backend: KvBackend,
  key: string,
): Promise<string | null> {
  const start = encodeKey([key]);
  const [rows] = await backend.read([{
    start,
    end: new Uint8Array([...start, 0]),
    limit: 1,
    reverse: false,
  }], "strong");
  const row = rows?.[0];
  return row === undefined ? null : decoder.decode(row.value.data);
}
