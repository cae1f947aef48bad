/**
 * Issue 13 finding 4: before a peer is authenticated its channel accepts
 * frames of at most 8 KiB and 32 KiB in all, so pending handshakes hold a
 * bounded number of bytes; once authenticated, the full frame limit applies.
 */
import assert from "node:assert/strict";
import { encodeFrame } from "../src/protocol/frame.ts";
import { encoder } from "../src/protocol/fields.ts";
import { envelopeToWire } from "../src/protocol/envelope.ts";
import { FrameTooLargeError, ProtocolError } from "../src/protocol/errors.ts";
import {
  HANDSHAKE_BYTES_MAX,
  HANDSHAKE_FRAME_BYTES_MAX,
} from "../src/protocol/limits.ts";
import { StreamChannel } from "../src/transport/stream_channel.ts";

function streamOf(chunks: Uint8Array[]) {
  return {
    readable: new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
      },
    }),
    writable: new WritableStream<Uint8Array>(),
  };
}

function closeFrame(reasonBytes: number): Uint8Array {
  return encodeFrame(
    encoder.encode(envelopeToWire({
      kind: "close",
      code: "normal",
      reason: "x".repeat(reasonBytes),
    })),
  );
}

Deno.test("a handshake channel refuses a frame over 8 KiB before reading it", async () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, HANDSHAKE_FRAME_BYTES_MAX + 1);
  const channel = StreamChannel.forHandshake(streamOf([header]));
  await assert.rejects(channel.receive(), FrameTooLargeError);
});

Deno.test("a handshake channel refuses more than 32 KiB in all", async () => {
  const chunk = new Uint8Array(HANDSHAKE_BYTES_MAX + 1);
  chunk.set(closeFrame(100));
  const channel = StreamChannel.forHandshake(streamOf([chunk]));
  await assert.rejects(
    channel.receive(),
    (error) =>
      error instanceof ProtocolError && error.code === "handshakeTooLarge",
  );
});

Deno.test("an authenticated channel accepts frames up to the full limit", async () => {
  const big = closeFrame(3000); // under TEXT_LENGTH_MAX, fine in a handshake
  const frames = [big, closeFrame(10)];
  const channel = StreamChannel.forHandshake(streamOf(frames));
  assert.equal((await channel.receive()).kind, "close");
  channel.authenticated(16 * 1024 * 1024);
  assert.equal((await channel.receive()).kind, "close");
  // A 16 KiB frame (of garbage) is read whole once authenticated: it fails
  // to decode, not as too large as it does before the handshake.
  const garbage = encodeFrame(new Uint8Array(HANDSHAKE_FRAME_BYTES_MAX * 2));
  const before = StreamChannel.forHandshake(streamOf([garbage]));
  await assert.rejects(before.receive(), FrameTooLargeError);
  const after = StreamChannel.forHandshake(streamOf([garbage]));
  after.authenticated(16 * 1024 * 1024);
  await assert.rejects(
    after.receive(),
    (error) =>
      error instanceof ProtocolError && !(error instanceof FrameTooLargeError),
  );
});
