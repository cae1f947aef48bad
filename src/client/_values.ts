/**
 * JS values ↔ wire values: `Uint8Array` as "bytes", {@linkcode KvU64} as
 * "le64"; everything else is "v8" (structured-clone bytes, what Deno KV
 * stores), which needs a V8 serializer.
 *
 * @module
 */
import type { WireValue } from "../protocol/http_api.ts";
import {
  bytesFromWire,
  u64FromBytes,
  u64ToBytes,
} from "../protocol/http_api_codec.ts";
import { KvU64 } from "./kv_u64.ts";

/**
 * A value stored with encoding "v8" that this client cannot decode yet; it
 * round-trips unchanged through `set`.
 */
export class KvV8Bytes {
  /** The V8-serialized bytes, as stored. */
  readonly data: Uint8Array;

  /** Wraps V8-serialized bytes. */
  constructor(data: Uint8Array) {
    this.data = data;
  }
}

// TODO(v8): encode and decode other JS values with the pure-TS V8 serializer
// (src/kv/v8_codec.ts) once it is committed; until then they are refused
// on write and returned as KvV8Bytes on read.

/**
 * The wire form of a value.
 *
 * @throws {TypeError} For values other than Uint8Array, KvU64 and KvV8Bytes, until V8 serialization lands.
 */
export function valueToWire(value: unknown): WireValue {
  if (value instanceof Uint8Array) return { encoding: "bytes", data: value };
  if (value instanceof KvU64) {
    return { encoding: "le64", data: u64ToBytes(value.value) };
  }
  if (value instanceof KvV8Bytes) return { encoding: "v8", data: value.data };
  throw new TypeError(
    `Cannot store value of type '${
      value === null ? "null" : typeof value
    }': this client stores Uint8Array (bytes) and KvU64 (le64) only until V8 serialization lands`,
  );
}

/** The JS value of a wire value. */
export function valueFromWire(wire: WireValue): unknown {
  const data = bytesFromWire(wire.data, "value.data");
  switch (wire.encoding) {
    case "bytes":
      return data;
    case "le64":
      return new KvU64(u64FromBytes(data));
    case "v8":
      return new KvV8Bytes(data);
  }
}
