/**
 * Reads a `text/event-stream` response frame by frame (keep-alive comments
 * skipped), each read bounded by a deadline. Used by the events tests.
 *
 * @module
 */

/** One SSE frame. */
export interface SseFrame {
  readonly id?: string;
  readonly event?: string;
  readonly data: unknown;
}

/** A stream read frame by frame. */
export class SseReader {
  readonly response: Response;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";

  constructor(response: Response) {
    this.response = response;
    this.#reader = response.body!.getReader();
  }

  /** The next frame within `timeoutMs`; null when the stream ended. */
  async next(timeoutMs = 10_000): Promise<SseFrame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        if (block.startsWith(":")) continue;
        const fields: Record<string, string> = {};
        for (const line of block.split("\n")) {
          const colon = line.indexOf(": ");
          fields[line.slice(0, colon)] = line.slice(colon + 2);
        }
        return {
          ...(fields.id === undefined ? {} : { id: fields.id }),
          ...(fields.event === undefined ? {} : { event: fields.event }),
          data: JSON.parse(fields.data!),
        };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("No SSE frame in time");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const step = await Promise.race([
        this.#reader.read(),
        new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), left);
        }),
      ]);
      clearTimeout(timer);
      if (step === "late") throw new Error("No SSE frame in time");
      if (step.done) return null;
      this.#buffer += this.#decoder.decode(step.value, { stream: true });
    }
  }

  /** Frames until `done(frame)` is true (inclusive), each within `timeoutMs`. */
  async until(
    done: (frame: SseFrame) => boolean,
    timeoutMs = 10_000,
  ): Promise<SseFrame[]> {
    const frames: SseFrame[] = [];
    for (;;) {
      const frame = await this.next(timeoutMs);
      if (frame === null) return frames;
      frames.push(frame);
      if (done(frame)) return frames;
    }
  }

  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}
