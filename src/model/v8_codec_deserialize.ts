/**
 * {@linkcode deserializeV8}: reads V8 ValueSerializer bytes (format
 * versions 13 to 16, Deno's array-buffer views and Node's typed-array host
 * objects). See `v8_codec.ts`.
 *
 * @module
 */
import {
  NODE_BUFFER_INDEX,
  REGEXP_FLAGS,
  Tag,
  V8_DEPTH_MAX,
  V8DeserializeError,
  VIEWS,
} from "./v8_codec_format.ts";

const VERSION_MIN = 13;
const VERSION_MAX = 16;
/** Format version from which views carry a flags varint. */
const VERSION_VIEW_FLAGS = 14;
const VIEW_FLAG_LENGTH_TRACKING = 1;

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

function fail(detail: string): never {
  throw new V8DeserializeError(`Cannot deserialize V8 value: ${detail}`);
}

class Deserializer {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #objects: unknown[] = [];
  #position = 0;
  #depth = 0;
  version = 0;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.#position >= this.#bytes.length;
  }

  header(): void {
    if (this.#byte() !== 0xff) fail("missing header 0xff");
    this.version = this.#varint();
    if (this.version < VERSION_MIN || this.version > VERSION_MAX) {
      fail(`unsupported format version ${this.version}`);
    }
  }

  #byte(): number {
    const byte = this.#bytes[this.#position++];
    if (byte === undefined) fail("unexpected end of data");
    return byte;
  }

  #take(length: number): Uint8Array {
    const end = this.#position + length;
    if (end > this.#bytes.length) fail("unexpected end of data");
    const out = this.#bytes.subarray(this.#position, end);
    this.#position = end;
    return out;
  }

  #varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.#byte();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
    }
    fail("varint too long");
  }

  #double(): number {
    const value = this.#take(8);
    return new DataView(value.buffer, value.byteOffset, 8).getFloat64(0, true);
  }

  /** The next tag, skipping padding. */
  #tag(): number {
    let tag = this.#byte();
    while (tag === Tag.padding) tag = this.#byte();
    return tag;
  }

  #peekTag(): number | undefined {
    let position = this.#position;
    while (this.#bytes[position] === Tag.padding) position++;
    return this.#bytes[position];
  }

  #expect(tag: number): void {
    if (this.#peekTag() === tag) this.#tag();
    else fail(`expected tag 0x${tag.toString(16)}`);
  }

  #bigint(): bigint {
    const bitfield = this.#varint();
    const bytes = this.#take(Math.floor(bitfield / 2));
    let value = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) {
      value = (value << 8n) | BigInt(bytes[i]!);
    }
    return bitfield % 2 === 1 ? -value : value;
  }

  #twoByte(): string {
    const bytes = this.#take(this.#varint());
    if (bytes.length % 2 !== 0) fail("odd two-byte string length");
    const units = new Uint16Array(bytes.length / 2);
    for (let i = 0; i < units.length; i++) {
      units[i] = bytes[i * 2]! | (bytes[i * 2 + 1]! << 8);
    }
    let text = "";
    for (let i = 0; i < units.length; i += 8192) {
      text += String.fromCharCode(...units.subarray(i, i + 8192));
    }
    return text;
  }

  #string(): string {
    const value = this.value();
    if (typeof value !== "string") fail("expected a string");
    return value;
  }

  #register<T>(value: T): T {
    this.#objects.push(value);
    return value;
  }

  value(): unknown {
    if (++this.#depth > V8_DEPTH_MAX) {
      fail(`nesting deeper than ${V8_DEPTH_MAX}`);
    }
    let result = this.#valueOf(this.#tag());
    if (
      result instanceof ArrayBuffer && this.#peekTag() === Tag.arrayBufferView
    ) {
      this.#tag();
      result = this.#arrayBufferView(result);
    }
    this.#depth--;
    return result;
  }

  #valueOf(tag: number): unknown {
    switch (tag) {
      case Tag.undefined:
        return undefined;
      case Tag.null:
        return null;
      case Tag.true:
        return true;
      case Tag.false:
        return false;
      case Tag.int32: {
        const zigzag = this.#varint();
        return (zigzag >>> 1) ^ -(zigzag & 1);
      }
      case Tag.uint32:
        return this.#varint();
      case Tag.double:
        return this.#double();
      case Tag.bigint:
        return this.#bigint();
      case Tag.oneByteString:
        return latin1.decode(this.#take(this.#varint()));
      case Tag.twoByteString:
        return this.#twoByte();
      case Tag.utf8String:
        return utf8.decode(this.#take(this.#varint()));
      case Tag.objectReference: {
        const id = this.#varint();
        if (id >= this.#objects.length) fail(`unknown object reference ${id}`);
        return this.#objects[id];
      }
      case Tag.verifyObjectCount:
        this.#varint();
        return this.value();
      default:
        return this.#objectOf(tag);
    }
  }

  #objectOf(tag: number): unknown {
    switch (tag) {
      case Tag.beginObject: {
        const object = this.#register({});
        this.#properties(object, Tag.endObject);
        return object;
      }
      case Tag.beginDenseArray:
        return this.#denseArray();
      case Tag.beginSparseArray: {
        const array = this.#register(new Array(this.#varint()));
        this.#properties(array, Tag.endSparseArray);
        this.#varint();
        return array;
      }
      case Tag.date:
        return this.#register(new Date(this.#double()));
      case Tag.regexp:
        return this.#regexp();
      case Tag.beginMap:
        return this.#map();
      case Tag.beginSet:
        return this.#set();
      case Tag.arrayBuffer: {
        const length = this.#varint();
        return this.#register(this.#take(length).slice().buffer);
      }
      case Tag.resizableArrayBuffer: {
        const length = this.#varint();
        const maxByteLength = this.#varint();
        const buffer = new ArrayBuffer(length, { maxByteLength });
        new Uint8Array(buffer).set(this.#take(length));
        return this.#register(buffer);
      }
      case Tag.hostObject:
        return this.#nodeHostObject();
      default:
        return this.#boxed(tag);
    }
  }

  #boxed(tag: number): unknown {
    switch (tag) {
      case Tag.trueObject:
        return this.#register(Object(true));
      case Tag.falseObject:
        return this.#register(Object(false));
      case Tag.numberObject:
        return this.#register(Object(this.#double()));
      case Tag.bigintObject:
        return this.#register(Object(this.#bigint()));
      case Tag.stringObject: {
        const id = this.#objects.length;
        this.#objects.push(undefined);
        const boxed = Object(this.#string());
        this.#objects[id] = boxed;
        return boxed;
      }
      default:
        fail(`unknown tag 0x${tag.toString(16)} at byte ${this.#position - 1}`);
    }
  }

  /** Reads key/value pairs until `endTag`, then checks the count. */
  #properties(target: object, endTag: number): void {
    let count = 0;
    while (this.#peekTag() !== endTag) {
      const key = this.value();
      if (typeof key !== "string" && typeof key !== "number") {
        fail("property key is not a string or number");
      }
      Object.defineProperty(target, String(key), {
        value: this.value(),
        writable: true,
        enumerable: true,
        configurable: true,
      });
      count++;
    }
    this.#tag();
    if (this.#varint() !== count) fail("property count mismatch");
  }

  #denseArray(): unknown[] {
    const length = this.#varint();
    if (length > this.#bytes.length - this.#position) fail("array too long");
    const array = this.#register(new Array(length));
    for (let i = 0; i < length; i++) {
      if (this.#peekTag() === Tag.theHole) {
        this.#tag();
        continue;
      }
      array[i] = this.value();
    }
    let count = 0;
    while (this.#peekTag() !== Tag.endDenseArray) {
      const key = this.value();
      if (typeof key !== "string" && typeof key !== "number") {
        fail("property key is not a string or number");
      }
      Object.defineProperty(array, String(key), {
        value: this.value(),
        writable: true,
        enumerable: true,
        configurable: true,
      });
      count++;
    }
    this.#tag();
    if (this.#varint() !== count) fail("property count mismatch");
    this.#varint();
    return array;
  }

  #regexp(): RegExp {
    const id = this.#objects.length;
    this.#objects.push(undefined);
    const source = this.#string();
    const bits = this.#varint();
    const flags = REGEXP_FLAGS.filter(([, bit]) => (bits & bit) !== 0)
      .map(([flag]) => flag).join("");
    let regexp: RegExp;
    try {
      regexp = new RegExp(source, flags);
    } catch (error) {
      fail(`invalid RegExp: ${(error as Error).message}`);
    }
    this.#objects[id] = regexp;
    return regexp;
  }

  #map(): Map<unknown, unknown> {
    const map = this.#register(new Map());
    let count = 0;
    while (this.#peekTag() !== Tag.endMap) {
      const key = this.value();
      map.set(key, this.value());
      count += 2;
    }
    this.#tag();
    if (this.#varint() !== count) fail("map entry count mismatch");
    return map;
  }

  #set(): Set<unknown> {
    const set = this.#register(new Set());
    let count = 0;
    while (this.#peekTag() !== Tag.endSet) {
      set.add(this.value());
      count++;
    }
    this.#tag();
    if (this.#varint() !== count) fail("set entry count mismatch");
    return set;
  }

  #arrayBufferView(buffer: ArrayBuffer): ArrayBufferView {
    const subtag = this.#byte();
    const byteOffset = this.#varint();
    const byteLength = this.#varint();
    const flags = this.version >= VERSION_VIEW_FLAGS ? this.#varint() : 0;
    const kind = VIEWS.find((v) => v.subtag === subtag);
    if (kind?.type === undefined) {
      fail(`unknown view type 0x${subtag.toString(16)}`);
    }
    if (byteOffset + byteLength > buffer.byteLength) fail("view out of range");
    const Type = kind.type;
    const lengthTracking = (flags & VIEW_FLAG_LENGTH_TRACKING) !== 0;
    let view: ArrayBufferView;
    if (Type === DataView) {
      view = lengthTracking
        ? new DataView(buffer, byteOffset)
        : new DataView(buffer, byteOffset, byteLength);
    } else {
      const size = (Type as Uint8ArrayConstructor).BYTES_PER_ELEMENT;
      if (byteOffset % size !== 0 || byteLength % size !== 0) {
        fail("misaligned typed array");
      }
      view = lengthTracking
        ? new (Type as Uint8ArrayConstructor)(buffer, byteOffset)
        : new (Type as Uint8ArrayConstructor)(
          buffer,
          byteOffset,
          byteLength / size,
        );
    }
    return this.#register(view);
  }

  #nodeHostObject(): ArrayBufferView {
    const index = this.#varint();
    const byteLength = this.#varint();
    const kind = index === NODE_BUFFER_INDEX
      ? { type: Uint8Array }
      : VIEWS.find((v) => v.nodeIndex === index);
    if (kind?.type === undefined) fail(`unknown host object type ${index}`);
    const buffer = this.#take(byteLength).slice().buffer;
    const Type = kind.type as Uint8ArrayConstructor;
    const size = Type === (DataView as unknown) ? 1 : Type.BYTES_PER_ELEMENT;
    if (byteLength % size !== 0) fail("misaligned typed array");
    return this.#register(
      Type === (DataView as unknown)
        ? new DataView(buffer) as unknown as Uint8Array
        : new Type(buffer, 0, byteLength / size),
    );
  }
}

/**
 * Deserializes V8 ValueSerializer bytes, as Deno KV stores them (or as
 * `node:v8` writes them).
 *
 * @example
 * ```ts
 * import { deserializeV8, serializeV8 } from "./v8_codec.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(deserializeV8(serializeV8({ a: [1, "b"] })), { a: [1, "b"] });
 * ```
 *
 * @param bytes Serialized bytes, header included.
 * @returns The value.
 * @throws {V8DeserializeError} For bytes that are truncated, malformed, of an unknown version, or hold a type this codec does not read (errors, wasm, shared memory).
 */
export function deserializeV8(bytes: Uint8Array): unknown {
  const deserializer = new Deserializer(bytes);
  deserializer.header();
  const value = deserializer.value();
  if (!deserializer.done) fail("trailing bytes after the value");
  return value;
}
