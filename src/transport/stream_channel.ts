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
import { encoder } from "../protocol/_fields.ts";
import { concatFrames, encodeFrame, FrameDecoder } from "../protocol/frame.ts";
import { ProtocolError } from "../protocol/errors.ts";

/** Frames envelopes over a bidirectional stream. */
export class StreamChannel implements FrameChannel {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #decoder: FrameDecoder;
  readonly #maxFrameBytes: number;
  #payloads: Uint8Array[] = [];
  #next = 0;

  constructor(
    stream: {
      readable: ReadableStream<Uint8Array>;
      writable: WritableStream<Uint8Array>;
    },
    maxFrameBytes: number,
  ) {
    this.#reader = stream.readable.getReader();
    this.#writer = stream.writable.getWriter();
    this.#decoder = new FrameDecoder(maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Encodes one envelope's frame, ready to batch with others. */
  frame(envelope: Envelope): Uint8Array {
    return encodeFrame(
      encoder.encode(envelopeToWire(envelope)),
      this.#maxFrameBytes,
    );
  }

  send(envelope: Envelope): Promise<void> {
    return this.#writer.write(this.frame(envelope));
  }

  /** Writes already framed envelopes in one write; resolves when the stream took them (backpressure). */
  writeFrames(frames: readonly Uint8Array[]): Promise<void> {
    return this.#writer.write(concatFrames(frames));
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
