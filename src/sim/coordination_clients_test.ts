/**
 * The coordination clients and checkers together, over a one-replica model
 * of leases and locks (a reference of the behaviour issue 16 specifies,
 * with two planted bugs): a clean model passes every property, and each
 * bug is found.
 */
import assert from "node:assert/strict";
import {
  checkStep,
  type CoordinationView,
  emptyView,
  endedLeases,
  FenceChecker,
  LeaseExpiryChecker,
  type ViewHolder,
  type ViewWaiter,
} from "./coordination_checker.ts";
import {
  CoordinationClients,
  CoordinationError,
  type CoordinationNode,
} from "./coordination_clients.ts";
import { EventQueue } from "./event_queue.ts";
import { SeededRandom } from "./random.ts";

interface ModelKnobs {
  /** Grants the next waiters without checking their lease. */
  readonly grantWithoutLeaseCheck?: boolean;
  /** Expires a lease half a TTL after its last keep-alive. */
  readonly expireEarly?: boolean;
}

interface ModelLock {
  permits: number;
  holders: ViewHolder[];
  waiters: ViewWaiter[];
}

/** Leases and locks in one replica; each call applies as one entry. */
class ModelCluster {
  readonly #queue: EventQueue;
  readonly #knobs: ModelKnobs;
  readonly #random: SeededRandom;
  readonly #leases = new Map<string, { ttlMs: number; deadlineMs: number }>();
  readonly #locks = new Map<string, ModelLock>();
  readonly #attached = new Map<string, string>();
  #revision = 0;
  #nextLease = 1;
  #previous: CoordinationView = emptyView();
  readonly problems: string[] = [];
  readonly #highest = new Map<string, string>();
  readonly expiry = new LeaseExpiryChecker();
  /** The one replica's clock: simulated time itself. */
  readonly clocks = () => new Map([["model", this.#queue.now]]);
  readonly fences = new FenceChecker();

  constructor(queue: EventQueue, knobs: ModelKnobs, random: SeededRandom) {
    this.#queue = queue;
    this.#knobs = knobs;
    this.#random = random;
    const sweep = () => {
      this.#expire();
      queue.after(10, sweep);
    };
    queue.after(10, sweep);
  }

  view(): CoordinationView {
    return {
      revision: this.#revision,
      leases: new Map(
        [...this.#leases].map(([id, lease]) => [id, { ttlMs: lease.ttlMs }]),
      ),
      locks: new Map(
        [...this.#locks].map(([name, lock]) => [name, {
          permits: lock.permits,
          holders: [...lock.holders],
          waiters: [...lock.waiters],
        }]),
      ),
      attached: [...this.#attached].map(([key, lease]) => ({ key, lease })),
    };
  }

  /** Applies `work` as the next entry and checks the step. */
  #entry<T>(work: (revision: number) => T): T {
    this.#revision++;
    const result = work(this.#revision);
    const current = this.view();
    this.problems.push(...checkStep(this.#previous, current, this.#highest));
    for (const [name, lock] of current.locks) {
      for (const holder of lock.holders) {
        if (holder.token > (this.#highest.get(name) ?? "")) {
          this.#highest.set(name, holder.token);
        }
      }
    }
    for (const lease of endedLeases(this.#previous, current)) {
      const problem = this.expiry.ended({
        lease,
        revision: current.revision,
        atMs: this.#queue.now,
        clocksMs: this.clocks(),
      });
      if (problem !== null) this.problems.push(problem);
    }
    this.fences.observe(this.#previous, current);
    this.#previous = current;
    return result;
  }

  /** Answers after a small network delay. */
  #answer<T>(work: () => T): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#queue.after(this.#random.between(1, 5), () => {
        try {
          resolve(work());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  #token(revision: number, counter: number): string {
    return revision.toString(16).padStart(16, "0") +
      counter.toString(16).padStart(4, "0");
  }

  #lease(id: string) {
    const lease = this.#leases.get(id);
    if (lease === undefined) {
      throw new CoordinationError("leaseNotFound", `lease ${id} not found`);
    }
    return lease;
  }

  #deadline(ttlMs: number): number {
    return this.#queue.now + (this.#knobs.expireEarly ? ttlMs / 2 : ttlMs);
  }

  /** Grants free permits to waiters in order, only to live leases unless bugged. */
  #grantWaiters(lock: ModelLock, revision: number): void {
    let counter = 0;
    while (lock.holders.length < lock.permits && lock.waiters.length > 0) {
      const waiter = lock.waiters.shift()!;
      if (
        !this.#leases.has(waiter.lease) && !this.#knobs.grantWithoutLeaseCheck
      ) {
        continue;
      }
      lock.holders.push({
        lease: waiter.lease,
        revision,
        token: this.#token(revision, counter++),
      });
    }
  }

  #endLeases(ids: readonly string[], revision: number): void {
    const ended = new Set(ids);
    for (const id of ids) this.#leases.delete(id);
    for (const [key, lease] of [...this.#attached]) {
      if (ended.has(lease)) this.#attached.delete(key);
    }
    // Holds end at once; waiters of ended leases are skipped when their
    // turn comes (so only the lease check keeps them from a grant).
    for (const lock of this.#locks.values()) {
      lock.holders = lock.holders.filter((holder) => !ended.has(holder.lease));
      this.#grantWaiters(lock, revision);
    }
  }

  #expire(): void {
    const due = [...this.#leases].filter(([, lease]) =>
      lease.deadlineMs <= this.#queue.now
    ).map(([id]) => id);
    if (due.length > 0) {
      this.#entry((revision) => this.#endLeases(due, revision));
    }
  }

  readonly node: CoordinationNode = {
    grant: (request) =>
      this.#answer(() =>
        this.#entry(() => {
          const id = (this.#nextLease++).toString(16).padStart(16, "0");
          this.#leases.set(id, {
            ttlMs: request.ttlMs,
            deadlineMs: this.#deadline(request.ttlMs),
          });
          return { id, ttlMs: request.ttlMs };
        })
      ),
    keepAlive: (request) =>
      this.#answer(() => ({
        leases: request.ids.map((id) => {
          const lease = this.#leases.get(id);
          if (lease === undefined) {
            return { id, error: "leaseNotFound" as const };
          }
          lease.deadlineMs = this.#deadline(lease.ttlMs);
          return { id, ttlMs: lease.ttlMs, remainingMs: lease.ttlMs };
        }),
      })),
    revoke: (request) =>
      this.#answer(() =>
        this.#entry((revision) => {
          this.#lease(request.id);
          this.#endLeases([request.id], revision);
          return { keysDeleted: 0 };
        })
      ),
    acquire: (request) =>
      this.#answer(() =>
        this.#entry((revision) => {
          this.#lease(request.lease);
          const permits = request.permits ?? 1;
          const lock = this.#locks.get(request.name) ??
            { permits, holders: [], waiters: [] };
          this.#locks.set(request.name, lock);
          const held = lock.holders.find((h) => h.lease === request.lease);
          if (held !== undefined) {
            return { granted: true, name: request.name, ...held };
          }
          if (!lock.waiters.some((w) => w.lease === request.lease)) {
            lock.waiters.push({ lease: request.lease, revision });
          }
          this.#grantWaiters(lock, revision);
          const granted = lock.holders.find((h) => h.lease === request.lease);
          if (granted !== undefined) {
            return { granted: true, name: request.name, ...granted };
          }
          return {
            granted: false,
            name: request.name,
            position: lock.waiters.findIndex((w) => w.lease === request.lease),
          };
        })
      ),
    cancel: (request) =>
      this.#answer(() =>
        this.#entry((revision) => {
          const lock = this.#locks.get(request.name);
          if (lock === undefined) return { removed: null };
          const waiting = lock.waiters.length;
          lock.waiters = lock.waiters.filter((w) => w.lease !== request.lease);
          if (lock.waiters.length < waiting) return { removed: "waiter" };
          const holding = lock.holders.length;
          lock.holders = lock.holders.filter((h) => h.lease !== request.lease);
          this.#grantWaiters(lock, revision);
          return { removed: lock.holders.length < holding ? "grant" : null };
        })
      ),
    release: (request) =>
      this.#answer(() =>
        this.#entry((revision) => {
          const lock = this.#locks.get(request.name);
          const before = lock?.holders.length ?? 0;
          if (lock !== undefined) {
            lock.holders = lock.holders.filter((h) =>
              h.token !== request.token
            );
          }
          if (lock === undefined || lock.holders.length === before) {
            throw new CoordinationError("notHolder", "not a holder");
          }
          this.#grantWaiters(lock, revision);
          return { released: true as const };
        })
      ),
    commit: (request) =>
      this.#answer(() =>
        this.#entry((revision) => {
          for (const check of request.checks ?? []) {
            if (!("fence" in check)) continue;
            const lock = this.#locks.get(check.fence.name);
            if (!lock?.holders.some((h) => h.token === check.fence.token)) {
              return { ok: false as const };
            }
          }
          for (const mutation of request.mutations) {
            if (mutation.type !== "set" || mutation.lease === undefined) {
              continue;
            }
            this.#lease(mutation.lease);
            this.#attached.set(JSON.stringify(mutation.key), mutation.lease);
          }
          return { ok: true as const, versionstamp: this.#token(revision, 0) };
        })
      ),
  };
}

async function runModel(seed: number, knobs: ModelKnobs) {
  const queue = new EventQueue();
  const model = new ModelCluster(
    queue,
    knobs,
    new SeededRandom(seed, "model"),
  );
  const clients = new CoordinationClients(
    queue,
    () => [model.node],
    {
      clients: 5,
      names: [{ name: "m", permits: 1 }, { name: "s", permits: 2 }],
      issueUntilMs: 4_000,
      ttlMs: 300,
      requestTimeoutMs: 100,
      acquireTimeoutMs: 600,
    },
    (label) => new SeededRandom(seed, label),
    model.expiry,
    model.clocks,
    null,
  );
  clients.start();
  while (queue.now < 6_000 && queue.runNext()) {
    for (let hop = 0; hop < 16; hop++) await null;
  }
  const problems = [...model.problems];
  for (const write of clients.fencedWrites) {
    const problem = model.fences.check(write);
    if (problem !== null) problems.push(problem);
  }
  return { problems, counts: clients.counts };
}

Deno.test("CoordinationClients over a correct model: every property holds and every path runs", async () => {
  const totals = new Map<string, number>();
  for (let seed = 1; seed <= 3; seed++) {
    const { problems, counts } = await runModel(seed, {});
    assert.deepEqual(problems, [], `seed ${seed}`);
    for (const [name, count] of Object.entries(counts)) {
      totals.set(name, (totals.get(name) ?? 0) + count);
    }
  }
  for (
    const name of [
      "grants",
      "keepAlives",
      "acquired",
      "fencedAccepted",
      "released",
      "revoked",
      "died",
    ]
  ) {
    assert.ok((totals.get(name) ?? 0) > 0, `no ${name}: ${[...totals]}`);
  }
});

Deno.test("CoordinationClients find a grant to a waiter whose lease is gone, and a lease expired early", async (t) => {
  for (
    const [bug, knobs, pattern] of [
      [
        "grant-without-lease-check",
        { grantWithoutLeaseCheck: true },
        /^live grants: /,
      ],
      ["expire early", { expireEarly: true }, /^expiry: /],
    ] as const
  ) {
    await t.step(bug, async () => {
      let found: string | null = null;
      for (let seed = 1; seed <= 20 && found === null; seed++) {
        const { problems } = await runModel(seed, knobs);
        found = problems.find((problem) => pattern.test(problem)) ?? null;
      }
      assert.ok(found !== null, `${bug} not found in 20 seeds`);
    });
  }
});
