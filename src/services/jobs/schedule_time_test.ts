import assert from "node:assert/strict";
import {
  backfillSlots,
  fireJobId,
  jitterDelay,
  nextSlotAfter,
  parseSchedule,
  planDue,
  SCHEDULE_PLAN_LIMITS,
  SCHEDULE_TIME_LIMITS,
  type ScheduleSpecError,
  type ScheduleTime,
} from "./schedule_time.ts";

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
const iso = (text: string): number => Date.parse(text);
const isoOf = (ms: number | null): string | null =>
  ms === null ? null : new Date(ms).toISOString();

/** The first `count` slots after `afterMs`, stepping nextSlotAfter. */
function slots(
  schedule: ScheduleTime,
  afterMs: number,
  count: number,
): string[] {
  const found: string[] = [];
  let cursorMs: number | null = afterMs;
  for (let i = 0; i < count && cursorMs !== null; i++) {
    cursorMs = nextSlotAfter(schedule, cursorMs);
    if (cursorMs !== null) found.push(isoOf(cursorMs)!);
  }
  return found;
}

Deno.test("parseSchedule() fills in the defaults", () => {
  assert.deepEqual(parseSchedule({ cron: "*/15 * * * *" }), {
    kind: "cron",
    cron: "*/15 * * * *",
    timezone: "UTC",
    overlap: "skip",
    catchupWindowMs: 60_000,
    jitterMs: 0,
    startAtMs: null,
    endAtMs: null,
    limit: null,
  });
  assert.deepEqual(parseSchedule({ everyMs: 5_000 }), {
    kind: "every",
    everyMs: 5_000,
    anchorMs: 0,
    timezone: "UTC",
    overlap: "skip",
    catchupWindowMs: 60_000,
    jitterMs: 0,
    startAtMs: null,
    endAtMs: null,
    limit: null,
  });
});

Deno.test("parseSchedule() keeps given fields and canonicalizes the zone and the pattern", () => {
  const schedule = parseSchedule({
    cron: "  0   9 * * 1-5 ",
    timezone: "europe/berlin",
    overlap: "buffer-one",
    catchupWindowMs: 30 * DAY_MS,
    jitterMs: 500,
    startAtMs: 10,
    endAtMs: 10,
    limit: 3,
  });
  assert.equal(schedule.kind, "cron");
  assert.equal(schedule.kind === "cron" && schedule.cron, "0 9 * * 1-5");
  assert.equal(schedule.timezone, "Europe/Berlin");
  assert.equal(schedule.overlap, "buffer-one");
  assert.equal(schedule.catchupWindowMs, 30 * DAY_MS);
  assert.equal(schedule.jitterMs, 500);
  assert.equal(schedule.limit, 3);
});

Deno.test("parseSchedule() refuses each bad spec naming its field", async (t) => {
  const cases: [string, unknown, string][] = [
    ["not an object", "*/5 * * * *", "spec"],
    ["null", null, "spec"],
    ["an array", [], "spec"],
    ["an unknown field", { cron: "* * * * *", timeZone: "UTC" }, "spec"],
    ["neither cron nor everyMs", { timezone: "UTC" }, "cron"],
    ["both cron and everyMs", { cron: "* * * * *", everyMs: 1_000 }, "everyMs"],
    ["4 cron fields", { cron: "* * * *" }, "cron"],
    ["7 cron fields", { cron: "* * * * * * *" }, "cron"],
    ["a nickname", { cron: "@daily" }, "cron"],
    ["minute 61", { cron: "61 * * * *" }, "cron"],
    ["a reversed range", { cron: "5-2 * * * *" }, "cron"],
    ["garbage", { cron: "a b c d e" }, "cron"],
    ["a pattern that never matches", { cron: "0 0 30 2 *" }, "cron"],
    ["a cron number", { cron: 5 }, "cron"],
    [
      "an over-long cron",
      { cron: "* * * * " + "1,".repeat(200) + "1" },
      "cron",
    ],
    [
      "an unknown zone",
      { cron: "* * * * *", timezone: "Mars/Olympus_Mons" },
      "timezone",
    ],
    ["an empty zone", { cron: "* * * * *", timezone: "" }, "timezone"],
    ["a zone number", { cron: "* * * * *", timezone: 1 }, "timezone"],
    ["everyMs below 1 s", { everyMs: 999 }, "everyMs"],
    ["everyMs above 366 days", { everyMs: 366 * DAY_MS + 1 }, "everyMs"],
    ["fractional everyMs", { everyMs: 1_000.5 }, "everyMs"],
    ["everyMs as a string", { everyMs: "1000" }, "everyMs"],
    ["an unknown overlap", { everyMs: 1_000, overlap: "queue" }, "overlap"],
    ["catch-up past 30 days", {
      everyMs: 1_000,
      catchupWindowMs: 30 * DAY_MS + 1,
    }, "catchupWindowMs"],
    [
      "a negative catch-up",
      { everyMs: 1_000, catchupWindowMs: -1 },
      "catchupWindowMs",
    ],
    ["jitter past 1 h", { everyMs: 1_000, jitterMs: HOUR_MS + 1 }, "jitterMs"],
    ["a negative start", { everyMs: 1_000, startAtMs: -5 }, "startAtMs"],
    [
      "end before start",
      { everyMs: 1_000, startAtMs: 10, endAtMs: 9 },
      "endAtMs",
    ],
    ["a zero limit", { everyMs: 1_000, limit: 0 }, "limit"],
    ["a NaN limit", { everyMs: 1_000, limit: NaN }, "limit"],
    ["an anchor on cron", { cron: "* * * * *", anchorMs: 0 }, "anchorMs"],
  ];
  for (const [name, spec, field] of cases) {
    await t.step(`refuses ${name} (${field})`, () => {
      assert.throws(() => parseSchedule(spec), (error: ScheduleSpecError) => {
        assert.equal(error.name, "ScheduleSpecError");
        assert.equal(error.field, field);
        assert.equal(error.code, "invalid");
        assert.match(error.message, /^Cannot parse schedule as /);
        return true;
      });
    });
  }
});

Deno.test("nextSlotAfter() steps 5-field, 6-field and ranged cron patterns", async (t) => {
  const start = iso("2026-06-05T16:59:59.500Z"); // a Friday
  await t.step("*/15 minutes", () => {
    assert.deepEqual(slots(parseSchedule({ cron: "*/15 * * * *" }), start, 3), [
      "2026-06-05T17:00:00.000Z",
      "2026-06-05T17:15:00.000Z",
      "2026-06-05T17:30:00.000Z",
    ]);
  });
  await t.step("6 fields read seconds first", () => {
    assert.deepEqual(
      slots(parseSchedule({ cron: "*/20 * * * * *" }), start, 3),
      [
        "2026-06-05T17:00:00.000Z",
        "2026-06-05T17:00:20.000Z",
        "2026-06-05T17:00:40.000Z",
      ],
    );
    assert.deepEqual(
      slots(parseSchedule({ cron: "30 0 12 * * *" }), start, 2),
      [
        "2026-06-06T12:00:30.000Z",
        "2026-06-07T12:00:30.000Z",
      ],
    );
  });
  await t.step("ranges: weekday business hours skip the weekend", () => {
    assert.deepEqual(
      slots(parseSchedule({ cron: "0 9-17/4 * * 1-5" }), start, 4),
      [
        "2026-06-05T17:00:00.000Z",
        "2026-06-08T09:00:00.000Z",
        "2026-06-08T13:00:00.000Z",
        "2026-06-08T17:00:00.000Z",
      ],
    );
  });
  await t.step("lists and names", () => {
    assert.deepEqual(
      slots(parseSchedule({ cron: "0 0 1,15 * MON" }), start, 3),
      [
        "2026-06-08T00:00:00.000Z",
        "2026-06-15T00:00:00.000Z",
        "2026-06-22T00:00:00.000Z",
      ],
    );
  });
  await t.step("strictly after: a slot instant itself is not returned", () => {
    const schedule = parseSchedule({ cron: "*/15 * * * *" });
    assert.equal(
      isoOf(nextSlotAfter(schedule, iso("2026-06-05T17:00:00.000Z"))),
      "2026-06-05T17:15:00.000Z",
    );
    assert.equal(
      isoOf(nextSlotAfter(schedule, iso("2026-06-05T16:59:59.999Z"))),
      "2026-06-05T17:00:00.000Z",
    );
  });
});

Deno.test("nextSlotAfter() reads cron in the schedule's timezone, UTC by default", () => {
  const after = iso("2026-01-10T00:00:00Z");
  assert.equal(
    isoOf(nextSlotAfter(parseSchedule({ cron: "0 9 * * *" }), after)),
    "2026-01-10T09:00:00.000Z",
  );
  assert.equal(
    isoOf(
      nextSlotAfter(
        parseSchedule({ cron: "0 9 * * *", timezone: "America/New_York" }),
        after,
      ),
    ),
    "2026-01-10T14:00:00.000Z",
  );
  assert.equal(
    isoOf(
      nextSlotAfter(
        parseSchedule({ cron: "0 9 * * *", timezone: "Asia/Kolkata" }),
        after,
      ),
    ),
    "2026-01-10T03:30:00.000Z",
  );
});

Deno.test("nextSlotAfter() keeps a 02:30 Europe/Berlin slot through both DST changes", async (t) => {
  const schedule = parseSchedule({
    cron: "30 2 * * *",
    timezone: "Europe/Berlin",
  });
  await t.step(
    "spring forward (2026-03-29, 02:00 → 03:00): the day still gets one slot, after the gap",
    () => {
      assert.deepEqual(slots(schedule, iso("2026-03-27T12:00:00Z"), 3), [
        "2026-03-28T01:30:00.000Z", // 02:30 CET
        "2026-03-29T01:00:00.000Z", // 03:00 CEST: 02:30 does not exist that day
        "2026-03-30T00:30:00.000Z", // 02:30 CEST
      ]);
    },
  );
  await t.step(
    "fall back (2026-10-25, 03:00 → 02:00): 02:30 happens twice, fires once",
    () => {
      const found = slots(schedule, iso("2026-10-24T12:00:00Z"), 2);
      assert.deepEqual(found, [
        "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first occurrence
        "2026-10-26T01:30:00.000Z", // 02:30 CET, the next day
      ]);
      const onTheDay = backfillSlots(
        schedule,
        iso("2026-10-24T22:00:00Z"),
        iso("2026-10-25T22:59:59Z"),
      );
      assert.deepEqual(onTheDay.map(isoOf), ["2026-10-25T00:30:00.000Z"]);
    },
  );
});

Deno.test("nextSlotAfter() anchors everyMs slots the same from any query point", async (t) => {
  await t.step("anchor 0 by default: whole periods since the epoch", () => {
    const schedule = parseSchedule({ everyMs: MINUTE_MS });
    assert.equal(nextSlotAfter(schedule, -1), 0);
    assert.equal(nextSlotAfter(schedule, 0), MINUTE_MS);
    assert.equal(nextSlotAfter(schedule, 123_456_789), 123_480_000);
  });
  await t.step("startAtMs anchors and bounds", () => {
    const schedule = parseSchedule({ everyMs: 7_000, startAtMs: 1_000_003 });
    assert.equal(nextSlotAfter(schedule, 0), 1_000_003);
    assert.equal(nextSlotAfter(schedule, 1_000_003), 1_007_003);
    assert.equal(nextSlotAfter(schedule, 1_007_002), 1_007_003);
    assert.equal(nextSlotAfter(schedule, 5_000_000), 5_004_003);
  });
  await t.step("anchorMs sets the phase, before or after startAtMs", () => {
    const schedule = parseSchedule({
      everyMs: 10_000,
      anchorMs: 2_500,
      startAtMs: 100_000,
    });
    assert.equal(nextSlotAfter(schedule, 0), 102_500);
    assert.equal(
      nextSlotAfter(parseSchedule({ everyMs: 10_000, anchorMs: 2_500 }), 0),
      2_500,
    );
  });
  await t.step("two nodes computing at different times agree", () => {
    const schedule = parseSchedule({ everyMs: 3_000, anchorMs: 1 });
    for (const afterMs of [0, 1, 2_999, 3_000, 3_001, 99_999]) {
      const slotMs = nextSlotAfter(schedule, afterMs)!;
      assert.equal((slotMs - 1) % 3_000, 0);
      assert.ok(slotMs > afterMs && slotMs - 3_000 <= afterMs);
    }
  });
});

Deno.test("nextSlotAfter() respects startAtMs, endAtMs and limit", async (t) => {
  await t.step("a slot exactly at startAtMs is the first", () => {
    const startAtMs = iso("2026-06-05T17:15:00Z");
    const schedule = parseSchedule({ cron: "*/15 * * * *", startAtMs });
    assert.equal(nextSlotAfter(schedule, 0), startAtMs);
  });
  await t.step("endAtMs is the last instant a slot may take", () => {
    const endAtMs = iso("2026-06-05T17:30:00Z");
    const schedule = parseSchedule({ cron: "*/15 * * * *", endAtMs });
    assert.equal(nextSlotAfter(schedule, endAtMs - 1), endAtMs);
    assert.equal(nextSlotAfter(schedule, endAtMs), null);
    const every = parseSchedule({ everyMs: 1_000, endAtMs: 4_500 });
    assert.equal(nextSlotAfter(every, 3_000), 4_000);
    assert.equal(nextSlotAfter(every, 4_000), null);
  });
  await t.step("limit ends the schedule once that many slots are taken", () => {
    const schedule = parseSchedule({ everyMs: 1_000, limit: 2 });
    assert.equal(nextSlotAfter(schedule, 0, 1), 1_000);
    assert.equal(nextSlotAfter(schedule, 0, 2), null);
    const fires = planDue(schedule, 1_000, 10_000, 100);
    assert.deepEqual(fires.map((fire) => [fire.slotMs, fire.nextSlotMs]), [[
      1_000,
      2_000,
    ], [2_000, null]]);
  });
  await t.step("bad arguments are range errors", () => {
    const schedule = parseSchedule({ everyMs: 1_000 });
    assert.throws(() => nextSlotAfter(schedule, -2), RangeError);
    assert.throws(() => nextSlotAfter(schedule, 1.5), RangeError);
    assert.throws(() => nextSlotAfter(schedule, 0, -1), RangeError);
  });
});

Deno.test("planDue() classifies slots at the edges of tolerance and catch-up window", async (t) => {
  const schedule = parseSchedule({
    everyMs: HOUR_MS,
    catchupWindowMs: MINUTE_MS,
  });
  const slotMs = 100 * HOUR_MS;
  const tolerance = SCHEDULE_PLAN_LIMITS.onTimeToleranceMs;
  const cases: [string, number, string][] = [
    ["due exactly now", 0, "fired"],
    ["at the tolerance", tolerance, "fired"],
    ["just past the tolerance", tolerance + 1, "late"],
    ["at the window's edge", MINUTE_MS, "late"],
    ["just past the window", MINUTE_MS + 1, "missed"],
  ];
  for (const [name, ageMs, outcome] of cases) {
    await t.step(`${name} (${ageMs} ms old): ${outcome}`, () => {
      const fires = planDue(schedule, slotMs, slotMs + ageMs, 10);
      assert.equal(fires.length, 1);
      assert.equal(fires[0]!.outcome, outcome);
      assert.equal(fires[0]!.slotMs, slotMs);
      assert.equal(fires[0]!.nextSlotMs, slotMs + HOUR_MS);
    });
  }
  await t.step("not yet due: nothing", () => {
    assert.deepEqual(planDue(schedule, slotMs, slotMs - 1, 10), []);
    assert.deepEqual(planDue(schedule, null, slotMs, 10), []);
  });
  await t.step(
    "a window shorter than the tolerance keeps on-time slots",
    () => {
      const tight = parseSchedule({ everyMs: HOUR_MS, catchupWindowMs: 0 });
      assert.equal(
        planDue(tight, slotMs, slotMs + tolerance, 10)[0]!.outcome,
        "fired",
      );
      assert.equal(
        planDue(tight, slotMs, slotMs + tolerance + 1, 10)[0]!.outcome,
        "missed",
      );
    },
  );
});

Deno.test("planDue() after a failover fires late within the window and collapses the missed ones", () => {
  const schedule = parseSchedule({ everyMs: 10_000, catchupWindowMs: 25_000 });
  // Stored next slot 0; the new leader looks at 100,000: slots 0..70,000 are older than the window.
  const fires = planDue(schedule, 0, 100_000, 100);
  assert.deepEqual(fires, [
    {
      outcome: "missed",
      slotMs: 0,
      nextSlotMs: 80_000,
      missedSlots: 8,
      missedSlotsExact: true,
    },
    { outcome: "late", slotMs: 80_000, nextSlotMs: 90_000 },
    { outcome: "late", slotMs: 90_000, nextSlotMs: 100_000 },
    { outcome: "fired", slotMs: 100_000, nextSlotMs: 110_000 },
  ]);
  assertChained(fires, 0);
  // maxFires bounds the plan; the next call resumes from the last nextSlotMs.
  const first = planDue(schedule, 0, 100_000, 2);
  assert.deepEqual(first.map((fire) => fire.outcome), ["missed", "late"]);
  const rest = planDue(schedule, first.at(-1)!.nextSlotMs, 100_000, 100);
  assert.deepEqual(rest.map((fire) => fire.slotMs), [90_000, 100_000]);
});

Deno.test("planDue() bounds its work for a schedule 30 days behind at one slot a second", async (t) => {
  const nowMs = iso("2026-07-01T00:00:00Z");
  const storedMs = nowMs - 30 * DAY_MS;
  await t.step(
    "everyMs: one missed record with the exact count, then at most maxFires",
    () => {
      const schedule = parseSchedule({ everyMs: 1_000 });
      const fires = planDue(schedule, storedMs, nowMs, 5);
      assert.equal(fires.length, 5);
      const missed = fires[0]!;
      assert.equal(missed.outcome, "missed");
      assert.equal(
        missed.outcome === "missed" && missed.missedSlots,
        (30 * DAY_MS - MINUTE_MS) / 1_000,
      );
      assert.equal(
        missed.outcome === "missed" && missed.missedSlotsExact,
        true,
      );
      assert.equal(missed.nextSlotMs, nowMs - MINUTE_MS);
      assert.deepEqual(fires.slice(1).map((fire) => fire.outcome), [
        "late",
        "late",
        "late",
        "late",
      ]);
      assertChained(fires, storedMs);
    },
  );
  await t.step(
    "6-field cron: the count stops at missedCountedMax and says so",
    () => {
      const schedule = parseSchedule({ cron: "* * * * * *" });
      const fires = planDue(schedule, storedMs, nowMs, 3);
      const missed = fires[0]!;
      assert.equal(missed.outcome, "missed");
      assert.equal(
        missed.outcome === "missed" && missed.missedSlots,
        SCHEDULE_PLAN_LIMITS.missedCountedMax + 1,
      );
      assert.equal(
        missed.outcome === "missed" && missed.missedSlotsExact,
        false,
      );
      assert.equal(missed.nextSlotMs, nowMs - MINUTE_MS);
      assertChained(fires, storedMs);
    },
  );
  await t.step("a short cron run is counted exactly", () => {
    const schedule = parseSchedule({ cron: "0 * * * *", catchupWindowMs: 0 });
    const fires = planDue(schedule, nowMs - 5 * HOUR_MS, nowMs + 1, 10);
    assert.deepEqual(fires, [
      {
        outcome: "missed",
        slotMs: nowMs - 5 * HOUR_MS,
        nextSlotMs: nowMs,
        missedSlots: 5,
        missedSlotsExact: true,
      },
      { outcome: "fired", slotMs: nowMs, nextSlotMs: nowMs + HOUR_MS },
    ]);
  });
  await t.step(
    "missed slots take none of the limit; slots past endAtMs are not counted",
    () => {
      const schedule = parseSchedule({
        everyMs: 1_000,
        limit: 1,
        endAtMs: 50_000,
      });
      assert.deepEqual(planDue(schedule, 0, 200_000, 10), [
        {
          outcome: "missed",
          slotMs: 0,
          nextSlotMs: null,
          missedSlots: 51,
          missedSlotsExact: true,
        },
      ]);
    },
  );
  await t.step("maxFires out of range is refused", () => {
    const schedule = parseSchedule({ everyMs: 1_000 });
    assert.throws(() => planDue(schedule, 0, 1, 0), RangeError);
    assert.throws(
      () => planDue(schedule, 0, 1, SCHEDULE_PLAN_LIMITS.firesPerPlanMax + 1),
      RangeError,
    );
  });
});

Deno.test("backfillSlots() lists the slots of a range the same every time", async (t) => {
  const schedule = parseSchedule({
    cron: "0 */6 * * *",
    timezone: "Europe/Berlin",
  });
  const fromMs = iso("2026-03-28T00:00:00Z");
  const toMs = iso("2026-03-29T23:00:00Z"); // 2026-03-30 01:00 CEST: across the spring change
  await t.step("twice gives the same slots", () => {
    const first = backfillSlots(schedule, fromMs, toMs);
    assert.deepEqual(first.map(isoOf), [
      "2026-03-28T05:00:00.000Z", // 06:00 CET
      "2026-03-28T11:00:00.000Z",
      "2026-03-28T17:00:00.000Z",
      "2026-03-28T23:00:00.000Z", // 00:00 CET, the 29th
      "2026-03-29T04:00:00.000Z", // 06:00 CEST
      "2026-03-29T10:00:00.000Z",
      "2026-03-29T16:00:00.000Z",
      "2026-03-29T22:00:00.000Z", // 00:00 CEST, the 30th
    ]);
    assert.deepEqual(backfillSlots(schedule, fromMs, toMs), first);
  });
  await t.step("both ends are inclusive", () => {
    const every = parseSchedule({ everyMs: 1_000 });
    assert.deepEqual(backfillSlots(every, 2_000, 4_000), [2_000, 3_000, 4_000]);
    assert.deepEqual(backfillSlots(every, 2_001, 3_999), [3_000]);
    assert.deepEqual(backfillSlots(every, 2_001, 2_999), []);
  });
  await t.step("startAtMs and endAtMs clip, limit does not apply", () => {
    const every = parseSchedule({
      everyMs: 1_000,
      startAtMs: 3_000,
      endAtMs: 5_000,
      limit: 1,
    });
    assert.deepEqual(backfillSlots(every, 0, 100_000), [3_000, 4_000, 5_000]);
  });
  await t.step("exactly 10,000 slots pass; one more is refused", () => {
    const every = parseSchedule({ everyMs: 1_000 });
    assert.equal(backfillSlots(every, 1_000, 10_000_000).length, 10_000);
    assertTooMany(() => backfillSlots(every, 1_000, 10_001_000));
    assertTooMany(() => backfillSlots(every, 0, 365 * DAY_MS));
    const cron = parseSchedule({ cron: "* * * * * *" });
    assert.equal(backfillSlots(cron, 1_000, 10_000_000).length, 10_000);
    assertTooMany(() => backfillSlots(cron, 1_000, 10_001_000));
  });
  await t.step("a bad range is refused naming the end", () => {
    const every = parseSchedule({ everyMs: 1_000 });
    assert.throws(
      () => backfillSlots(every, 5, 4),
      (error: ScheduleSpecError) => error.field === "to",
    );
    assert.throws(
      () => backfillSlots(every, -1, 4),
      (error: ScheduleSpecError) => error.field === "from",
    );
    assert.throws(
      () => backfillSlots(every, 0, 0.5),
      (error: ScheduleSpecError) => error.field === "to",
    );
  });
});

Deno.test("jitterDelay() stays within [0, jitterMs]", () => {
  assert.equal(jitterDelay(0, 0.7), 0);
  assert.equal(jitterDelay(1_000, 0), 0);
  assert.equal(jitterDelay(1_000, 1), 1_000);
  assert.equal(jitterDelay(1_000, 0.999999999), 1_000);
  assert.equal(jitterDelay(1_000, 0.5), 500);
  assert.equal(
    jitterDelay(SCHEDULE_TIME_LIMITS.jitterMsMax, 1 - Number.EPSILON),
    SCHEDULE_TIME_LIMITS.jitterMsMax,
  );
  for (let i = 0; i <= 1_000; i++) {
    const delayMs = jitterDelay(37, i / 1_000);
    assert.ok(
      Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 37,
      `draw ${i / 1_000}: ${delayMs}`,
    );
  }
  assert.throws(() => jitterDelay(1_000, -0.1), RangeError);
  assert.throws(() => jitterDelay(1_000, 1.1), RangeError);
  assert.throws(() => jitterDelay(1_000, NaN), RangeError);
  assert.throws(() => jitterDelay(-1, 0.5), RangeError);
});

Deno.test("fireJobId() names a slot's job sched:<id>:<slotMs>", () => {
  assert.equal(
    fireJobId("nightly.backup", 1_780_000_000_000),
    "sched:nightly.backup:1780000000000",
  );
  assert.throws(() => fireJobId("", 1), RangeError);
  assert.throws(() => fireJobId("has space", 1), RangeError);
  assert.throws(() => fireJobId("x".repeat(129), 1), RangeError);
  assert.throws(() => fireJobId("ok", -1), RangeError);
  assert.throws(() => fireJobId("ok", 1.5), RangeError);
});

function assertChained(
  fires: readonly { slotMs: number; nextSlotMs: number | null }[],
  storedMs: number,
): void {
  assert.equal(fires[0]?.slotMs, storedMs);
  for (let i = 1; i < fires.length; i++) {
    assert.equal(
      fires[i]!.slotMs,
      fires[i - 1]!.nextSlotMs,
      `fire ${i} follows fire ${i - 1}`,
    );
    assert.ok(fires[i]!.slotMs > fires[i - 1]!.slotMs);
  }
}

function assertTooMany(run: () => unknown): void {
  assert.throws(run, (error: ScheduleSpecError) => {
    assert.equal(error.name, "ScheduleSpecError");
    assert.equal(error.code, "limitExceeded");
    assert.equal(error.field, "to");
    return true;
  });
}
