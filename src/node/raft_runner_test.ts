import { readValue, setOperation } from "../../tests/helpers/node_kv.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";
import assert from "node:assert/strict";
import { encodeKey } from "../model/key_codec.ts";
import { KvStateMachine } from "../services/state_machine.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import {
  type Entry,
  type HardState,
  type LogIndex,
  type NodeId,
  nodeId,
  type Term,
} from "../raft/types.ts";
import { MemoryLogStore } from "../storage/memory_log_store.ts";
import { InMemoryNetwork } from "../transport/memory_transport.ts";
import { KvReplicatedState } from "../services/replicated_state.ts";
import { RaftKvBackend } from "./raft_kv_backend.ts";
import { RaftRunner, restoredHardState } from "./raft_runner.ts";
import { encodeKvEntry } from "../services/entries.ts";

interface TestNode {
  readonly id: NodeId;
  readonly runner: RaftRunner;
  readonly backend: RaftKvBackend;
  readonly logStore: MemoryLogStore;
  readonly state: KvReplicatedState;
}

const IDS = ["n1", "n2", "n3"].map(nodeId);
const encoder = new TextEncoder();

function startNode(
  network: InMemoryNetwork,
  id: NodeId,
  stores?: { logStore: MemoryLogStore; state: KvReplicatedState },
  snapshotEntries = 10_000,
  requestTimeoutMs = 2000,
): TestNode {
  const logStore = stores?.logStore ?? new MemoryLogStore();
  const state = stores?.state ??
    new KvReplicatedState(new KvStateMachine(new MemoryStateStore()));
  const runner = new RaftRunner({
    id,
    voters: IDS,
    logStore,
    stateMachine: state,
    transport: network.connect(id),
    tickMs: 10,
    requestTimeoutMs,
    snapshotEntries,
  });
  runner.start();
  return {
    id,
    runner,
    backend: new RaftKvBackend(
      runner,
      state,
      "00000000-0000-4000-8000-000000000000",
      { expiryIntervalMs: 50 },
    ),
    logStore,
    state,
  };
}

function leaderOf(nodes: readonly TestNode[]): TestNode | undefined {
  return nodes.find((n) => n.runner.status().role === "leader");
}

Deno.test("RaftRunner replicates writes through a follower and serves strong reads anywhere", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const follower = nodes.find((n) => n.runner.status().role !== "leader")!;
    const result = await follower.backend.commit(
      setOperation("greeting", "hello"),
    );
    assert.equal(result.ok, true);
    for (const node of nodes) {
      assert.equal(await readValue(node.backend, "greeting"), "hello");
    }
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner refuses bytes that are no service's entry before they enter the log, locally and when forwarded, and every node keeps serving", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const leader = leaderOf(nodes)!;
    const garbage = new Uint8Array([0x7f, 0x01, 0x02, 0x03]);
    await assert.rejects(leader.runner.propose(garbage), RangeError);
    // A peer's forwarded proposal skips the sender's local check: the
    // leader refuses it before proposing (an unchecked one would stop
    // every replica at apply, as an invariant).
    const peer = network.connect(nodeId("n9"));
    await assert.rejects(
      peer.request(leader.id, { method: "forwardProposal", data: garbage }, {
        timeoutMs: 5000,
      }),
      (error: Error & { code?: string }) => error.code === "invalid",
    );
    const applied = leader.runner.status();
    assert.ok(applied.role === "leader");
    const result = await leader.backend.commit(setOperation("after", "ok"));
    assert.equal(result.ok, true);
    for (const node of nodes) {
      assert.equal(await readValue(node.backend, "after"), "ok");
    }
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner elects a new leader after the leader stops and keeps acknowledged writes", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    for (let i = 0; i < 20; i++) {
      assert.equal(
        (await nodes[0]!.backend.commit(setOperation(`k${i}`, `v${i}`))).ok,
        true,
      );
    }
    const oldLeader = leaderOf(nodes)!;
    await oldLeader.runner.stop();
    const survivors = nodes.filter((n) => n !== oldLeader);
    await waitFor(
      "a new leader",
      () => leaderOf(survivors) !== undefined,
      10_000,
    );
    for (const node of survivors) {
      for (let i = 0; i < 20; i++) {
        assert.equal(await readValue(node.backend, `k${i}`), `v${i}`);
      }
    }
    assert.equal(
      (await survivors[0]!.backend.commit(setOperation("after", "failover")))
        .ok,
      true,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner catches a node up with a snapshot after the log was compacted", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id, undefined, 50));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const leader = leaderOf(nodes)!;
    const lagging = nodes.find((n) => n !== leader)!;
    for (const other of nodes) {
      if (other !== lagging) network.setLinkCut(lagging.id, other.id, true);
    }
    for (let i = 0; i < 120; i++) {
      assert.equal(
        (await leader.backend.commit(setOperation(`s${i}`, `v${i}`))).ok,
        true,
      );
    }
    assert.ok(
      leader.runner.metrics.snapshotsTaken >= 1,
      "leader took a snapshot",
    );
    for (const other of nodes) {
      if (other !== lagging) network.setLinkCut(lagging.id, other.id, false);
    }
    await waitFor(
      "the lagging node to install a snapshot",
      () => lagging.runner.metrics.snapshotsInstalled >= 1,
      10_000,
    );
    await waitFor(
      "the lagging node to catch up",
      () => lagging.state.appliedIndex() >= leader.state.appliedIndex(),
    );
    for (let i = 0; i < 120; i += 17) {
      assert.equal(await readValue(lagging.backend, `s${i}`), `v${i}`);
    }
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftKvBackend refuses a strong read without a quorum as unavailable", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const leader = leaderOf(nodes)!;
    for (const other of nodes) {
      if (other !== leader) network.setLinkCut(leader.id, other.id, true);
    }
    await assert.rejects(
      readValue(leader.backend, "anything"),
      KvUnavailableError,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftKvBackend deletes an expired key on every replica within a bound, through the leader's sweep", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    for (const node of nodes) node.backend.startServices();
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const key = encodeKey(["session"]);
    const result = await nodes[0]!.backend.commit({
      checks: [],
      mutations: [{
        type: "set",
        key,
        value: { encoding: "bytes", data: encoder.encode("x") },
        expireAtMs: Date.now() + 200,
      }],
      enqueues: [],
    });
    assert.equal(result.ok, true);
    assert.equal(await readValue(nodes[1]!.backend, "session"), "x");
    // Expiry is a replicated deletion, not a read filter: wait (bounded) for it.
    await waitFor(
      "the expired key to be deleted everywhere",
      () => nodes.every((n) => n.state.kv.get(key) === null),
      5000,
    );
  } finally {
    for (const node of nodes) node.backend.stopServices();
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner fails a strong read waiting on a leader that steps down, instead of waiting for the deadline", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const leader = leaderOf(nodes)!;
    for (const other of nodes) {
      if (other !== leader) network.setLinkCut(leader.id, other.id, true);
    }
    // Safe reads wait for a heartbeat round no follower answers; CheckQuorum
    // deposes the leader within an election timeout (100 ms here), well
    // before the 2 s request deadline.
    const error = await leader.runner.readIndex().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(
      error instanceof ProposalDroppedError,
      `expected ProposalDroppedError, got ${error}`,
    );
    assert.match(error.message, /leader changed/);
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner read contexts carry a per-process nonce: a restarted follower's first read is not a duplicate of its earlier incarnation's", async () => {
  const network = new InMemoryNetwork();
  const nodes = IDS.map((id) => startNode(network, id));
  /** Read contexts the follower sent, by incarnation. */
  const contexts: string[][] = [];
  const spyOn = (node: TestNode, into: string[]) => {
    const transport = network.reach(node.id, node.id)!;
    const send = transport.send.bind(transport);
    transport.send = (to, message) => {
      if (message.type === "readIndex") {
        into.push(new TextDecoder().decode(message.context));
      }
      return send(to, message);
    };
  };
  try {
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    const at = nodes.findIndex((n) => n.runner.status().role !== "leader");
    const follower = nodes[at]!;
    contexts.push([]);
    spyOn(follower, contexts[0]!);
    await follower.runner.readIndex();
    await follower.runner.stop();
    network.detach(follower.id);
    const restarted = startNode(network, follower.id, {
      logStore: follower.logStore,
      state: follower.state,
    });
    nodes[at] = restarted;
    contexts.push([]);
    spyOn(restarted, contexts[1]!);
    await waitFor(
      "the restarted node to know the leader",
      () => restarted.runner.status().leader !== null,
      10_000,
    );
    await restarted.runner.readIndex();
    const [first, second] = [contexts[0]![0], contexts[1]![0]];
    assert.ok(first !== undefined && second !== undefined, `${contexts}`);
    // Both are the first read of their process; the counter restarted.
    assert.match(first, /\/1$/);
    assert.match(second, /\/1$/);
    assert.notEqual(first, second);
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});

Deno.test("RaftRunner reports an event-loop stall longer than half an election timeout", async () => {
  const network = new InMemoryNetwork();
  const events: string[] = [];
  const runner = new RaftRunner({
    id: IDS[0]!,
    voters: [IDS[0]!],
    logStore: new MemoryLogStore(),
    stateMachine: new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore()),
    ),
    transport: network.connect(IDS[0]!),
    tickMs: 10,
    log: (event) => events.push(event),
  });
  runner.start();
  try {
    await waitFor("a leader", () => runner.status().role === "leader");
    // Block the event loop for 300 ms: six times the 50 ms threshold.
    const end = performance.now() + 300;
    while (performance.now() < end) { /* stalled */ }
    await waitFor(
      "the stall report",
      () => events.includes("event-loop-stalled"),
    );
  } finally {
    await runner.stop();
  }
});

Deno.test("RaftRunner.propose and readIndex honour the caller's AbortSignal while no leader is known", async () => {
  const network = new InMemoryNetwork();
  // One node of three: it never learns a leader, and its deadline is far
  // beyond the test's polls, so only the abort can end a wait.
  const lone = startNode(network, IDS[0]!, undefined, 10_000, 600_000);
  try {
    const abort = new AbortController();
    const outcomes: unknown[] = [];
    const pending = [
      lone.runner.propose(
        encodeKvEntry({ type: "resendDelivered", marks: [] }),
        { signal: abort.signal },
      ),
      lone.runner.readIndex({ signal: abort.signal }),
    ].map((request) =>
      request.then(
        () => outcomes.push("done"),
        (error) => outcomes.push(error),
      )
    );
    abort.abort();
    await waitFor("both aborted requests to fail", () => outcomes.length === 2);
    await Promise.all(pending);
    for (const outcome of outcomes) {
      assert.ok(
        outcome instanceof ProposalDroppedError,
        `expected dropped (nothing proposed), got ${outcome}`,
      );
    }
    await assert.rejects(
      lone.runner.propose(
        encodeKvEntry({ type: "resendDelivered", marks: [] }),
        {
          signal: AbortSignal.abort(),
        },
      ),
      ProposalDroppedError,
    );
  } finally {
    await lone.runner.stop();
  }
});

/** Blank entries of term 1 at indexes `from` to `to`. */
function blankEntries(from: number, to: number): Entry[] {
  return Array.from({ length: to - from + 1 }, (_, i) => ({
    index: (from + i) as LogIndex,
    term: 1 as Term,
    type: "normal" as const,
    data: new Uint8Array(),
  }));
}

/**
 * The stores of a node that stopped with its state applied to `applied`,
 * its log compacted to `snapshotIndex` and holding entries up to `lastIndex`,
 * and a durable commit index of `commit` (a commit-only write is not synced,
 * so it may lag behind what the state applied).
 */
function restartedStores(
  layout: {
    snapshotIndex: number;
    commit: number;
    applied: number;
    lastIndex: number;
  },
): { logStore: MemoryLogStore; state: KvReplicatedState } {
  const logStore = new MemoryLogStore();
  logStore.append(blankEntries(1, Math.max(layout.applied, layout.lastIndex)));
  logStore.setHardState({
    term: 1 as Term,
    vote: IDS[0]!,
    commit: layout.commit as LogIndex,
  });
  if (layout.snapshotIndex > 0) {
    logStore.compact({
      index: layout.snapshotIndex as LogIndex,
      term: 1 as Term,
      confState: { voters: IDS, votersOutgoing: [], learners: [] },
    });
  }
  const state = new KvReplicatedState(
    new KvStateMachine(new MemoryStateStore()),
  );
  for (const entry of blankEntries(1, layout.applied)) state.apply(entry);
  if (layout.lastIndex < layout.applied) {
    // A lost tail: the log keeps its entries up to `lastIndex` only.
    const kept = new MemoryLogStore();
    kept.append(blankEntries(1, layout.lastIndex));
    kept.setHardState(logStore.hardState());
    kept.compact(logStore.snapshotMeta());
    return { logStore: kept, state };
  }
  return { logStore, state };
}

Deno.test("restoredHardState() raises commit to the state's applied index, capped at the log's last index", async (t) => {
  const stored: HardState = {
    term: 3 as Term,
    vote: IDS[1]!,
    commit: 116 as LogIndex,
  };
  const cases = [
    { name: "state ahead of commit", applied: 117, last: 120, commit: 117 },
    { name: "state at commit", applied: 116, last: 120, commit: 116 },
    { name: "state behind commit", applied: 110, last: 120, commit: 116 },
    { name: "log lost the state's tail", applied: 119, last: 118, commit: 118 },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const restored = restoredHardState(
        stored,
        c.applied as LogIndex,
        c.last as LogIndex,
      );
      assert.deepEqual(restored, { ...stored, commit: c.commit });
    });
  }
});

Deno.test("RaftRunner restarted with its state applied past its durable commit labels its snapshot with the state it holds (sim seed 644)", async () => {
  // Seed 644's n2: snapshot at 100, durable commit 116, state applied to 117.
  const stores = restartedStores({
    snapshotIndex: 100,
    commit: 116,
    applied: 117,
    lastIndex: 117,
  });
  const network = new InMemoryNetwork();
  const runner = new RaftRunner({
    id: IDS[0]!,
    voters: IDS,
    logStore: stores.logStore,
    stateMachine: stores.state,
    transport: network.connect(IDS[0]!),
  });
  try {
    const status = runner.status();
    // The snapshot's data is `snapshotData()`, the state at its applied index.
    assert.equal(stores.state.appliedIndex(), 117);
    assert.equal(status.snapshotIndex, stores.state.appliedIndex());
    assert.equal(status.applied, 117);
    assert.equal(status.commit, 117);
  } finally {
    await runner.stop();
  }
});

Deno.test("RaftRunner restarted with a log that lost entries its state applied takes no snapshot below the state, and one at it once caught up", async () => {
  const network = new InMemoryNetwork();
  // n1's log lost entries 4 and 5 (a corrupt tail), its state applied them.
  const lost = restartedStores({
    snapshotIndex: 2,
    commit: 3,
    applied: 5,
    lastIndex: 3,
  });
  assert.equal(lost.logStore.lastIndex(), 3);
  {
    // The restored snapshot (labelled 2) cannot hold the state at 5: its
    // data is dropped (taking one at 2 again gives it back, see
    // RaftNode.takeSnapshot), so no transfer sends it.
    const probe = restartedStores({
      snapshotIndex: 2,
      commit: 3,
      applied: 5,
      lastIndex: 3,
    });
    const runner = new RaftRunner({
      id: IDS[0]!,
      voters: IDS,
      logStore: probe.logStore,
      stateMachine: probe.state,
      transport: new InMemoryNetwork().connect(IDS[0]!),
    });
    const marker = new Uint8Array([1, 2, 3]);
    assert.equal(runner.core.takeSnapshot(2 as LogIndex, marker).data, marker);
    await runner.stop();
  }
  const n1 = startNode(network, IDS[0]!, lost);
  const nodes = [
    n1,
    ...IDS.slice(1).map((id) =>
      startNode(
        network,
        id,
        restartedStores({
          snapshotIndex: 0,
          commit: 5,
          applied: 5,
          lastIndex: 5,
        }),
      )
    ),
  ];
  try {
    // Before it catches up: its snapshot is not relabelled at 3 (below 5).
    assert.equal(n1.runner.status().snapshotIndex, 2);
    await waitFor("a leader", () => leaderOf(nodes) !== undefined);
    // Once Raft's applied index reaches the state's (entries 4 and 5 come
    // again from the leader), n1 takes a snapshot at once, at or above 5.
    await waitFor(
      () => `n1's new snapshot: ${JSON.stringify(n1.runner.status())}`,
      () => n1.runner.status().snapshotIndex > 2,
    );
    const snapshotIndex = n1.runner.status().snapshotIndex;
    assert.ok(snapshotIndex >= 5, `snapshot at ${snapshotIndex}`);
    assert.ok(snapshotIndex <= n1.state.appliedIndex());
  } finally {
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});
