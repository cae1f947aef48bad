/**
 * RFC 4648 base32 in lowercase without padding, the alphabet of node ids and
 * tickets (case-insensitive to read, safe in URLs and file names).
 *
 * @module
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
const VALUES = new Map([...ALPHABET].map((char, value) => [char, value]));

/** Encodes bytes as lowercase base32 without padding. */
export function encodeBase32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >>> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes lowercase (or uppercase) base32 without padding.
 *
 * @throws {SyntaxError} On a character outside the alphabet or a length no
 *   encoding produces; the message says which.
 */
export function decodeBase32(text: string): Uint8Array {
  const remainder = text.length % 8;
  if (remainder === 1 || remainder === 3 || remainder === 6) {
    throw new SyntaxError(
      `Cannot decode base32 as its length is impossible: ${text.length} characters`,
    );
  }
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  let buffer = 0;
  let bits = 0;
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    const value = VALUES.get(text[i]!.toLowerCase());
    if (value === undefined) {
      throw new SyntaxError(
        `Cannot decode base32 as it holds an invalid character at position ${i}: '${
          text[i]
        }'`,
      );
    }
    buffer = ((buffer << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (buffer >>> bits) & 0xff;
    }
  }
  return out;
}
