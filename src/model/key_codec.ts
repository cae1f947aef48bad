/**
 * Deno KV key tuples ↔ bytes, with Deno's exact encoding: the subset of the
 * FoundationDB tuple layer that Deno uses. The bytes order keys the way Deno
 * KV orders them (tag first, so bytes < string < bigint < number < false <
 * true, whatever the docs say about bigint and number).
 *
 * | part       | encoding                                                     |
 * | ---------- | ------------------------------------------------------------ |
 * | Uint8Array | `01`, bytes with `00` escaped as `00 ff`, `00`               |
 * | string     | `02`, UTF-8 with `00` escaped as `00 ff`, `00`               |
 * | bigint     | `14` for 0; `14+n` / `14-n` then n big-endian bytes (one's complement when negative) for n ≤ 8; `1d n` / `0b ~n` beyond |
 * | number     | `21`, IEEE 754 big-endian, sign bit flipped (all bits when negative); NaN canonical, sign kept |
 * | false/true | `26` / `27`                                                  |
 *
 * The server stores keys as the bytes it receives and never re-encodes them;
 * this codec is for Aspen's own client, tests and tools.
 *
 * @module
 */

/** One element of a Deno KV key. */
export type KvKeyPart = Uint8Array | string | number | bigint | boolean;
/** A Deno KV key: a tuple of parts. */
export type KvKey = readonly KvKeyPart[];

const TAG_BYTES = 0x01;
const TAG_STRING = 0x02;
const TAG_NEGATIVE_INTEGER_LONG = 0x0b;
const TAG_INTEGER_ZERO = 0x14;
const TAG_POSITIVE_INTEGER_LONG = 0x1d;
const TAG_DOUBLE = 0x21;
const TAG_FALSE = 0x26;
const TAG_TRUE = 0x27;
const ESCAPE = 0xff;
/** Integers of up to this many bytes carry their length in the tag. */
const INTEGER_SHORT_BYTES_MAX = 8;
/** The long integer form stores its length in one byte. */
const INTEGER_BYTES_MAX = 255;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * A growable output buffer. {@linkcode encodeKey} writes into one shared
 * writer and copies the result out once (a typed array allocation costs
 * far more than the few bytes a key holds).
 */
class ByteWriter {
  bytes = new Uint8Array(256);
  length = 0;

  reserve(count: number): void {
    if (this.length + count <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  push(byte: number): void {
    this.reserve(1);
    this.bytes[this.length++] = byte;
  }

  pushEscaped(data: Uint8Array): void {
    this.reserve(data.length * 2 + 1);
    for (let i = 0; i < data.length; i++) {
      const byte = data[i]!;
      this.bytes[this.length++] = byte;
      if (byte === 0) this.bytes[this.length++] = ESCAPE;
    }
    this.bytes[this.length++] = 0;
  }

  /**
   * Writes `text` as UTF-8, `00` escaped, then the terminator, when it is
   * all ASCII (UTF-8 is then the char codes).
   *
   * @returns false, having written nothing, when `text` is not ASCII.
   */
  pushEscapedAscii(text: string): boolean {
    const start = this.length;
    this.reserve(text.length * 2 + 1);
    const bytes = this.bytes;
    let at = start;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) return false;
      bytes[at++] = code;
      if (code === 0) bytes[at++] = ESCAPE;
    }
    bytes[at++] = 0;
    this.length = at;
    return true;
  }

  /** A copy of the bytes written, in a buffer of its own. */
  result(): Uint8Array {
    const out = new Uint8Array(this.length);
    out.set(this.bytes.subarray(0, this.length));
    return out;
  }
}

/** The writer {@linkcode encodeKey} reuses; null while a call holds it. */
let sharedWriter: ByteWriter | null = new ByteWriter();
/** Keys longer than this give their grown buffer back rather than keep it. */
const SHARED_WRITER_BYTES_MAX = 64 * 1024;

/**
 * Encodes a key tuple into Deno KV's key bytes.
 *
 * @example
 * ```ts
 * import { encodeKey } from "./key_codec.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(encodeKey(["hello"]), new Uint8Array([2, 104, 101, 108, 108, 111, 0]));
 * ```
 *
 * @param key The tuple; may be empty (an empty key encodes to no bytes).
 * @returns The encoded bytes.
 * @throws {TypeError} When a part is not a Deno KV key part.
 * @throws {RangeError} When a bigint needs more than 255 bytes.
 */
export function encodeKey(key: KvKey): Uint8Array {
  // Re-entered only if a part's getter encodes a key: that call gets its own.
  const writer = sharedWriter ?? new ByteWriter();
  sharedWriter = null;
  try {
    for (const part of key) encodePart(writer, part);
    return writer.result();
  } finally {
    writer.length = 0;
    if (writer.bytes.length > SHARED_WRITER_BYTES_MAX) {
      writer.bytes = new Uint8Array(256);
    }
    sharedWriter = writer;
  }
}

function encodePart(writer: ByteWriter, part: KvKeyPart): void {
  switch (typeof part) {
    case "string":
      writer.push(TAG_STRING);
      if (!writer.pushEscapedAscii(part)) {
        writer.pushEscaped(textEncoder.encode(part));
      }
      return;
    case "bigint":
      encodeBigInt(writer, part);
      return;
    case "number":
      encodeDouble(writer, part);
      return;
    case "boolean":
      writer.push(part ? TAG_TRUE : TAG_FALSE);
      return;
  }
  if (part instanceof Uint8Array) {
    writer.push(TAG_BYTES);
    writer.pushEscaped(part);
    return;
  }
  throw new TypeError(
    `Cannot encode key part: expected Uint8Array, string, number, bigint or boolean, received '${typeof part}'`,
  );
}

function bigIntMagnitudeBytes(magnitude: bigint): Uint8Array {
  let hex = magnitude.toString(16);
  if (hex.length % 2 === 1) hex = "0" + hex;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

function encodeBigInt(writer: ByteWriter, value: bigint): void {
  if (value === 0n) {
    writer.push(TAG_INTEGER_ZERO);
    return;
  }
  const negative = value < 0n;
  const bytes = bigIntMagnitudeBytes(negative ? -value : value);
  const length = bytes.length;
  if (length > INTEGER_BYTES_MAX) {
    throw new RangeError(
      `Cannot encode bigint key part: it needs ${length} bytes, more than ${INTEGER_BYTES_MAX}`,
    );
  }
  if (negative) {
    if (length <= INTEGER_SHORT_BYTES_MAX) {
      writer.push(TAG_INTEGER_ZERO - length);
    } else {
      writer.push(TAG_NEGATIVE_INTEGER_LONG);
      writer.push(length ^ 0xff);
    }
    for (const byte of bytes) writer.push(byte ^ 0xff);
    return;
  }
  if (length <= INTEGER_SHORT_BYTES_MAX) {
    writer.push(TAG_INTEGER_ZERO + length);
  } else {
    writer.push(TAG_POSITIVE_INTEGER_LONG);
    writer.push(length);
  }
  for (const byte of bytes) writer.push(byte);
}

const doubleView = new DataView(new ArrayBuffer(8));

function encodeDouble(writer: ByteWriter, value: number): void {
  doubleView.setFloat64(0, value);
  const negative = (doubleView.getUint8(0) & 0x80) !== 0;
  if (Number.isNaN(value)) {
    // Deno canonicalizes a NaN's payload but keeps its sign.
    doubleView.setUint32(0, negative ? 0xfff80000 : 0x7ff80000);
    doubleView.setUint32(4, 0);
  }
  writer.push(TAG_DOUBLE);
  writer.reserve(8);
  for (let i = 0; i < 8; i++) {
    const byte = doubleView.getUint8(i);
    writer.bytes[writer.length++] = negative
      ? byte ^ 0xff
      : i === 0
      ? byte ^ 0x80
      : byte;
  }
}

/**
 * Decodes Deno KV key bytes into a tuple.
 *
 * @param bytes The encoded key.
 * @returns The tuple.
 * @throws {TypeError} When `bytes` is not a valid encoding.
 */
export function decodeKey(bytes: Uint8Array): KvKeyPart[] {
  const parts: KvKeyPart[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const tag = bytes[offset++]!;
    if (tag === TAG_STRING || tag === TAG_BYTES) {
      const end = escapedEnd(bytes, offset);
      parts.push(
        tag === TAG_BYTES
          ? unescapeBytes(bytes, offset, end)
          : decodeString(bytes, offset, end),
      );
      offset = end + 1;
    } else if (
      tag >= TAG_NEGATIVE_INTEGER_LONG && tag <= TAG_POSITIVE_INTEGER_LONG
    ) {
      const [value, next] = readBigInt(bytes, offset, tag);
      offset = next;
      parts.push(value);
    } else if (tag === TAG_DOUBLE) {
      parts.push(readDouble(bytes, offset));
      offset += 8;
    } else if (tag === TAG_FALSE || tag === TAG_TRUE) {
      parts.push(tag === TAG_TRUE);
    } else {
      throw new TypeError(
        `Cannot decode key: unknown tag 0x${tag.toString(16)} at offset ${
          offset - 1
        }`,
      );
    }
  }
  return parts;
}

function decodeUtf8(data: Uint8Array): string {
  try {
    return textDecoder.decode(data);
  } catch (cause) {
    throw new TypeError("Cannot decode key: string part is not valid UTF-8", {
      cause,
    });
  }
}

/** Strings up to this many bytes are read without the TextDecoder when ASCII. */
const ASCII_FAST_BYTES_MAX = 256;

/**
 * The offset of the `00` that ends the escaped part starting at `start`
 * (an escaped `00` is `00 ff`).
 *
 * @throws {TypeError} When the part has no terminator.
 */
function escapedEnd(bytes: Uint8Array, start: number): number {
  let offset = start;
  while (offset < bytes.length) {
    if (bytes[offset++] !== 0) continue;
    if (bytes[offset] !== ESCAPE) return offset - 1;
    offset++;
  }
  throw new TypeError(
    `Cannot decode key: unterminated bytes or string part starting at offset ${
      start - 1
    }`,
  );
}

/** The bytes of the escaped part `[start, end)`, unescaped, in a buffer of their own. */
function unescapeBytes(
  bytes: Uint8Array,
  start: number,
  end: number,
): Uint8Array {
  let zeros = 0;
  for (let i = start; i < end; i++) if (bytes[i] === 0) zeros++;
  if (zeros === 0) return bytes.slice(start, end);
  const out = new Uint8Array(end - start - zeros);
  let at = 0;
  for (let i = start; i < end; i++) {
    const byte = bytes[i]!;
    out[at++] = byte;
    if (byte === 0) i++; // skip the escape byte
  }
  return out;
}

/** The string of the escaped part `[start, end)`. */
function decodeString(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= ASCII_FAST_BYTES_MAX) {
    // ASCII (always valid UTF-8) is its char codes; escaped zeros included.
    let text = "";
    let i = start;
    for (; i < end; i++) {
      const byte = bytes[i]!;
      if (byte >= 0x80) break;
      text += String.fromCharCode(byte);
      if (byte === 0) i++; // skip the escape byte
    }
    if (i >= end) return text;
  }
  return decodeUtf8(unescapeBytes(bytes, start, end));
}

function readFixed(
  bytes: Uint8Array,
  offset: number,
  length: number,
): Uint8Array {
  if (offset + length > bytes.length) {
    throw new TypeError(
      `Cannot decode key: part at offset ${offset} needs ${length} bytes, only ${
        bytes.length - offset
      } left`,
    );
  }
  return bytes.subarray(offset, offset + length);
}

function readBigInt(
  bytes: Uint8Array,
  start: number,
  tag: number,
): [bigint, number] {
  let offset = start;
  let length: number;
  let negative: boolean;
  if (tag === TAG_POSITIVE_INTEGER_LONG || tag === TAG_NEGATIVE_INTEGER_LONG) {
    negative = tag === TAG_NEGATIVE_INTEGER_LONG;
    const lengthByte = readFixed(bytes, offset++, 1)[0]!;
    length = negative ? lengthByte ^ 0xff : lengthByte;
  } else {
    negative = tag < TAG_INTEGER_ZERO;
    length = negative ? TAG_INTEGER_ZERO - tag : tag - TAG_INTEGER_ZERO;
  }
  const data = readFixed(bytes, offset, length);
  let magnitude = 0n;
  for (const byte of data) {
    magnitude = (magnitude << 8n) | BigInt(negative ? byte ^ 0xff : byte);
  }
  return [negative ? -magnitude : magnitude, offset + length];
}

function readDouble(bytes: Uint8Array, offset: number): number {
  const data = readFixed(bytes, offset, 8);
  const negative = (data[0]! & 0x80) === 0;
  for (let i = 0; i < 8; i++) {
    const byte = data[i]!;
    doubleView.setUint8(
      i,
      negative ? byte ^ 0xff : i === 0 ? byte ^ 0x80 : byte,
    );
  }
  return doubleView.getFloat64(0);
}
