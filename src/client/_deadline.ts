/**
 * The signal of one request attempt: aborted when its deadline passes or
 * when the client closes. One timer, cleared when the attempt ends, and one
 * listener on the client's signal, removed then: `AbortSignal.timeout()`
 * leaves a timer per request running for the whole deadline, and
 * `AbortSignal.any()` ties a dependent signal per request to the client's
 * long-lived one. Private to `src/client/`.
 *
 * @module
 */

/** The deadline and close signal of one attempt; call {@linkcode end} once it is over. */
export class AttemptDeadline {
  readonly #controller = new AbortController();
  readonly #closing: AbortSignal;
  readonly #timer: ReturnType<typeof setTimeout>;
  #timedOut = false;
  readonly #onClose = () => this.#controller.abort(this.#closing.reason);

  /**
   * @param timeoutMs Milliseconds the attempt may take.
   * @param closing Aborts the attempt when the client closes.
   */
  constructor(timeoutMs: number, closing: AbortSignal) {
    this.#closing = closing;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#controller.abort(
        new DOMException(
          `The attempt took over ${timeoutMs} ms`,
          "TimeoutError",
        ),
      );
    }, timeoutMs);
    if (closing.aborted) this.#onClose();
    else closing.addEventListener("abort", this.#onClose, { once: true });
  }

  /** Aborted at the deadline or when the client closes. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** True once the deadline passed (the attempt was aborted by it). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** Clears the timer and the close listener; the signal stays as it is. */
  end(): void {
    clearTimeout(this.#timer);
    this.#closing.removeEventListener("abort", this.#onClose);
  }
}
