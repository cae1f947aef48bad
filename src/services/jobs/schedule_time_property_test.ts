/**
 * Property tests of the schedule time logic against a brute-force reference:
 * slots of `everyMs` schedules and of second-list cron patterns are listed by
 * checking every instant of a small range, then compared with what
 * nextSlotAfter, planDue and backfillSlots answer.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  backfillSlots,
  jitterDelay,
  nextSlotAfter,
  parseSchedule,
  planDue,
  type PlannedFire,
  SCHEDULE_PLAN_LIMITS,
  type ScheduleTime,
} from "./schedule_time.ts";

/** A whole hour (UTC), so cron second and minute fields line up with offsets. */
const BASE_MS = Date.UTC(2026, 4, 20, 10);
/** The reference covers BASE_MS + [0, SPAN_MS]; scenarios stay inside it. */
const SPAN_MS = 1_800_000;
const RUNS = 60;

interface Scenario {
  readonly schedule: ScheduleTime;
  /** Every slot in the span, ascending, ignoring limit. */
  readonly reference: readonly number[];
}

const everyScenario: fc.Arbitrary<Scenario> = fc.record({
  // Whole seconds, so the reference can check the span second by second.
  everyMs: fc.integer({ min: 1, max: 120 }).map((seconds) => seconds * 1_000),
  anchorOffsetMs: fc.integer({ min: 0, max: 200 }).map((seconds) =>
    seconds * 1_000
  ),
  start: fc.option(fc.integer({ min: 0, max: SPAN_MS / 3 }), {
    nil: undefined,
  }),
  end: fc.option(fc.integer({ min: SPAN_MS / 2, max: SPAN_MS }), {
    nil: undefined,
  }),
  limit: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  catchupWindowMs: fc.integer({ min: 0, max: 300_000 }),
}).map(({ everyMs, anchorOffsetMs, start, end, limit, catchupWindowMs }) => {
  const schedule = parseSchedule({
    everyMs,
    anchorMs: BASE_MS + anchorOffsetMs,
    startAtMs: start === undefined ? undefined : BASE_MS + start,
    endAtMs: end === undefined ? undefined : BASE_MS + end,
    limit,
    catchupWindowMs,
  });
  return {
    schedule,
    reference: referenceSlots(
      schedule,
      (ms) => (ms - BASE_MS - anchorOffsetMs) % everyMs === 0,
    ),
  };
});

const cronScenario: fc.Arbitrary<Scenario> = fc.record({
  seconds: fc.uniqueArray(fc.integer({ min: 0, max: 59 }), {
    minLength: 1,
    maxLength: 6,
  }),
  minuteStep: fc.constantFrom(1, 2, 3, 5, 7),
  start: fc.option(fc.integer({ min: 0, max: SPAN_MS / 3 }), {
    nil: undefined,
  }),
  limit: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }),
  catchupWindowMs: fc.integer({ min: 0, max: 300_000 }),
}).map(({ seconds, minuteStep, start, limit, catchupWindowMs }) => {
  const schedule = parseSchedule({
    cron: `${seconds.join(",")} */${minuteStep} * * * *`,
    startAtMs: start === undefined ? undefined : BASE_MS + start,
    limit,
    catchupWindowMs,
  });
  const matches = (ms: number) => {
    const date = new Date(ms);
    return ms % 1_000 === 0 && seconds.includes(date.getUTCSeconds()) &&
      date.getUTCMinutes() % minuteStep === 0;
  };
  return { schedule, reference: referenceSlots(schedule, matches) };
});

const scenario = fc.oneof(everyScenario, cronScenario);

/** The slots in the span by checking every whole second (every slot here is one). */
function referenceSlots(
  schedule: ScheduleTime,
  matches: (ms: number) => boolean,
): number[] {
  const found: number[] = [];
  for (let ms = BASE_MS; ms <= BASE_MS + SPAN_MS; ms += 1_000) {
    if (schedule.startAtMs !== null && ms < schedule.startAtMs) continue;
    if (schedule.endAtMs !== null && ms > schedule.endAtMs) continue;
    if (matches(ms)) found.push(ms);
  }
  return found;
}

/** A `nowMs` on a classification edge: a due slot exactly at (±1 ms) the tolerance or the window. */
const edge = fc.option(
  fc.record({
    pivot: fc.nat(),
    boundary: fc.constantFrom("now", "tolerance", "window"),
    deltaMs: fc.integer({ min: -1, max: 1 }),
  }),
  { nil: undefined },
);

function edgeInstant(
  s: Scenario,
  stored: number,
  nowEdge: {
    pivot: number;
    boundary: "now" | "tolerance" | "window";
    deltaMs: number;
  },
): number {
  const candidates = s.reference.filter((ms) => ms >= stored).slice(0, 300);
  if (candidates.length === 0) return -1;
  const pivotMs = candidates[nowEdge.pivot % candidates.length]!;
  const boundaryMs = nowEdge.boundary === "now"
    ? 0
    : nowEdge.boundary === "tolerance"
    ? SCHEDULE_PLAN_LIMITS.onTimeToleranceMs
    : Math.max(
      s.schedule.catchupWindowMs,
      SCHEDULE_PLAN_LIMITS.onTimeToleranceMs,
    );
  return pivotMs + boundaryMs + nowEdge.deltaMs;
}

/** The slots fired (or late) so far count against limit; the reference slot after `afterMs`. */
function referenceNext(
  s: Scenario,
  afterMs: number,
  slotsTaken: number,
): number | null {
  if (s.schedule.limit !== null && slotsTaken >= s.schedule.limit) return null;
  return s.reference.find((ms) => ms > afterMs) ?? null;
}

Deno.test("nextSlotAfter() agrees with the brute-force reference", () => {
  fc.assert(
    fc.property(
      scenario,
      fc.integer({ min: -1_000, max: SPAN_MS - 300_000 }),
      (s, offset) => {
        const afterMs = BASE_MS + offset;
        const slotMs = nextSlotAfter(s.schedule, afterMs);
        const expected = referenceNext(s, afterMs, 0);
        // The reference ends with the span; past it the real next slot may still exist.
        if (expected === null) {
          assert.ok(
            slotMs === null || slotMs > BASE_MS + SPAN_MS,
          );
        } else assert.equal(slotMs, expected);
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

Deno.test("planDue() classifies every due slot as the reference does", () => {
  fc.assert(
    fc.property(
      scenario,
      fc.integer({ min: 0, max: SPAN_MS / 2 }),
      // Leaves 400 s of span after nowMs, more than the longest gap between slots.
      fc.integer({ min: 0, max: SPAN_MS / 2 - 400_000 }),
      edge,
      (s, storedOffset, ageOffset, nowEdge) => {
        const stored = referenceNext(s, BASE_MS + storedOffset - 1, 0);
        if (stored === null) return;
        const nowMs = nowEdge === undefined
          ? stored + ageOffset
          : edgeInstant(s, stored, nowEdge);
        if (nowMs < stored || nowMs > BASE_MS + SPAN_MS - 400_000) return;
        const fires = planDue(
          s.schedule,
          stored,
          nowMs,
          SCHEDULE_PLAN_LIMITS.firesPerPlanMax,
        );
        const windowMs = Math.max(
          s.schedule.catchupWindowMs,
          SCHEDULE_PLAN_LIMITS.onTimeToleranceMs,
        );
        const due = s.reference.filter((ms) => ms >= stored && ms <= nowMs);
        const missed = due.filter((ms) => nowMs - ms > windowMs);
        const kept = due.filter((ms) => nowMs - ms <= windowMs).slice(
          0,
          s.schedule.limit ?? Infinity,
        );
        const expected: PlannedFire[] = [];
        let taken = 0;
        if (missed.length > 0) {
          expected.push({
            outcome: "missed",
            slotMs: missed[0]!,
            nextSlotMs: referenceNext(s, missed.at(-1)!, 0),
            missedSlots: missed.length,
            missedSlotsExact: true,
          });
        }
        for (const slotMs of kept) {
          taken += 1;
          expected.push({
            outcome: nowMs - slotMs <= SCHEDULE_PLAN_LIMITS.onTimeToleranceMs
              ? "fired"
              : "late",
            slotMs,
            nextSlotMs: referenceNext(s, slotMs, taken),
          });
        }
        assert.deepEqual(fires, expected);
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

Deno.test("planDue() ticked by a leader fires each slot at most once and misses none silently", () => {
  fc.assert(
    fc.property(
      scenario,
      fc.array(fc.integer({ min: 0, max: 120_000 }), {
        minLength: 1,
        maxLength: 30,
      }),
      fc.integer({ min: 1, max: 5 }),
      (s, steps, maxFires) => {
        let stored = nextSlotAfter(s.schedule, BASE_MS - 1);
        let taken = 0;
        let nowMs = BASE_MS;
        const windowMs = Math.max(
          s.schedule.catchupWindowMs,
          SCHEDULE_PLAN_LIMITS.onTimeToleranceMs,
        );
        const covered: number[] = [];
        const firedSlots: number[] = [];
        for (const step of steps) {
          nowMs += step;
          if (nowMs > BASE_MS + SPAN_MS) break;
          for (
            const fire of planDue(s.schedule, stored, nowMs, maxFires, taken)
          ) {
            // Apply: acts only on the stored next slot, then stores the fire's next slot.
            assert.equal(fire.slotMs, stored);
            assert.ok(fire.slotMs <= nowMs);
            if (fire.outcome === "missed") {
              const span = s.reference.filter((ms) =>
                ms >= fire.slotMs && ms < (fire.nextSlotMs ?? Infinity)
              );
              assert.equal(fire.missedSlots, span.length);
              assert.ok(span.every((ms) => nowMs - ms > windowMs));
              covered.push(...span);
            } else {
              taken += 1;
              firedSlots.push(fire.slotMs);
              covered.push(fire.slotMs);
            }
            stored = fire.nextSlotMs;
          }
        }
        assert.equal(
          new Set(firedSlots).size,
          firedSlots.length,
          "a slot fired twice",
        );
        assert.deepEqual(covered, [...covered].sort((a, b) => a - b));
        assert.ok(s.schedule.limit === null || taken <= s.schedule.limit);
        // Every slot before the stored next one was fired, late or recorded missed
        // (all of them up to nowMs once ended, or a prefix when the limit ended it).
        const current = stored;
        const expected = current === null
          ? s.reference.filter((ms) => ms <= nowMs)
          : s.reference.filter((ms) => ms < current);
        if (current === null && s.schedule.limit !== null) {
          assert.deepEqual(covered, expected.slice(0, covered.length));
        } else {
          assert.deepEqual(covered, expected);
        }
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("backfillSlots() lists the reference slots of the range, the same twice", () => {
  fc.assert(
    fc.property(
      scenario,
      fc.integer({ min: 0, max: SPAN_MS }),
      fc.integer({ min: 0, max: SPAN_MS }),
      fc.option(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: -1, max: 1 })), {
        nil: undefined,
      }),
      (s, a, b, onSlots) => {
        let fromMs = BASE_MS + Math.min(a, b);
        let toMs = BASE_MS + Math.max(a, b);
        if (onSlots !== undefined && s.reference.length > 0) {
          // Ends on slots (or 1 ms either side), where inclusive bounds are decided.
          const [i, j, deltaMs] = onSlots;
          const x = s.reference[i % s.reference.length]!;
          const y = s.reference[j % s.reference.length]!;
          fromMs = Math.min(x, y) + deltaMs;
          toMs = Math.max(x, y) - deltaMs;
          if (toMs < fromMs) return;
        }
        const slots = backfillSlots(s.schedule, fromMs, toMs);
        assert.deepEqual(
          slots,
          s.reference.filter((ms) => ms >= fromMs && ms <= toMs),
        );
        assert.deepEqual(backfillSlots(s.schedule, fromMs, toMs), slots);
      },
    ),
    { numRuns: RUNS },
  );
});

Deno.test("jitterDelay() is a whole ms in [0, jitterMs], monotone in the draw", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3_600_000 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (jitterMs, a, b) => {
        const low = jitterDelay(jitterMs, Math.min(a, b));
        const high = jitterDelay(jitterMs, Math.max(a, b));
        assert.ok(
          Number.isInteger(low) && low >= 0 && high <= jitterMs && low <= high,
        );
      },
    ),
    { numRuns: RUNS * 5 },
  );
});
