/**
 * One deadline over every step of an inbound connection before it is
 * authenticated: TLS, the peer handshake, or the WebTransport upgrade. When
 * it expires the connection is closed and the step waiting on it fails with
 * {@linkcode HandshakeTimeoutError}, so no step can hold a slot for ever.
 *
 * @module
 */
/// <reference lib="deno.unstable" />
import { CLOSE_CODES } from "./quic_options.ts";

/** A connection did not finish its handshake or upgrade in time. */
export class HandshakeTimeoutError extends Error {
  override name = "HandshakeTimeoutError";
  /** The deadline, in milliseconds. */
  readonly timeoutMs: number;

  constructor(timeoutMs: number) {
    super(`Cannot finish the handshake within ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** Something a deadline can close. */
interface Closable {
  close(info?: { closeCode?: number; reason?: string }): void;
}

/** A running deadline; `clear` it once the connection is authenticated. */
export class HandshakeDeadline {
  readonly #timeoutMs: number;
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #waiters = new Set<(error: Error) => void>();
  #target: Closable | undefined;
  #expired = false;
  #cleared = false;

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#timer = setTimeout(() => this.#expire(), timeoutMs);
  }

  /** Whether the deadline passed before it was cleared. */
  get expired(): boolean {
    return this.#expired;
  }

  /** Closes `target` when the deadline passes (at once if it has). */
  onExpire(target: Closable): void {
    this.#target = target;
    if (this.#expired) closeTimedOut(target);
  }

  /**
   * Waits for `step`, failing with {@linkcode HandshakeTimeoutError} once the
   * deadline passes. A value that arrives after that goes to `late` (to close
   * it).
   */
  race<T>(step: Promise<T>, late?: (value: T) => void): Promise<T> {
    if (this.#expired) {
      step.then((value) => late?.(value), () => {});
      return Promise.reject(new HandshakeTimeoutError(this.#timeoutMs));
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (error: Error) => {
        if (settled) return;
        settled = true;
        reject(error);
      };
      this.#waiters.add(fail);
      step.then(
        (value) => {
          this.#waiters.delete(fail);
          if (settled) late?.(value);
          else {
            settled = true;
            resolve(value);
          }
        },
        (error) => {
          this.#waiters.delete(fail);
          fail(error as Error);
        },
      );
    });
  }

  /** Stops the deadline (the connection is authenticated or gone). */
  clear(): void {
    if (this.#cleared) return;
    this.#cleared = true;
    clearTimeout(this.#timer);
  }

  #expire(): void {
    if (this.#cleared) return;
    this.#expired = true;
    if (this.#target !== undefined) closeTimedOut(this.#target);
    const error = new HandshakeTimeoutError(this.#timeoutMs);
    for (const fail of [...this.#waiters]) fail(error);
    this.#waiters.clear();
  }
}

function closeTimedOut(target: Closable): void {
  try {
    target.close({
      closeCode: CLOSE_CODES.handshakeTimeout,
      reason: "Handshake timed out",
    });
  } catch {
    // Already closed.
  }
}
