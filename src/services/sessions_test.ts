import assert from "node:assert/strict";
import { encodeKvEntry as encodeCommand } from "./entries.ts";
import { encodeKey } from "../model/key_codec.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { SESSION_RESULTS_MAX } from "../state/sessions.ts";
import { RESEND_WINDOW_MS } from "./kv/resends.ts";
import { KvStateMachine } from "./state_machine.ts";
import type { KvAtomicOperation, KvSession } from "../model/types.ts";
import type { LogIndex } from "../raft/types.ts";

function u64(n: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n, true);
  return out;
}

function sumOne(session?: KvSession): Uint8Array {
  const operation: KvAtomicOperation = {
    checks: [],
    mutations: [{
      type: "sum",
      key: encodeKey(["counter"]),
      value: { encoding: "le64", data: u64(1n) },
    }],
    enqueues: [],
    ...(session === undefined ? {} : { session }),
  };
  return encodeCommand({ type: "atomic", operation });
}

function counter(kv: KvStateMachine): bigint {
  const entry = kv.get(encodeKey(["counter"]));
  return entry === null
    ? 0n
    : new DataView(entry.value.data.buffer, entry.value.data.byteOffset)
      .getBigUint64(0, true);
}

Deno.test("KvStateMachine.apply() applies a retried session write once and answers with its first result", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  const session = { clientId: "client-a", seq: 7 };
  const first = kv.apply(1 as LogIndex, sumOne(session));
  const retry = kv.apply(2 as LogIndex, sumOne(session));
  assert.equal(first.ok, true);
  assert.deepEqual(retry, first);
  assert.equal(counter(kv), 1n);
  // Another sequence number, or another client with the same number, applies.
  kv.apply(3 as LogIndex, sumOne({ clientId: "client-a", seq: 8 }));
  kv.apply(4 as LogIndex, sumOne({ clientId: "client-b", seq: 7 }));
  kv.apply(5 as LogIndex, sumOne());
  kv.apply(6 as LogIndex, sumOne());
  assert.equal(counter(kv), 5n);
  assert.equal(kv.appliedIndex(), 6);
});

Deno.test("KvStateMachine.apply() never applies a retry twice after its result was evicted, at 10x the table size", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  let index = 0;
  const total = SESSION_RESULTS_MAX * 10;
  for (let seq = 0; seq < total; seq++) {
    kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq }));
  }
  assert.equal(counter(kv), BigInt(total));
  // The newest result is still known: its retry does not apply.
  const newest = kv.apply(
    ++index as LogIndex,
    sumOne({ clientId: "c", seq: total - 1 }),
  );
  assert.equal(newest.ok, true);
  // Evicted results: every retry is "outcome unknown", none applies again.
  for (const seq of [0, 1, total / 2, total - SESSION_RESULTS_MAX - 1]) {
    const retry = kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq }));
    assert.equal(retry.ok, false);
    assert.equal(!retry.ok && retry.reason, "sessionExpired");
  }
  assert.equal(counter(kv), BigInt(total));
  // Newer sequence numbers and other clients still apply.
  kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq: total }));
  kv.apply(++index as LogIndex, sumOne({ clientId: "d", seq: 0 }));
  assert.equal(counter(kv), BigInt(total + 2));
  // Session rows never show through the user key space.
  const visible =
    kv.list({ prefix: new Uint8Array(0) }, { limit: 1000 }).entries;
  assert.deepEqual(visible.map((e) => e.key), [encodeKey(["counter"])]);
});

Deno.test("KvStateMachine.apply() refuses a session reused on a different write (sessionReused), changing nothing", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  const session = { clientId: "client-a", seq: 1 };
  const first = kv.apply(1 as LogIndex, sumOne(session));
  assert.equal(first.ok, true);
  const other = encodeCommand({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "set",
        key: encodeKey(["other"]),
        value: { encoding: "bytes", data: new Uint8Array([1]) },
      }],
      enqueues: [],
      session,
    },
  });
  const reused = kv.apply(2 as LogIndex, other);
  assert.equal(reused.ok, false);
  assert.equal(!reused.ok && reused.reason, "sessionReused");
  assert.equal(kv.get(encodeKey(["other"])), null);
  // The identical retry is still answered with its first result.
  assert.deepEqual(kv.apply(3 as LogIndex, sumOne(session)), first);
  assert.equal(counter(kv), 1n);
});

Deno.test("KvStateMachine.apply() with the planted bug reapplyAfterEviction applies an evicted retry again", () => {
  const kv = new KvStateMachine(new MemoryStateStore(), {
    reapplyAfterEviction: true,
  });
  let index = 0;
  for (let seq = 0; seq <= SESSION_RESULTS_MAX; seq++) {
    kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq }));
  }
  kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq: 0 }));
  assert.equal(counter(kv), BigInt(SESSION_RESULTS_MAX + 2));
});

function resendSum(mergeable: boolean, clientId = "dp:a", atMs = 1000) {
  const digest = new Uint8Array(32).fill(7);
  return encodeCommand({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "sum",
        key: encodeKey(["counter"]),
        value: { encoding: "le64", data: u64(1n) },
      }],
      enqueues: [],
      resend: { clientId, digest, mergeable, atMs },
    },
  });
}

Deno.test("KvStateMachine.apply() answers a mergeable resend of an applied stock write with its first result", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  const first = kv.apply(1 as LogIndex, resendSum(true));
  assert.equal(first.ok, true);
  // The resend (same client, same bytes, mergeable): first result, no change.
  assert.deepEqual(kv.apply(2 as LogIndex, resendSum(true)), first);
  assert.equal(counter(kv), 1n);
  // A repeat the entry node knows is new applies; another client applies.
  const repeat = kv.apply(3 as LogIndex, resendSum(false));
  kv.apply(4 as LogIndex, resendSum(true, "dp:b"));
  assert.equal(counter(kv), 3n);
  // A resend now is answered with the latest identical write's result.
  assert.deepEqual(kv.apply(5 as LogIndex, resendSum(true)), repeat);
  // Past the resend window, a record answers nothing.
  kv.apply(6 as LogIndex, resendSum(true, "dp:a", 1000 + RESEND_WINDOW_MS + 1));
  assert.equal(counter(kv), 4n);
});

Deno.test("KvStateMachine.apply() with the planted bug ignoreResends applies a stock resend twice", () => {
  const kv = new KvStateMachine(new MemoryStateStore(), {
    ignoreResends: true,
  });
  kv.apply(1 as LogIndex, resendSum(true));
  kv.apply(2 as LogIndex, resendSum(true));
  assert.equal(counter(kv), 2n);
});

Deno.test("KvStateMachine.apply() prunes resend records older than the resend window", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  const write = (n: number, atMs: number) =>
    encodeCommand({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "sum",
          key: encodeKey(["counter"]),
          value: { encoding: "le64", data: u64(1n) },
        }],
        enqueues: [],
        resend: {
          clientId: "dp:a",
          digest: new Uint8Array(32).fill(n),
          mergeable: true,
          atMs,
        },
      },
    });
  const records = () =>
    kv.store.scan({
      start: new Uint8Array([0xff, 0x6b, 0x71]),
      end: new Uint8Array([0xff, 0x6b, 0x72]),
      limit: 1000,
      reverse: false,
    }).length;
  let index = 0;
  for (let n = 0; n < 20; n++) kv.apply(++index as LogIndex, write(n, 0));
  assert.equal(records(), 20);
  for (let n = 20; n < 30; n++) {
    kv.apply(++index as LogIndex, write(n, RESEND_WINDOW_MS + 1));
  }
  // Two old records go with each new one: only the 10 new ones are left.
  assert.equal(records(), 10);
  assert.equal(counter(kv), 30n);
});
