/**
 * The KV expiry sweep and the queue dispatcher as leader tasks on injected
 * time: they read the leader's clock from their context, propose only while
 * the host runs them, and the dispatcher's listeners follow leadership.
 */
import assert from "node:assert/strict";
import { encodeKey } from "../src/model/key_codec.ts";
import type { KvApplyResult, KvCommand } from "../src/model/types.ts";
import { ServiceHost } from "../src/node/service_host.ts";
import { logIndex } from "../src/raft/types.ts";
import { KvNotLeaderError } from "../src/services/kv/api.ts";
import { encodeKvEntry as encodeCommand } from "../src/services/entries.ts";
import { KvExpirySweep } from "../src/services/kv/leader.ts";
import { QueueDispatcher } from "../src/services/queues/leader.ts";
import {
  decodeApplyResult,
  encodeApplyResult,
} from "../src/services/replicated_state.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { FakeLeadership, ManualTime, settle } from "./helpers/manual_time.ts";

/** A one-replica "cluster": proposals apply at once to a local state machine. */
function harness() {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  const kv = new KvStateMachine(new MemoryStateStore());
  const proposed: KvCommand[] = [];
  let index = 0;
  const apply = (command: KvCommand): KvApplyResult =>
    kv.apply(logIndex(++index), encodeCommand(command));
  const host = new ServiceHost({
    leadership,
    proposeLocal: (data) => {
      const command = JSON.parse(new TextDecoder().decode(data)) as KvCommand;
      proposed.push(command);
      return Promise.resolve(encodeApplyResult(apply(command)));
    },
    clock: time,
    scheduler: time,
    checkIntervalMs: 10,
  });
  // Commands travel as JSON here so the test can read what was proposed.
  const encode = (command: KvCommand) =>
    new TextEncoder().encode(JSON.stringify(command));
  return { time, leadership, kv, proposed, apply, host, encode };
}

Deno.test("KvExpirySweep proposes an expiry stamped with the leader's clock once a deadline passed, only while leading", async () => {
  const { time, leadership, kv, proposed, apply, host, encode } = harness();
  const key = encodeKey(["session"]);
  const expireAtMs = time.wallMs() + 100;
  assert.ok(
    apply({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "set",
          key,
          value: { encoding: "bytes", data: new Uint8Array([1]) },
          expireAtMs,
        }],
        enqueues: [],
      },
    }).ok,
  );
  host.add({
    task: new KvExpirySweep({ store: kv.store, intervalMs: 1000 }),
    encode,
    decode: decodeApplyResult,
  });
  host.start();
  await time.advance(3000);
  assert.equal(proposed.length, 0, "a follower never sweeps, even when due");
  assert.notEqual(kv.get(key), null);

  leadership.leader = true;
  await time.advance(10); // the host's check starts the sweep
  const started = time.wallMs();
  await time.advance(999);
  assert.equal(proposed.length, 0, "the first sweep waits its interval");
  await time.advance(1);
  assert.equal(proposed.length, 1, "the first sweep proposes");
  const expire = proposed[0]!;
  assert.ok(expire.type === "expire");
  assert.equal(
    expire.timestampMs,
    started + 1000,
    "stamped with the injected clock's reading at the sweep",
  );
  assert.equal(kv.get(key), null, "the key is gone");
  await time.advance(5000);
  assert.equal(proposed.length, 1, "nothing more to expire: no proposal");
  host.stop();
});

Deno.test("QueueDispatcher serves a listener once its task starts and releases listeners as not leader on step-down", async () => {
  const { time, leadership, kv, proposed, apply, host, encode } = harness();
  const dispatcher = new QueueDispatcher({
    kv,
    isLeader: () => leadership.isLeader(),
    scheduler: time,
    intervalMs: 50,
  });
  host.add({ task: dispatcher, encode, decode: decodeApplyResult });
  host.start();
  const listen = (waitMs: number) =>
    dispatcher.listen({
      queue: "jobs",
      countMax: 10,
      leaseMs: 1000,
      waitMs,
    });
  await assert.rejects(listen(1000), KvNotLeaderError, "a follower refuses");

  assert.ok(
    apply({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [],
        enqueues: [{
          payload: new Uint8Array([0xff, 0x0f, 0x49, 2]),
          deadlineMs: time.wallMs(),
          keysIfUndelivered: [],
          backoffSchedule: null,
          queue: "jobs",
        }],
      },
    }).ok,
  );
  // Leading, but the host has not seen it yet: the listener waits for the task.
  leadership.leader = true;
  const first = listen(10_000);
  await settle();
  assert.equal(dispatcher.started, false);
  await time.advance(10); // the host's check starts the task
  assert.equal(dispatcher.started, true);
  await time.advance(50);
  const deliveries = await first;
  assert.equal(deliveries.length, 1, "the waiting listener got the message");
  const lease = proposed.find((c) => c.type === "queueLease");
  assert.ok(lease !== undefined && lease.type === "queueLease");
  assert.ok(lease.timestampMs >= 1_700_000_000_000, "the injected clock");

  const second = listen(10_000);
  const outcome = second.then(() => "resolved", (error) => error);
  await time.advance(100);
  leadership.leader = false;
  await time.advance(10);
  assert.ok(
    await outcome instanceof KvNotLeaderError,
    "moved on to the leader",
  );
  const count = proposed.length;
  await time.advance(1000);
  assert.equal(proposed.length, count, "no proposal after step-down");
  host.stop();
});
