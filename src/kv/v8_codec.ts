/**
 * A pure TypeScript V8 ValueSerializer / ValueDeserializer for the
 * structured-clonable subset Deno KV stores with encoding "v8": primitives,
 * one- and two-byte strings, numbers, bigints, Date, RegExp, ArrayBuffer and
 * every typed array / DataView, dense and sparse arrays, plain objects, Map,
 * Set, boxed primitives, and shared references and cycles.
 *
 * Two flavours of the same format are written:
 * - `"deno"` (default): what Deno KV stores (`core.serialize(value,
 *   { forStorage: true })` in Deno 2.9.6, V8 15.0): header `ff 10` (format
 *   version 16) and typed arrays as V8 array-buffer views (`B…V…`).
 * - `"node"`: what `node:v8`'s `serialize` writes in Deno: header `ff 0f`
 *   (version 15) and typed arrays as Node host objects (`\`, type, bytes).
 * The reader takes both (and versions 13 to 16).
 *
 * Where V8's bytes depend on hidden internal state that JavaScript cannot
 * see, this writer follows what a fresh literal gets: a string is one-byte
 * when every code unit is ≤ 0xff; an array with no holes is dense, except
 * one holding `undefined` among only numbers (V8 makes those holey, so
 * sparse); an all-number array holding any non-int32 (or -0) is written as
 * doubles throughout. An array V8 made holey by its history (`new Array(n)`
 * then filled) or one that went from doubles to mixed, would differ in bytes
 * while decoding to the same value.
 *
 * @module
 */
export {
  V8_DEPTH_MAX,
  V8_FORMAT_VERSION_DENO,
  V8_FORMAT_VERSION_NODE,
  V8DeserializeError,
  V8SerializeError,
} from "./v8_codec_format.ts";
export type { V8SerializeOptions } from "./v8_codec_serialize.ts";
export { serializeV8 } from "./v8_codec_serialize.ts";
export { deserializeV8 } from "./v8_codec_deserialize.ts";
