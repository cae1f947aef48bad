/**
 * The real Clock and Scheduler (src/base/clock.ts ports) on the platform's
 * timers; the simulator supplies simulated ones.
 *
 * @module
 */
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";

/** The system's monotonic (`performance.now`) and wall (`Date.now`) clocks. */
export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  wallMs: () => Date.now(),
};

/** The platform's timers. */
export const systemScheduler: Scheduler = {
  after(delayMs: number, callback: () => void): Scheduled {
    const timer = setTimeout(callback, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(timer) };
  },
  every(periodMs: number, callback: () => void): Scheduled {
    const timer = setInterval(callback, Math.max(1, periodMs));
    return { cancel: () => clearInterval(timer) };
  },
};
