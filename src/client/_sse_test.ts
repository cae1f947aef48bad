/**
 * `parseEvents()`: the client's SSE parser (event names, the persisting
 * id, CRLF, comments, frames split across chunks) and its frame bound.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseEvents } from "./_sse.ts";
import { LimitExceededError } from "./errors.ts";

function body(chunks: readonly string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(chunks.map((chunk) => encoder.encode(chunk)));
}

Deno.test("parseEvents() keeps the id across events, the event name per event, and joins split chunks", async () => {
  const events = await Array.fromAsync(parseEvents(body([
    ": keep-alive\n\n",
    'id: 5.0\nevent: kv.set\ndata: {"a":',
    '1}\n\r\nevent: synced\r\ndata: {"revision":5}\r\n\r\n',
    "data: line1\ndata: line2\n\n",
  ])));
  assert.deepEqual(events, [
    { id: "5.0", event: "kv.set", data: '{"a":1}' },
    { id: "5.0", event: "synced", data: '{"revision":5}' },
    { id: "5.0", event: "", data: "line1\nline2" },
  ]);
});

Deno.test("parseEvents() refuses an event longer than its bound, not a burst of small ones", async () => {
  const small = Array.from({ length: 50 }, (_, i) => `data: ${i}\n\n`).join("");
  assert.equal(
    (await Array.fromAsync(parseEvents(body([small]), 64))).length,
    50,
  );
  await assert.rejects(
    Array.fromAsync(
      parseEvents(body(["data: ", "x".repeat(40), "y".repeat(40)]), 64),
    ),
    (error) => error instanceof LimitExceededError && error.details.max === 64,
  );
  await assert.rejects(
    Array.fromAsync(
      parseEvents(
        body([`data: ${"x".repeat(40)}\n`, `data: ${"y".repeat(40)}\n`]),
        64,
      ),
    ),
    LimitExceededError,
  );
});
