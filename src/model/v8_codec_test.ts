import assert from "node:assert/strict";
import {
  deserialize as nodeDeserialize,
  serialize as nodeSerialize,
} from "node:v8";
import fc from "fast-check";
import {
  deserializeV8,
  serializeV8,
  V8_FORMAT_VERSION_DENO,
  V8_FORMAT_VERSION_NODE,
  V8DeserializeError,
  V8SerializeError,
} from "./v8_codec.ts";

// What Deno KV itself writes: `core.serialize(value, { forStorage: true })`.
// deno-lint-ignore no-explicit-any
const core = (Deno as any)[(Deno as any).internal].core as {
  serialize(value: unknown, options: { forStorage: boolean }): Uint8Array;
  deserialize(bytes: Uint8Array, options: { forStorage: boolean }): unknown;
};
const denoSerialize = (value: unknown) =>
  new Uint8Array(core.serialize(value, { forStorage: true }));
const denoDeserialize = (bytes: Uint8Array) =>
  core.deserialize(bytes, { forStorage: true });

const hex = (bytes: Uint8Array) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");

function sparse(): unknown[] {
  // deno-lint-ignore no-sparse-arrays
  const array: unknown[] = [1, , 3];
  return array;
}
function arrayWithProperty(): unknown[] {
  const array: unknown[] = ["a", "b"];
  (array as unknown as Record<string, unknown>).extra = true;
  return array;
}
const shared = new ArrayBuffer(8);

const CASES: [string, unknown][] = [
  ["undefined", undefined],
  ["null", null],
  ["true", true],
  ["false", false],
  ["zero", 0],
  ["negative zero", -0],
  ["small int", 1],
  ["negative int", -123456],
  ["int32 max", 2 ** 31 - 1],
  ["int32 min", -(2 ** 31)],
  ["beyond int32", 2 ** 31],
  ["double", 1.5],
  ["NaN", NaN],
  ["Infinity", -Infinity],
  ["bigint 0", 0n],
  ["bigint small", -5n],
  ["bigint 2^64", 2n ** 64n],
  ["bigint big", -(2n ** 200n) + 17n],
  ["empty string", ""],
  ["one-byte string", "hello"],
  ["latin-1 string", "grüße é"],
  ["two-byte string", "☃ snow €"],
  ["lone surrogate", "\ud800x"],
  ["emoji", "😀"],
  ["Date", new Date(1_700_000_000_123)],
  ["invalid Date", new Date(NaN)],
  ["RegExp", /a+b/gi],
  ["RegExp all flags", /x/dgimsy],
  ["RegExp v", /[\p{L}]/v],
  ["Uint8Array", new Uint8Array([1, 2, 3])],
  ["Uint8Array on offset", new Uint8Array(new ArrayBuffer(8), 2, 3)],
  ["Int8Array", new Int8Array([-1, 1])],
  ["Uint8ClampedArray", new Uint8ClampedArray([255])],
  ["Int16Array", new Int16Array([-2])],
  ["Uint16Array", new Uint16Array([65535])],
  ["Int32Array", new Int32Array([-3])],
  ["Uint32Array", new Uint32Array([4e9])],
  ["Float32Array", new Float32Array([0.5])],
  ["Float64Array", new Float64Array([Math.PI])],
  ["BigInt64Array", new BigInt64Array([-1n])],
  ["BigUint64Array", new BigUint64Array([2n ** 63n])],
  ["DataView", new DataView(new ArrayBuffer(4), 1, 2)],
  ["ArrayBuffer", new Uint8Array([5, 6]).buffer],
  ["empty array", []],
  ["int array", [1, 2, 3]],
  ["double array", [1, 1.5, -0]],
  ["mixed array", [1, "two", null, true, 2.5]],
  ["array with undefined among strings", ["a", undefined]],
  ["array with undefined among numbers", [1, undefined]],
  ["sparse array", sparse()],
  ["array with a property", arrayWithProperty()],
  ["nested arrays", [[], [[1]], ["x"]]],
  ["empty object", {}],
  ["object", { a: 1, b: "two", c: [3], d: { e: null } }],
  ["object with index keys", {
    2: "b",
    1: "a",
    x: 0,
    4294967294: 1,
    4294967295: 2,
  }],
  ["object with __proto__ key", JSON.parse('{"__proto__": 1}')],
  ["object with two-byte key", { "€": 1 }],
  ["Map", new Map<unknown, unknown>([[1, "a"], ["b", { c: 2 }]])],
  ["Set", new Set([1, "a", null])],
  ["boxed primitives", [
    Object(1.5),
    Object("s"),
    Object(true),
    Object(false),
    Object(2n),
  ]],
  ["two views on one buffer", [
    new Uint8Array(shared),
    new Uint16Array(shared, 2, 2),
  ]],
];

Deno.test("serializeV8() writes Deno KV's bytes (core.serialize forStorage)", async (t) => {
  for (const [name, value] of CASES) {
    await t.step(name, () => {
      const expected = denoSerialize(value);
      assert.equal(expected[1], V8_FORMAT_VERSION_DENO);
      assert.equal(hex(serializeV8(value)), hex(expected));
    });
  }
});

Deno.test("serializeV8() with format 'node' writes node:v8 serialize()'s bytes", async (t) => {
  for (const [name, value] of CASES) {
    if (value instanceof Float16ArrayOrNever) continue;
    await t.step(name, () => {
      const expected = new Uint8Array(nodeSerialize(value));
      assert.equal(expected[1], V8_FORMAT_VERSION_NODE);
      assert.equal(hex(serializeV8(value, { format: "node" })), hex(expected));
    });
  }
});

// deno-lint-ignore no-explicit-any
const Float16ArrayOrNever: any = (globalThis as any).Float16Array ?? class {};

Deno.test("deserializeV8() reads what Deno and node:v8 write", async (t) => {
  for (const [name, value] of CASES) {
    await t.step(name, () => {
      assert.deepStrictEqual(deserializeV8(denoSerialize(value)), value);
      assert.deepStrictEqual(
        deserializeV8(new Uint8Array(nodeSerialize(value))),
        value,
      );
      assert.deepStrictEqual(denoDeserialize(serializeV8(value)), value);
      assert.deepStrictEqual(
        nodeDeserialize(serializeV8(value, { format: "node" })),
        value,
      );
    });
  }
});

Deno.test("serializeV8() keeps shared references and cycles", () => {
  const inner = { x: 1 };
  const cyclic: Record<string, unknown> = { inner, again: inner };
  cyclic.self = cyclic;
  const map = new Map<unknown, unknown>();
  map.set("me", map);
  for (const value of [cyclic, map]) {
    assert.equal(hex(serializeV8(value)), hex(denoSerialize(value)));
  }
  const decoded = deserializeV8(serializeV8(cyclic)) as typeof cyclic;
  assert.equal(decoded.self, decoded);
  assert.equal(decoded.inner, decoded.again);
  const decodedMap = deserializeV8(serializeV8(map)) as Map<string, unknown>;
  assert.equal(decodedMap.get("me"), decodedMap);
  const [a, b] = deserializeV8(serializeV8(CASES.at(-1)![1])) as [
    Uint8Array,
    Uint16Array,
  ];
  assert.equal(a.buffer, b.buffer);
});

Deno.test("serializeV8() refuses what cannot be cloned", async (t) => {
  const cases: [string, unknown][] = [
    ["function", () => 1],
    ["symbol", Symbol("s")],
    ["WeakMap", new WeakMap()],
    ["Promise", Promise.resolve()],
    ["nested function", { f: () => 1 }],
  ];
  for (const [name, value] of cases) {
    await t.step(name, () => {
      assert.throws(() => serializeV8(value), V8SerializeError);
    });
  }
});

Deno.test("deserializeV8() refuses malformed bytes", async (t) => {
  const cases: [string, number[]][] = [
    ["empty", []],
    ["no header", [0x49, 0x02]],
    ["unknown version", [0xff, 0x63, 0x49, 0x02]],
    ["truncated double", [0xff, 0x10, 0x4e, 0, 0]],
    ["truncated string", [0xff, 0x10, 0x22, 0x05, 0x61]],
    ["unknown tag", [0xff, 0x10, 0x01]],
    ["bad reference", [0xff, 0x10, 0x5e, 0x00]],
    ["wrong property count", [0xff, 0x10, 0x6f, 0x7b, 0x01]],
    ["trailing bytes", [0xff, 0x10, 0x30, 0x30]],
    ["view out of range", [
      0xff,
      0x10,
      0x42,
      0x01,
      0x00,
      0x56,
      0x42,
      0x00,
      0x04,
      0x00,
    ]],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => deserializeV8(new Uint8Array(bytes)),
        V8DeserializeError,
      );
    });
  }
});

const { value: valueArbitrary } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(null, undefined, true, false),
    fc.integer(),
    fc.double(),
    fc.bigInt(),
    fc.string({ unit: "binary" }),
    fc.date({ noInvalidDate: false }),
    fc.uint8Array({ maxLength: 8 }),
    tie("array"),
    tie("object"),
    tie("map"),
    tie("set"),
  ),
  array: fc.array(tie("value"), { maxLength: 5 }),
  object: fc.dictionary(fc.string(), tie("value"), {
    maxKeys: 4,
    noNullPrototype: true,
  }),
  map: fc.array(fc.tuple(tie("value"), tie("value")), { maxLength: 3 }).map(
    (entries) => new Map(entries),
  ),
  set: fc.array(tie("value"), { maxLength: 3 }).map((items) => new Set(items)),
}));

Deno.test("serializeV8() and deserializeV8() interoperate with V8 on generated values", () => {
  fc.assert(
    fc.property(valueArbitrary, (value) => {
      assert.deepStrictEqual(deserializeV8(denoSerialize(value)), value);
      assert.deepStrictEqual(denoDeserialize(serializeV8(value)), value);
      assert.deepStrictEqual(
        deserializeV8(new Uint8Array(nodeSerialize(value))),
        value,
      );
      assert.deepStrictEqual(
        nodeDeserialize(serializeV8(value, { format: "node" })),
        value,
      );
    }),
    { numRuns: 300 },
  );
});

function numberSource(value: number): string {
  return Object.is(value, -0) ? "-0" : String(value);
}

/**
 * JavaScript source of a value, evaluated to get a value the way a literal
 * in code creates it. V8's bytes depend on representations JavaScript
 * cannot see (a heap-allocated 1.0 is written as a double; an array's
 * elements kind depends on how it was built, and a V8-deserialized array is
 * always holey; a number read out of a double array or a holey literal
 * stays heap-allocated, so 1 is then written as a double), so byte
 * equality is checked on literals holding int32 numbers and no
 * `undefined`, which have one representation. Doubles, -0 and `undefined`
 * are covered byte for byte by the table above and semantically by the
 * property before.
 */
const { source: sourceArbitrary } = fc.letrec((tie) => ({
  source: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom("null", "true", "false"),
    fc.integer().map(numberSource),
    fc.bigInt().map((b) => `${b}n`),
    fc.string({ unit: "binary" }).map((text) => JSON.stringify(text)),
    fc.integer({ min: -8.64e15, max: 8.64e15 }).map((ms) => `new Date(${ms})`),
    fc.uint8Array({ maxLength: 8 }).map((b) => `new Uint8Array([${b}])`),
    tie("array"),
    tie("object"),
    tie("map"),
    tie("set"),
  ),
  array: fc.array(tie("source"), { maxLength: 5 }).map((items) =>
    `[${items.join(", ")}]`
  ),
  object: fc.array(
    fc.tuple(fc.string().filter((k) => k !== "__proto__"), tie("source")),
    { maxLength: 4 },
  ).map((entries) =>
    `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(", ")}}`
  ),
  map: fc.array(fc.tuple(tie("source"), tie("source")), { maxLength: 3 }).map(
    (entries) => `new Map([${entries.map(([k, v]) => `[${k}, ${v}]`)}])`,
  ),
  set: fc.array(tie("source"), { maxLength: 3 }).map((items) =>
    `new Set([${items.join(", ")}])`
  ),
}));

Deno.test("serializeV8() matches Deno byte for byte on generated literals", () => {
  fc.assert(
    fc.property(sourceArbitrary as fc.Arbitrary<string>, (source) => {
      const value = new Function(`return (${source});`)();
      const ours = serializeV8(value);
      const deno = denoSerialize(value);
      if (hex(ours) === hex(deno)) return;
      // V8 sometimes keeps an array literal in a holey or dictionary
      // representation (seen for `[null]` after many evaluations) and then
      // writes it as a sparse array (tag 0x61); the value is the same. Only
      // that difference is allowed, and both encodings must decode to it.
      assert.ok(deno.includes(0x61), `${source}: ${hex(ours)} != ${hex(deno)}`);
      assert.deepStrictEqual(denoDeserialize(ours), value, source);
      assert.deepStrictEqual(deserializeV8(deno), value, source);
    }),
    { numRuns: 400 },
  );
});
