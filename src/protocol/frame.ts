/**
 * Length-prefixed framing: every frame is a 4-byte big-endian payload length
 * followed by the payload. Streams are long-lived and their end is never
 * relied on (WebTransport in Deno 2.9.6 drops FIN), so the length prefix is
 * the only delimiter.
 *
 * @module
 */
import { FrameTooLargeError, ProtocolError } from "./errors.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_BYTES_LIMIT,
  FRAME_HEADER_BYTES,
} from "./limits.ts";

function checkMaxFrameBytes(maxFrameBytes: number): void {
  if (
    !Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1 ||
    maxFrameBytes > FRAME_BYTES_LIMIT
  ) {
    throw new RangeError(
      `Cannot use 'maxFrameBytes' as it must be an integer in [1, ${FRAME_BYTES_LIMIT}]: current value is ${maxFrameBytes}`,
    );
  }
}

/**
 * Prefixes `payload` with its length.
 *
 * @param payload The frame's payload.
 * @param maxFrameBytes Largest payload allowed, in bytes. Default 16 MiB.
 * @returns A new buffer: header then payload.
 * @throws {FrameTooLargeError} When the payload exceeds `maxFrameBytes`.
 */
export function encodeFrame(
  payload: Uint8Array,
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array<ArrayBuffer> {
  if (payload.length > maxFrameBytes) {
    throw new FrameTooLargeError(payload.length, maxFrameBytes);
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Concatenates already framed buffers into one write, so messages queued back
 * to back cost one stream write.
 */
export function concatFrames(frames: readonly Uint8Array[]): Uint8Array {
  if (frames.length === 1) return frames[0]!;
  let total = 0;
  for (const frame of frames) total += frame.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const frame of frames) {
    out.set(frame, offset);
    offset += frame.length;
  }
  return out;
}

/**
 * Incremental decoder for a byte stream: feed chunks as they arrive (split or
 * coalesced anywhere) and get whole payloads out. The announced length is
 * checked against the limit before anything of that size is allocated.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./frame.ts";
 * const decoder = new FrameDecoder();
 * const frame = encodeFrame(new Uint8Array([1, 2, 3]));
 * console.assert(decoder.push(frame.subarray(0, 2)).length === 0);
 * console.assert(decoder.push(frame.subarray(2))[0]?.length === 3);
 * ```
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #buffer: Uint8Array = new Uint8Array(0);
  #start = 0;
  #end = 0;

  /** @param maxFrameBytes Largest payload accepted, in bytes. Default 16 MiB. */
  constructor(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    checkMaxFrameBytes(maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Largest payload accepted now, in bytes. */
  get maxFrameBytes(): number {
    return this.#maxFrameBytes;
  }

  /**
   * Changes the frame limit from the next header on, e.g. from the few KiB a
   * handshake needs to the full limit once the peer is authenticated.
   *
   * @throws {RangeError} When the limit is out of range.
   */
  setMaxFrameBytes(maxFrameBytes: number): void {
    checkMaxFrameBytes(maxFrameBytes);
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet part of a whole frame. */
  get bufferedBytes(): number {
    return this.#end - this.#start;
  }

  /**
   * Adds a chunk and returns every payload it completed, in order. Payloads
   * are views that stay valid: bytes before the read position are never
   * written again.
   *
   * @throws {FrameTooLargeError} When a header announces an oversize frame.
   *   The decoder is then unusable: the caller must close the stream.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    this.#append(chunk);
    const payloads: Uint8Array[] = [];
    const buffer = this.#buffer;
    while (this.#end - this.#start >= FRAME_HEADER_BYTES) {
      const at = this.#start;
      const payloadBytes = ((buffer[at]! << 24) >>> 0) +
        (buffer[at + 1]! << 16) + (buffer[at + 2]! << 8) + buffer[at + 3]!;
      if (payloadBytes > this.#maxFrameBytes) {
        throw new FrameTooLargeError(payloadBytes, this.#maxFrameBytes);
      }
      const payloadEnd = at + FRAME_HEADER_BYTES + payloadBytes;
      if (payloadEnd > this.#end) break;
      payloads.push(buffer.subarray(at + FRAME_HEADER_BYTES, payloadEnd));
      this.#start = payloadEnd;
    }
    return payloads;
  }

  /**
   * Asserts the stream ended on a frame boundary.
   *
   * @throws {ProtocolError} With code `truncatedFrame` when bytes are left over.
   */
  finish(): void {
    const left = this.#end - this.#start;
    if (left !== 0) {
      throw new ProtocolError(
        "truncatedFrame",
        `Cannot end stream inside a frame: ${left} bytes left over`,
      );
    }
  }

  #append(chunk: Uint8Array): void {
    const pending = this.#end - this.#start;
    if (pending === 0) {
      // Fast path, no copy: stream readers hand over fresh chunks. The chunk
      // is never written to, since the next append that finds no room
      // copies into a new buffer.
      this.#buffer = chunk;
      this.#start = 0;
      this.#end = chunk.length;
      this.#spare = 0;
      return;
    }
    if (chunk.length <= this.#spare) {
      this.#buffer.set(chunk, this.#end);
      this.#end += chunk.length;
      this.#spare -= chunk.length;
      return;
    }
    // Grow geometrically so a large frame arriving in small chunks costs
    // linear copying, bounded by the frame limit plus one chunk.
    const needed = pending + chunk.length;
    const capacity = Math.min(
      Math.max(needed, pending * 2, 64 * 1024),
      this.#maxFrameBytes + FRAME_HEADER_BYTES + chunk.length,
    );
    const grown = new Uint8Array(Math.max(capacity, needed));
    grown.set(this.#buffer.subarray(this.#start, this.#end));
    grown.set(chunk, pending);
    this.#buffer = grown;
    this.#start = 0;
    this.#end = needed;
    this.#spare = grown.length - needed;
  }

  /** Writable bytes after `#end` in a buffer this decoder owns. */
  #spare = 0;
}
