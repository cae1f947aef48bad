import assert from "node:assert/strict";
import { logIndex } from "../../raft/types.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { StateHost } from "../../state/host.ts";
import type { LeaderTaskContext } from "../../state/leader_task.ts";
import { KvNotLeaderError } from "../kv/api.ts";
import { SERVICE_IDS, serviceRegistry } from "../table.ts";
import {
  encodeLeaseCommand,
  type LeaseCommand,
  LeaseKeeper,
  type LeaseKnobs,
  LeaseReads,
  type LeaseResult,
} from "./api.ts";

const A = "000000000000000a";
const B = "000000000000000b";
const ELECTION_MS = 1000;

/** A leader on a fake clock: a state host, a keeper and a context whose proposals the test may hold. */
class Fixture {
  readonly store = new MemoryStateStore();
  readonly host = new StateHost(
    this.store,
    serviceRegistry({
      store: this.store,
      cluster: undefined as never,
      knobs: {},
    }),
  );
  readonly keeper: LeaseKeeper;
  now = 0;
  /** How far the clock moves during a ReadIndex round, ms. */
  confirmMs = 0;
  leader = true;
  index = 0;
  applied: (() => void)[] = [];
  proposals: LeaseCommand[] = [];
  /** When set, proposals wait for the test to settle them. */
  hold = false;
  held: {
    command: LeaseCommand;
    apply(): void;
    fail(error: Error): void;
  }[] = [];

  constructor(knobs: LeaseKnobs = {}) {
    this.keeper = new LeaseKeeper({
      reads: new LeaseReads(this.store),
      isLeader: () => this.leader,
      confirmLeadership: () => {
        this.now += this.confirmMs;
        return this.leader
          ? Promise.resolve()
          : Promise.reject(new KvNotLeaderError("not leader"));
      },
      electionTimeoutMs: ELECTION_MS,
      knobs,
    });
  }

  apply(command: LeaseCommand): LeaseResult {
    const result = this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({
        serviceId: SERVICE_IDS.leases,
        payload: encodeLeaseCommand(command),
      }),
    ) as LeaseResult;
    for (const listener of this.applied) listener();
    return result;
  }

  context(): LeaderTaskContext<LeaseCommand, LeaseResult> {
    return {
      clock: { monotonicMs: () => this.now, wallMs: () => 1e12 + this.now },
      scheduler: {
        after: () => ({ cancel() {} }),
        every: () => ({ cancel() {} }),
      },
      signal: new AbortController().signal,
      propose: (command) => {
        this.proposals.push(command);
        if (!this.hold) return Promise.resolve(this.apply(command));
        return new Promise((resolve, reject) => {
          this.held.push({
            command,
            apply: () => resolve(this.apply(command)),
            fail: reject,
          });
        });
      },
      onApplied: (listener) => this.applied.push(listener),
    };
  }

  start(): void {
    this.keeper.start(this.context());
  }

  live(id: string): boolean {
    return new LeaseReads(this.store).get(id) !== null;
  }
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

Deno.test("a new leader extends every deadline to now + TTL + one election timeout before expiring", async () => {
  const f = new Fixture();
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.now = 10_000;
  f.start();
  f.now = 10_000 + 5000 + ELECTION_MS - 1;
  await f.keeper.pass();
  assert.deepEqual(f.proposals, []);
  assert.ok(f.live(A));
  f.now++;
  await f.keeper.pass();
  assert.deepEqual(f.proposals, [{ type: "expire", ids: [A] }]);
  assert.ok(!f.live(A));
  assert.equal(f.keeper.stats().expired, 1);
});

Deno.test("planted bug expireWithoutExtension: a new leader expires at once", async () => {
  const f = new Fixture({ expireWithoutExtension: true });
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.start();
  await f.keeper.pass();
  assert.ok(!f.live(A));
});

Deno.test("a keep-alive sets the deadline to now + TTL; a lease granted in the term starts at now + TTL", async () => {
  const f = new Fixture();
  f.start();
  f.now = 100;
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.now = 4000;
  assert.deepEqual(await f.keeper.keepAlive([A, B]), [
    { id: A, ttlMs: 5000, remainingMs: 5000 },
    { id: B, error: "leaseNotFound" },
  ]);
  assert.equal((await f.keeper.timeToLive(A))?.remainingMs, 5000);
  f.now = 8999;
  await f.keeper.pass();
  assert.ok(f.live(A));
  assert.equal((await f.keeper.timeToLive(A))?.remainingMs, 1);
  f.now = 9000;
  await f.keeper.pass();
  assert.ok(!f.live(A));
  assert.equal(await f.keeper.timeToLive(A), null);

  // Granted at 9000 without keep-alives, first seen by the pass at 9000:
  // expires at 9000 + TTL.
  f.apply({ type: "grant", id: B, ttlMs: 3000 });
  await f.keeper.pass();
  f.now = 11_999;
  await f.keeper.pass();
  assert.ok(f.live(B));
  f.now = 12_000;
  await f.keeper.pass();
  assert.ok(!f.live(B));
  assert.deepEqual(f.keeper.stats().keepAlives, 1);
});

Deno.test("a keep-alive counts the TTL on the keeper's clock from after its ReadIndex round", async () => {
  // The simulator's expiry property rests on this: the deadline starts no
  // sooner than the request arrived, and is counted on the leader's own
  // clock (a fast clock ends it sooner in real time, never in its own).
  const f = new Fixture();
  f.start();
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  await f.keeper.pass();
  f.now = 1000;
  f.confirmMs = 250;
  assert.deepEqual(await f.keeper.keepAlive([A]), [
    { id: A, ttlMs: 5000, remainingMs: 5000 },
  ]);
  assert.equal(f.now, 1250);
  f.confirmMs = 0;
  f.now = 6249;
  await f.keeper.pass();
  assert.ok(f.live(A));
  f.now = 6250;
  await f.keeper.pass();
  assert.deepEqual(f.proposals, [{ type: "expire", ids: [A] }]);
  assert.ok(!f.live(A));
});

Deno.test("a keep-alive during an in-flight expiry waits for it and is refused once it applied", async () => {
  const f = new Fixture();
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.start();
  f.hold = true;
  f.now = 6000;
  const pass = f.keeper.pass();
  await settle();
  assert.equal(f.held.length, 1);
  let answer: unknown = null;
  const keep = f.keeper.keepAlive([A]).then((a) => answer = a);
  await settle();
  assert.equal(answer, null, "held while the expiry is in flight");
  f.held[0]!.apply();
  await pass;
  await keep;
  assert.deepEqual(answer, [{ id: A, error: "leaseNotFound" }]);
});

Deno.test("an expiry of unknown outcome refuses keep-alives of its ids for the rest of the term", async () => {
  const f = new Fixture();
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.apply({ type: "grant", id: B, ttlMs: 60_000 });
  f.start();
  f.hold = true;
  f.now = 6000;
  const pass = f.keeper.pass();
  await settle();
  const keep = f.keeper.keepAlive([A, B]);
  await settle();
  f.held[0]!.fail(new Error("outcome unknown"));
  await pass;
  // The lease is still in applied state, but its expiry may commit later.
  assert.ok(f.live(A));
  assert.deepEqual(await keep, [
    { id: A, error: "leaseNotFound" },
    { id: B, ttlMs: 60_000, remainingMs: 60_000 },
  ]);
  assert.deepEqual(await f.keeper.keepAlive([A]), [
    { id: A, error: "leaseNotFound" },
  ]);
  // The old proposal commits later (under this or another leader): no
  // keep-alive of A was acknowledged in between.
  f.held[0]!.apply();
  assert.ok(!f.live(A));
  // A new term forgets the refusal (and A is gone anyway).
  f.keeper.stop();
  await assert.rejects(() => f.keeper.keepAlive([B]), KvNotLeaderError);
  f.start();
  assert.deepEqual((await f.keeper.keepAlive([B]))[0], {
    id: B,
    ttlMs: 60_000,
    remainingMs: 60_000,
  });
});

Deno.test("planted bug keepAliveDuringExpiry: the keep-alive is acknowledged while the expiry is in flight", async () => {
  const f = new Fixture({ keepAliveDuringExpiry: true });
  f.apply({ type: "grant", id: A, ttlMs: 5000 });
  f.start();
  f.hold = true;
  f.now = 6000;
  const pass = f.keeper.pass();
  await settle();
  assert.deepEqual(await f.keeper.keepAlive([A]), [
    { id: A, ttlMs: 5000, remainingMs: 5000 },
  ]);
  f.held[0]!.apply();
  await pass;
  assert.ok(!f.live(A), "the acknowledged lease expired: the bug");
});

Deno.test("keep-alives off the leader and bad input are refused", async () => {
  const f = new Fixture();
  await assert.rejects(() => f.keeper.keepAlive([A]), KvNotLeaderError);
  f.start();
  await assert.rejects(() => f.keeper.keepAlive([]));
  await assert.rejects(() => f.keeper.keepAlive(["nothex"]));
  await assert.rejects(() =>
    f.keeper.keepAlive(Array.from({ length: 1001 }, () => A))
  );
  f.leader = false;
  await assert.rejects(() => f.keeper.keepAlive([A]), KvNotLeaderError);
});
