/**
 * A sleep that an abort signal ends early, private to the webhook worker.
 *
 * @module
 */

/** The longest timer delay, ms (about 24.8 days; a longer one fires at once). */
const TIMER_MS_MAX = 2_147_483_647;

/** Resolves after `ms` (0 or less: at once), or as soon as `signal` aborts. */
export function sleepFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(Math.max(0, ms), TIMER_MS_MAX));
    signal.addEventListener("abort", done, { once: true });
    if (signal.aborted) done();
  });
}
