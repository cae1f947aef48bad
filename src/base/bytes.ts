/**
 * Byte helpers shared by the KV modules: ordering, equality, hex and
 * base64url. Private to `src/kv/`.
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "./base64.ts";

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

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    out += HEX_DIGITS[byte >> 4]! + HEX_DIGITS[byte & 0x0f]!;
  }
  return out;
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

/** Base64url with `=` padding, as Rust's `BASE64_URL_SAFE` engine writes it. */
export function toBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes, { url: true });
}

/**
 * Parses padded base64url; anything else (wrong alphabet, missing padding,
 * non-zero trailing bits) is refused, like a canonical decoder.
 *
 * @returns The bytes, or null when `text` is not canonical padded base64url.
 */
export function fromBase64Url(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  const bytes = decodeBase64(text, { url: true });
  // Canonical: the bytes must encode back to exactly this text.
  return bytes !== null && toBase64Url(bytes) === text ? bytes : null;
}
