import assert from "node:assert/strict";
import { crc32, CRC32_INITIAL, crc32Final, crc32Update } from "./crc32.ts";

Deno.test("crc32() matches the published check values", async (t) => {
  const cases: [string, number][] = [
    ["", 0],
    ["a", 0xe8b7be43],
    ["123456789", 0xcbf43926],
    ["The quick brown fox jumps over the lazy dog", 0x414fa339],
  ];
  for (const [text, expected] of cases) {
    await t.step(JSON.stringify(text), () => {
      assert.equal(crc32(new TextEncoder().encode(text)), expected);
    });
  }
});

Deno.test("crc32Update() over pieces equals crc32() over the whole", () => {
  const bytes = new TextEncoder().encode("123456789");
  const state = crc32Update(
    crc32Update(CRC32_INITIAL, bytes.subarray(0, 4)),
    bytes.subarray(4),
  );
  assert.equal(crc32Final(state), 0xcbf43926);
});
