/**
 * The time logic of schedules, shared by the jobs leader (which decides) and
 * apply (which checks): where a schedule's slots fall, which due slots fire,
 * fire late or were missed, which slots a backfill covers, and the jitter and
 * job id of a fire. Pure and deterministic: no clock, no randomness. The leader
 * passes its `nowMs` and its random draws in, and carries the results in the
 * commands it proposes, so every replica applies the same decisions.
 *
 * Slots are instants in ms since the epoch:
 *
 * - `cron`: the instants croner@11.0.0 steps to in the schedule's timezone, with
 *   the options pinned in {@linkcode cronerOptions}. Daylight saving time
 *   follows croner: a wall time skipped by a spring-forward change (02:30 in
 *   `Europe/Berlin` on its change day) fires once, at the first instant after
 *   the gap (03:00 local); a wall time repeated by a fall-back change fires
 *   once, at its first occurrence.
 * - `everyMs`: `anchorMs + k·everyMs` for whole k; the anchor is `startAtMs`
 *   when given, else 0 (so `everyMs: 60_000` falls on whole minutes), the same
 *   on every node whenever it computes.
 *
 * Both then keep only slots in [`startAtMs`, `endAtMs`] (inclusive) and end
 * after `limit` slots taken (see {@linkcode planDue}).
 *
 * @module
 */
import { Cron } from "croner";
import { assert } from "../../base/assert.ts";
import {
  cronerOptions,
  ScheduleSpecError,
  type ScheduleTime,
} from "./schedule_spec.ts";

export {
  parseSchedule,
  SCHEDULE_TIME_DEFAULTS,
  SCHEDULE_TIME_FIELDS,
  SCHEDULE_TIME_LIMITS,
  ScheduleSpecError,
} from "./schedule_spec.ts";
export type {
  ScheduleOverlap,
  ScheduleTime,
  ScheduleTimeField,
  ScheduleTimeSpec,
} from "./schedule_spec.ts";

/** Bounds of the planning functions. */
export const SCHEDULE_PLAN_LIMITS = {
  /**
   * A due slot at most this old (ms) fires `fired` (on time): it covers the
   * leader's tick period and a proposal's commit under load.
   */
  onTimeToleranceMs: 2_000,
  /** Largest `maxFires` of one {@linkcode planDue} call. */
  firesPerPlanMax: 1_000,
  /** Cron slots a collapsed `missed` record counts one by one at most. */
  missedCountedMax: 1_000,
  /** Slots one backfill covers at most. */
  backfillSlotsMax: 10_000,
} as const;

/** One fire the leader should propose, in order; each `nextSlotMs` is the next fire's `slotMs`. */
export type PlannedFire =
  | {
    /** `fired`: at most `onTimeToleranceMs` old; `late`: within the catch-up window. */
    readonly outcome: "fired" | "late";
    /** The slot; apply acts only if it is the stored next slot. */
    readonly slotMs: number;
    /** The slot apply stores next, or null when the schedule has ended. */
    readonly nextSlotMs: number | null;
  }
  | {
    /**
     * Every slot from `slotMs` up to (not including) `nextSlotMs` was older
     * than the catch-up window: one record for all, no job.
     */
    readonly outcome: "missed";
    /** The first missed slot (the stored next slot). */
    readonly slotMs: number;
    /** The first slot within the catch-up window (or later), or null when ended. */
    readonly nextSlotMs: number | null;
    /** How many slots were missed (a lower bound when `missedSlotsExact` is false). */
    readonly missedSlots: number;
    /** False when a cron run was longer than `missedCountedMax` and not counted to its end. */
    readonly missedSlotsExact: boolean;
  };

const cronCache = new Map<string, Cron>();
const CRON_CACHE_SIZE_MAX = 1_024;

function cronOf(pattern: string, timezone: string): Cron {
  const key = `${timezone}\n${pattern}`;
  let cron = cronCache.get(key);
  if (cron === undefined) {
    // Bounded: schedules are at most 1,000, so a full cache is rare; dropping it is safe.
    if (cronCache.size >= CRON_CACHE_SIZE_MAX) cronCache.clear();
    cron = new Cron(pattern, cronerOptions(timezone));
    cronCache.set(key, cron);
  }
  return cron;
}

function assertInstant(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < -1) {
    throw new RangeError(
      `Cannot plan schedule as '${name}' must be an integer of at least -1 ms: current value is ${value}`,
    );
  }
}

/** The first slot strictly after `afterMs` within [startAtMs, endAtMs], ignoring `limit`. */
function slotAfter(schedule: ScheduleTime, afterMs: number): number | null {
  const lowerMs = schedule.startAtMs === null
    ? afterMs
    : Math.max(afterMs, schedule.startAtMs - 1);
  let slotMs: number | null;
  if (schedule.kind === "every") {
    const periods =
      Math.floor((lowerMs - schedule.anchorMs) / schedule.everyMs) + 1;
    slotMs = schedule.anchorMs + periods * schedule.everyMs;
    if (!Number.isSafeInteger(slotMs)) return null;
  } else {
    const next = cronOf(schedule.cron, schedule.timezone).nextRun(
      new Date(lowerMs),
    );
    slotMs = next === null ? null : next.getTime();
  }
  if (slotMs === null) return null;
  assert(
    slotMs > afterMs,
    `a slot must be after ${afterMs}: current value is ${slotMs}`,
  );
  if (schedule.endAtMs !== null && slotMs > schedule.endAtMs) return null;
  return slotMs;
}

/**
 * The first slot strictly after `afterMs`.
 *
 * @param schedule The schedule, from {@linkcode parseSchedule}.
 * @param afterMs The instant to look after, ms (-1 to include the epoch).
 * @param slotsTaken Slots the schedule has taken so far (counted against `limit`).
 * @returns The slot, ms; null past `endAtMs`, once `limit` slots are taken, or when cron never matches again.
 * @throws {RangeError} When `afterMs` or `slotsTaken` is not a whole number in range.
 * @example
 * ```ts
 * import { nextSlotAfter, parseSchedule } from "./schedule_time.ts";
 * const schedule = parseSchedule({ cron: "*\/15 * * * *" });
 * if (nextSlotAfter(schedule, 0) !== 15 * 60_000) throw new Error("slots are each quarter hour");
 * ```
 */
export function nextSlotAfter(
  schedule: ScheduleTime,
  afterMs: number,
  slotsTaken = 0,
): number | null {
  assertInstant(afterMs, "afterMs");
  if (!Number.isSafeInteger(slotsTaken) || slotsTaken < 0) {
    throw new RangeError(
      `Cannot plan schedule as 'slotsTaken' must be a whole number: current value is ${slotsTaken}`,
    );
  }
  if (schedule.limit !== null && slotsTaken >= schedule.limit) return null;
  return slotAfter(schedule, afterMs);
}

/**
 * What the leader should propose for a schedule at `nowMs`: every due slot
 * (≤ `nowMs`) from the stored next slot on, oldest first, at most `maxFires`.
 *
 * A slot `ageMs = nowMs - slotMs` old fires `fired` when `ageMs ≤
 * onTimeToleranceMs`, `late` when `ageMs ≤ catchupWindowMs`, and is `missed`
 * when older than both. Missed slots are never enumerated one proposal each: the
 * run of them collapses into one `missed` record whose `nextSlotMs` jumps
 * straight to the first slot inside the window (one croner step), so a
 * schedule 30 days behind at one slot a second plans in bounded work. Its
 * count is exact for `everyMs` (arithmetic) and for cron runs up to
 * `missedCountedMax` slots; longer cron runs report that many, flagged
 * inexact. Each `fired` or `late` slot takes one of `limit` (apply may still
 * record it `skipped` or `buffered`); missed slots take none.
 *
 * When more slots are due than `maxFires`, the rest are planned on the next
 * call from the last `nextSlotMs`.
 *
 * @param schedule The schedule, from {@linkcode parseSchedule}.
 * @param storedNextSlotMs The next slot apply stored (null: ended).
 * @param nowMs The leader's time, ms.
 * @param maxFires Fires (records) to plan at most, 1 to `firesPerPlanMax`.
 * @param slotsTaken Slots the schedule has taken so far (counted against `limit`).
 * @returns The fires, chained: each one's `nextSlotMs` is the next one's `slotMs`.
 * @throws {RangeError} When an argument is out of range.
 */
export function planDue(
  schedule: ScheduleTime,
  storedNextSlotMs: number | null,
  nowMs: number,
  maxFires: number,
  slotsTaken = 0,
): PlannedFire[] {
  assertInstant(nowMs, "nowMs");
  if (
    !Number.isSafeInteger(maxFires) || maxFires < 1 ||
    maxFires > SCHEDULE_PLAN_LIMITS.firesPerPlanMax
  ) {
    throw new RangeError(
      `Cannot plan schedule as 'maxFires' must be an integer from 1 to ${SCHEDULE_PLAN_LIMITS.firesPerPlanMax}: current value is ${maxFires}`,
    );
  }
  if (storedNextSlotMs === null) return [];
  assertInstant(storedNextSlotMs, "storedNextSlotMs");
  assert(
    schedule.limit === null || slotsTaken < schedule.limit,
    `a schedule with ${slotsTaken} of ${schedule.limit} slots taken has no next slot: current value is ${storedNextSlotMs}`,
  );
  const fires: PlannedFire[] = [];
  const windowMs = Math.max(
    schedule.catchupWindowMs,
    SCHEDULE_PLAN_LIMITS.onTimeToleranceMs,
  );
  // Slots at or after keptFromMs fire (`fired` or `late`); older ones are missed.
  const keptFromMs = nowMs - windowMs;
  let slotMs: number | null = storedNextSlotMs;
  if (slotMs <= nowMs && slotMs < keptFromMs) {
    const nextSlotMs = nextSlotAfter(
      schedule,
      Math.max(-1, keptFromMs - 1),
      slotsTaken,
    );
    fires.push({
      outcome: "missed",
      slotMs,
      nextSlotMs,
      ...countMissed(schedule, slotMs, keptFromMs),
    });
    slotMs = nextSlotMs;
  }
  let taken = slotsTaken;
  while (slotMs !== null && slotMs <= nowMs && fires.length < maxFires) {
    const outcome = nowMs - slotMs <= SCHEDULE_PLAN_LIMITS.onTimeToleranceMs
      ? "fired"
      : "late";
    taken += 1;
    const nextSlotMs = nextSlotAfter(schedule, slotMs, taken);
    fires.push({ outcome, slotMs, nextSlotMs });
    slotMs = nextSlotMs;
  }
  assert(
    fires.length <= maxFires,
    `a plan holds at most ${maxFires} fires: current value is ${fires.length}`,
  );
  return fires;
}

/** The slots in [firstMs, beforeMs) (firstMs a slot), for a collapsed `missed` record. */
function countMissed(
  schedule: ScheduleTime,
  firstMs: number,
  beforeMs: number,
): { missedSlots: number; missedSlotsExact: boolean } {
  if (schedule.kind === "every") {
    const lastMs = schedule.endAtMs === null
      ? beforeMs - 1
      : Math.min(beforeMs - 1, schedule.endAtMs);
    return {
      missedSlots: Math.floor((lastMs - firstMs) / schedule.everyMs) + 1,
      missedSlotsExact: true,
    };
  }
  let missedSlots = 1;
  let cursorMs = firstMs;
  for (let step = 0; step < SCHEDULE_PLAN_LIMITS.missedCountedMax; step++) {
    const nextMs = slotAfter(schedule, cursorMs);
    if (nextMs === null || nextMs >= beforeMs) {
      return { missedSlots, missedSlotsExact: true };
    }
    missedSlots += 1;
    cursorMs = nextMs;
  }
  return { missedSlots, missedSlotsExact: false };
}

/**
 * The slots in [fromMs, toMs] (inclusive, within startAtMs/endAtMs; `limit`
 * does not apply), oldest first: the same list every time it is asked.
 *
 * @param schedule The schedule, from {@linkcode parseSchedule}.
 * @param fromMs The first instant covered, ms.
 * @param toMs The last instant covered, ms.
 * @returns The slots, at most `backfillSlotsMax`.
 * @throws {ScheduleSpecError} `invalid` for a bad range, `limitExceeded` (field `to`) past `backfillSlotsMax` slots.
 */
export function backfillSlots(
  schedule: ScheduleTime,
  fromMs: number,
  toMs: number,
): number[] {
  for (const [field, value] of [["from", fromMs], ["to", toMs]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ScheduleSpecError(
        field,
        `Cannot backfill schedule as '${field}' must be a whole number of ms: current value is ${value}`,
      );
    }
  }
  if (toMs < fromMs) {
    throw new ScheduleSpecError(
      "to",
      `Cannot backfill schedule as 'to' is before 'from': current value is ${toMs}`,
    );
  }
  const max = SCHEDULE_PLAN_LIMITS.backfillSlotsMax;
  // everyMs: refuse by arithmetic before enumerating anything.
  if (
    schedule.kind === "every" && (toMs - fromMs) / schedule.everyMs > max + 1
  ) throw tooMany(max);
  const slots: number[] = [];
  let slotMs = slotAfter(schedule, fromMs - 1);
  while (slotMs !== null && slotMs <= toMs) {
    if (slots.length === max) throw tooMany(max);
    slots.push(slotMs);
    slotMs = slotAfter(schedule, slotMs);
  }
  return slots;
}

function tooMany(max: number): ScheduleSpecError {
  return new ScheduleSpecError(
    "to",
    `Cannot backfill schedule as the range holds more than ${max} slots`,
    { code: "limitExceeded" },
  );
}

/**
 * The delay of one fire's job, from the leader's random draw: uniform over the
 * whole ms in [0, jitterMs].
 *
 * @param jitterMs The schedule's `jitterMs`.
 * @param draw The leader's draw in [0, 1] (1 gives `jitterMs`).
 * @returns The delay, ms.
 * @throws {RangeError} When `jitterMs` or `draw` is out of range.
 */
export function jitterDelay(jitterMs: number, draw: number): number {
  if (!Number.isSafeInteger(jitterMs) || jitterMs < 0) {
    throw new RangeError(
      `Cannot draw jitter as 'jitterMs' must be a whole number: current value is ${jitterMs}`,
    );
  }
  if (!Number.isFinite(draw) || draw < 0 || draw > 1) {
    throw new RangeError(
      `Cannot draw jitter as 'draw' must be from 0 to 1: current value is ${draw}`,
    );
  }
  const delayMs = Math.min(jitterMs, Math.floor(draw * (jitterMs + 1)));
  assert(
    delayMs >= 0 && delayMs <= jitterMs,
    `a jitter delay lies in [0, ${jitterMs}]: current value is ${delayMs}`,
  );
  return delayMs;
}

const SCHEDULE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The job id of a schedule's fire for one slot, `sched:<id>:<slotMs>`: a
 * re-proposed or backfilled slot adds no second job.
 *
 * @param scheduleId The schedule's id (`[A-Za-z0-9._:-]{1,128}`).
 * @param slotMs The slot, ms.
 * @returns The job id.
 * @throws {RangeError} When the id or the slot is malformed.
 */
export function fireJobId(scheduleId: string, slotMs: number): string {
  if (!SCHEDULE_ID_PATTERN.test(scheduleId)) {
    throw new RangeError(
      `Cannot name fire job as 'scheduleId' must match [A-Za-z0-9._:-]{1,128}: current value is '${scheduleId}'`,
    );
  }
  if (!Number.isSafeInteger(slotMs) || slotMs < 0) {
    throw new RangeError(
      `Cannot name fire job as 'slotMs' must be a whole number: current value is ${slotMs}`,
    );
  }
  return `sched:${scheduleId}:${slotMs}`;
}
