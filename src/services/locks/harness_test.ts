/**
 * Test helpers of the locks service (no tests of its own): a state host
 * with the locks service and a stand-in leases service that writes and ends
 * lease records the way the real one does (records first, then every
 * dependent's `onLeaseEnded` in the same entry), and a checker of every
 * invariant of the locks keyspace over the whole store.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import type { ChangeEvent } from "../../state/changes.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { StateHost } from "../../state/host.ts";
import {
  type ServiceDefinition,
  ServiceRegistry,
} from "../../state/registry.ts";
import { internalRowWriter } from "../../state/write_context.ts";
import { leaseLive, leaseRecordKey, LEASES_KEYSPACE } from "../leases/api.ts";
import {
  encodeLockCommand,
  type LockCommand,
  type LockKnobs,
  type LockResult,
  locksLeaseDependent,
  locksService,
} from "./api.ts";
import {
  decodeHolder,
  decodeLeaseHold,
  decodeName,
  decodeWaiter,
  holderRange,
  leaderKey,
  leaseRange,
  nameOfLeaseKey,
  tokenOfHolderKey,
  waiterRange,
} from "./keys.ts";

/** Envelope id of the locks service (as in the service table). */
export const LOCKS_ID = 5;
/** Envelope id of the stand-in leases service. */
export const FAKE_LEASES_ID = 250;

/**
 * A stand-in leases service: `["grant", id]` writes a lease record,
 * `["end", ids]` deletes records and calls the locks service's
 * `onLeaseEnded` in the same entry, as revoke and expiry do.
 */
export function fakeLeases(knobs: LockKnobs): ServiceDefinition {
  const dependent = locksLeaseDependent(knobs);
  return {
    name: "leases",
    keyspaces: [LEASES_KEYSPACE],
    reaches: ["locks"],
    decode: (payload) => decode(payload) as [string, unknown],
    apply(command: [string, unknown], context) {
      const rows = internalRowWriter(context.overlay, context.versionstamp);
      if (command[0] === "grant") {
        rows.put(leaseRecordKey(command[1] as string), new Uint8Array([1]));
        return { ok: true };
      }
      const ids = (command[1] as string[]).filter((id) =>
        leaseLive(context, id)
      );
      for (const id of ids) rows.remove(leaseRecordKey(id));
      dependent.onLeaseEnded(ids, context);
      return { ok: true };
    },
    failure(error) {
      throw error;
    },
  };
}

/** A lease id from a small number. */
export function leaseId(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** A state host with the locks service and a stand-in leases service. */
export class LocksHarness {
  readonly store = new MemoryStateStore();
  readonly host: StateHost;
  readonly changes: ChangeEvent[] = [];
  index = 0;

  constructor(knobs: LockKnobs = {}) {
    const registry = new ServiceRegistry([
      { id: LOCKS_ID, service: locksService(knobs) },
      { id: FAKE_LEASES_ID, service: fakeLeases(knobs) },
    ]);
    this.host = new StateHost(this.store, registry, {
      changes: {
        applied: (_revision, changes) => this.changes.push(...changes),
        reset: () => {},
      },
    });
  }

  /** Applies a locks command as the next entry. */
  apply(command: LockCommand): LockResult {
    return this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({
        serviceId: LOCKS_ID,
        payload: encodeLockCommand(command),
      }),
    ) as LockResult;
  }

  /** Applies raw locks payload bytes as the next entry. */
  applyPayload(payload: Uint8Array): LockResult {
    return this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId: LOCKS_ID, payload }),
    ) as LockResult;
  }

  /** Grants lease `id` (writes its record). */
  grantLease(id: string): void {
    this.#leases(["grant", id]);
  }

  /** Ends leases `ids` in one entry, as revoke or expiry does. */
  endLeases(...ids: string[]): void {
    this.#leases(["end", ids]);
  }

  #leases(command: unknown): void {
    this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId: FAKE_LEASES_ID, payload: encode(command) }),
    );
  }

  /** Every row of the store, as hex key → hex value (to compare states). */
  dump(): Map<string, string> {
    const rows = this.store.scan({
      start: new Uint8Array([0]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 1_000_000,
    });
    return new Map(rows.map((row) => [toHex(row.key), toHex(row.value)]));
  }
}

/** One name's state as the invariant checker rebuilds it. */
export interface NameState {
  readonly permits: number;
  readonly election: boolean;
  readonly holders: { token: string; lease: string }[];
  readonly waiters: { lease: string; revision: number }[];
}

/**
 * Checks every invariant of the locks keyspace over the whole store and
 * answers each name's holders and waiters: counters equal rows, ≤ permits
 * holders, waiters only while full, a lease row for each holder and waiter
 * and none else, holders and waiters only of live leases (unless `dead`
 * grants are allowed), one leader row per held election.
 */
export function checkInvariants(
  h: LocksHarness,
  options: { allowDeadHolders?: boolean } = {},
): Map<string, NameState> {
  const store = h.store;
  const all = (start: number[], end: number[]) =>
    store.scan({
      start: new Uint8Array(start),
      end: new Uint8Array(end),
      limit: 1_000_000,
    });
  const names = new Map<string, NameState>();
  const decoder = new TextDecoder();
  for (const row of all([0xff, 0x6d, 0x6e], [0xff, 0x6d, 0x6f])) {
    const name = decoder.decode(row.key.subarray(3));
    const record = decodeName(row.value);
    const holders = store.scan({ ...holderRange(name), limit: 100_000 }).map(
      (holder) => ({
        token: tokenOfHolderKey(holder.key),
        lease: decodeHolder(holder.value).lease,
      }),
    );
    const waiters = store.scan({ ...waiterRange(name), limit: 100_000 }).map(
      (waiter) => decodeWaiter(waiter.value),
    );
    assert.equal(record.holders, holders.length, `holders of ${name}`);
    assert.equal(record.waiters, waiters.length, `waiters of ${name}`);
    assert.ok(holders.length + waiters.length > 0, `${name} is not empty`);
    assert.ok(holders.length <= record.permits, `≤ permits on ${name}`);
    if (waiters.length > 0) {
      assert.equal(holders.length, record.permits, `${name} full if waiting`);
    }
    const leader = store.get(leaderKey(name));
    if (record.kind === "election") {
      assert.equal(leader !== null, holders.length === 1, `leader of ${name}`);
    } else assert.equal(leader, null);
    for (const who of [...holders, ...waiters]) {
      if (options.allowDeadHolders !== true) {
        assert.ok(
          leaseLive({ store, overlay: new Map() }, who.lease),
          `${name}: lease ${who.lease} is live`,
        );
      }
      const leaseRow = store.scan({ ...leaseRange(who.lease), limit: 1000 })
        .find((r) => nameOfLeaseKey(r.key) === name);
      assert.ok(leaseRow !== undefined, `${name}: lease row of ${who.lease}`);
    }
    names.set(name, {
      permits: record.permits,
      election: record.kind === "election",
      holders,
      waiters: waiters.map(({ lease, revision }) => ({ lease, revision })),
    });
  }
  // Every holder row and lease row belongs to a name counted above.
  const holderRows = all([0xff, 0x6d, 0x68], [0xff, 0x6d, 0x69]).length;
  const counted = [...names.values()].reduce(
    (n, s) => n + s.holders.length,
    0,
  );
  assert.equal(holderRows, counted, "holder rows are exactly the holders");
  const leaseRows = all([0xff, 0x6d, 0x69], [0xff, 0x6d, 0x6a]);
  const members = [...names.values()].reduce(
    (n, s) => n + s.holders.length + s.waiters.length,
    0,
  );
  assert.equal(leaseRows.length, members, "one lease row per hold or wait");
  for (const row of leaseRows) decodeLeaseHold(row.value);
  const count = store.get(new Uint8Array([0xff, 0x6d, 0x63]));
  assert.equal(
    count === null ? 0 : (decode(count.value) as number[])[0],
    names.size,
    "the names counter",
  );
  return names;
}
