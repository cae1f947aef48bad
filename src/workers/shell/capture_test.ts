import assert from "node:assert/strict";
import { captureStream, OutputCapture } from "./capture.ts";

const encoder = new TextEncoder();

/** Pushes `text` in chunks of `chunkBytes` and returns the capture. */
function capture(
  text: string | Uint8Array,
  headBytes: number,
  tailBytes: number,
  chunkBytes: number,
) {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  const output = new OutputCapture(headBytes, tailBytes);
  for (let at = 0; at < bytes.length; at += chunkBytes) {
    output.push(bytes.subarray(at, at + chunkBytes));
  }
  return output.result();
}

Deno.test("OutputCapture keeps the head and the last bytes after it, exactly", async (t) => {
  const text = Array.from({ length: 500 }, (_, i) => `line ${i}\n`).join("");
  const cases = [
    { name: "one chunk", chunk: text.length },
    { name: "1-byte chunks", chunk: 1 },
    { name: "7-byte chunks", chunk: 7 },
    { name: "chunks larger than the tail", chunk: 300 },
  ];
  for (const { name, chunk } of cases) {
    await t.step(name, () => {
      const result = capture(text, 100, 64, chunk);
      assert.equal(result.head, text.slice(0, 100));
      assert.equal(result.tail, text.slice(-64));
      assert.equal(result.bytes, text.length);
      assert.equal(result.truncated, true);
    });
  }
});

Deno.test("OutputCapture without truncation gives head + tail = the whole output", async (t) => {
  const text = "abcdefghijklmnopqrstuvwxyz";
  for (const chunk of [1, 3, 26]) {
    await t.step(`chunks of ${chunk}`, () => {
      const result = capture(text, 10, 16, chunk);
      assert.equal(result.head, "abcdefghij");
      assert.equal(result.tail, "klmnopqrstuvwxyz");
      assert.equal(result.head + result.tail, text);
      assert.equal(result.truncated, false);
      assert.equal(result.bytes, 26);
    });
  }
  await t.step("shorter than the head", () => {
    const result = capture("abc", 10, 16, 1);
    assert.deepEqual(result, {
      head: "abc",
      tail: "",
      bytes: 3,
      truncated: false,
    });
  });
  await t.step("one byte past head and tail", () => {
    const result = capture(text, 10, 15, 4);
    assert.equal(result.tail, "lmnopqrstuvwxyz");
    assert.equal(result.truncated, true);
  });
});

Deno.test("OutputCapture with zero sizes counts bytes only", () => {
  const result = capture("hello", 0, 0, 2);
  assert.deepEqual(result, { head: "", tail: "", bytes: 5, truncated: true });
});

Deno.test("OutputCapture replaces invalid UTF-8 and characters cut at an edge", () => {
  const invalid = capture(new Uint8Array([0x61, 0xff, 0x62]), 16, 16, 1);
  assert.equal(invalid.head, "a\uFFFDb");
  // "é" is 2 bytes: a head of 2 bytes cuts it after "a".
  const cut = capture("aé" + "x".repeat(20) + "é", 2, 1, 5);
  assert.equal(cut.head, "a\uFFFD");
  assert.equal(cut.tail, "\uFFFD");
  assert.equal(cut.bytes, 25);
});

Deno.test("captureStream() reads to the end, or stops when told", async () => {
  const whole = new OutputCapture(4, 4);
  await captureStream(
    ReadableStream.from([encoder.encode("hello "), encoder.encode("world")]),
    whole,
    new AbortController().signal,
  );
  assert.deepEqual(whole.result(), {
    head: "hell",
    tail: "orld",
    bytes: 11,
    truncated: true,
  });
  // A stream that never ends (an escaped grandchild holding the pipe).
  const stop = new AbortController();
  const endless = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("partial"));
    },
  });
  const held = new OutputCapture(16, 16);
  const reading = captureStream(endless, held, stop.signal);
  stop.abort();
  await reading;
  assert.equal(held.result().head, "partial");
});
