import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeKey,
  encodeKey,
  type KvKey,
  type KvKeyPart,
} from "./key_codec.ts";
import { compareBytes, fromHex, toHex } from "../base/bytes.ts";

type JsonPart =
  | { string: string }
  | { bigint: string }
  | { number: number | string }
  | { bytes: string }
  | { boolean: boolean };

interface Fixture {
  vectors: Array<{ name: string; key: JsonPart[]; hex: string }>;
  random: Array<{ key: JsonPart[]; hex: string }>;
  order: string[];
}

const fixture: Fixture = JSON.parse(
  Deno.readTextFileSync(
    new URL("../../fixtures/kv_keys/vectors.json", import.meta.url),
  ),
);

function fromJson(part: JsonPart): KvKeyPart {
  if ("string" in part) return part.string;
  if ("bigint" in part) return BigInt(part.bigint);
  if ("bytes" in part) return fromHex(part.bytes);
  if ("boolean" in part) return part.boolean;
  const special: Record<string, number> = {
    "NaN": NaN,
    "-0": -0,
    "Infinity": Infinity,
    "-Infinity": -Infinity,
  };
  if (part.number === "-NaN") {
    const view = new DataView(new ArrayBuffer(8));
    view.setUint32(0, 0xfff80000);
    return view.getFloat64(0);
  }
  return typeof part.number === "number" ? part.number : special[part.number]!;
}

/** Deno KV's order on keys, stated on values rather than bytes. */
const TYPE_RANK = {
  bytes: 0,
  string: 1,
  bigint: 2,
  number: 3,
  false: 4,
  true: 5,
};
function rank(part: KvKeyPart): number {
  if (part instanceof Uint8Array) return TYPE_RANK.bytes;
  if (typeof part === "boolean") return part ? TYPE_RANK.true : TYPE_RANK.false;
  return TYPE_RANK[typeof part as "string" | "bigint" | "number"];
}
function numberOrder(value: number): [number, number, number] {
  // Total order: -NaN < -Infinity < … < -0 < 0 < … < Infinity < NaN.
  if (Number.isNaN(value)) {
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, value);
    return [view.getUint8(0) >= 0x80 ? -1 : 1, 0, 0];
  }
  return [0, value, Object.is(value, -0) ? -1 : 0];
}
function comparePart(a: KvKeyPart, b: KvKeyPart): number {
  const rankDifference = rank(a) - rank(b);
  if (rankDifference !== 0) return rankDifference;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return compareBytes(a, b);
  }
  if (typeof a === "string" && typeof b === "string") {
    const encoder = new TextEncoder();
    return compareBytes(encoder.encode(a), encoder.encode(b));
  }
  if (typeof a === "bigint" && typeof b === "bigint") {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (typeof a === "number" && typeof b === "number") {
    const [x, y] = [numberOrder(a), numberOrder(b)];
    for (let i = 0; i < 3; i++) {
      if (x[i]! !== y[i]!) return x[i]! < y[i]! ? -1 : 1;
    }
    return 0;
  }
  return 0;
}
function compareKeys(a: KvKey, b: KvKey): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const difference = comparePart(a[i]!, b[i]!);
    if (difference !== 0) return difference;
  }
  return a.length - b.length;
}

const keyPart: fc.Arbitrary<KvKeyPart> = fc.oneof(
  fc.uint8Array({ maxLength: 6 }),
  fc.string({ maxLength: 6, unit: "binary" }),
  fc.string({
    maxLength: 4,
    unit: fc.constantFrom("\u0000", "a", "\u00ff", "é"),
  }),
  fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }),
  fc.bigInt({ min: -300n, max: 300n }),
  fc.double(),
  fc.constantFrom(0, -0, 1, -1, NaN, Infinity, -Infinity),
  fc.boolean(),
);
const key = fc.array(keyPart, { maxLength: 4 });

function sameKey(actual: KvKey, expected: KvKey): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i], expected[i]];
    if (typeof e === "number" && typeof a === "number") {
      assert.ok(
        Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)),
        `${a} vs ${e}`,
      );
    } else {
      assert.deepEqual(a, e);
    }
  }
}

Deno.test("encodeKey() matches the bytes real Deno KV wrote", async (t) => {
  for (
    const vector of [
      ...fixture.vectors,
      ...fixture.random.map((v) => ({ name: v.hex, ...v })),
    ]
  ) {
    await t.step(vector.name, () => {
      assert.equal(toHex(encodeKey(vector.key.map(fromJson))), vector.hex);
    });
  }
});

Deno.test("decodeKey() reads the bytes real Deno KV wrote", () => {
  for (const vector of [...fixture.vectors, ...fixture.random]) {
    const bytes = fromHex(vector.hex);
    const decoded = decodeKey(bytes);
    sameKey(decoded, vector.key.map(fromJson));
    assert.equal(
      toHex(encodeKey(decoded)),
      vector.hex,
      "re-encoding is stable",
    );
  }
});

Deno.test("encodeKey() sorts keys in real Deno KV order", () => {
  const ours = [
    ...new Set(
      [...fixture.vectors, ...fixture.random].map((v) =>
        toHex(encodeKey(v.key.map(fromJson)))
      ),
    ),
  ]
    .map(fromHex)
    .sort(compareBytes)
    .map(toHex);
  assert.deepEqual(ours, fixture.order);
});

Deno.test("encodeKey() and decodeKey() round-trip random tuples", () => {
  fc.assert(
    fc.property(key, (tuple) => {
      const bytes = encodeKey(tuple);
      sameKey(decodeKey(bytes), tuple);
    }),
    { numRuns: 500 },
  );
});

Deno.test("encodeKey() byte order equals Deno KV key order", () => {
  fc.assert(
    fc.property(key, key, (a, b) => {
      const byBytes = Math.sign(compareBytes(encodeKey(a), encodeKey(b)));
      assert.equal(byBytes, Math.sign(compareKeys(a, b)));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("encodeKey() refuses what Deno KV cannot store", async (t) => {
  const cases: Array<[string, unknown[], ErrorConstructor]> = [
    ["object part", [{}], TypeError],
    ["undefined part", [undefined], TypeError],
    ["bigint over 255 bytes", [2n ** 2048n], RangeError],
  ];
  for (const [name, tuple, error] of cases) {
    await t.step(name, () => {
      assert.throws(() => encodeKey(tuple as KvKey), error);
    });
  }
});

Deno.test("decodeKey() refuses malformed bytes with a TypeError", async (t) => {
  const cases: Array<[string, string]> = [
    ["unknown tag", "03"],
    ["unterminated string", "026162"],
    ["truncated integer", "1601"],
    ["truncated double", "21bff0"],
    ["truncated long integer length", "1d"],
    ["invalid UTF-8", "02ff00"],
  ];
  for (const [name, hex] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeKey(fromHex(hex)), TypeError);
    });
  }
});
