/**
 * Base64url without padding, for keys and hashes in JSON files and tickets.
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../base/base64.ts";

/** Encodes bytes as base64url without padding. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return encodeBase64(bytes, { url: true, pad: false });
}

/**
 * Decodes base64url (padding optional).
 *
 * @throws {TypeError} When the text is not base64url.
 */
export function decodeBase64Url(text: string): Uint8Array {
  const bytes = decodeBase64(text, { url: true });
  if (bytes === null) throw new TypeError(`Cannot decode base64url: '${text}'`);
  return bytes;
}
