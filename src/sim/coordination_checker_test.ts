import assert from "node:assert/strict";
import {
  checkStep,
  checkView,
  clockAdvanceMs,
  type CoordinationView,
  emptyView,
  endedLeases,
  FenceChecker,
  LeaseExpiryChecker,
  tokenRevision,
  type ViewLock,
} from "./coordination_checker.ts";

/** A token granted at `revision` (counter 0). */
function token(revision: number, counter = 0): string {
  return revision.toString(16).padStart(16, "0") +
    counter.toString(16).padStart(4, "0");
}

function view(
  revision: number,
  leases: readonly string[],
  locks: Record<string, ViewLock> = {},
  attached: { key: string; lease: string }[] = [],
): CoordinationView {
  return {
    revision,
    leases: new Map(leases.map((id) => [id, { ttlMs: 3_000 }])),
    locks: new Map(Object.entries(locks)),
    attached,
  };
}

function lock(
  permits: number,
  holders: [string, number][],
  waiters: [string, number][] = [],
): ViewLock {
  return {
    permits,
    holders: holders.map(([lease, revision]) => ({
      lease,
      revision,
      token: token(revision),
    })),
    waiters: waiters.map(([lease, revision]) => ({ lease, revision })),
  };
}

Deno.test("tokenRevision() reads the revision of a token and refuses a bad one", () => {
  assert.equal(tokenRevision(token(300, 2)), 300);
  assert.throws(() => tokenRevision("12"), TypeError);
});

Deno.test("checkView() passes a consistent state", () => {
  const state = view(10, ["a", "b"], {
    m: lock(1, [["a", 4]], [["b", 6]]),
    s: lock(2, [["a", 5], ["b", 7]]),
  }, [{ key: "k", lease: "a" }]);
  assert.deepEqual(checkView(state), []);
  assert.deepEqual(checkView(emptyView()), []);
});

Deno.test("checkView() finds too many holders, a holder and a key on a missing lease", async (t) => {
  await t.step("more holders than permits", () => {
    const problems = checkView(
      view(9, ["a", "b"], { m: lock(1, [["a", 4], ["b", 9]]) }),
    );
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^permits: 'm' has 2 holders at revision 9/);
  });
  await t.step("a grant to a lease that is gone", () => {
    const problems = checkView(view(9, ["b"], { m: lock(1, [["a", 9]]) }));
    assert.match(problems[0]!, /^live grants: .*lease a/);
  });
  await t.step("a key attached to a lease that is gone", () => {
    const problems = checkView(
      view(9, ["b"], {}, [{ key: '["k"]', lease: "a" }]),
    );
    assert.match(problems[0]!, /^attached keys: key \["k"\] .*lease a/);
  });
});

Deno.test("checkStep() passes FIFO grants with increasing tokens", () => {
  const before = view(10, ["a", "b", "c"], {
    m: lock(1, [["a", 4]], [["b", 6], ["c", 8]]),
  });
  // a released at 11: b (first in line) is granted.
  const after = view(11, ["a", "b", "c"], {
    m: lock(1, [["b", 11]], [["c", 8]]),
  });
  assert.deepEqual(checkStep(before, after), []);
  // b's lease expired at 12: c is granted in that entry.
  const later = view(12, ["a", "c"], { m: lock(1, [["c", 12]]) });
  assert.deepEqual(checkStep(after, later), []);
});

Deno.test("checkStep() lets a live waiter be skipped only when its lease is gone", () => {
  const before = view(10, ["a", "b", "c"], {
    m: lock(1, [["a", 4]], [["b", 6], ["c", 8]]),
  });
  // a released and b's lease ended in one entry: c is next, b still listed
  // (a lagging waiter row) but its lease is gone.
  const after = view(11, ["a", "c"], { m: lock(1, [["c", 11]], [["b", 6]]) });
  const problems = checkStep(before, after);
  // b's waiter row on a missing lease is not a FIFO violation.
  assert.ok(problems.every((problem) => !problem.startsWith("FIFO")));
});

Deno.test("checkStep() finds a waiter passed over, and a token not above the last", async (t) => {
  await t.step("FIFO", () => {
    const before = view(10, ["a", "b", "c"], {
      m: lock(1, [["a", 4]], [["b", 6], ["c", 8]]),
    });
    const after = view(11, ["a", "b", "c"], {
      m: lock(1, [["c", 11]], [["b", 6]]),
    });
    const problems = checkStep(before, after);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^FIFO: 'm' .* lease b, queued ahead/);
  });
  await t.step("a new acquirer jumps the queue", () => {
    const before = view(10, ["a", "b", "d"], {
      m: lock(1, [["a", 4]], [["b", 6]]),
    });
    const after = view(11, ["a", "b", "d"], {
      m: lock(1, [["d", 11]], [["b", 6]]),
    });
    assert.match(checkStep(before, after)[0]!, /^FIFO/);
  });
  await t.step("tokens", () => {
    const before = view(10, ["a", "b"], { m: lock(2, [["a", 8]]) });
    const after = view(11, ["a", "b"], { m: lock(2, [["a", 8], ["b", 7]]) });
    const problems = checkStep(before, after);
    assert.match(problems[0]!, /^tokens: 'm' granted token 0+70000/);
  });
  await t.step("tokens against the highest seen before", () => {
    const before = view(10, ["a", "b"], { m: lock(1, []) });
    const after = view(11, ["a", "b"], { m: lock(1, [["b", 9]]) });
    assert.deepEqual(checkStep(before, after), []);
    const problems = checkStep(before, after, new Map([["m", token(9)]]));
    assert.match(problems[0]!, /^tokens/);
  });
});

Deno.test("endedLeases() lists the leases a step removed", () => {
  assert.deepEqual(
    endedLeases(view(1, ["a", "b", "c"]), view(2, ["b", "d"])),
    ["a", "c"],
  );
});

/** Readings of clocks that all run at simulated time's rate, at `atMs`. */
function exact(atMs: number, nodes = ["n1", "n2"]): Map<string, number> {
  return new Map(nodes.map((node) => [node, atMs]));
}

Deno.test("LeaseExpiryChecker passes an expiry a TTL after the last keep-alive's send time", () => {
  const checker = new LeaseExpiryChecker();
  const ack = (sentAtMs: number) => ({
    lease: "a",
    sentAtMs,
    clocksAtSendMs: exact(sentAtMs),
    ttlMs: 1_000,
  });
  checker.acknowledged(ack(100));
  checker.acknowledged(ack(500));
  // An answer that arrives late, of an earlier send, does not move it back.
  checker.acknowledged(ack(300));
  assert.equal(
    checker.ended({
      lease: "a",
      revision: 40,
      atMs: 1_500,
      clocksMs: exact(1_500),
    }),
    null,
  );
});

Deno.test("LeaseExpiryChecker finds a lease ended before its TTL, and exempts a revoke", () => {
  const checker = new LeaseExpiryChecker();
  checker.acknowledged({
    lease: "a",
    sentAtMs: 500,
    clocksAtSendMs: exact(500),
    ttlMs: 1_000,
  });
  // Clocks at simulated time's rate: 1 ms short of the TTL is too soon
  // (no drift allowance is taken off when no clock ran fast).
  const problem = checker.ended({
    lease: "a",
    revision: 40,
    atMs: 1_499,
    clocksMs: exact(1_499),
  });
  assert.match(
    problem ?? "",
    /^expiry: lease a ended at revision 40 \(1499 ms\), 999 ms after .* 1000 ms TTL: the fastest clock \('n1'\) advanced 999 ms in between$/,
  );
  // Seen once per lease (every replica applies the same entry).
  assert.equal(
    checker.ended({
      lease: "a",
      revision: 40,
      atMs: 1_510,
      clocksMs: exact(1_510),
    }),
    null,
  );
  checker.acknowledged({
    lease: "b",
    sentAtMs: 500,
    clocksAtSendMs: exact(500),
    ttlMs: 1_000,
  });
  checker.revoking("b");
  assert.equal(
    checker.ended({
      lease: "b",
      revision: 41,
      atMs: 600,
      clocksMs: exact(600),
    }),
    null,
  );
});

Deno.test("LeaseExpiryChecker measures the TTL on the fastest clock, as the keeper counts it", () => {
  // Seed 342 of `--services leases` (a safe-read seed): n1 leads with its
  // clock skewed 28% fast, beyond the 15% drift bound; the keep-alive sent
  // at 468 ms was acknowledged, the lease's expiry applied at 1,296 ms.
  const fast = 1.28;
  const at = (ms: number) =>
    new Map([["n1", 407 + (ms - 407) * fast], ["n2", ms], ["n3", ms]]);
  const checker = new LeaseExpiryChecker();
  checker.acknowledged({
    lease: "a",
    sentAtMs: 468,
    clocksAtSendMs: at(468),
    ttlMs: 1_000,
  });
  // 828 ms of simulated time is 1,059.8 ms on n1's clock: a correct end.
  assert.equal(
    checker.ended({
      lease: "a",
      revision: 45,
      atMs: 1_296,
      clocksMs: at(1_296),
    }),
    null,
  );
  // 781 ms is 999.7 ms on n1's clock: short of the TTL on every clock.
  checker.acknowledged({
    lease: "b",
    sentAtMs: 468,
    clocksAtSendMs: at(468),
    ttlMs: 1_000,
  });
  assert.match(
    checker.ended({
      lease: "b",
      revision: 46,
      atMs: 1_249,
      clocksMs: at(1_249),
    }) ??
      "",
    /^expiry: lease b ended .* 781 ms after .*: the fastest clock \('n1'\) advanced 999\.7 ms in between$/,
  );
});

Deno.test("clockAdvanceMs() is the largest advance over the nodes, of the same nodes only", () => {
  assert.deepEqual(
    clockAdvanceMs(
      new Map([["n1", 10], ["n2", 50]]),
      new Map([["n1", 40], ["n2", 70]]),
    ),
    { node: "n1", advancedMs: 30 },
  );
  assert.throws(
    () => clockAdvanceMs(new Map([["n1", 0]]), new Map([["n2", 5]])),
    RangeError,
  );
  assert.throws(
    () => clockAdvanceMs(new Map([["n1", 0]]), exact(5)),
    RangeError,
  );
  assert.throws(() => clockAdvanceMs(new Map(), new Map()), RangeError);
});

Deno.test("FenceChecker accepts writes while their token holds and finds one after", () => {
  const fences = new FenceChecker();
  const v10 = view(10, ["a", "b"], { m: lock(1, [["a", 10]], [["b", 9]]) });
  const v12 = view(12, ["a", "b"], { m: lock(1, [["b", 12]]) });
  fences.observe(emptyView(), v10);
  fences.observe(v10, v12);
  // Seen again by another replica: ignored.
  fences.observe(v10, v12);
  fences.observe(v12, view(13, ["a", "b"], { m: lock(1, [["b", 12]]) }));
  assert.equal(
    fences.check({ name: "m", token: token(10), revision: 11 }),
    null,
  );
  assert.equal(
    fences.check({ name: "m", token: token(10), revision: 12 }),
    null,
  );
  assert.equal(
    fences.check({ name: "m", token: token(12), revision: 13 }),
    null,
  );
  assert.match(
    fences.check({ name: "m", token: token(10), revision: 13 }) ?? "",
    /^fencing: .* token 0+a0000 was accepted at revision 13, but it held from revision 10 until 12/,
  );
  assert.match(
    fences.check({ name: "m", token: token(11), revision: 12 }) ?? "",
    /never held/,
  );
});
