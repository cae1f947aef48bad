import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeBase64,
  decodePaddedBase64,
  encodeBase64,
  isPaddedBase64,
} from "./base64.ts";

Deno.test("encodeBase64() matches the RFC 4648 vectors in both alphabets", async (t) => {
  const vectors: [string, string][] = [
    ["", ""],
    ["f", "Zg=="],
    ["fo", "Zm8="],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg=="],
    [
      "fooba",
      "Zm9vYmE=",
    ],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [text, expected] of vectors) {
    await t.step(JSON.stringify(text), () => {
      const bytes = new TextEncoder().encode(text);
      assert.equal(encodeBase64(bytes), expected);
      assert.equal(
        encodeBase64(bytes, { url: true, pad: false }),
        expected.replace(/=+$/, ""),
      );
      assert.deepEqual(decodeBase64(expected), bytes);
    });
  }
  assert.equal(encodeBase64(new Uint8Array([0xfb, 0xff])), "+/8=");
  assert.equal(
    encodeBase64(new Uint8Array([0xfb, 0xff]), { url: true }),
    "-_8=",
  );
});

Deno.test("decodeBase64() round-trips any bytes and refuses other alphabets", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      fc.boolean(),
      fc.boolean(),
      (bytes, url, pad) => {
        assert.deepEqual(
          decodeBase64(encodeBase64(bytes, { url, pad }), { url }),
          bytes,
        );
      },
    ),
  );
  assert.equal(decodeBase64("-_8=", { url: false }), null);
  assert.equal(decodeBase64("+/8=", { url: true }), null);
  assert.equal(decodeBase64("a"), null);
  assert.equal(decodeBase64("not base64!"), null);
});

/** What `isPaddedBase64` stands for (the pattern it replaces). */
const PADDED_BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

Deno.test("isPaddedBase64() accepts exactly what the padded base64 pattern matches", () => {
  const text = fc.string({
    maxLength: 12,
    unit: fc.constantFrom(
      "A",
      "z",
      "0",
      "+",
      "/",
      "=",
      "-",
      "_",
      " ",
      "\n",
      "é",
    ),
  });
  fc.assert(
    fc.property(text, (candidate) => {
      assert.equal(
        isPaddedBase64(candidate),
        PADDED_BASE64.test(candidate),
        JSON.stringify(candidate),
      );
    }),
    { numRuns: 2000 },
  );
  for (
    const candidate of ["", "AA==", "AAA=", "AAAA", "A===", "====", "AA=A"]
  ) {
    assert.equal(isPaddedBase64(candidate), PADDED_BASE64.test(candidate));
  }
});

Deno.test("decodePaddedBase64() decodes what the padded pattern matches, as decodeBase64() does", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const text = encodeBase64(bytes);
      assert.deepEqual(decodePaddedBase64(text), bytes);
    }),
  );
  // Any text: refused exactly when the pattern does not match it.
  const text = fc.string({
    maxLength: 12,
    unit: fc.constantFrom(
      "A",
      "z",
      "0",
      "+",
      "/",
      "=",
      "-",
      " ",
      "\t",
      "\n",
      "\r",
      "\f",
      "é",
    ),
  });
  fc.assert(
    fc.property(text, (candidate) => {
      assert.deepEqual(
        decodePaddedBase64(candidate),
        PADDED_BASE64.test(candidate) ? decodeBase64(candidate) : null,
        JSON.stringify(candidate),
      );
    }),
    { numRuns: 5000 },
  );
  for (
    const candidate of [
      "AB==",
      "ABC=",
      "AB =",
      "A B=",
      "AAA\n",
      " AAA",
      "AA\t=",
    ]
  ) {
    assert.deepEqual(
      decodePaddedBase64(candidate),
      PADDED_BASE64.test(candidate) ? decodeBase64(candidate) : null,
      JSON.stringify(candidate),
    );
  }
});
