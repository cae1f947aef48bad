import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { makeVersionstamp } from "../../model/versionstamp.ts";
import { leaseRecordKey } from "../leases/api.ts";
import { COORDINATION_LIMITS } from "../../protocol/http_api_leases.ts";
import {
  fenceHolds,
  leaderChangeFilter,
  leaderOfChange,
  LOCK_LIMITS,
  LockReads,
  type LockResult,
  membershipOf,
  validateLockName,
} from "./api.ts";
import { checkInvariants, leaseId, LocksHarness } from "./harness_test.ts";

const A = leaseId(0xa);
const B = leaseId(0xb);
const C = leaseId(0xc);
const D = leaseId(0xd);

function token(index: number, counter = 0): string {
  return toHex(makeVersionstamp(logIndex(index), counter));
}

function granted(result: LockResult): { token: string; revision: number } {
  assert.ok(
    result.ok && "granted" in result && result.granted,
    JSON.stringify(result),
  );
  return result.grant;
}

function waiting(result: LockResult): number {
  assert.ok(
    result.ok && "granted" in result && !result.granted,
    JSON.stringify(result),
  );
  return result.position;
}

function refused(result: LockResult, reason: string): void {
  assert.ok(!result.ok, JSON.stringify(result));
  assert.equal(result.reason, reason, result.message);
}

function harness(...leases: string[]): LocksHarness {
  const h = new LocksHarness();
  for (const lease of leases) h.grantLease(lease);
  return h;
}

const acquire = (name: string, lease: string, permits = 1) =>
  ({ type: "acquire", name, lease, permits }) as const;

/** Deletes a lease record behind the locks service's back (no onLeaseEnded). */
function killQuietly(h: LocksHarness, lease: string): void {
  h.store.apply({
    puts: [],
    deletes: [leaseRecordKey(lease)],
    appliedIndex: logIndex(++h.index),
  });
}

Deno.test("acquire grants with the entry's versionstamp and queues the rest FIFO", () => {
  const h = harness(A, B, C);
  const grant = granted(h.apply(acquire("m", A)));
  assert.equal(grant.token, token(h.index));
  assert.equal(grant.revision, h.index);
  assert.equal(waiting(h.apply(acquire("m", B))), 0);
  assert.equal(waiting(h.apply(acquire("m", C))), 1);
  assert.ok(
    fenceHolds({ store: h.store, overlay: new Map() }, "m", grant.token),
  );
  const status = new LockReads(h.store).status("m");
  assert.equal(status.permits, 1);
  assert.deepEqual(status.holders.map((x) => x.lease), [A]);
  assert.deepEqual(status.waiters.map((x) => x.lease), [B, C]);
  checkInvariants(h);
});

Deno.test("acquire again answers the same grant, or the same queue position, changing nothing", () => {
  const h = harness(A, B, C);
  const grant = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  h.apply(acquire("m", C));
  const before = h.dump();
  assert.deepEqual(granted(h.apply(acquire("m", A))), grant);
  assert.equal(waiting(h.apply(acquire("m", B))), 0);
  assert.equal(waiting(h.apply(acquire("m", C))), 1);
  assert.deepEqual(h.dump(), before);
});

Deno.test("release grants the next waiter in the same entry, FIFO, tokens increasing", () => {
  const h = harness(A, B, C);
  const first = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  h.apply(acquire("m", C));
  assert.deepEqual(
    h.apply({ type: "release", name: "m", token: first.token }),
    {
      ok: true,
      index: h.index,
      released: true,
    },
  );
  const status = new LockReads(h.store).status("m");
  assert.deepEqual(status.holders, [{
    token: token(h.index),
    lease: B,
    revision: h.index,
  }]);
  assert.ok(status.holders[0]!.token > first.token);
  assert.deepEqual(granted(h.apply(acquire("m", B))).token, token(h.index - 1));
  assert.equal(waiting(h.apply(acquire("m", C))), 0);
  refused(
    h.apply({ type: "release", name: "m", token: first.token }),
    "notHolder",
  );
  checkInvariants(h);
});

Deno.test("a semaphore admits its permits; the first acquire fixes them", () => {
  const h = harness(A, B, C, D);
  const tokens = [A, B, C].map((l) =>
    granted(h.apply(acquire("s", l, 3))).token
  );
  assert.deepEqual([...tokens].sort(), tokens);
  assert.equal(waiting(h.apply(acquire("s", D, 3))), 0);
  h.grantLease(leaseId(0xe));
  const before = h.dump();
  refused(h.apply(acquire("s", leaseId(0xe), 2)), "permitsMismatch");
  assert.deepEqual(h.dump(), before);
  checkInvariants(h);
  // All gone: the next first acquire fixes the permits again.
  h.endLeases(A, B, C, D);
  assert.deepEqual(checkInvariants(h).size, 0);
  granted(h.apply(acquire("s", leaseId(0xe), 2)));
});

Deno.test("acquire with a lease that is not live is leaseNotFound, nothing changed", () => {
  const h = harness(A);
  const before = h.dump();
  refused(h.apply(acquire("m", B)), "leaseNotFound");
  assert.deepEqual(h.dump(), before);
});

Deno.test("a waiter whose lease is gone is skipped and dropped, the next live one granted", () => {
  const h = harness(A, B, C);
  const first = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  h.apply(acquire("m", C));
  killQuietly(h, B);
  h.apply({ type: "release", name: "m", token: first.token });
  const status = new LockReads(h.store).status("m");
  assert.deepEqual(status.holders.map((x) => x.lease), [C]);
  assert.deepEqual(status.waiters, []);
  checkInvariants(h);
});

Deno.test("the planted bug grantWithoutLeaseCheck grants a dead waiter", () => {
  const h = new LocksHarness({ grantWithoutLeaseCheck: true });
  for (const l of [A, B]) h.grantLease(l);
  const first = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  killQuietly(h, B);
  h.apply({ type: "release", name: "m", token: first.token });
  assert.deepEqual(
    new LockReads(h.store).status("m").holders.map((x) => x.lease),
    [B],
  );
  assert.throws(() => checkInvariants(h), /is live/);
});

Deno.test("onLeaseEnded ends holds and grants the next live waiters in the same entry", () => {
  const h = harness(A, B, C, D);
  granted(h.apply(acquire("s", A, 2)));
  granted(h.apply(acquire("s", B, 2)));
  h.apply(acquire("s", C, 2));
  h.apply(acquire("s", D, 2));
  h.endLeases(A, B);
  const status = new LockReads(h.store).status("s");
  // Two grants of one entry: distinct, increasing tokens (the counter).
  assert.deepEqual(status.holders, [
    { token: token(h.index, 0), lease: C, revision: h.index },
    { token: token(h.index, 1), lease: D, revision: h.index },
  ]);
  checkInvariants(h);
});

Deno.test("onLeaseEnded drops a lease's waits and holds on many names", () => {
  const h = harness(A, B);
  for (const name of ["x", "y", "z"]) granted(h.apply(acquire(name, B)));
  for (const name of ["x", "y"]) h.apply(acquire(name, A));
  h.endLeases(A);
  const reads = new LockReads(h.store);
  assert.deepEqual(reads.status("x").waiters, []);
  assert.equal(checkInvariants(h).size, 3);
  h.endLeases(B);
  assert.equal(checkInvariants(h).size, 0);
  assert.equal(reads.status("x").permits, 0);
});

Deno.test("cancel removes a waiter, or releases a grant won meanwhile, or nothing", () => {
  const h = harness(A, B, C);
  const first = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  h.apply(acquire("m", C));
  assert.deepEqual(h.apply({ type: "cancel", name: "m", lease: B }), {
    ok: true,
    index: h.index,
    removed: "waiter",
  });
  assert.equal(waiting(h.apply(acquire("m", C))), 0);
  h.apply({ type: "release", name: "m", token: first.token });
  // C won the race before its cancel applied: the cancel returns the grant.
  assert.deepEqual(h.apply({ type: "cancel", name: "m", lease: C }), {
    ok: true,
    index: h.index,
    removed: "grant",
  });
  assert.deepEqual(h.apply({ type: "cancel", name: "m", lease: C }), {
    ok: true,
    index: h.index,
    removed: null,
  });
  assert.equal(checkInvariants(h).size, 0);
});

Deno.test("elections: campaign, proclaim, resign, with the leader row as change events", () => {
  const h = harness(A, B);
  const elected = h.apply({
    type: "campaign",
    name: "e",
    lease: A,
    value: "a1",
  });
  const grant = granted(elected);
  assert.ok(elected.ok && "value" in elected && elected.value === "a1");
  assert.equal(
    waiting(h.apply({ type: "campaign", name: "e", lease: B, value: "b1" })),
    0,
  );
  const reads = new LockReads(h.store);
  assert.deepEqual(reads.leader("e"), {
    token: grant.token,
    lease: A,
    value: "a1",
    revision: grant.revision,
  });
  refused(
    h.apply({ type: "proclaim", name: "e", token: token(99), value: "x" }),
    "notHolder",
  );
  const proclaimed = h.apply({
    type: "proclaim",
    name: "e",
    token: grant.token,
    value: "a2",
  });
  assert.ok(proclaimed.ok && "leader" in proclaimed);
  assert.equal(reads.leader("e")?.value, "a2");
  assert.equal(reads.leader("e")?.revision, h.index);
  h.apply({ type: "resign", name: "e", token: grant.token });
  assert.deepEqual(reads.leader("e"), {
    token: token(h.index),
    lease: B,
    value: "b1",
    revision: h.index,
  });
  h.endLeases(B);
  assert.equal(reads.leader("e"), null);
  const events = h.changes.filter(leaderChangeFilter("e"));
  assert.deepEqual(events.map((c) => [c.kind, Number(c.revision)]), [
    ["set", 3],
    ["set", 6],
    ["set", 7],
    ["delete", 8],
  ]);
  assert.deepEqual(events.map((c) => leaderOfChange(c)?.value ?? null), [
    "a1",
    "a2",
    "b1",
    null,
  ]);
  checkInvariants(h);
});

Deno.test("a lock and an election cannot share a name", () => {
  const h = harness(A, B);
  const lock = granted(h.apply(acquire("n", A)));
  const before = h.dump();
  refused(
    h.apply({ type: "campaign", name: "n", lease: B, value: "v" }),
    "invalid",
  );
  refused(h.apply({ type: "resign", name: "n", token: lock.token }), "invalid");
  const e = granted(
    h.apply({ type: "campaign", name: "e", lease: B, value: "v" }),
  );
  refused(h.apply(acquire("e", A)), "invalid");
  refused(h.apply({ type: "release", name: "e", token: e.token }), "invalid");
  refused(
    h.apply({ type: "proclaim", name: "n", token: lock.token, value: "v" }),
    "notHolder",
  );
  // Only the election's rows were added: name, holder, lease and leader rows.
  assert.equal(h.dump().size, before.size + 4);
});

Deno.test("limits and bad commands are refused with nothing changed", async (t) => {
  const h = harness(A, B);
  granted(h.apply(acquire("m", A)));
  const cases: [string, Uint8Array, string][] = [
    ["an empty name", encode([1, "", A, 1]), "invalid"],
    ["a control character", encode([1, "a\nb", A, 1]), "invalid"],
    ["a 257-byte name", encode([1, "é".repeat(128) + "a", A, 1]), "invalid"],
    ["permits 0", encode([1, "x", A, 0]), "invalid"],
    ["permits 10,001", encode([1, "x", A, 10_001]), "invalid"],
    ["a bad lease id", encode([1, "x", "A", 1]), "invalid"],
    ["a bad token", encode([3, "m", "zz"]), "invalid"],
    [
      "a value over 64 KiB",
      encode([4, "e", A, "v".repeat(64 * 1024 + 1)]),
      "limitExceeded",
    ],
    ["an unknown command", encode([9, "m", A]), "invalid"],
    ["extra fields", encode([2, "m", A, 1]), "invalid"],
    ["garbage", new Uint8Array([0xc1]), "invalid"],
  ];
  for (const [what, payload, reason] of cases) {
    await t.step(what, () => {
      const before = h.dump();
      refused(h.applyPayload(payload), reason);
      assert.deepEqual(h.dump(), before);
    });
  }
  assert.equal(validateLockName("é".repeat(128)), "é".repeat(128));
});

Deno.test("a lease holds or waits on at most namesPerLeaseMax names", () => {
  const h = harness(A);
  for (let i = 0; i < LOCK_LIMITS.namesPerLeaseMax; i++) {
    granted(h.apply(acquire(`n${i}`, A)));
  }
  const before = h.dump();
  refused(h.apply(acquire("one-more", A)), "limitExceeded");
  assert.deepEqual(h.dump(), before);
  granted(h.apply(acquire("n0", A)));
});

Deno.test("the cluster holds at most namesMax names", () => {
  const h = harness(A, B);
  granted(h.apply(acquire("m", A)));
  h.store.apply({
    puts: [{
      key: new Uint8Array([0xff, 0x6d, 0x63]),
      value: encode([LOCK_LIMITS.namesMax]),
      encoding: "bytes",
      versionstamp: makeVersionstamp(logIndex(h.index + 1)),
      expireAtMs: null,
    }],
    deletes: [],
    appliedIndex: logIndex(++h.index),
  });
  const before = h.dump();
  refused(h.apply(acquire("new", B)), "limitExceeded");
  assert.deepEqual(h.dump(), before);
  // An existing name still takes waiters.
  assert.equal(waiting(h.apply(acquire("m", B))), 0);
});

Deno.test("a name queues at most waitersMax waiters", () => {
  const h = harness(A);
  granted(h.apply(acquire("m", A)));
  for (let i = 1; i <= LOCK_LIMITS.waitersMax; i++) {
    h.grantLease(leaseId(0x1000 + i));
    h.apply(acquire("m", leaseId(0x1000 + i)));
  }
  const extra = leaseId(0x9999_9999);
  h.grantLease(extra);
  const before = h.dump();
  refused(h.apply(acquire("m", extra)), "limitExceeded");
  assert.deepEqual(h.dump(), before);
  assert.equal(
    waiting(h.apply(acquire("m", leaseId(0x1000 + LOCK_LIMITS.waitersMax)))),
    LOCK_LIMITS.waitersMax - 1,
  );
});

Deno.test("LOCK_LIMITS agree with the protocol's COORDINATION_LIMITS", () => {
  assert.equal(LOCK_LIMITS.namesMax, COORDINATION_LIMITS.locksMax);
  assert.equal(LOCK_LIMITS.nameBytesMax, COORDINATION_LIMITS.nameBytesMax);
  assert.equal(LOCK_LIMITS.waitersMax, COORDINATION_LIMITS.waitersMax);
  assert.equal(LOCK_LIMITS.permitsMax, COORDINATION_LIMITS.permitsMax);
  assert.equal(LOCK_LIMITS.valueBytesMax, COORDINATION_LIMITS.valueBytesMax);
});

Deno.test("membershipOf() answers a lease's grant, queue position or nothing", () => {
  const h = harness(A, B, C);
  const grant = granted(h.apply(acquire("m", A)));
  h.apply(acquire("m", B));
  h.apply(acquire("m", C));
  assert.deepEqual(membershipOf(h.store, "m", A), {
    kind: "holds",
    ...grant,
    lease: A,
  });
  assert.deepEqual(membershipOf(h.store, "m", C), {
    kind: "waits",
    position: 1,
  });
  assert.equal(membershipOf(h.store, "m", D), null);
});
