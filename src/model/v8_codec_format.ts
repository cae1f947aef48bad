/**
 * The V8 serialization format's tags, view sub-tags, RegExp flags, errors
 * and byte writer, shared by `v8_codec_serialize.ts` and
 * `v8_codec_deserialize.ts`. See `v8_codec.ts`.
 *
 * @module
 */

/** The format version Deno 2.9.6 writes for Deno KV (V8 15.0). */
export const V8_FORMAT_VERSION_DENO = 16;
/** The format version `node:v8` writes in Deno 2.9.6. */
export const V8_FORMAT_VERSION_NODE = 15;
/** Nesting depth at most, both ways. */
export const V8_DEPTH_MAX = 1000;

/** A value that cannot be serialized (a function, symbol, WeakMap, …), like V8's DataCloneError. */
export class V8SerializeError extends TypeError {
  override name = "V8SerializeError";
}

/** Bytes that are not a V8-serialized value this codec reads. */
export class V8DeserializeError extends TypeError {
  override name = "V8DeserializeError";
}

export const Tag = {
  padding: 0x00,
  verifyObjectCount: 0x3f, // '?'
  theHole: 0x2d, // '-'
  undefined: 0x5f, // '_'
  null: 0x30, // '0'
  true: 0x54, // 'T'
  false: 0x46, // 'F'
  int32: 0x49, // 'I'
  uint32: 0x55, // 'U'
  double: 0x4e, // 'N'
  bigint: 0x5a, // 'Z'
  utf8String: 0x53, // 'S'
  oneByteString: 0x22, // '"'
  twoByteString: 0x63, // 'c'
  objectReference: 0x5e, // '^'
  beginObject: 0x6f, // 'o'
  endObject: 0x7b, // '{'
  beginSparseArray: 0x61, // 'a'
  endSparseArray: 0x40, // '@'
  beginDenseArray: 0x41, // 'A'
  endDenseArray: 0x24, // '$'
  date: 0x44, // 'D'
  trueObject: 0x79, // 'y'
  falseObject: 0x78, // 'x'
  numberObject: 0x6e, // 'n'
  bigintObject: 0x7a, // 'z'
  stringObject: 0x73, // 's'
  regexp: 0x52, // 'R'
  beginMap: 0x3b, // ';'
  endMap: 0x3a, // ':'
  beginSet: 0x27, // '\''
  endSet: 0x2c, // ','
  arrayBuffer: 0x42, // 'B'
  resizableArrayBuffer: 0x7e, // '~'
  arrayBufferView: 0x56, // 'V'
  hostObject: 0x5c, // '\\'
} as const;

export type ViewConstructor =
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Uint8ClampedArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor
  | DataViewConstructor;

// deno-lint-ignore no-explicit-any
const Float16: ViewConstructor | undefined = (globalThis as any).Float16Array;

/** V8's view sub-tags and Node's host-object type indexes (as `node:v8` in Deno 2.9.6 numbers them), per constructor. */
export const VIEWS: readonly {
  readonly type: ViewConstructor | undefined;
  readonly subtag: number;
  readonly nodeIndex: number;
}[] = [
  { type: Int8Array, subtag: 0x62, nodeIndex: 0 }, // 'b'
  { type: Uint8Array, subtag: 0x42, nodeIndex: 1 }, // 'B'
  { type: Uint8ClampedArray, subtag: 0x43, nodeIndex: 2 }, // 'C'
  { type: Int16Array, subtag: 0x77, nodeIndex: 3 }, // 'w'
  { type: Uint16Array, subtag: 0x57, nodeIndex: 4 }, // 'W'
  { type: Int32Array, subtag: 0x64, nodeIndex: 5 }, // 'd'
  { type: Uint32Array, subtag: 0x44, nodeIndex: 6 }, // 'D'
  { type: Float32Array, subtag: 0x66, nodeIndex: 7 }, // 'f'
  { type: Float64Array, subtag: 0x46, nodeIndex: 8 }, // 'F'
  { type: DataView, subtag: 0x3f, nodeIndex: 9 }, // '?'
  { type: BigInt64Array, subtag: 0x71, nodeIndex: 11 }, // 'q'
  { type: BigUint64Array, subtag: 0x51, nodeIndex: 12 }, // 'Q'
  { type: Float16, subtag: 0x68, nodeIndex: 13 }, // 'h'
];

/** Node's host-object index of a `Buffer`, read back as a Uint8Array. */
export const NODE_BUFFER_INDEX = 10;

/** RegExp flag bits, in V8's order. */
export const REGEXP_FLAGS: readonly [string, number][] = [
  ["g", 1],
  ["i", 2],
  ["m", 4],
  ["y", 8],
  ["u", 16],
  ["s", 32],
  ["l", 64],
  ["d", 128],
  ["v", 256],
];

export function isSmi(value: number): boolean {
  return Number.isInteger(value) && value >= -0x80000000 &&
    value <= 0x7fffffff && !Object.is(value, -0);
}

/** A canonical array index (0 … 2^32 - 2) as a number, else null. */
export function arrayIndexOf(key: string): number | null {
  if (!/^(?:0|[1-9][0-9]{0,9})$/.test(key)) return null;
  const index = Number(key);
  return index <= 0xfffffffe ? index : null;
}

export class Writer {
  #buffer = new Uint8Array(256);
  #view = new DataView(this.#buffer.buffer);
  length = 0;

  #reserve(bytes: number): void {
    if (this.length + bytes <= this.#buffer.length) return;
    let size = this.#buffer.length * 2;
    while (size < this.length + bytes) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buffer.subarray(0, this.length));
    this.#buffer = next;
    this.#view = new DataView(next.buffer);
  }

  byte(value: number): void {
    this.#reserve(1);
    this.#buffer[this.length++] = value;
  }

  varint(value: number): void {
    // Unsigned, up to 2^53: no bit operators, which stop at 32 bits.
    do {
      let byte = value % 128;
      value = Math.floor(value / 128);
      if (value > 0) byte |= 0x80;
      this.byte(byte);
    } while (value > 0);
  }

  double(value: number): void {
    this.#reserve(8);
    this.#view.setFloat64(this.length, value, true);
    this.length += 8;
  }

  raw(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  finish(): Uint8Array {
    return this.#buffer.slice(0, this.length);
  }
}

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}
