/**
 * The state host (issue 14): envelopes, the service registry and its
 * keyspaces, exactly-once sessions for any service, and change events, with
 * a tiny example service that lives only in tests/helpers/example_service.
 */
import assert from "node:assert/strict";
import { AssertionError } from "../src/base/assert.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import type { KvApplyResult } from "../src/model/types.ts";
import { type LogIndex, nodeId, type Term } from "../src/raft/types.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { encodeEnvelope } from "../src/state/envelope.ts";
import { ServiceRegistry } from "../src/state/registry.ts";
import type { ChangeEvent, ChangeSink } from "../src/state/changes.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import {
  decodeProposalResult,
  KvReplicatedState,
} from "../src/services/replicated_state.ts";
import { encodeKvEntry } from "../src/services/entries.ts";
import { SERVICE_IDS } from "../src/services/table.ts";
import {
  type ApplyCounter,
  EXAMPLE_ID,
  exampleEntry,
  type ExampleResult,
  exampleService,
  readCounter,
} from "./helpers/example_service/api.ts";
import { waitFor } from "./helpers/wait_for.ts";

const encoder = new TextEncoder();

function withExample(counter: ApplyCounter = { applies: 0 }) {
  return new KvStateMachine(new MemoryStateStore(), {}, {
    extra: [{ id: EXAMPLE_ID, service: exampleService(counter) }],
  });
}

function setEntry(key: string, value: string, expireAtMs?: number) {
  return encodeKvEntry({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "set",
        key: encodeKey([key]),
        value: { encoding: "bytes", data: encoder.encode(value) },
        ...(expireAtMs === undefined ? {} : { expireAtMs }),
      }],
      enqueues: [],
    },
  });
}

Deno.test("a service registered by one line applies through the state host, exactly once per session", () => {
  const counter = { applies: 0 };
  const machine = withExample(counter);
  const session = { clientId: "c1", seq: 4 };
  const apply = (index: number, data: Uint8Array) =>
    machine.host.applyData(index as LogIndex, data) as ExampleResult;
  assert.deepEqual(apply(1, exampleEntry({ name: "a", amount: 5 })), {
    ok: true,
    value: 5,
  });
  const first = apply(2, exampleEntry({ name: "a", amount: 2 }, session));
  assert.deepEqual(first, { ok: true, value: 7 });
  // A retry with the same session: the first result, not applied again.
  assert.deepEqual(
    apply(3, exampleEntry({ name: "a", amount: 2 }, session)),
    first,
  );
  assert.equal(counter.applies, 2);
  // The same session on another command is refused, by the host, for any service.
  const reused = apply(4, exampleEntry({ name: "a", amount: 3 }, session));
  assert.equal(reused.ok, false);
  assert.equal(!reused.ok && reused.reason, "sessionReused");
  // A command that fails the service's validation is its typed failure.
  const bad = apply(5, exampleEntry({ name: "a", amount: 1000 }));
  assert.equal(!bad.ok && bad.reason, "invalidCommand");
  assert.equal(readCounter(machine.store, "a"), 7);
  assert.equal(machine.appliedIndex(), 5);
  // User KV reads never see the service's rows.
  assert.deepEqual(
    machine.readRange(new Uint8Array([0]), new Uint8Array([0xff, 0xff]), 100),
    [],
  );
});

Deno.test("an unknown service or a malformed envelope in a committed entry stops apply with AssertionError", () => {
  const machine = withExample();
  const cases = [
    encodeEnvelope({ serviceId: 99, payload: new Uint8Array([0x90]) }),
    new Uint8Array([7, SERVICE_IDS.kv, 0, 0x90]),
    new Uint8Array([1, SERVICE_IDS.kv, 0x80]),
    new Uint8Array([1]),
    new Uint8Array([1, SERVICE_IDS.kv, 1, 0, 200]),
  ];
  for (const data of cases) {
    assert.throws(
      () => machine.host.applyData(1 as LogIndex, data),
      AssertionError,
    );
    // A proposer can refuse them before they enter the log.
    assert.throws(() => machine.host.checkProposal(data), RangeError);
  }
  assert.equal(machine.appliedIndex(), 0);
  machine.host.checkProposal(exampleEntry({ name: "a", amount: 1 }));
  // The cluster service takes no sessions (it could not refuse a reused one).
  assert.throws(
    () =>
      machine.host.checkProposal(
        encodeEnvelope({
          serviceId: SERVICE_IDS.cluster,
          session: { clientId: "c", seq: 1 },
          payload: new Uint8Array([0x80]),
        }),
      ),
    /takes no sessions/,
  );
});

Deno.test("a service that writes outside its keyspace is an invariant violation and nothing is written", () => {
  const machine = withExample();
  assert.throws(
    () =>
      machine.host.applyData(
        1 as LogIndex,
        exampleEntry({ name: "!escape", amount: 0 }),
      ),
    (error: unknown) =>
      error instanceof AssertionError &&
      /Service 'example' wrote outside its keyspace/.test(error.message),
  );
  assert.equal(machine.appliedIndex(), 0);
  assert.equal(
    machine.store.scan({
      start: new Uint8Array([0xff]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 10,
    }).length,
    0,
  );
});

Deno.test("the registry refuses clashing ids, names and keyspaces", () => {
  const service = exampleService();
  assert.throws(
    () =>
      new ServiceRegistry([{ id: 5, service }, {
        id: 5,
        service: { ...service, name: "other", keyspaces: [] },
      }]),
    RangeError,
  );
  assert.throws(
    () => new ServiceRegistry([{ id: 5, service }, { id: 6, service }]),
    RangeError,
  );
  assert.throws(
    () =>
      new ServiceRegistry([{
        id: 5,
        service: {
          ...service,
          // The host's session table.
          keyspaces: [{
            start: new Uint8Array([0xff, 0x73, 0x00]),
            end: new Uint8Array([0xff, 0x73, 0x01]),
          }],
        },
      }]),
    /overlaps that of 'sessions'/,
  );
  assert.throws(() => new ServiceRegistry([{ id: 0, service }]), RangeError);
});

class RecordingSink {
  readonly applied: [bigint, ChangeEvent[]][] = [];
  readonly resets: bigint[] = [];
  /** True while the store is inside a batch (changes must not arrive then). */
  inBatch = false;
  arrivedInBatch = false;

  applied_(revision: bigint, changes: readonly ChangeEvent[]) {
    if (this.inBatch) this.arrivedInBatch = true;
    this.applied.push([revision, [...changes]]);
  }

  reset(revision: bigint) {
    this.resets.push(revision);
  }
}

Deno.test("apply emits one change batch per entry, in order, after its transaction; expiry deletes carry cause 'expire'; install resets", () => {
  const sink = new RecordingSink();
  const port: ChangeSink = {
    applied: (revision, changes) => sink.applied_(revision, changes),
    reset: (revision) => sink.reset(revision),
  };
  const machine = new KvStateMachine(new MemoryStateStore(), {}, {
    changes: port,
  });
  machine.apply(1 as LogIndex, setEntry("a", "1", 500));
  machine.apply(
    2 as LogIndex,
    encodeKvEntry({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [
          { type: "delete", key: encodeKey(["b"]) },
          {
            type: "set",
            key: encodeKey(["c"]),
            value: { encoding: "bytes", data: encoder.encode("x") },
          },
        ],
        enqueues: [{
          payload: new Uint8Array([1]),
          deadlineMs: 0,
          keysIfUndelivered: [],
          backoffSchedule: null,
        }],
        session: { clientId: "s", seq: 1 },
      },
    }),
  );
  // A failed check changes nothing but still advances the revision.
  machine.apply(
    3 as LogIndex,
    encodeKvEntry({
      type: "atomic",
      operation: {
        checks: [{ key: encodeKey(["a"]), versionstamp: null }],
        mutations: [],
        enqueues: [],
      },
    }),
  );
  machine.apply(
    4 as LogIndex,
    encodeKvEntry({ type: "expire", timestampMs: 1000, keyCountMax: 10 }),
  );
  assert.deepEqual(sink.applied.map(([r]) => r), [1n, 2n, 3n, 4n]);
  const [first] = sink.applied[0]![1];
  assert.equal(first!.service, "kv");
  assert.equal(first!.kind, "set");
  assert.equal(first!.revision, 1n);
  assert.deepEqual(first!.key, encodeKey(["a"]));
  assert.equal(first!.after?.expireAtMs, 500);
  assert.deepEqual(first!.after?.value, encoder.encode("1"));
  // Session rows and queue indexes make no events; the enqueued message's
  // record is a `queues` event.
  assert.deepEqual(
    sink.applied[1]![1].map((c) => [c.index, c.service, c.kind, c.key]),
    [
      [0, "kv", "delete", encodeKey(["b"])],
      [1, "kv", "set", encodeKey(["c"])],
      [2, "queues", "set", sink.applied[1]![1][2]?.key],
    ],
  );
  assert.deepEqual(
    sink.applied[1]![1][2]!.key.subarray(0, 3),
    new Uint8Array([0xff, 0x71, 0x6d]),
  );
  assert.deepEqual(sink.applied[2]![1], []);
  assert.deepEqual(
    sink.applied[3]![1].map((c) => [c.kind, c.cause, c.key]),
    [["delete", "expire", encodeKey(["a"])]],
  );
  // Under batch(), changes arrive once the whole transaction is done.
  const store = machine.store;
  const batch = store.batch.bind(store);
  store.batch = <T>(work: () => T): T =>
    batch(() => {
      sink.inBatch = true;
      try {
        return work();
      } finally {
        sink.inBatch = false;
      }
    });
  machine.host.batch(() => {
    machine.apply(5 as LogIndex, setEntry("d", "1"));
    machine.apply(6 as LogIndex, setEntry("e", "1"));
  });
  assert.equal(sink.arrivedInBatch, false);
  assert.deepEqual(sink.applied.slice(4).map(([r]) => r), [5n, 6n]);
  // A snapshot install resets the sink at its index.
  const snapshot = machine.host.snapshotData();
  const other = new KvStateMachine(new MemoryStateStore(), {}, {
    changes: port,
  });
  other.host.installSnapshot(
    {
      meta: { index: 6 as LogIndex, term: 1 as Term, voters: [], learners: [] },
      data: snapshot,
    } as unknown as Parameters<typeof other.host.installSnapshot>[0],
  );
  assert.deepEqual(sink.resets, [6n]);
});

Deno.test("queue commands carry sessions too: a retried ack answers its first result", () => {
  const machine = new KvStateMachine(new MemoryStateStore());
  const enqueue = encodeKvEntry({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [],
      enqueues: [{
        payload: new Uint8Array([1]),
        deadlineMs: 0,
        keysIfUndelivered: [],
        backoffSchedule: null,
      }],
    },
  });
  machine.apply(1 as LogIndex, enqueue);
  const [message] = machine.peekQueue("", 10);
  const ack = encodeEnvelope({
    serviceId: SERVICE_IDS.queues,
    session: { clientId: "consumer", seq: 1 },
    payload: encodeKvEntry({ type: "queueAck", ids: [message!.id] })
      .subarray(3),
  });
  const first = machine.apply(2 as LogIndex, ack);
  const retry = machine.apply(3 as LogIndex, ack);
  assert.equal(first.ok && first.queueMessageCount, 1);
  assert.deepEqual(retry, first);
  assert.equal(machine.queueInfo("").length, 0);
});

Deno.test("the example service runs through real RaftRunners in memory and reaches every replica", async () => {
  const ids = ["e1", "e2", "e3"].map(nodeId);
  const network = new InMemoryNetwork();
  const nodes = ids.map((id) => {
    const state = new KvReplicatedState(withExample());
    const runner = new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 5000,
    });
    runner.start();
    return { runner, state };
  });
  try {
    await waitFor(
      "a leader",
      () => nodes.some((n) => n.runner.status().role === "leader"),
    );
    const leader = nodes.find((n) => n.runner.status().role === "leader")!;
    const session = { clientId: "r", seq: 1 };
    const first = decodeProposalResult(
      await leader.runner.propose(
        exampleEntry({ name: "n", amount: 3 }, session),
      ),
    );
    const again = decodeProposalResult(
      await leader.runner.propose(
        exampleEntry({ name: "n", amount: 3 }, session),
      ),
    );
    assert.deepEqual(first, { ok: true, value: 3 });
    assert.deepEqual(again, first);
    const kv = decodeProposalResult(
      await leader.runner.propose(setEntry("k", "v")),
    ) as KvApplyResult;
    assert.equal(kv.ok, true);
    await waitFor(
      "every replica applied",
      () =>
        nodes.every((n) =>
          readCounter(n.state.kv.store, "n") === 3 &&
          n.state.kv.get(encodeKey(["k"])) !== null
        ),
    );
  } finally {
    for (const node of nodes) await node.runner.stop();
  }
});

Deno.test("StateHost implements the structured-result port: apply(entry) returns the service's result, undefined for blank and configuration entries", () => {
  const machine = withExample();
  const host = machine.host;
  const normal = host.apply({
    type: "normal",
    term: 1 as Term,
    index: 1 as LogIndex,
    data: exampleEntry({ name: "x", amount: 9 }),
  });
  assert.deepEqual(normal, { ok: true, value: 9 });
  assert.deepEqual(host.decodeResult(host.encodeResult(normal)), normal);
  assert.equal(
    host.apply({
      type: "normal",
      term: 1 as Term,
      index: 2 as LogIndex,
      data: new Uint8Array(0),
    }),
    undefined,
  );
  const kv = host.apply({
    type: "normal",
    term: 1 as Term,
    index: 3 as LogIndex,
    data: setEntry("k", "v"),
  }) as KvApplyResult;
  assert.equal(kv.ok, true);
  assert.deepEqual(host.decodeResult(host.encodeResult(kv)), kv);
  assert.equal(host.decodeResult(host.encodeResult(undefined)), null);
  assert.equal(machine.appliedIndex(), 3);
});
