/**
 * Byte helpers for every layer: ordering, equality, the one constant-time
 * comparison, concatenation and hex. (Base64 and base64url are in
 * `base64.ts`, base32 in `base32.ts`.)
 *
 * @module
 */

/**
 * Compares two byte strings the way SQLite compares blobs (memcmp, then
 * length), which is Deno KV's key order.
 *
 * @returns A negative number, zero or a positive number.
 */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < length; i++) {
    const difference = a[i]! - b[i]!;
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

/** True when both byte strings hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}

/**
 * Compares two byte strings in time that depends only on their lengths,
 * never on where they first differ (nor on whether the lengths differ):
 * the one comparison for tokens, MACs, keys and hashes.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  }
  return difference === 0;
}

/** True when `bytes` begins with `prefix`. */
export function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[i] !== prefix[i]) return false;
  }
  return true;
}

/** Concatenates byte strings into a new array. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

const HEX_DIGITS = "0123456789abcdef";
/** The char codes of the hex digits. */
const HEX_CODES: readonly number[] = Array.from(
  { length: 16 },
  (_, digit) => HEX_DIGITS.charCodeAt(digit),
);
/** The two hex digits of every byte: one concatenation per byte. */
const HEX_PAIRS: readonly string[] = Array.from(
  { length: 256 },
  (_, byte) => HEX_DIGITS[byte >> 4]! + HEX_DIGITS[byte & 0x0f]!,
);
/** Inputs up to this many bytes are built from char codes in one call. */
const HEX_FLAT_BYTES_MAX = 4096;
/** The char codes of the hex being built (reused: nothing here re-enters). */
const hexCodes: number[] = [];

/**
 * Lower-case hex of `bytes`. Built as one flat string (from char codes, not
 * by concatenation) up to {@linkcode HEX_FLAT_BYTES_MAX} bytes: hex keys
 * Maps, and hashing a concatenated string first flattens it.
 */
export function toHex(bytes: Uint8Array): string {
  const length = bytes.length;
  if (length > HEX_FLAT_BYTES_MAX) {
    let out = "";
    for (let i = 0; i < length; i++) out += HEX_PAIRS[bytes[i]!]!;
    return out;
  }
  hexCodes.length = length * 2;
  for (let i = 0; i < length; i++) {
    const byte = bytes[i]!;
    hexCodes[2 * i] = HEX_CODES[byte >> 4]!;
    hexCodes[2 * i + 1] = HEX_CODES[byte & 0x0f]!;
  }
  return String.fromCharCode.apply(null, hexCodes);
}

/**
 * Parses hex (either case) into bytes.
 *
 * @throws {TypeError} When `hex` has an odd length or a non-hex digit.
 */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError(`Cannot parse hex: received '${hex}'`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}
