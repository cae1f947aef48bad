/**
 * Base64 and base64url for every part of Aspen (HTTP bodies, list cursors,
 * keys and hashes in files and tickets). Uses the platform's
 * `Uint8Array.prototype.toBase64` / `Uint8Array.fromBase64` where they exist
 * (Deno 2.9, current browsers): they are native and were the leader's
 * largest encoding cost when written in TypeScript. Falls back to a table
 * otherwise, so the client module still runs in older browsers.
 *
 * @module
 */

/** Which alphabet, and whether `=` padding is written. */
export interface Base64Options {
  /** base64url (`-`, `_`) instead of standard (`+`, `/`). Default false. */
  readonly url?: boolean;
  /** Write `=` padding. Default true. */
  readonly pad?: boolean;
}

type NativeEncode = (
  options: { alphabet: string; omitPadding: boolean },
) => string;
type NativeDecode = (
  text: string,
  options: { alphabet: string; lastChunkHandling: string },
) => Uint8Array;

const nativeEncode =
  (Uint8Array.prototype as unknown as { toBase64?: NativeEncode }).toBase64;
const nativeDecode =
  (Uint8Array as unknown as { fromBase64?: NativeDecode }).fromBase64;

const STANDARD =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Encodes bytes as base64 (see {@linkcode Base64Options}). */
export function encodeBase64(
  bytes: Uint8Array,
  options: Base64Options = {},
): string {
  const url = options.url ?? false;
  const pad = options.pad ?? true;
  if (nativeEncode !== undefined) {
    return nativeEncode.call(bytes, {
      alphabet: url ? "base64url" : "base64",
      omitPadding: !pad,
    });
  }
  const alphabet = url ? URL_SAFE : STANDARD;
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]! +
      alphabet[(n >> 6) & 63]! + alphabet[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest > 0) {
    const n = (bytes[i]! << 16) | (rest === 2 ? bytes[i + 1]! << 8 : 0);
    out += alphabet[n >> 18]! + alphabet[(n >> 12) & 63]!;
    if (rest === 2) out += alphabet[(n >> 6) & 63]!;
    if (pad) out += rest === 2 ? "=" : "==";
  }
  return out;
}

const NATIVE_DECODE_STANDARD = {
  alphabet: "base64",
  lastChunkHandling: "loose",
} as const;
const NATIVE_DECODE_URL = {
  alphabet: "base64url",
  lastChunkHandling: "loose",
} as const;

/**
 * Decodes base64 (padding optional); null when the text is not base64 of
 * the chosen alphabet.
 */
export function decodeBase64(
  text: string,
  options: Pick<Base64Options, "url"> = {},
): Uint8Array | null {
  const url = options.url ?? false;
  const pattern = url ? /^[A-Za-z0-9_-]*={0,2}$/ : /^[A-Za-z0-9+/]*={0,2}$/;
  if (!pattern.test(text)) return null;
  const body = text.replace(/=+$/, "");
  if (body.length % 4 === 1) return null;
  if (nativeDecode !== undefined) {
    try {
      return nativeDecode(
        body,
        url ? NATIVE_DECODE_URL : NATIVE_DECODE_STANDARD,
      );
    } catch {
      return null;
    }
  }
  return decodeWithTable(body, url ? URL_SAFE : STANDARD);
}

/** 1 for each char code of the standard alphabet, below 128. */
const STANDARD_CODES = new Uint8Array(128);
for (let i = 0; i < STANDARD.length; i++) {
  STANDARD_CODES[STANDARD.charCodeAt(i)] = 1;
}
const PAD = 0x3d; // "="

/**
 * True when `text` is standard base64 with its `=` padding: what
 * `/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/`
 * matches (a loop, a few times faster than that pattern).
 */
export function isPaddedBase64(text: string): boolean {
  const length = text.length;
  if (length % 4 !== 0) return false;
  let end = length;
  if (length > 0 && text.charCodeAt(length - 1) === PAD) {
    end--;
    if (text.charCodeAt(length - 2) === PAD) end--;
  }
  for (let i = 0; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code >= 128 || STANDARD_CODES[code] === 0) return false;
  }
  return true;
}

/**
 * Decodes standard base64 with its `=` padding ({@linkcode isPaddedBase64});
 * null for any other text. The bytes are those of {@linkcode decodeBase64}.
 *
 * With the native decoder the text is checked by decoding it: it refuses
 * anything outside the alphabet and misplaced padding, and the only thing
 * it skips, ASCII whitespace, always leaves fewer bytes than a text of
 * that length without it decodes to (so the length check refuses it).
 */
export function decodePaddedBase64(text: string): Uint8Array | null {
  const length = text.length;
  if (length % 4 !== 0) return null;
  if (nativeDecode === undefined) {
    return isPaddedBase64(text)
      ? decodeWithTable(text.replace(/=+$/, ""), STANDARD)
      : null;
  }
  let bytes: Uint8Array;
  try {
    bytes = nativeDecode(text, NATIVE_DECODE_STANDARD);
  } catch {
    return null;
  }
  let padding = 0;
  if (length > 0 && text.charCodeAt(length - 1) === PAD) {
    padding = text.charCodeAt(length - 2) === PAD ? 2 : 1;
  }
  return bytes.length === (length / 4) * 3 - padding ? bytes : null;
}

function decodeWithTable(body: string, alphabet: string): Uint8Array {
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of body) {
    value = (value << 6) | alphabet.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  return out;
}

/** Base64url without padding: keys and hashes in files, tickets and tokens. */
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
