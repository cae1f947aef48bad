import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64, encodeBase64 } from "./base64.ts";

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
