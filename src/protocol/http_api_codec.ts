/**
 * Conversions between Deno KV keys, values and versionstamps and their
 * HTTP wire form ({@link ./http_api.ts}), plus the JSON and MessagePack body
 * codecs. Readers check every field and throw {@linkcode WireFormatError}
 * with a message naming the field. No Deno API: the client uses it in
 * browsers too.
 *
 * @module
 */
import { decodePaddedBase64, encodeBase64 } from "../base/base64.ts";
import {
  decode as decodeMsgpack,
  encode as encodeMsgpack,
} from "../deps/msgpack.ts";
import type { KvKey, KvKeyPart } from "../model/key_codec.ts";
import type { WireKeyPart, WireValue, WireValueEncoding } from "./http_api.ts";
import { CONTENT_TYPE_JSON, CONTENT_TYPE_MSGPACK } from "./http_api.ts";

/** A wire field has the wrong shape; `code` is the API error code to answer with. */
export class WireFormatError extends TypeError {
  override name = "WireFormatError";
  /** "badRequest" for a body shape, "invalidKey" for a key, "invalid" for a value or versionstamp. */
  readonly code: "badRequest" | "invalidKey" | "invalid";

  constructor(
    code: "badRequest" | "invalidKey" | "invalid",
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
  }
}

/** Body formats the API speaks. */
export type BodyFormat = "json" | "msgpack";

const U64_MAX = (1n << 64n) - 1n;
/** Most digits accepted for a bigint key part (a 255-byte integer has ~615). */
const BIGINT_DIGITS_MAX = 620;

/** Standard padded base64 (RFC 4648 §4). */
export function toBase64(bytes: Uint8Array): string {
  return encodeBase64(bytes);
}

/**
 * Parses standard padded base64.
 *
 * @returns The bytes, or null when `text` is not padded base64.
 */
export function fromBase64(text: string): Uint8Array | null {
  return decodePaddedBase64(text);
}

/** Reads a byte field: base64 text (JSON) or binary (MessagePack). */
export function bytesFromWire(
  wire: unknown,
  field: string,
  code: WireFormatError["code"] = "invalid",
): Uint8Array {
  if (wire instanceof Uint8Array) return wire;
  if (typeof wire === "string") {
    const bytes = fromBase64(wire);
    if (bytes !== null) return bytes;
  }
  throw new WireFormatError(
    code,
    `Invalid '${field}': expected padded base64 text or binary, received ${
      describe(wire)
    }`,
  );
}

/** A short description of a received value for error messages. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") {
    return value.length > 40 ? `'${value.slice(0, 40)}…'` : `'${value}'`;
  }
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/** The wire form of one key part: plain when JSON keeps it exactly, tagged otherwise. */
export function keyPartToWire(part: KvKeyPart): WireKeyPart {
  switch (typeof part) {
    case "string":
    case "boolean":
      return part;
    case "number":
      if (Number.isNaN(part)) return { type: "number", value: "NaN" };
      if (part === Infinity) return { type: "number", value: "Infinity" };
      if (part === -Infinity) return { type: "number", value: "-Infinity" };
      if (Object.is(part, -0)) return { type: "number", value: "-0" };
      return part;
    case "bigint":
      return { type: "bigint", value: part.toString() };
    default:
      if (part instanceof Uint8Array) return { type: "bytes", value: part };
      throw new TypeError(
        `Cannot encode key part: expected string, number, bigint, boolean or Uint8Array, received ${
          describe(part)
        }`,
      );
  }
}

/** The wire form of a key. */
export function keyToWire(key: KvKey): WireKeyPart[] {
  return key.map(keyPartToWire);
}

const SPECIAL_NUMBERS: Readonly<Record<string, number>> = {
  "NaN": NaN,
  "Infinity": Infinity,
  "-Infinity": -Infinity,
  "-0": -0,
};

function tagged(wire: object, field: string): KvKeyPart {
  const { type, value } = wire as { type?: unknown; value?: unknown };
  const bad = (expected: string): never => {
    throw new WireFormatError(
      "invalidKey",
      `Invalid key part '${field}': a '${
        String(type)
      }' part needs ${expected}, received ${describe(value)}`,
    );
  };
  switch (type) {
    case "string":
      return typeof value === "string" ? value : bad("a string value");
    case "boolean":
      return typeof value === "boolean" ? value : bad("a boolean value");
    case "number":
      if (typeof value === "number") return value;
      if (typeof value === "string" && value in SPECIAL_NUMBERS) {
        return SPECIAL_NUMBERS[value]!;
      }
      return bad("a number or 'NaN', 'Infinity', '-Infinity', '-0'");
    case "bigint":
      if (
        typeof value === "string" && value.length <= BIGINT_DIGITS_MAX &&
        /^-?[0-9]+$/.test(value)
      ) return BigInt(value);
      return bad("a decimal integer string");
    case "bytes":
      return bytesFromWire(value, field, "invalidKey");
    default:
      throw new WireFormatError(
        "invalidKey",
        `Invalid key part '${field}': unknown type ${
          describe(type)
        } (expected string, number, bigint, boolean or bytes)`,
      );
  }
}

/**
 * Reads a key from the wire.
 *
 * @throws {WireFormatError} With code "invalidKey" when it is not a list of valid parts.
 */
export function keyFromWire(wire: unknown, field = "key"): KvKeyPart[] {
  if (!Array.isArray(wire)) {
    throw new WireFormatError(
      "invalidKey",
      `Invalid '${field}': expected a list of key parts, received ${
        describe(wire)
      }`,
    );
  }
  return wire.map((part: unknown, index: number) =>
    keyPartFromWire(part, field, index)
  );
}

function keyPartFromWire(
  part: unknown,
  field: string,
  index: number,
): KvKeyPart {
  if (typeof part === "string" || typeof part === "boolean") return part;
  if (typeof part === "number") return part;
  // The part's path is only built when a message may need it.
  if (typeof part === "object" && part !== null && !Array.isArray(part)) {
    if (!(part instanceof Uint8Array)) {
      return tagged(part, `${field}[${index}]`);
    }
  }
  throw new WireFormatError(
    "invalidKey",
    `Invalid key part '${field}[${index}]': expected a string, number, boolean or tagged object, received ${
      describe(part)
    }`,
  );
}

/** The 8 little-endian bytes of a u64. */
export function u64ToBytes(value: bigint): Uint8Array {
  if (value < 0n || value > U64_MAX) {
    throw new RangeError(
      `Cannot encode u64 as it must be between 0 and 2^64-1: current value is ${value}`,
    );
  }
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, value, true);
  return bytes;
}

/** The u64 of 8 little-endian bytes. */
export function u64FromBytes(bytes: Uint8Array): bigint {
  if (bytes.length !== 8) {
    throw new RangeError(
      `Cannot decode u64 as it must be 8 bytes: current length is ${bytes.length}`,
    );
  }
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
}

/** The wire form of a stored value. */
export function valueToWire(
  encoding: WireValueEncoding,
  data: Uint8Array,
): WireValue {
  if (encoding === "le64" && data.length === 8) {
    return { encoding, data, u64: u64FromBytes(data).toString() };
  }
  return { encoding, data };
}

/**
 * Reads a value from the wire.
 *
 * @throws {WireFormatError} With code "invalid" when the encoding or bytes are wrong.
 */
export function valueFromWire(
  wire: unknown,
  field = "value",
): { encoding: WireValueEncoding; data: Uint8Array } {
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}': expected { encoding, data }, received ${
        describe(wire)
      }`,
    );
  }
  const { encoding, data, u64 } = wire as Record<string, unknown>;
  if (encoding !== "v8" && encoding !== "bytes" && encoding !== "le64") {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}.encoding': expected 'v8', 'bytes' or 'le64', received ${
        describe(encoding)
      }`,
    );
  }
  if (encoding === "le64" && data === undefined) {
    if (typeof u64 !== "string" || !/^[0-9]{1,20}$/.test(u64)) {
      throw new WireFormatError(
        "invalid",
        `Invalid '${field}.u64': expected a decimal u64 string, received ${
          describe(u64)
        }`,
      );
    }
    const value = BigInt(u64);
    if (value > U64_MAX) {
      throw new WireFormatError(
        "invalid",
        `Invalid '${field}.u64': must be at most 2^64-1: received '${u64}'`,
      );
    }
    return { encoding, data: u64ToBytes(value) };
  }
  const bytes = bytesFromWire(data, `${field}.data`);
  if (encoding === "le64" && bytes.length !== 8) {
    throw new WireFormatError(
      "invalid",
      `Invalid '${field}.data': a le64 value must be 8 bytes, received ${bytes.length}`,
    );
  }
  return { encoding, data: bytes };
}

/** The body format a `Content-Type` header names, or null when it names neither. */
export function formatOfContentType(header: string | null): BodyFormat | null {
  if (header === null) return "json";
  const type = header.split(";")[0]!.trim().toLowerCase();
  if (type === CONTENT_TYPE_JSON || type === "") return "json";
  if (type === CONTENT_TYPE_MSGPACK || type === "application/x-msgpack") {
    return "msgpack";
  }
  return null;
}

/** The reply format an `Accept` header asks for: MessagePack only when named. */
export function formatOfAccept(header: string | null): BodyFormat {
  if (header === null) return "json";
  return /application\/(x-)?msgpack/i.test(header) ? "msgpack" : "json";
}

/** The content type of a format. */
export function contentTypeOf(format: BodyFormat): string {
  return format === "msgpack" ? CONTENT_TYPE_MSGPACK : CONTENT_TYPE_JSON;
}

// Shared: neither keeps state between calls (no streaming).
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

function jsonReplacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? toBase64(value) : value;
}

/** Encodes a body: JSON text (bytes as base64) or MessagePack (bytes as binary). */
export function encodeBody(
  body: unknown,
  format: BodyFormat,
): Uint8Array<ArrayBuffer> {
  if (format === "msgpack") return new Uint8Array(encodeMsgpack(body));
  return textEncoder.encode(JSON.stringify(body, jsonReplacer));
}

/**
 * Decodes a body.
 *
 * @throws {WireFormatError} With code "badRequest" when it is not valid JSON or MessagePack.
 */
export function decodeBody(bytes: Uint8Array, format: BodyFormat): unknown {
  try {
    if (format === "msgpack") return decodeMsgpack(bytes);
    return JSON.parse(textDecoder.decode(bytes));
  } catch (error) {
    throw new WireFormatError(
      "badRequest",
      `Invalid body: not valid ${
        format === "msgpack" ? "MessagePack" : "JSON"
      }: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
