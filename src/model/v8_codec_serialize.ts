/**
 * {@linkcode serializeV8}: writes V8 ValueSerializer bytes. See
 * `v8_codec.ts` for the format flavours and where bytes may differ from V8.
 *
 * @module
 */
import {
  arrayIndexOf,
  isSmi,
  REGEXP_FLAGS,
  Tag,
  V8_DEPTH_MAX,
  V8_FORMAT_VERSION_DENO,
  V8_FORMAT_VERSION_NODE,
  V8SerializeError,
  varintSize,
  VIEWS,
  Writer,
} from "./v8_codec_format.ts";

/** Options of {@linkcode serializeV8}. */
export interface V8SerializeOptions {
  /** `"deno"` (Deno KV's bytes, the default) or `"node"` (`node:v8`'s). */
  readonly format?: "deno" | "node";
}

const objectToString = Object.prototype.toString;

function cannotClone(value: unknown): V8SerializeError {
  let shown: string;
  try {
    shown = typeof value === "symbol" ? value.toString() : String(value);
  } catch {
    shown = objectToString.call(value);
  }
  return new V8SerializeError(
    `Cannot serialize value: ${shown} could not be cloned`,
  );
}

class Serializer {
  readonly #out = new Writer();
  readonly #ids = new Map<object, number>();
  readonly #node: boolean;
  #depth = 0;

  constructor(node: boolean) {
    this.#node = node;
    this.#out.byte(0xff);
    this.#out.varint(node ? V8_FORMAT_VERSION_NODE : V8_FORMAT_VERSION_DENO);
  }

  finish(): Uint8Array {
    return this.#out.finish();
  }

  value(value: unknown): void {
    switch (typeof value) {
      case "undefined":
        return this.#out.byte(Tag.undefined);
      case "boolean":
        return this.#out.byte(value ? Tag.true : Tag.false);
      case "number":
        return this.#number(value);
      case "bigint":
        this.#out.byte(Tag.bigint);
        return this.#bigint(value);
      case "string":
        return this.#string(value);
      case "object":
        if (value === null) return this.#out.byte(Tag.null);
        return this.#object(value);
      default:
        throw cannotClone(value);
    }
  }

  #number(value: number): void {
    if (isSmi(value)) {
      this.#out.byte(Tag.int32);
      this.#out.varint(((value << 1) ^ (value >> 31)) >>> 0);
    } else {
      this.#out.byte(Tag.double);
      this.#out.double(value);
    }
  }

  #bigint(value: bigint): void {
    const negative = value < 0n;
    let magnitude = negative ? -value : value;
    const digits: bigint[] = [];
    while (magnitude > 0n) {
      digits.push(magnitude & 0xffffffffffffffffn);
      magnitude >>= 64n;
    }
    this.#out.varint(digits.length * 8 * 2 + (negative ? 1 : 0));
    const bytes = new Uint8Array(digits.length * 8);
    const view = new DataView(bytes.buffer);
    digits.forEach((digit, i) => view.setBigUint64(i * 8, digit, true));
    this.#out.raw(bytes);
  }

  #string(value: string): void {
    let oneByte = true;
    for (let i = 0; i < value.length && oneByte; i++) {
      oneByte = value.charCodeAt(i) <= 0xff;
    }
    const bytes = new Uint8Array(oneByte ? value.length : value.length * 2);
    if (oneByte) {
      for (let i = 0; i < value.length; i++) bytes[i] = value.charCodeAt(i);
      this.#out.byte(Tag.oneByteString);
    } else {
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < value.length; i++) {
        view.setUint16(i * 2, value.charCodeAt(i), true);
      }
      // V8 aligns two-byte data on an even offset with a padding tag.
      if ((this.#out.length + 1 + varintSize(bytes.length)) % 2 === 1) {
        this.#out.byte(Tag.padding);
      }
      this.#out.byte(Tag.twoByteString);
    }
    this.#out.varint(bytes.length);
    this.#out.raw(bytes);
  }

  #object(value: object): void {
    const id = this.#ids.get(value);
    if (id !== undefined) {
      this.#out.byte(Tag.objectReference);
      this.#out.varint(id);
      return;
    }
    if (++this.#depth > V8_DEPTH_MAX) {
      throw new V8SerializeError(
        `Cannot serialize value: nesting deeper than ${V8_DEPTH_MAX}`,
      );
    }
    if (ArrayBuffer.isView(value)) this.#view(value);
    else {
      this.#ids.set(value, this.#ids.size);
      this.#receiver(value);
    }
    this.#depth--;
  }

  #view(view: ArrayBufferView): void {
    const kind = VIEWS.find((v) =>
      v.type !== undefined && view instanceof v.type
    );
    if (kind === undefined) throw cannotClone(view);
    if (this.#node) {
      this.#ids.set(view, this.#ids.size);
      this.#out.byte(Tag.hostObject);
      this.#out.varint(kind.nodeIndex);
      this.#out.varint(view.byteLength);
      this.#out.raw(
        new Uint8Array(view.buffer, view.byteOffset, view.byteLength),
      );
      return;
    }
    // V8 writes the buffer first (or a reference to it), then the view.
    this.#object(view.buffer);
    this.#ids.set(view, this.#ids.size);
    this.#out.byte(Tag.arrayBufferView);
    this.#out.byte(kind.subtag);
    this.#out.varint(view.byteOffset);
    this.#out.varint(view.byteLength);
    this.#out.varint(0);
  }

  #receiver(value: object): void {
    if (Array.isArray(value)) return this.#array(value);
    const out = this.#out;
    switch (objectToString.call(value)) {
      case "[object Date]":
        out.byte(Tag.date);
        return out.double((value as Date).getTime());
      case "[object RegExp]":
        return this.#regexp(value as RegExp);
      case "[object Map]":
        return this.#map(value as Map<unknown, unknown>);
      case "[object Set]":
        return this.#set(value as Set<unknown>);
      case "[object ArrayBuffer]":
        return this.#arrayBuffer(value as ArrayBuffer);
      case "[object Boolean]":
        return out.byte(value.valueOf() ? Tag.trueObject : Tag.falseObject);
      case "[object Number]":
        out.byte(Tag.numberObject);
        return out.double(value.valueOf() as number);
      case "[object BigInt]":
        out.byte(Tag.bigintObject);
        return this.#bigint(value.valueOf() as bigint);
      case "[object String]":
        out.byte(Tag.stringObject);
        return this.#string(value.valueOf() as string);
      case "[object Object]":
        if (typeof value === "function") throw cannotClone(value);
        return this.#plainObject(value as Record<string, unknown>);
      default:
        throw cannotClone(value);
    }
  }

  #regexp(value: RegExp): void {
    this.#out.byte(Tag.regexp);
    this.#string(value.source);
    let flags = 0;
    for (const [flag, bit] of REGEXP_FLAGS) {
      if (value.flags.includes(flag)) flags |= bit;
    }
    this.#out.varint(flags);
  }

  #map(value: Map<unknown, unknown>): void {
    this.#out.byte(Tag.beginMap);
    let count = 0;
    for (const [key, item] of value) {
      this.value(key);
      this.value(item);
      count += 2;
    }
    this.#out.byte(Tag.endMap);
    this.#out.varint(count);
  }

  #set(value: Set<unknown>): void {
    this.#out.byte(Tag.beginSet);
    let count = 0;
    for (const item of value) {
      this.value(item);
      count++;
    }
    this.#out.byte(Tag.endSet);
    this.#out.varint(count);
  }

  #arrayBuffer(value: ArrayBuffer): void {
    const bytes = new Uint8Array(value);
    if (value.resizable) {
      this.#out.byte(Tag.resizableArrayBuffer);
      this.#out.varint(value.byteLength);
      this.#out.varint(value.maxByteLength);
    } else {
      this.#out.byte(Tag.arrayBuffer);
      this.#out.varint(value.byteLength);
    }
    this.#out.raw(bytes);
  }

  /** Writes own enumerable properties as key/value pairs; returns how many. */
  #properties(value: object, keys: readonly string[]): number {
    for (const key of keys) {
      const index = arrayIndexOf(key);
      if (index === null) this.#string(key);
      else this.#number(index);
      this.value((value as Record<string, unknown>)[key]);
    }
    return keys.length;
  }

  #plainObject(value: Record<string, unknown>): void {
    this.#out.byte(Tag.beginObject);
    const count = this.#properties(value, Object.keys(value));
    this.#out.byte(Tag.endObject);
    this.#out.varint(count);
  }

  #array(value: unknown[]): void {
    const keys = Object.keys(value);
    const { length } = value;
    let indexCount = 0;
    while (
      indexCount < keys.length && arrayIndexOf(keys[indexCount]!) !== null
    ) {
      indexCount++;
    }
    let allNumbers = true;
    let allSmi = true;
    let hasUndefined = false;
    for (let i = 0; i < indexCount; i++) {
      const item = value[i];
      if (item === undefined) hasUndefined = true;
      else if (typeof item !== "number") allNumbers = false;
      else if (!isSmi(item)) allSmi = false;
    }
    const holey = indexCount !== length || (hasUndefined && allNumbers);
    if (holey) {
      this.#out.byte(Tag.beginSparseArray);
      this.#out.varint(length);
      const count = this.#properties(value, keys);
      this.#out.byte(Tag.endSparseArray);
      this.#out.varint(count);
      this.#out.varint(length);
      return;
    }
    this.#out.byte(Tag.beginDenseArray);
    this.#out.varint(length);
    const doubles = allNumbers && !allSmi;
    for (let i = 0; i < length; i++) {
      if (doubles) {
        this.#out.byte(Tag.double);
        this.#out.double(value[i] as number);
      } else this.value(value[i]);
    }
    const count = this.#properties(value, keys.slice(indexCount));
    this.#out.byte(Tag.endDenseArray);
    this.#out.varint(count);
    this.#out.varint(length);
  }
}

/**
 * Serializes `value` as V8's ValueSerializer does for Deno KV (or `node:v8`).
 *
 * @example
 * ```ts
 * import { serializeV8 } from "./v8_codec.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(serializeV8(1), new Uint8Array([0xff, 0x10, 0x49, 0x02]));
 * ```
 *
 * @param value A structured-clonable value.
 * @param options The flavour to write.
 * @returns The serialized bytes, header included.
 * @throws {V8SerializeError} For a value that cannot be cloned (function, symbol, WeakMap, Error, …) or nesting over {@linkcode V8_DEPTH_MAX}.
 */
export function serializeV8(
  value: unknown,
  options: V8SerializeOptions = {},
): Uint8Array {
  const serializer = new Serializer(options.format === "node");
  serializer.value(value);
  return serializer.finish();
}
