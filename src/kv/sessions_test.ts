import assert from "node:assert/strict";
import { encodeCommand } from "./command.ts";
import { encodeKey } from "./key_codec.ts";
import { MemoryStateStore } from "./memory_state_store.ts";
import { SESSION_RESULTS_MAX } from "./_sessions.ts";
import { KvStateMachine } from "./state_machine.ts";
import type { KvAtomicOperation, KvSession } from "./types.ts";
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

Deno.test("KvStateMachine.apply() keeps session results bounded, dropping the oldest", () => {
  const kv = new KvStateMachine(new MemoryStateStore());
  let index = 0;
  for (let seq = 0; seq <= SESSION_RESULTS_MAX; seq++) {
    kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq }));
  }
  assert.equal(counter(kv), BigInt(SESSION_RESULTS_MAX + 1));
  // The newest result is still known: its retry does not apply.
  kv.apply(
    ++index as LogIndex,
    sumOne({ clientId: "c", seq: SESSION_RESULTS_MAX }),
  );
  assert.equal(counter(kv), BigInt(SESSION_RESULTS_MAX + 1));
  // The oldest was evicted: a retry that late applies again (documented bound).
  kv.apply(++index as LogIndex, sumOne({ clientId: "c", seq: 0 }));
  assert.equal(counter(kv), BigInt(SESSION_RESULTS_MAX + 2));
  // Session rows never show through the user key space.
  const visible =
    kv.list({ prefix: new Uint8Array(0) }, { limit: 1000 }).entries;
  assert.deepEqual(visible.map((e) => e.key), [encodeKey(["counter"])]);
});
