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
 * Where V8's bytes depend on hidden representations JavaScript cannot see,
 * this writer follows what a fresh literal gets: a string is one-byte when
 * every code unit is ≤ 0xff; a number is an int32 (`I`) when it is one,
 * else a double; an array with no holes is dense, except one holding
 * `undefined` among only numbers (V8 makes those holey, so sparse); an
 * all-number array holding any non-int32 (or -0) is written as doubles
 * throughout. V8 itself writes other bytes for the same value when the
 * value's history differs: an integral number kept as a heap number (the
 * result of float arithmetic, or read out of a double array) is written as
 * a double, an array built up by `push` or filled after `new Array(n)` may
 * be holey (sparse), and every array V8 deserializes is holey, so a plain
 * get-then-set through Deno KV changes the bytes. Such differences never
 * change the decoded value: both codecs read each other's bytes to equal
 * values (tested against `core.serialize` and `node:v8` in Deno 2.9.6).
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
