/**
 * Head and tail capture of one output stream (issue 19, "Output"): the
 * first `headBytes` and the last `tailBytes` bytes, never more in memory,
 * with the exact byte count.
 *
 * The head and the tail never overlap: the tail is the last bytes after
 * the head, so when nothing was dropped `head + tail` is the whole output.
 * Each is decoded as UTF-8 with invalid bytes replaced (U+FFFD), so a
 * character cut at either edge shows as a replacement character.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";

/** A captured stream, as the job's `result` carries it. */
export interface CapturedOutput {
  /** The first bytes, decoded. */
  readonly head: string;
  /** The last bytes after the head, decoded. */
  readonly tail: string;
  /** Every byte the stream carried. */
  readonly bytes: number;
  /** True when bytes between the head and the tail were dropped. */
  readonly truncated: boolean;
}

/** Keeps the head and the tail of a byte stream. */
export class OutputCapture {
  readonly #head: Uint8Array;
  #headLength = 0;
  /** A ring: the tail's bytes end at `#tailEnd` (exclusive). */
  readonly #tail: Uint8Array;
  #tailEnd = 0;
  #tailLength = 0;
  #bytes = 0;

  /**
   * @param headBytes Bytes kept from the start.
   * @param tailBytes Bytes kept from the end.
   */
  constructor(readonly headBytes: number, readonly tailBytes: number) {
    assert(
      Number.isSafeInteger(headBytes) && headBytes >= 0 &&
        Number.isSafeInteger(tailBytes) && tailBytes >= 0,
      "Expected non-negative integer head and tail sizes",
    );
    this.#head = new Uint8Array(headBytes);
    this.#tail = new Uint8Array(tailBytes);
  }

  /** Every byte pushed so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Takes the next chunk of the stream. */
  push(chunk: Uint8Array): void {
    this.#bytes += chunk.length;
    const toHead = Math.min(chunk.length, this.headBytes - this.#headLength);
    if (toHead > 0) {
      this.#head.set(chunk.subarray(0, toHead), this.#headLength);
      this.#headLength += toHead;
    }
    let rest = chunk.subarray(toHead);
    if (this.tailBytes === 0 || rest.length === 0) return;
    if (rest.length > this.tailBytes) {
      rest = rest.subarray(rest.length - this.tailBytes);
    }
    const first = Math.min(rest.length, this.tailBytes - this.#tailEnd);
    this.#tail.set(rest.subarray(0, first), this.#tailEnd);
    this.#tail.set(rest.subarray(first), 0);
    this.#tailEnd = (this.#tailEnd + rest.length) % this.tailBytes;
    this.#tailLength = Math.min(this.tailBytes, this.#tailLength + rest.length);
  }

  /** The capture so far. */
  result(): CapturedOutput {
    const tail = new Uint8Array(this.#tailLength);
    const start = (this.#tailEnd - this.#tailLength + this.tailBytes) %
      Math.max(1, this.tailBytes);
    const first = Math.min(this.#tailLength, this.tailBytes - start);
    tail.set(this.#tail.subarray(start, start + first), 0);
    tail.set(this.#tail.subarray(0, this.#tailLength - first), first);
    const kept = this.#headLength + this.#tailLength;
    assert(kept <= this.#bytes, "Expected no more bytes kept than pushed");
    const decoder = new TextDecoder("utf-8", { fatal: false });
    return {
      head: decoder.decode(this.#head.subarray(0, this.#headLength)),
      tail: decoder.decode(tail),
      bytes: this.#bytes,
      truncated: kept < this.#bytes,
    };
  }
}

/**
 * Reads a stream to its end into a capture, or until `stop` fires (a
 * grandchild that escaped the group may hold the pipe open forever).
 */
export async function captureStream(
  stream: ReadableStream<Uint8Array>,
  capture: OutputCapture,
  stop: AbortSignal,
): Promise<void> {
  const reader = stream.getReader();
  const onStop = () => void reader.cancel().catch(() => {});
  stop.addEventListener("abort", onStop, { once: true });
  try {
    if (stop.aborted) onStop();
    // Bounded by the stream: each read takes at least one byte or ends it.
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      capture.push(value);
    }
  } catch {
    // A cancelled or broken pipe ends the capture; what was read stays.
  } finally {
    stop.removeEventListener("abort", onStop);
    reader.releaseLock();
  }
}
