/**
 * The keyspace table covers every row the services write, and the backup
 * validator (src/node/_backup_rows.ts) accepts every row of a snapshot this
 * build takes, user and internal alike.
 */
import assert from "node:assert/strict";
import { encodeKey } from "../src/model/key_codec.ts";
import type { LogIndex } from "../src/raft/types.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { encodeKvEntry } from "../src/services/entries.ts";
import { BackupRowChecker } from "../src/node/_backup_rows.ts";
import type { NodeAddress } from "../src/node/node_api.ts";
import {
  encodeJoinTokenCommand,
  encodeMemberCommand,
  encodeRevokeCommand,
} from "../src/services/replicated_state.ts";
import { serializeV8 } from "../src/model/v8_codec_serialize.ts";

const encoder = new TextEncoder();

Deno.test("every row of a mixed workload lies in a registered keyspace, and a backup of it passes the restore checks", () => {
  const machine = new KvStateMachine(new MemoryStateStore(), {
    resultsMax: 3,
  });
  let index = 0;
  const apply = (command: Parameters<typeof encodeKvEntry>[0]) =>
    machine.apply(++index as LogIndex, encodeKvEntry(command));
  for (let i = 0; i < 6; i++) {
    apply({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "set",
          key: encodeKey(["k", i]),
          value: { encoding: "bytes", data: encoder.encode(`v${i}`) },
          ...(i % 2 === 0 ? { expireAtMs: 10_000 + i } : {}),
        }],
        enqueues: [{
          payload: serializeV8(`message ${i}`),
          deadlineMs: i,
          keysIfUndelivered: [encodeKey(["dead", i])],
          backoffSchedule: [],
          ...(i % 3 === 0 ? { queue: "named" } : {}),
        }],
        // Sessions, evicted past 3 (horizons), and stock resends.
        session: { clientId: `c${i % 2}`, seq: i },
        resend: {
          clientId: "dp:x",
          digest: new Uint8Array(32).fill(i),
          mergeable: true,
          atMs: 1000 * i,
        },
      },
    });
  }
  const leased = apply({
    type: "queueLease",
    queue: "",
    timestampMs: 100,
    leaseDeadlineMs: 200,
    countMax: 2,
  });
  assert.equal(leased.ok && leased.queueDeliveries?.length, 2);
  apply({ type: "queueConfigure", queue: "named", concurrencyMax: 2 });
  // Lease ends with no retries left: dead letters to user keys.
  apply({ type: "queueExpireLeases", timestampMs: 300, countMax: 10 });
  apply({
    type: "resendDelivered",
    marks: [{ clientId: "dp:x", digest: new Uint8Array(32).fill(1), index: 2 }],
  });
  apply({ type: "expire", timestampMs: 10_002, keyCountMax: 1 });

  const owners = new Map<string, number>();
  const checker = new BackupRowChecker(machine.appliedIndex());
  const registry = machine.host.registry;
  for (const chunk of machine.host.exportChunks()) {
    checker.check(chunk);
    for (const row of chunk.rows) {
      const owner = registry.ownerOf(row.key);
      assert.ok(owner !== null, `a row outside every keyspace: ${row.key}`);
      owners.set(owner.owner, (owners.get(owner.owner) ?? 0) + 1);
    }
  }
  // The events history records every KV change (a restore drops it).
  assert.deepEqual([...owners.keys()].sort(), [
    "events",
    "kv",
    "queues",
    "sessions",
  ]);
  assert.ok(checker.rows > 0);
  // Dead letters are user rows, readable as KV.
  assert.notEqual(machine.get(encodeKey(["dead", 1])), null);
});

Deno.test("a backup of a cluster that admitted a join and revoked a member passes the restore checks (its cluster.* metadata is dropped)", () => {
  const machine = new KvStateMachine(new MemoryStateStore());
  let index = 0;
  const entries = [
    encodeMemberCommand({ nodeId: "n1" } as NodeAddress),
    encodeJoinTokenCommand("nonce", 10_000, 1000),
    encodeRevokeCommand("n0"),
  ];
  for (const data of entries) machine.host.applyData(++index as LogIndex, data);
  assert.deepEqual(machine.cluster.revoked(), ["n0"]);
  const checker = new BackupRowChecker(machine.appliedIndex());
  for (const chunk of machine.host.exportChunks()) {
    assert.ok(chunk.sequence > 0 || chunk.meta.length === 3);
    assert.deepEqual(checker.check(chunk).meta, []);
  }
});
