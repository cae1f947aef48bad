import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex } from "./bytes.ts";

/** Hex stated plainly, byte by byte. */
function reference(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join(
    "",
  );
}

Deno.test("toHex() writes two lower-case digits per byte, at any length", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      assert.equal(toHex(bytes), reference(bytes));
      assert.deepEqual(fromHex(toHex(bytes)), bytes);
    }),
  );
  // Around the length where it switches from char codes to concatenation.
  for (const length of [4095, 4096, 4097, 10_000]) {
    const bytes = new Uint8Array(length).map((_, i) => (i * 31) & 0xff);
    assert.equal(toHex(bytes), reference(bytes), `${length} bytes`);
  }
  assert.equal(toHex(new Uint8Array([0, 0x0f, 0xf0, 0xff])), "000ff0ff");
});
