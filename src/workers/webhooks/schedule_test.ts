import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  HookTargetError,
} from "../../protocol/hook_targets.ts";
import {
  classify,
  DEFAULT_RETRY_POLICY,
  honoursRetryAfter,
  jitter,
  nextAttempt,
  type NextAttemptInput,
  parseRetryAfter,
  RETRY_AFTER_MS_MAX,
  retryPolicy,
  retryStepMs,
} from "./schedule.ts";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

Deno.test("classify() maps statuses and errors to outcomes", async (t) => {
  const statuses: [number, string][] = [
    [200, "ok"],
    [201, "ok"],
    [204, "ok"],
    [299, "ok"],
    [100, "failed"],
    [301, "failed"],
    [302, "failed"],
    [304, "failed"],
    [400, "failed"],
    [404, "failed"],
    [410, "gone"],
    [429, "failed"],
    [500, "failed"],
    [503, "failed"],
  ];
  for (const [status, outcome] of statuses) {
    await t.step(String(status), () => assert.equal(classify(status), outcome));
  }
  await t.step("errors", () => {
    assert.equal(
      classify(new DOMException("Signal timed out.", "TimeoutError")),
      "timeout",
    );
    assert.equal(classify(new TypeError("error sending request")), "error");
    assert.equal(
      classify(new DOMException("aborted", "AbortError")),
      "error",
    );
    assert.equal(classify("weird"), "error");
  });
  await t.step("not a status", () => {
    for (const bad of [0, 99, 600, 200.5]) {
      assert.throws(() => classify(bad), RangeError);
    }
  });
});

Deno.test("honoursRetryAfter() is true for 429, 502, 503, 504 only", () => {
  assert.deepEqual(
    [429, 502, 503, 504, 500, 410, 301, 200].map(honoursRetryAfter),
    [true, true, true, true, false, false, false, false],
  );
});

Deno.test("parseRetryAfter() reads seconds and HTTP-dates, capped at 1 h", () => {
  const nowMs = Date.parse("Fri, 04 Dec 2026 01:00:00 GMT");
  assert.equal(parseRetryAfter("0", nowMs), 0);
  assert.equal(parseRetryAfter(" 30 ", nowMs), 30_000);
  assert.equal(parseRetryAfter("3600", nowMs), HOUR_MS);
  assert.equal(parseRetryAfter("3601", nowMs), HOUR_MS);
  assert.equal(parseRetryAfter("99999999999999999999", nowMs), HOUR_MS);
  assert.equal(
    parseRetryAfter("Fri, 04 Dec 2026 01:02:00 GMT", nowMs),
    120_000,
  );
  assert.equal(
    parseRetryAfter("Friday, 04-Dec-26 01:00:10 GMT", nowMs),
    10_000,
  );
  assert.equal(
    parseRetryAfter("Sat, 05 Dec 2026 01:00:00 GMT", nowMs),
    HOUR_MS,
  );
  assert.equal(parseRetryAfter("Thu, 03 Dec 2026 01:00:00 GMT", nowMs), 0);
  for (
    const bad of [
      null,
      undefined,
      "",
      "-5",
      "1.5",
      "soon",
      "x".repeat(65),
    ]
  ) {
    assert.equal(parseRetryAfter(bad, nowMs), undefined, String(bad));
  }
});

Deno.test("retryStepMs() walks the schedule and repeats its last step", () => {
  const steps = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((attempt) =>
    retryStepMs(attempt, DEFAULT_RETRY_POLICY)
  );
  assert.deepEqual(steps, [
    ...DEFAULT_RETRY_SCHEDULE_MS,
    DAY_MS,
    DAY_MS,
  ]);
});

Deno.test("retryPolicy() validates and defaults", () => {
  assert.deepEqual(DEFAULT_RETRY_POLICY, {
    scheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
    retryWindowMs: 3 * DAY_MS,
  });
  assert.deepEqual(
    retryPolicy({ retryScheduleMs: [1_000], retryWindowMs: 60_000 }),
    { scheduleMs: [1_000], retryWindowMs: 60_000 },
  );
  assert.throws(
    () => retryPolicy({ retryWindowMs: 59_999 }),
    (e: unknown) =>
      e instanceof HookTargetError && e.code === "invalidRetryWindow",
  );
  assert.throws(
    () => retryPolicy({ retryScheduleMs: Array(21).fill(1_000) }),
    (e: unknown) =>
      e instanceof HookTargetError && e.code === "invalidRetrySchedule",
  );
  assert.throws(
    () => retryPolicy({ retryScheduleMs: [DAY_MS + 1] }),
    (e: unknown) =>
      e instanceof HookTargetError && e.code === "invalidRetrySchedule",
  );
});

function input(overrides: Partial<NextAttemptInput>): NextAttemptInput {
  return {
    attempt: 1,
    firstFailureAtMs: 1_000_000,
    nowMs: 1_000_000,
    outcome: "failed",
    random: 0.5,
    policy: DEFAULT_RETRY_POLICY,
    ...overrides,
  };
}

Deno.test("nextAttempt() follows the default schedule at the middle of the jitter", () => {
  let nowMs = 1_000_000;
  const delays: number[] = [];
  for (let attempt = 1; attempt <= 9; attempt++) {
    const next = nextAttempt(input({ attempt, nowMs }));
    assert.ok(
      "nextAttemptAtMs" in next,
      `attempt ${attempt}: ${JSON.stringify(next)}`,
    );
    delays.push(next.nextAttemptAtMs - nowMs);
    nowMs = next.nextAttemptAtMs;
  }
  assert.deepEqual(delays, DEFAULT_RETRY_SCHEDULE_MS.slice(0, 9));
  // 0 + 5 s + … + 20 h is 51.6 h; another 24 h passes the 72 h window.
  assert.deepEqual(nextAttempt(input({ attempt: 10, nowMs })), {
    disable: "retryWindowExceeded",
  });
});

Deno.test("nextAttempt() disables on gone and blocked", () => {
  assert.deepEqual(nextAttempt(input({ outcome: "gone" })), {
    disable: "gone",
  });
  assert.deepEqual(nextAttempt(input({ outcome: "blocked" })), {
    disable: "targetBlocked",
  });
});

Deno.test("nextAttempt() retries timeout, error and unknown like failed", () => {
  for (const outcome of ["timeout", "error", "unknown"] as const) {
    assert.deepEqual(
      nextAttempt(input({ attempt: 2, outcome })),
      { nextAttemptAtMs: 1_005_000 },
    );
  }
});

Deno.test("nextAttempt() honours Retry-After as a floor, capped at 1 h", () => {
  assert.deepEqual(nextAttempt(input({ attempt: 2, retryAfterMs: 60_000 })), {
    nextAttemptAtMs: 1_060_000,
  });
  assert.deepEqual(nextAttempt(input({ attempt: 2, retryAfterMs: 1_000 })), {
    nextAttemptAtMs: 1_005_000,
  });
  assert.deepEqual(
    nextAttempt(input({ attempt: 2, retryAfterMs: 10 * HOUR_MS })),
    { nextAttemptAtMs: 1_000_000 + HOUR_MS },
  );
});

Deno.test("nextAttempt() refuses bad input", () => {
  const bad: Partial<NextAttemptInput>[] = [
    { outcome: "ok" as never },
    { attempt: 0 },
    { attempt: 1.5 },
    { firstFailureAtMs: 2_000_000 },
    { nowMs: NaN },
    { random: 1 },
    { random: -0.1 },
    { retryAfterMs: -1 },
  ];
  for (const overrides of bad) {
    assert.throws(
      () => nextAttempt(input(overrides)),
      RangeError,
      JSON.stringify(overrides),
    );
  }
});

Deno.test("jitter() stays within ±10% of the step", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: DAY_MS }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (delayMs, random) => {
        const jittered = jitter(delayMs, random);
        assert.ok(Number.isInteger(jittered));
        assert.ok(
          jittered >= Math.floor(delayMs * 0.9),
          `${jittered} < 0.9 × ${delayMs}`,
        );
        assert.ok(
          jittered <= Math.ceil(delayMs * 1.1),
          `${jittered} > 1.1 × ${delayMs}`,
        );
      },
    ),
    { numRuns: 2_000 },
  );
  assert.equal(jitter(100_000, 0), 90_000);
  assert.equal(jitter(100_000, 0.999_999_999), 110_000);
});

const arbitraryPolicy = fc.record({
  retryScheduleMs: fc.option(
    fc.array(fc.integer({ min: 0, max: DAY_MS }), {
      minLength: 1,
      maxLength: 20,
    })
      .map((steps) => [...steps.slice(0, -1), Math.max(steps.at(-1)!, 1_000)]),
    { nil: undefined },
  ),
  retryWindowMs: fc.option(fc.integer({ min: 60_000, max: 30 * DAY_MS }), {
    nil: undefined,
  }),
}).map((options) => retryPolicy(options));

Deno.test("nextAttempt() never schedules beyond the window, and never before the jittered step or Retry-After", () => {
  fc.assert(
    fc.property(
      arbitraryPolicy,
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 31 * DAY_MS }),
      fc.constantFrom("failed", "timeout", "error", "unknown") as fc.Arbitrary<
        "failed" | "timeout" | "error" | "unknown"
      >,
      fc.option(fc.integer({ min: 0, max: 10 * HOUR_MS }), { nil: undefined }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (
        policy,
        attempt,
        firstFailureAtMs,
        elapsedMs,
        outcome,
        retryAfterMs,
        random,
      ) => {
        const nowMs = firstFailureAtMs + elapsedMs;
        const next = nextAttempt({
          attempt,
          firstFailureAtMs,
          nowMs,
          outcome,
          retryAfterMs,
          random,
          policy,
        });
        const stepMs = retryStepMs(attempt, policy);
        const floorMs = Math.max(
          Math.floor(stepMs * 0.9),
          Math.min(retryAfterMs ?? 0, RETRY_AFTER_MS_MAX),
        );
        const ceilingMs = Math.max(
          Math.ceil(stepMs * 1.1),
          Math.min(retryAfterMs ?? 0, RETRY_AFTER_MS_MAX),
        );
        const windowEndMs = firstFailureAtMs + policy.retryWindowMs;
        // Jitter decides near the end; clear of it, the answer is fixed.
        if (nowMs + ceilingMs <= windowEndMs) assert.ok(!("disable" in next));
        if (nowMs + floorMs > windowEndMs) assert.ok("disable" in next);
        if ("disable" in next) {
          assert.equal(next.disable, "retryWindowExceeded");
          return;
        }
        assert.ok(next.nextAttemptAtMs <= windowEndMs);
        assert.ok(next.nextAttemptAtMs - nowMs >= floorMs);
        assert.ok(next.nextAttemptAtMs - nowMs <= ceilingMs);
      },
    ),
    { numRuns: 2_000 },
  );
});
