/**
 * JS values ↔ wire values, as Deno KV stores them: `Uint8Array` as "bytes",
 * {@linkcode KvU64} as "le64", everything else as "v8" (the bytes of V8's
 * ValueSerializer, written by Aspen's pure-TS codec, so stock `Deno.openKv`
 * clients read the same values).
 *
 * @module
 */
import type { WireValue } from "../protocol/http_api.ts";
import {
  bytesFromWire,
  u64FromBytes,
  u64ToBytes,
} from "../protocol/http_api_codec.ts";
import { deserializeV8, serializeV8 } from "../model/v8_codec.ts";
import { KvU64 } from "./kv_u64.ts";

/**
 * Raw V8-serialized bytes, stored unchanged with encoding "v8" (for values
 * written elsewhere that must be copied byte for byte).
 */
export class KvV8Bytes {
  /** The V8-serialized bytes, as stored. */
  readonly data: Uint8Array;

  /** Wraps V8-serialized bytes. */
  constructor(data: Uint8Array) {
    this.data = data;
  }
}

/**
 * The wire form of a value.
 *
 * @throws {TypeError} For values V8 cannot serialize (functions, symbols…).
 */
export function valueToWire(value: unknown): WireValue {
  if (value instanceof Uint8Array) return { encoding: "bytes", data: value };
  if (value instanceof KvU64) {
    return { encoding: "le64", data: u64ToBytes(value.value) };
  }
  if (value instanceof KvV8Bytes) return { encoding: "v8", data: value.data };
  return { encoding: "v8", data: serializeV8(value) };
}

/**
 * The JS value of a wire value.
 *
 * @throws {TypeError} When "v8" bytes do not decode.
 */
export function valueFromWire(wire: WireValue): unknown {
  const data = bytesFromWire(wire.data, "value.data");
  switch (wire.encoding) {
    case "bytes":
      return data;
    case "le64":
      return new KvU64(u64FromBytes(data));
    case "v8":
      return deserializeV8(data);
  }
}
