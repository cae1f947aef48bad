/**
 * The one bounded poll of the test suite: every test that waits for
 * something to become true uses {@link waitFor} or {@link waitForValue}.
 * Bounded in time (a generous deadline, the machine is loaded) and in
 * count, on the monotonic clock; never a timing threshold.
 *
 * @module
 */

/** How long and how often to poll. */
export interface WaitForOptions {
  /** Give up after this many milliseconds. Default 15 000. */
  readonly timeoutMs?: number;
  /** Pause between tries, in milliseconds. Default 10. */
  readonly intervalMs?: number;
  /**
   * Treat a throwing probe as "not yet" (the last error is named in the
   * timeout's message), e.g. a fetch to a node still starting. Default
   * false: the first error fails the wait.
   */
  readonly retryErrors?: boolean;
}

/** Most tries of one wait, whatever the deadline. */
const TRIES_MAX = 1_000_000;

/** Thrown when a wait's deadline passes. */
export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Polls `condition` until it is true.
 *
 * @param what What is awaited, for the timeout's message; a function is
 *   called only then (to name the state reached, e.g. counts so far).
 * @param options The options, or just the timeout in milliseconds.
 * @throws {WaitTimeoutError} `Timed out waiting for <what>` after the deadline.
 */
export async function waitFor(
  what: string | (() => string),
  condition: () => boolean | Promise<boolean>,
  options: WaitForOptions | number = {},
): Promise<void> {
  await waitForValue(
    what,
    async () => (await condition()) ? true : null,
    options,
  );
}

/**
 * Polls `probe` until it returns a value other than null or undefined, and
 * returns that value.
 *
 * @param options The options, or just the timeout in milliseconds.
 * @throws {WaitTimeoutError} `Timed out waiting for <what>` after the deadline.
 */
export async function waitForValue<T>(
  what: string | (() => string),
  probe: () => T | null | undefined | Promise<T | null | undefined>,
  options: WaitForOptions | number = {},
): Promise<T> {
  const { timeoutMs = 15_000, intervalMs = 10, retryErrors = false } =
    typeof options === "number" ? { timeoutMs: options } : options;
  const deadline = performance.now() + timeoutMs;
  let last: unknown = undefined;
  for (let tries = 0; tries < TRIES_MAX; tries++) {
    try {
      const value = await probe();
      if (value !== null && value !== undefined) return value;
    } catch (error) {
      if (!retryErrors) throw error;
      last = error;
    }
    if (performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const cause = last === undefined ? "" : ` (last error: ${last})`;
  const named = typeof what === "string" ? what : what();
  throw new WaitTimeoutError(
    `Timed out waiting for ${named} (${timeoutMs} ms)${cause}`,
    { cause: last },
  );
}
