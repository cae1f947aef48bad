/**
 * The replicated credential bookkeeping: join tokens used once, revocations
 * kept for good, both carried by snapshots.
 */
import assert from "node:assert/strict";
import { KvStateMachine } from "./state_machine.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import type { LogIndex, Snapshot, Term } from "../raft/types.ts";
import {
  encodeJoinTokenCommand,
  encodeRevokeCommand,
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_USED,
  KvReplicatedState,
  type KvStateResult,
} from "./replicated_state.ts";

function newState(): KvReplicatedState {
  return new KvReplicatedState(new KvStateMachine(new MemoryStateStore()));
}

let nextIndex = 1;
function apply(state: KvReplicatedState, data: Uint8Array): KvStateResult {
  return state.apply({
    index: (nextIndex++) as LogIndex,
    term: 1 as Term,
    type: "normal",
    data,
  });
}

Deno.test("KvReplicatedState answers a join token's first use only, and forgets it once expired", () => {
  nextIndex = 1;
  const state = newState();
  const use = (nonce: string, nowMs: number) =>
    apply(state, encodeJoinTokenCommand(nonce, 1_000, nowMs));
  assert.equal(use("aa", 0), JOIN_TOKEN_FRESH);
  assert.equal(use("aa", 10), JOIN_TOKEN_USED);
  assert.equal(use("bb", 10), JOIN_TOKEN_FRESH);
  // Past its expiry the signature check refuses it anyway; the record goes.
  assert.equal(use("aa", 2_000), JOIN_TOKEN_FRESH);
});

Deno.test("KvReplicatedState keeps revocations, tells its listeners, and carries them in snapshots", () => {
  nextIndex = 1;
  const state = newState();
  const heard: string[][] = [];
  state.onRevoked((ids) => heard.push(ids));
  apply(state, encodeRevokeCommand("node-a"));
  apply(state, encodeRevokeCommand("node-a"));
  apply(state, encodeRevokeCommand("node-b"));
  assert.deepEqual(state.revoked(), ["node-a", "node-b"]);
  assert.deepEqual(heard, [["node-a"], ["node-a", "node-b"]]);

  const other = newState();
  const installed: string[][] = [];
  other.onRevoked((ids) => installed.push(ids));
  const snapshot: Snapshot = {
    meta: {
      index: state.appliedIndex(),
      term: 1 as Term,
      confState: { voters: [], votersOutgoing: [], learners: [] },
    },
    data: state.snapshotData(),
  };
  other.installSnapshot(snapshot);
  assert.deepEqual(other.revoked(), ["node-a", "node-b"]);
  assert.deepEqual(installed, [["node-a", "node-b"]]);
});
