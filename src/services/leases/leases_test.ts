import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { fromHex, toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { COORDINATION_LIMITS } from "../../protocol/http_api_leases.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import type { ChangeEvent } from "../../state/changes.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { StateHost } from "../../state/host.ts";
import type {
  ServiceDefinition,
  ServiceRegistration,
} from "../../state/registry.ts";
import { internalRowWriter } from "../../state/write_context.ts";
import { makeVersionstamp } from "../../model/versionstamp.ts";
import { SERVICE_IDS, serviceRegistry } from "../table.ts";
import {
  encodeLockCommand,
  fenceHolds,
  type LockResult,
} from "../locks/api.ts";
import {
  decodeLeaseCommand,
  encodeLeaseCommand,
  grantedTtlMs,
  LEASE_LIMITS,
  type LeaseCommand,
  type LeaseDependent,
  LeaseError,
  leaseLive,
  LeaseReads,
  leaseRecordKey,
  type LeaseResult,
  leasesService,
  LeaseWriter,
} from "./api.ts";
import {
  decodeLeaseRecord,
  encodeLeaseRecord,
  LEASE_COUNT_KEY,
} from "./keys.ts";

const ATTACHER_ID = 200;

/** Test service: `[leaseId, keyHex]` writes user key `keyHex` and attaches it to the lease (as KV's set with lease will). */
const attacher: ServiceDefinition = {
  name: "attacher",
  keyspaces: [],
  reaches: ["kv", "leases"],
  decode: (payload) => decode(payload) as [string, string],
  apply([id, keyHex]: [string, string], context) {
    const key = fromHex(keyHex);
    internalRowWriter(context.overlay, context.versionstamp).put(
      key,
      new Uint8Array([1]),
    );
    new LeaseWriter(context).attach(id, key);
    return { ok: true };
  },
  failure(error) {
    if (error instanceof LeaseError) return { ok: false, reason: error.code };
    throw error;
  },
};

class Harness {
  readonly store = new MemoryStateStore();
  readonly host: StateHost;
  readonly changes: ChangeEvent[] = [];
  index = 0;

  constructor(extra: ServiceRegistration[] = []) {
    this.host = new StateHost(
      this.store,
      serviceRegistry(
        { store: this.store, cluster: undefined as never, knobs: {} },
        [{ id: ATTACHER_ID, service: attacher }, ...extra],
      ),
      {
        changes: {
          applied: (_revision, changes) => this.changes.push(...changes),
          reset: () => {},
        },
      },
    );
  }

  lease(command: LeaseCommand): LeaseResult {
    return this.raw(
      SERVICE_IDS.leases,
      encodeLeaseCommand(command),
    ) as LeaseResult;
  }

  raw(serviceId: number, payload: Uint8Array): unknown {
    return this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId, payload }),
    );
  }

  attach(id: string, keyHex: string): { ok: boolean; reason?: string } {
    return this.raw(ATTACHER_ID, encode([id, keyHex])) as {
      ok: boolean;
      reason?: string;
    };
  }

  dump(): Map<string, string> {
    const rows = this.store.scan({
      start: new Uint8Array([0]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 1_000_000,
    });
    return new Map(rows.map((row) => [toHex(row.key), toHex(row.value)]));
  }

  /** Writes `rows` straight into the store as the next index (seeding limits). */
  seed(rows: [Uint8Array, Uint8Array][]): void {
    this.store.apply({
      puts: rows.map(([key, value]) => ({
        key,
        value,
        encoding: "bytes",
        versionstamp: makeVersionstamp(logIndex(this.index + 1)),
        expireAtMs: null,
      })),
      deletes: [],
      appliedIndex: logIndex(++this.index),
    });
  }
}

const A = "000000000000000a";
const B = "000000000000000b";
// User keys (encoded Deno KV keys: a string part).
const K1 = toHex(new Uint8Array([2, 0x6b, 0x31, 0]));
const K2 = toHex(new Uint8Array([2, 0x6b, 0x32, 0]));

function refused(result: LeaseResult, reason: string): void {
  assert.ok(!result.ok, JSON.stringify(result));
  assert.equal(result.reason, reason);
}

Deno.test("leases limits agree with the protocol's", () => {
  assert.equal(LEASE_LIMITS.leasesMax, COORDINATION_LIMITS.leasesMax);
  assert.equal(LEASE_LIMITS.leaseKeysMax, COORDINATION_LIMITS.leaseKeysMax);
  assert.equal(LEASE_LIMITS.ttlMsMin, COORDINATION_LIMITS.leaseTtlMsMin);
  assert.equal(LEASE_LIMITS.ttlMsMax, COORDINATION_LIMITS.leaseTtlMsMax);
  assert.equal(LEASE_LIMITS.expireIdsMax, COORDINATION_LIMITS.expireIdsMax);
  assert.equal(
    LEASE_LIMITS.keepAliveIdsMax,
    COORDINATION_LIMITS.keepAliveIdsMax,
  );
});

Deno.test("lease commands round-trip and bad payloads are typed", () => {
  for (
    const command of [
      { type: "grant", id: A, ttlMs: 5000 },
      { type: "revoke", id: A },
      { type: "expire", ids: [A, B] },
    ] as LeaseCommand[]
  ) {
    assert.deepEqual(decodeLeaseCommand(encodeLeaseCommand(command)), command);
  }
  for (
    const bad of [
      encode([1, "xyz", 5000]),
      encode([1, A, 999]),
      encode([1, A, 604_800_001]),
      encode([1, A, 1500.5]),
      encode([9, A]),
      encode({ a: 1 }),
      new Uint8Array([0xc1]),
    ]
  ) {
    assert.throws(
      () => decodeLeaseCommand(bad),
      (e) => e instanceof LeaseError && e.code === "invalid",
    );
  }
  assert.throws(() =>
    decodeLeaseCommand(
      encodeLeaseCommand({
        type: "expire",
        ids: Array.from({ length: 1001 }, () => A),
      }),
    )
  );
});

Deno.test("grantedTtlMs raises to three election timeouts, caps at the max", () => {
  assert.equal(grantedTtlMs(1000, 1000), 3000);
  assert.equal(grantedTtlMs(5000, 1000), 5000);
  assert.equal(grantedTtlMs(604_800_000, 300_000_000), 604_800_000);
  assert.throws(() => grantedTtlMs(999, 1000), LeaseError);
});

Deno.test("grant writes the record at leaseRecordKey; same TTL is idempotent, another is leaseExists", () => {
  const h = new Harness();
  const first = h.lease({ type: "grant", id: A, ttlMs: 5000 });
  assert.deepEqual(first, {
    ok: true,
    index: 1,
    lease: { id: A, ttlMs: 5000 },
  });
  const row = h.store.get(leaseRecordKey(A));
  assert.ok(row !== null);
  assert.deepEqual(decodeLeaseRecord(row.value), {
    ttlMs: 5000,
    grantedAt: 1,
    keyCount: 0,
  });
  const before = h.dump();
  assert.deepEqual(h.lease({ type: "grant", id: A, ttlMs: 5000 }), {
    ok: true,
    index: 2,
    lease: { id: A, ttlMs: 5000 },
  });
  refused(h.lease({ type: "grant", id: A, ttlMs: 6000 }), "leaseExists");
  assert.deepEqual(h.dump(), before);
  assert.deepEqual(new LeaseReads(h.store).get(A), {
    id: A,
    ttlMs: 5000,
    revision: 1,
    keyCount: 0,
  });
});

Deno.test("grant beyond 100,000 leases is limitExceeded, nothing changed", () => {
  const h = new Harness();
  h.seed([[LEASE_COUNT_KEY, encode(LEASE_LIMITS.leasesMax)]]);
  const before = h.dump();
  refused(h.lease({ type: "grant", id: A, ttlMs: 5000 }), "limitExceeded");
  assert.deepEqual(h.dump(), before);
  assert.equal(h.store.get(leaseRecordKey(A)), null);
});

Deno.test("revoke deletes the record and every attached key (cause lease); unknown is leaseNotFound", () => {
  const h = new Harness();
  h.lease({ type: "grant", id: A, ttlMs: 5000 });
  h.lease({ type: "grant", id: B, ttlMs: 5000 });
  assert.deepEqual(h.attach(A, K1), { ok: true });
  assert.deepEqual(h.attach(A, K2), { ok: true });
  assert.equal(new LeaseReads(h.store).get(A)?.keyCount, 2);
  assert.deepEqual(new LeaseReads(h.store).keys(A).map(toHex), [K1, K2]);
  h.changes.length = 0;
  const result = h.lease({ type: "revoke", id: A });
  assert.deepEqual(result, {
    ok: true,
    index: h.index,
    ended: [A],
    keysDeleted: 2,
  });
  assert.equal(h.store.get(fromHex(K1)), null);
  assert.equal(h.store.get(fromHex(K2)), null);
  assert.equal(h.store.get(leaseRecordKey(A)), null);
  const kvChanges = h.changes.filter((c) => c.service === "kv");
  assert.deepEqual(
    kvChanges.map((c) => [toHex(c.key), c.cause, Number(c.revision)]),
    [[K1, "lease", h.index], [K2, "lease", h.index]],
  );
  // No index row of A is left: only B's record and the count remain under ff 6c.
  const leaseRows = [...h.dump().keys()].filter((k) => k.startsWith("ff6c"));
  assert.deepEqual(
    leaseRows.sort(),
    [
      toHex(LEASE_COUNT_KEY),
      toHex(leaseRecordKey(B)),
    ].sort(),
  );
  const before = h.dump();
  refused(h.lease({ type: "revoke", id: A }), "leaseNotFound");
  assert.deepEqual(h.dump(), before);
});

Deno.test("attach moves a key between leases; unknown lease and keys-per-lease limit refuse", () => {
  const h = new Harness();
  h.lease({ type: "grant", id: A, ttlMs: 5000 });
  h.lease({ type: "grant", id: B, ttlMs: 5000 });
  h.attach(A, K1);
  h.attach(B, K1);
  const reads = new LeaseReads(h.store);
  assert.equal(reads.get(A)?.keyCount, 0);
  assert.equal(reads.get(B)?.keyCount, 1);
  const missing = "00000000000000ff";
  const before = h.dump();
  assert.deepEqual(h.attach(missing, K2), {
    ok: false,
    reason: "leaseNotFound",
  });
  assert.deepEqual(h.dump(), before);
  h.seed([[
    leaseRecordKey(A),
    encodeLeaseRecord({
      ttlMs: 5000,
      grantedAt: 1,
      keyCount: LEASE_LIMITS.leaseKeysMax,
    }),
  ]]);
  const full = h.dump();
  assert.deepEqual(h.attach(A, K2), { ok: false, reason: "limitExceeded" });
  assert.deepEqual(h.dump(), full);
  // Revoking A leaves B's key.
  h.lease({ type: "revoke", id: A });
  assert.ok(h.store.get(fromHex(K1)) !== null);
});

Deno.test("expire ends live leases in one entry (cause leaseExpired); unknown ids are a no-op", () => {
  const h = new Harness();
  h.lease({ type: "grant", id: A, ttlMs: 5000 });
  h.lease({ type: "grant", id: B, ttlMs: 5000 });
  h.attach(A, K1);
  h.attach(B, K2);
  h.changes.length = 0;
  const unknown = "0000000000000fff";
  const result = h.lease({ type: "expire", ids: [A, unknown, B, A] });
  assert.deepEqual(result, {
    ok: true,
    index: h.index,
    ended: [A, B],
    keysDeleted: 2,
  });
  const causes = h.changes.filter((c) => c.service === "kv").map((c) =>
    c.cause
  );
  assert.deepEqual(causes, ["leaseExpired", "leaseExpired"]);
  assert.ok(h.changes.every((c) => Number(c.revision) === h.index));
  assert.deepEqual(new LeaseReads(h.store).all(), []);
  const before = h.dump();
  const again = h.lease({ type: "expire", ids: [A, unknown] });
  assert.deepEqual(again, {
    ok: true,
    index: h.index,
    ended: [],
    keysDeleted: 0,
  });
  // The entry still applied (its index), but changed no row.
  const after = h.dump();
  assert.deepEqual(after, before);
});

Deno.test("dependents are called once per ending entry, with every ended id, after the records are gone", () => {
  const calls: { ids: string[]; index: number; live: boolean[] }[] = [];
  const recorder: LeaseDependent = {
    service: "kv",
    onLeaseEnded(ids, context) {
      calls.push({
        ids: [...ids],
        index: Number(context.index),
        live: ids.map((id) => leaseLive(context, id)),
      });
    },
  };
  const h = new Harness([{ id: 201, service: leasesService([recorder]) }]);
  // The replacement keeps name "leases" and takes id 201.
  const grant = (id: string) =>
    h.raw(201, encodeLeaseCommand({ type: "grant", id, ttlMs: 5000 }));
  grant(A);
  grant(B);
  h.raw(
    201,
    encodeLeaseCommand({ type: "expire", ids: [A, B, "0000000000000fff"] }),
  );
  assert.deepEqual(calls, [{
    ids: [A, B],
    index: h.index,
    live: [false, false],
  }]);
  h.raw(201, encodeLeaseCommand({ type: "expire", ids: [A] }));
  h.raw(201, encodeLeaseCommand({ type: "revoke", id: B }));
  assert.equal(calls.length, 1, "no call when nothing ended");
  grant(A);
  h.raw(201, encodeLeaseCommand({ type: "revoke", id: A }));
  assert.deepEqual(calls[1], { ids: [A], index: h.index, live: [false] });
});

Deno.test("the registered table ends a lock holder's hold in the revoking entry (locks dependent)", () => {
  const h = new Harness();
  h.lease({ type: "grant", id: A, ttlMs: 5000 });
  const acquired = h.raw(
    SERVICE_IDS.locks,
    encodeLockCommand({ type: "acquire", name: "job", lease: A, permits: 1 }),
  ) as LockResult;
  assert.ok(acquired.ok && "granted" in acquired && acquired.granted);
  const token = acquired.grant.token;
  assert.ok(fenceHolds({ store: h.store, overlay: new Map() }, "job", token));
  h.lease({ type: "revoke", id: A });
  assert.ok(!fenceHolds({ store: h.store, overlay: new Map() }, "job", token));
});

Deno.test("list pages by cursor in id order", () => {
  const h = new Harness();
  const ids = [5, 1, 3, 2, 4].map((n) => n.toString(16).padStart(16, "0"));
  for (const id of ids) h.lease({ type: "grant", id, ttlMs: 5000 });
  const reads = new LeaseReads(h.store);
  const first = reads.list(null, 2);
  assert.deepEqual(first.leases.map((l) => l.id), [ids[1], ids[3]]);
  const second = reads.list(first.cursor, 2);
  assert.deepEqual(second.leases.map((l) => l.id), [ids[2], ids[4]]);
  const third = reads.list(second.cursor, 2);
  assert.deepEqual(third.leases.map((l) => l.id), [ids[0]]);
  assert.equal(third.cursor, null);
  assert.throws(() => reads.list(null, 0), LeaseError);
  assert.throws(() => reads.list("zz", 10), LeaseError);
});
