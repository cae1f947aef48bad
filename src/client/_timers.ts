/**
 * Timers of the coordination client that do not keep the process alive
 * (keep-alives of an open lease, its holder deadline), and a sleep that an
 * abort signal ends early. Runtime-neutral: `unrefTimer` is used only where
 * the runtime has it (Deno); browsers have no process to keep alive.
 * Private to `src/client/`.
 *
 * @module
 */

type TimerId = ReturnType<typeof setTimeout>;

const runtime = (globalThis as Record<string, unknown>)["Deno"] as
  | { unrefTimer?: (id: number) => void }
  | undefined;

/**
 * Lets the process exit while `id` is pending: the timer's own `unref()`
 * where timers are objects (Deno 2.9, Node), `Deno.unrefTimer` where they
 * are numbers in Deno; nothing in browsers.
 */
export function unref(id: TimerId): TimerId {
  const timer = id as unknown;
  if (typeof timer === "number") runtime?.unrefTimer?.(timer);
  else if (
    typeof timer === "object" && timer !== null &&
    typeof (timer as { unref?: unknown }).unref === "function"
  ) {
    (timer as { unref: () => void }).unref();
  }
  return id;
}

/** A timer that does not keep the process alive. */
export function backgroundTimeout(callback: () => void, ms: number): TimerId {
  return unref(setTimeout(callback, ms));
}

/**
 * Resolves after `ms`, or at once when `signal` aborts. The timer keeps the
 * process alive unless `background`.
 */
export function sleepFor(
  ms: number,
  signal: AbortSignal,
  background = false,
): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    if (background) unref(timer);
    signal.addEventListener("abort", done, { once: true });
    if (signal.aborted) done();
  });
}
