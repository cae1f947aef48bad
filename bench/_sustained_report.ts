/**
 * Arithmetic of the sustained run's report: totals over the per-second
 * record, and how long the throughput took to come back after each kill.
 *
 * @module
 */
import type { SecondRecord } from "./_timeline.ts";

/** One leader kill and the restart that followed. */
export interface KillRecord {
  /** 1 for the first kill. */
  readonly n: number;
  /** Seconds since the start of the run. */
  readonly killedAtS: number;
  /** Index of the killed node. */
  readonly node: number;
  /** The killed process's id. */
  readonly pid: number;
  /** Index of the node the survivors agreed on, or null if none in time. */
  readonly newLeader: number | null;
  /** Ms from SIGKILL until the survivors agreed on a new leader. */
  readonly newLeaderMs: number | null;
  /** Seconds since the start at which the killed node was started again. */
  readonly restartedAtS: number;
  /** Ms from its restart until the node listened. */
  readonly restartMs: number;
}

/** Seconds before a kill whose mean throughput is the reference. */
export const RECOVERY_REFERENCE_S = 10;

/** Share of the reference throughput that counts as recovered. */
export const RECOVERY_SHARE = 0.5;

/** Totals of a run. */
export interface RunTotals {
  readonly operations: number;
  readonly gets: number;
  readonly puts: number;
  readonly throughputPerSecond: number;
  readonly outcomeUnknown: number;
  readonly otherErrors: number;
}

/** Sums the per-second record; throughput over `elapsedMs`. */
export function summarizeErrors(
  seconds: readonly SecondRecord[],
  elapsedMs: number,
): RunTotals {
  let gets = 0, puts = 0, outcomeUnknown = 0, otherErrors = 0;
  for (const s of seconds) {
    gets += s.gets;
    puts += s.puts;
    outcomeUnknown += s.outcomeUnknown;
    otherErrors += s.otherErrors;
  }
  const operations = gets + puts;
  return {
    operations,
    gets,
    puts,
    throughputPerSecond: elapsedMs > 0 ? operations / (elapsedMs / 1000) : 0,
    outcomeUnknown,
    otherErrors,
  };
}

/**
 * Whole seconds from the kill's second until the first second whose
 * throughput is at least half the mean of the 10 s before the kill; null
 * when that never happened within the record (or there is no reference).
 */
export function recoverySeconds(
  seconds: readonly SecondRecord[],
  killedAtS: number,
): number | null {
  const killSecond = Math.floor(killedAtS);
  const before = seconds.slice(
    Math.max(0, killSecond - RECOVERY_REFERENCE_S),
    killSecond,
  );
  if (before.length === 0) return null;
  const reference = before.reduce((sum, s) => sum + s.gets + s.puts, 0) /
    before.length;
  if (!(reference > 0)) return null;
  // The kill's own second is partly before the kill: start right after it.
  for (let t = killSecond + 1; t < seconds.length; t++) {
    const s = seconds[t]!;
    if (s.gets + s.puts >= RECOVERY_SHARE * reference) {
      return t - killSecond;
    }
  }
  return null;
}
