import assert from "node:assert/strict";
import { logIndex } from "../raft/types.ts";
import { makeVersionstamp, versionstampIndex } from "./versionstamp.ts";

/** The layout stated plainly: 8 bytes big-endian index, 2 bytes big-endian counter. */
function reference(index: number, counter: number): Uint8Array {
  const out = new Uint8Array(10);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(index));
  view.setUint16(8, counter);
  return out;
}

Deno.test("makeVersionstamp() writes the index and counter big-endian", () => {
  const indexes = [
    1,
    255,
    256,
    2 ** 31 - 1,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 40 + 12345,
    Number.MAX_SAFE_INTEGER,
  ];
  for (const index of indexes) {
    for (const counter of [0, 1, 255, 256, 0xffff]) {
      const stamp = makeVersionstamp(logIndex(index), counter);
      assert.deepEqual(stamp, reference(index, counter), `${index}/${counter}`);
      assert.equal(versionstampIndex(stamp), index);
    }
  }
});
