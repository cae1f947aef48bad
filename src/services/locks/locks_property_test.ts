/**
 * fast-check over the locks service's apply: random sequences of lease
 * grants, acquires, releases, cancels and lease ends, checked against a
 * small reference model after every step (holders, their tokens, the FIFO
 * queue, every result), plus the invariants of the keyspace (≤ permits
 * holders, holder rows == holders, counters) and tokens strictly
 * increasing per name.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { makeVersionstamp } from "../../model/versionstamp.ts";
import { LockReads, type LockResult } from "./api.ts";
import { checkInvariants, leaseId, LocksHarness } from "./harness_test.ts";

type Op =
  | { op: "grant"; lease: number }
  | { op: "end"; leases: number[] }
  | { op: "acquire"; name: number; lease: number; permits: number }
  | { op: "release"; name: number; holder: number }
  | { op: "cancel"; name: number; lease: number };

const NAMES = ["a", "b"];
const LEASES = 5;

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("grant"), lease: fc.nat(LEASES - 1) }),
  fc.record({
    op: fc.constant("end"),
    leases: fc.uniqueArray(fc.nat(LEASES - 1), { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    op: fc.constant("acquire"),
    name: fc.nat(NAMES.length - 1),
    lease: fc.nat(LEASES - 1),
    permits: fc.integer({ min: 1, max: 2 }),
  }),
  fc.record({
    op: fc.constant("acquire"),
    name: fc.nat(NAMES.length - 1),
    lease: fc.nat(LEASES - 1),
    permits: fc.constant(2),
  }),
  fc.record({
    op: fc.constant("release"),
    name: fc.nat(NAMES.length - 1),
    holder: fc.nat(2),
  }),
  fc.record({
    op: fc.constant("cancel"),
    name: fc.nat(NAMES.length - 1),
    lease: fc.nat(LEASES - 1),
  }),
) as fc.Arbitrary<Op>;

interface ModelName {
  permits: number;
  holders: { lease: string; token: string; revision: number }[];
  queue: string[];
}

/** The reference model: the spec's rules, written plainly. */
class Model {
  readonly live = new Set<string>();
  readonly names = new Map<string, ModelName>();
  #counter = 0;
  #index = 0;

  begin(index: number): void {
    this.#index = index;
    this.#counter = 0;
  }

  #token(): string {
    return toHex(makeVersionstamp(logIndex(this.#index), this.#counter++));
  }

  #fill(name: string): void {
    const state = this.names.get(name)!;
    while (state.holders.length < state.permits && state.queue.length > 0) {
      const lease = state.queue.shift()!;
      if (!this.live.has(lease)) continue;
      state.holders.push({
        lease,
        token: this.#token(),
        revision: this.#index,
      });
    }
    if (state.holders.length === 0 && state.queue.length === 0) {
      this.names.delete(name);
    }
  }

  end(leases: string[]): void {
    const ended = leases.filter((l) => this.live.has(l));
    for (const lease of ended) this.live.delete(lease);
    const touched: string[] = [];
    for (const [name, state] of this.names) {
      const before = state.holders.length + state.queue.length;
      state.holders = state.holders.filter((h) => !ended.includes(h.lease));
      state.queue = state.queue.filter((l) => !ended.includes(l));
      if (state.holders.length + state.queue.length !== before) {
        touched.push(name);
      }
    }
    for (const name of touched.sort()) this.#fill(name);
  }

  acquire(name: string, lease: string, permits: number): unknown {
    if (!this.live.has(lease)) return "leaseNotFound";
    const state = this.names.get(name);
    const holder = state?.holders.find((h) => h.lease === lease);
    if (holder !== undefined) return { token: holder.token };
    const at = state?.queue.indexOf(lease) ?? -1;
    if (at >= 0) return { position: at };
    if (state !== undefined && state.permits !== permits) {
      return "permitsMismatch";
    }
    const current = state ?? { permits, holders: [], queue: [] };
    this.names.set(name, current);
    if (current.holders.length < permits && current.queue.length === 0) {
      const token = this.#token();
      current.holders.push({ lease, token, revision: this.#index });
      return { token };
    }
    current.queue.push(lease);
    return { position: current.queue.length - 1 };
  }

  release(name: string, token: string): unknown {
    const state = this.names.get(name);
    if (state === undefined || !state.holders.some((h) => h.token === token)) {
      return "notHolder";
    }
    state.holders = state.holders.filter((h) => h.token !== token);
    this.#fill(name);
    return "released";
  }

  cancel(name: string, lease: string): unknown {
    const state = this.names.get(name);
    if (state === undefined) return null;
    if (state.holders.some((h) => h.lease === lease)) {
      state.holders = state.holders.filter((h) => h.lease !== lease);
      this.#fill(name);
      return "grant";
    }
    if (!state.queue.includes(lease)) return null;
    state.queue = state.queue.filter((l) => l !== lease);
    this.#fill(name);
    return "waiter";
  }
}

function summary(result: LockResult): unknown {
  if (!result.ok) return result.reason;
  if ("granted" in result) {
    return result.granted
      ? { token: result.grant.token }
      : { position: result.position };
  }
  if ("removed" in result) return result.removed;
  if ("released" in result) return "released";
  return result;
}

function run(ops: readonly Op[]): void {
  const h = new LocksHarness();
  const model = new Model();
  const reads = new LockReads(h.store);
  const lastToken = new Map<string, string>();
  for (const op of ops) {
    model.begin(h.index + 1);
    switch (op.op) {
      case "grant":
        h.grantLease(leaseId(op.lease));
        model.live.add(leaseId(op.lease));
        break;
      case "end":
        h.endLeases(...op.leases.map(leaseId));
        model.end(op.leases.map(leaseId));
        break;
      case "acquire": {
        const name = NAMES[op.name]!;
        const lease = leaseId(op.lease);
        const got = summary(
          h.apply({ type: "acquire", name, lease, permits: op.permits }),
        );
        assert.deepEqual(got, model.acquire(name, lease, op.permits));
        break;
      }
      case "release": {
        const name = NAMES[op.name]!;
        const holders = model.names.get(name)?.holders ?? [];
        // Past the holders: a token that never held (or held once).
        const token = holders[op.holder]?.token ??
          toHex(makeVersionstamp(logIndex(1 + op.holder)));
        const got = summary(h.apply({ type: "release", name, token }));
        assert.deepEqual(got, model.release(name, token));
        break;
      }
      case "cancel": {
        const name = NAMES[op.name]!;
        const lease = leaseId(op.lease);
        const got = summary(h.apply({ type: "cancel", name, lease }));
        assert.deepEqual(got, model.cancel(name, lease));
        break;
      }
    }
    const names = checkInvariants(h);
    assert.deepEqual([...names.keys()].sort(), [...model.names.keys()].sort());
    for (const [name, state] of model.names) {
      const status = reads.status(name);
      assert.deepEqual(status.holders, state.holders);
      assert.deepEqual(status.waiters.map((w) => w.lease), state.queue);
      for (const holder of status.holders) {
        const last = lastToken.get(name) ?? "";
        if (holder.token > last) lastToken.set(name, holder.token);
      }
    }
    // Tokens strictly increase per name: every new grant beats every old one.
    for (const [name, state] of model.names) {
      const tokens = state.holders.map((x) => x.token);
      assert.deepEqual([...tokens].sort(), tokens, `token order of ${name}`);
    }
  }
}

Deno.test("locks apply matches the reference model over random sequences", () => {
  fc.assert(
    fc.property(
      fc.array(opArbitrary, { minLength: 10, maxLength: 80, size: "max" }),
      (ops) => run(ops),
    ),
    { numRuns: 300 },
  );
});

Deno.test("tokens of one name strictly increase over random sequences", () => {
  fc.assert(
    fc.property(
      fc.array(opArbitrary, { minLength: 10, maxLength: 80, size: "max" }),
      (ops) => {
        const h = new LocksHarness();
        const seen = new Map<string, Set<string>>();
        const max = new Map<string, string>();
        const step = () => {
          for (const name of NAMES) {
            const known = seen.get(name) ?? new Set();
            seen.set(name, known);
            for (
              const { token } of new LockReads(h.store).status(name).holders
            ) {
              if (known.has(token)) continue;
              assert.ok(token > (max.get(name) ?? ""), `new token of ${name}`);
              known.add(token);
              max.set(name, token);
            }
          }
        };
        for (const op of ops) {
          if (op.op === "grant") h.grantLease(leaseId(op.lease));
          else if (op.op === "end") h.endLeases(...op.leases.map(leaseId));
          else if (op.op === "acquire") {
            h.apply({
              type: "acquire",
              name: NAMES[op.name]!,
              lease: leaseId(op.lease),
              permits: op.permits,
            });
          } else if (op.op === "cancel") {
            h.apply({
              type: "cancel",
              name: NAMES[op.name]!,
              lease: leaseId(op.lease),
            });
          } else {
            const holders = new LockReads(h.store).status(NAMES[op.name]!)
              .holders;
            const holder = holders[op.holder];
            if (holder !== undefined) {
              h.apply({
                type: "release",
                name: NAMES[op.name]!,
                token: holder.token,
              });
            }
          }
          step();
        }
      },
    ),
    { numRuns: 200 },
  );
});
