import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../../base/bytes.ts";
import { SESSION_DIGEST_BYTES } from "../../state/sessions.ts";
import { encodeKey } from "../../model/key_codec.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvMutation,
  KvSetMutation,
} from "../../model/types.ts";
import { logIndex } from "../../raft/types.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import type { ChangeEvent } from "../../state/changes.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { StateHost } from "../../state/host.ts";
import { encodeKvEntry } from "../entries.ts";
import { encodeLeaseCommand, LeaseReads } from "../leases/api.ts";
import { encodeLockCommand, type LockResult } from "../locks/api.ts";
import { SERVICE_IDS, serviceRegistry } from "../table.ts";
import { decodeCommand, encodeCommand } from "./commands.ts";
import { writeDigest } from "./apply.ts";

const A = "000000000000000a";
const B = "000000000000000b";
const K1 = encodeKey(["k1"]);
const K2 = encodeKey(["k2"]);
const value = { encoding: "bytes", data: new Uint8Array([1]) } as const;

class Harness {
  readonly store = new MemoryStateStore();
  readonly changes: ChangeEvent[] = [];
  readonly host = new StateHost(
    this.store,
    serviceRegistry({
      store: this.store,
      cluster: undefined as never,
      knobs: {},
    }),
    {
      changes: {
        applied: (_r, changes) => this.changes.push(...changes),
        reset: () => {},
      },
    },
  );
  index = 0;

  grant(id: string, ttlMs = 5000): void {
    this.raw(
      SERVICE_IDS.leases,
      encodeLeaseCommand({ type: "grant", id, ttlMs }),
    );
  }

  revoke(id: string): void {
    this.raw(SERVICE_IDS.leases, encodeLeaseCommand({ type: "revoke", id }));
  }

  raw(serviceId: number, payload: Uint8Array): unknown {
    return this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId, payload }),
    );
  }

  atomic(
    mutations: KvMutation[],
    extra: Partial<KvAtomicOperation> = {},
  ): KvApplyResult {
    return this.host.applyData(
      logIndex(++this.index),
      encodeKvEntry({
        type: "atomic",
        operation: { checks: [], mutations, enqueues: [], ...extra },
      }),
    ) as KvApplyResult;
  }

  dump(): string {
    return JSON.stringify(
      this.store.scan({
        start: new Uint8Array([0]),
        end: new Uint8Array([0xff, 0xff]),
        limit: 100_000,
      }).map((r) => [toHex(r.key), toHex(r.value)]),
    );
  }
}

const set = (
  key: Uint8Array,
  lease?: string,
  expireAtMs: number | null = null,
): KvSetMutation => ({
  type: "set",
  key,
  value,
  expireAtMs,
  ...(lease === undefined ? {} : { lease }),
});

Deno.test("the codec and the write digest carry a set's lease and the coordination checks", () => {
  const operation: KvAtomicOperation = {
    checks: [{ key: K1, versionstamp: null }],
    coordinationChecks: [
      { kind: "lease", lease: A, position: 0 },
      { kind: "fence", name: "m", token: "0".repeat(20), position: 2 },
    ],
    checkPositions: [1],
    mutations: [set(K1, A)],
    enqueues: [],
  };
  assert.deepEqual(
    decodeCommand(encodeCommand({ type: "atomic", operation })),
    { type: "atomic", operation },
  );
  const plain = { ...operation, mutations: [set(K1)] };
  assert.notDeepEqual(writeDigest(operation), writeDigest(plain));
  const noChecks = { ...operation, coordinationChecks: [] };
  assert.notDeepEqual(writeDigest(operation), writeDigest(noChecks));
});

Deno.test("a set with a lease attaches; a set without or a delete detaches; revoke deletes only attached keys", () => {
  const h = new Harness();
  h.grant(A);
  assert.ok(h.atomic([set(K1, A), set(K2, A)]).ok);
  const reads = new LeaseReads(h.store);
  assert.equal(reads.get(A)?.keyCount, 2);
  assert.ok(h.atomic([set(K2)]).ok, "a set without lease detaches");
  assert.equal(reads.get(A)?.keyCount, 1);
  h.atomic([{ type: "delete", key: K1 }]);
  assert.equal(reads.get(A)?.keyCount, 0);
  h.atomic([set(K1, A)]);
  h.changes.length = 0;
  h.revoke(A);
  assert.equal(h.store.get(K1), null);
  assert.ok(h.store.get(K2) !== null, "detached key stays");
  assert.deepEqual(
    h.changes.filter((c) => c.service === "kv").map((c) => c.cause),
    ["lease"],
  );
});

Deno.test("a set naming an unknown lease fails whole with leaseNotFound, nothing applied", () => {
  const h = new Harness();
  h.grant(A);
  const before = h.dump();
  const result = h.atomic([set(K1, A), set(K2, B)]);
  assert.ok(!result.ok);
  assert.equal(result.reason, "leaseNotFound");
  assert.equal(h.dump(), before);
});

Deno.test("an expiry sweep of a leased key detaches it", () => {
  const h = new Harness();
  h.grant(A);
  h.atomic([set(K1, A, 1000)]);
  assert.equal(new LeaseReads(h.store).get(A)?.keyCount, 1);
  h.host.applyData(
    logIndex(++h.index),
    encodeKvEntry({ type: "expire", timestampMs: 2000, keyCountMax: 10 }),
  );
  assert.equal(h.store.get(K1), null);
  assert.equal(new LeaseReads(h.store).get(A)?.keyCount, 0);
  assert.deepEqual(new LeaseReads(h.store).keys(A), []);
});

Deno.test("lease and fence checks pass while live and holding, fail at their positions otherwise", () => {
  const h = new Harness();
  h.grant(A);
  const acquired = h.raw(
    SERVICE_IDS.locks,
    encodeLockCommand({ type: "acquire", name: "m", lease: A, permits: 1 }),
  ) as LockResult;
  assert.ok(acquired.ok && "granted" in acquired && acquired.granted);
  const token = acquired.grant.token;
  const checks = {
    // K1 absent: true for the first write, false after it.
    checks: [{ key: K1, versionstamp: null }],
    checkPositions: [1],
    coordinationChecks: [
      { kind: "lease", lease: A, position: 0 },
      { kind: "fence", name: "m", token, position: 2 },
    ],
  } as const;
  assert.ok(h.atomic([set(K1)], checks).ok);
  h.revoke(A);
  const before = h.dump();
  const failed = h.atomic([set(K1)], checks);
  assert.ok(!failed.ok);
  assert.equal(failed.reason, "checkFailed");
  assert.deepEqual(failed.failedChecks, [0, 1, 2]);
  assert.equal(h.dump(), before);
});

Deno.test("the write digest of a write without leases or coordination checks is unchanged", () => {
  const operation: KvAtomicOperation = {
    checks: [{ key: K1, versionstamp: null }],
    mutations: [set(K1)],
    enqueues: [],
  };
  // The digest's input before leases existed, hashed the same way.
  const before = sha256(encode([
    [[K1, null]],
    [["set", K1, "bytes", value.data, false, null, null, null]],
    [],
  ])).subarray(0, SESSION_DIGEST_BYTES);
  assert.deepEqual(writeDigest(operation), before);
  assert.deepEqual(
    writeDigest({ ...operation, coordinationChecks: [] }),
    before,
  );
  assert.notDeepEqual(
    writeDigest({ ...operation, mutations: [set(K1, A)] }),
    before,
  );
});
