/**
 * Time as a port: the runner, leader-side drivers and anything else that
 * waits or reads the time take a {@linkcode Clock} and a
 * {@linkcode Scheduler}, so the simulator can drive them on simulated time.
 * Implementations live outside `src/base/` (the system one in `src/node/`,
 * the simulated one in `src/sim/`).
 *
 * @module
 */

/** Reads the time. */
export interface Clock {
  /** Monotonic milliseconds (for deadlines, leases and durations); never goes back. */
  monotonicMs(): number;
  /** Wall-clock milliseconds since the Unix epoch (for stamping proposals only). */
  wallMs(): number;
}

/** A scheduled callback that can be cancelled. */
export interface Scheduled {
  /** Cancels the callback if it has not run; idempotent. */
  cancel(): void;
}

/** Runs callbacks later. */
export interface Scheduler {
  /** Runs `callback` once, `delayMs` from now (0: as soon as possible, after the current task). */
  after(delayMs: number, callback: () => void): Scheduled;
  /** Runs `callback` every `periodMs` until cancelled. */
  every(periodMs: number, callback: () => void): Scheduled;
}
