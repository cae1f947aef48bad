/**
 * A {@linkcode FrameChannel} over one QUIC stream: length-prefixed envelopes
 * in both directions, with the frame limit enforced before allocation.
 *
 * @module
 */
/// <reference lib="deno.unstable" />
import type { FrameChannel } from "../cluster/handshake.ts";
import {
  decodeEnvelope,
  type Envelope,
  envelopeToWire,
} from "../protocol/envelope.ts";
import { encoder } from "../protocol/fields.ts";
import { concatFrames, encodeFrame, FrameDecoder } from "../protocol/frame.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  HANDSHAKE_BYTES_MAX,
  HANDSHAKE_FRAME_BYTES_MAX,
} from "../protocol/limits.ts";

/**
 * Bytes written to and read from every stream channel of this process (one
 * node runs per process, so these are the node's transport totals).
 */
export const TRANSPORT_BYTES = { sent: 0, received: 0 };

/** Frames envelopes over a bidirectional stream. */
export class StreamChannel implements FrameChannel {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder: FrameDecoder;
  #maxFrameBytes: number;
  #receiveBytesMax: number;
  #receivedBytes = 0;
  #payloads: Uint8Array[] = [];
  #next = 0;

  constructor(
    stream: {
      readable: ReadableStream<Uint8Array>;
      writable: WritableStream<Uint8Array>;
    },
    maxFrameBytes: number,
    receiveBytesMax: number = Infinity,
  ) {
    this.#reader = stream.readable.getReader();
    this.#writer = stream.writable.getWriter();
    this.#decoder = new FrameDecoder(maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
    this.#receiveBytesMax = receiveBytesMax;
  }

  /**
   * Opens a channel limited to what a handshake needs: frames of at most
   * {@linkcode HANDSHAKE_FRAME_BYTES_MAX} and {@linkcode HANDSHAKE_BYTES_MAX}
   * bytes in all, until {@linkcode StreamChannel.authenticated} lifts them.
   */
  static forHandshake(
    stream: {
      readable: ReadableStream<Uint8Array>;
      writable: WritableStream<Uint8Array>;
    },
    handshakeBytesMax: number = HANDSHAKE_BYTES_MAX,
  ): StreamChannel {
    return new StreamChannel(
      stream,
      Math.min(HANDSHAKE_FRAME_BYTES_MAX, handshakeBytesMax),
      handshakeBytesMax,
    );
  }

  /** Lifts the handshake limits: frames up to `maxFrameBytes`, no total. */
  authenticated(maxFrameBytes: number): void {
    this.#decoder.setMaxFrameBytes(maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
    this.#receiveBytesMax = Infinity;
  }

  /** Encodes one envelope's frame, ready to batch with others. */
  frame(envelope: Envelope): Uint8Array {
    return encodeFrame(
      encoder.encode(envelopeToWire(envelope)),
      this.#maxFrameBytes,
    );
  }

  send(envelope: Envelope): Promise<void> {
    const frame = this.frame(envelope);
    TRANSPORT_BYTES.sent += frame.byteLength;
    return this.#writer.write(frame);
  }

  /** Writes already framed envelopes in one write; resolves when the stream took them (backpressure). */
  writeFrames(frames: readonly Uint8Array[]): Promise<void> {
    const bytes = concatFrames(frames);
    TRANSPORT_BYTES.sent += bytes.byteLength;
    return this.#writer.write(bytes);
  }

  /**
   * @throws {ProtocolError} On garbage, an oversize frame, or a stream that
   *   ended (possibly inside a frame).
   */
  async receive(): Promise<Envelope> {
    while (this.#next >= this.#payloads.length) {
      const { value, done } = await this.#reader.read();
      if (done) {
        this.#decoder.finish();
        throw new ProtocolError(
          "truncatedFrame",
          "Cannot read frame as the stream ended",
        );
      }
      TRANSPORT_BYTES.received += value.byteLength;
      this.#receivedBytes += value.byteLength;
      if (this.#receivedBytes > this.#receiveBytesMax) {
        throw new ProtocolError(
          "handshakeTooLarge",
          `Cannot accept more than ${this.#receiveBytesMax} bytes before the handshake completes`,
        );
      }
      this.#payloads = this.#decoder.push(value);
      this.#next = 0;
    }
    return decodeEnvelope(this.#payloads[this.#next++]!);
  }

  /** Stops both directions, ignoring a stream already gone. */
  abort(): void {
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
  }
}
