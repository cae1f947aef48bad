/**
 * The service host runs leader tasks only while this node leads, bounds
 * their proposals, and leaves a deposed leader's tasks unable to propose.
 */
import assert from "node:assert/strict";
import {
  type LeaderTask,
  LeaderTaskBusyError,
  type LeaderTaskContext,
  LeaderTaskStoppedError,
} from "../src/state/leader_task.ts";
import { ServiceHost } from "../src/node/service_host.ts";
import { validateProposalRate } from "../src/node/proposal_rate.ts";
import { encodeKvEntry as encodeCommand } from "../src/services/entries.ts";
import { decodeApplyResult } from "../src/services/replicated_state.ts";
import type { KvApplyResult, KvCommand } from "../src/model/types.ts";
import { nodeId } from "../src/raft/types.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { RaftKvBackend } from "../src/node/raft_kv_backend.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { FakeLeadership, ManualTime, settle } from "./helpers/manual_time.ts";

/** A task that proposes `count` at once when started, then one every `periodMs`. */
class ProbeTask implements LeaderTask<string, string> {
  readonly name: string;
  readonly #burst: number;
  readonly #periodMs: number;
  context: LeaderTaskContext<string, string> | null = null;
  starts = 0;
  stops = 0;
  readonly errors: Error[] = [];

  constructor(name: string, burst: number, periodMs: number) {
    this.name = name;
    this.#burst = burst;
    this.#periodMs = periodMs;
  }
  start(context: LeaderTaskContext<string, string>): void {
    this.context = context;
    this.starts++;
    for (let i = 0; i < this.#burst; i++) this.fire(`burst-${i}`);
    context.scheduler.every(this.#periodMs, () => this.fire("tick"));
  }
  stop(): void {
    this.stops++;
  }
  fire(label: string): void {
    this.context?.propose(label).catch((error) => this.errors.push(error));
  }
}

function hostOf(
  leadership: FakeLeadership,
  time: ManualTime,
  proposeLocal: (data: Uint8Array) => Promise<Uint8Array>,
): ServiceHost {
  return new ServiceHost({
    leadership,
    proposeLocal,
    clock: time,
    scheduler: time,
    checkIntervalMs: 10,
  });
}

const text = new TextEncoder();
const untext = new TextDecoder();

Deno.test("ServiceHost starts a leader task on election and stops it on step-down: no proposal after", async () => {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  const proposed: string[] = [];
  const host = hostOf(leadership, time, (data) => {
    proposed.push(untext.decode(data));
    return Promise.resolve(data);
  });
  const task = new ProbeTask("probe", 0, 20);
  host.add({
    task,
    encode: (c: string) => text.encode(c),
    decode: (r) => untext.decode(r as Uint8Array),
    rate: { perSecond: 1000, burst: 10, inFlightMax: 4 },
  });
  host.start();
  await time.advance(200);
  assert.equal(task.starts, 0, "a follower runs no leader task");
  assert.deepEqual(proposed, []);

  leadership.leader = true;
  for (const listener of leadership.listeners) listener(); // an entry applied
  assert.equal(task.starts, 1, "started as soon as leadership is seen");
  await time.advance(100);
  assert.ok(proposed.length >= 4, `${proposed.length} proposals while leading`);
  assert.equal(host.stats("probe").running, true);

  leadership.leader = false;
  await time.advance(10); // the host's periodic check
  assert.equal(task.stops, 1, "stopped on step-down");
  assert.equal(host.stats("probe").running, false);
  const before = proposed.length;
  const stale = task.context!;
  await assert.rejects(stale.propose("late"), LeaderTaskStoppedError);
  assert.equal(stale.signal.aborted, true);
  await time.advance(1000);
  assert.equal(proposed.length, before, "no proposals after step-down");
  assert.equal(time.pending, 1, "only the host's own check timer is left");

  host.stop();
  assert.equal(time.pending, 0, "shutdown cancels every timer");
});

Deno.test("ServiceHost restarts tasks on a new term and stops them on shutdown", async () => {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  const host = hostOf(leadership, time, (data) => Promise.resolve(data));
  const task = new ProbeTask("probe", 0, 1000);
  host.add({ task, encode: (c: string) => text.encode(c), decode: String });
  leadership.leader = true;
  host.start();
  assert.equal(task.starts, 1);
  const first = task.context!;
  leadership.currentTerm = 2; // lost and regained leadership between checks
  await time.advance(10);
  assert.equal(task.stops, 1);
  assert.equal(task.starts, 2);
  await assert.rejects(first.propose("stale term"), LeaderTaskStoppedError);
  host.stop();
  assert.equal(task.stops, 2, "shutdown stops the running task");
  assert.equal(host.stats("probe").running, false);
});

Deno.test("ServiceHost bounds a task's proposals by its token bucket", async () => {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  const proposedAt: number[] = [];
  const host = hostOf(leadership, time, (data) => {
    proposedAt.push(time.nowMs);
    return Promise.resolve(data);
  });
  // 200 proposals asked at once; 10 per second with bursts of 2.
  const task = new ProbeTask("flood", 200, 1_000_000);
  host.add({
    task,
    encode: (c: string) => text.encode(c),
    decode: String,
    rate: { perSecond: 10, burst: 2, inFlightMax: 500 },
  });
  leadership.leader = true;
  host.start();
  await settle();
  assert.equal(proposedAt.length, 2, "the burst goes at once");
  await time.advance(1000);
  assert.ok(
    proposedAt.length >= 11 && proposedAt.length <= 12,
    `${proposedAt.length} proposals in the first second (bound: 2 + 10)`,
  );
  await time.advance(4000);
  assert.ok(
    proposedAt.length >= 51 && proposedAt.length <= 52,
    `${proposedAt.length} proposals in five seconds (bound: 2 + 50)`,
  );
  // No window of one second holds more than burst + rate.
  for (const at of proposedAt) {
    const inWindow = proposedAt.filter((t) => t >= at && t < at + 1000);
    assert.ok(inWindow.length <= 12, `${inWindow.length} within 1 s of ${at}`);
  }
  host.stop();
  await settle();
  const stopped = task.errors.filter((e) =>
    e instanceof LeaderTaskStoppedError
  );
  assert.equal(
    stopped.length,
    200 - proposedAt.length,
    "waiting proposals fail once the task stops",
  );
});

Deno.test("ServiceHost grants no extra burst when leadership changes", async () => {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  let proposals = 0;
  const host = hostOf(leadership, time, (data) => {
    proposals++;
    return Promise.resolve(data);
  });
  const task = new ProbeTask("flapping", 5, 1_000_000);
  host.add({
    task,
    encode: (c: string) => text.encode(c),
    decode: String,
    rate: { perSecond: 1, burst: 2, inFlightMax: 100 },
  });
  leadership.leader = true;
  host.start();
  await settle();
  assert.equal(proposals, 2, "the first term's burst");
  for (let term = 2; term <= 6; term++) {
    leadership.currentTerm = term; // lost and won again
    await time.advance(10);
  }
  assert.equal(task.starts, 6);
  assert.equal(proposals, 2, "new terms start from the same bucket");
  await time.advance(1000);
  assert.equal(proposals, 3, "one more token after a second");
  host.stop();
});

Deno.test("ServiceHost refuses proposals beyond a task's in-flight bound", async () => {
  const time = new ManualTime();
  const leadership = new FakeLeadership();
  let started = 0;
  const host = hostOf(leadership, time, () => {
    started++;
    return new Promise<Uint8Array>(() => {}); // never applies
  });
  const task = new ProbeTask("stuck", 5, 1_000_000);
  host.add({
    task,
    encode: (c: string) => text.encode(c),
    decode: String,
    rate: { perSecond: 1000, burst: 100, inFlightMax: 3 },
  });
  leadership.leader = true;
  host.start();
  await settle();
  assert.equal(started, 3);
  assert.equal(task.errors.length, 2);
  assert.ok(task.errors.every((e) => e instanceof LeaderTaskBusyError));
  assert.equal(host.stats("stuck").refused, 2);
  host.stop();
});

Deno.test("validateProposalRate() refuses non-positive bounds", () => {
  assert.throws(
    () => validateProposalRate({ perSecond: 0, burst: 1, inFlightMax: 1 }),
    RangeError,
  );
  assert.throws(
    () => validateProposalRate({ perSecond: 1, burst: 1.5, inFlightMax: 1 }),
    RangeError,
  );
  assert.throws(
    () => validateProposalRate({ perSecond: 1, burst: 1, inFlightMax: 0 }),
    RangeError,
  );
});

/** Proposes a harmless KV command every period while it runs. */
class ExpireProbe implements LeaderTask<KvCommand, KvApplyResult> {
  readonly name = "test.probe";
  start(context: LeaderTaskContext<KvCommand, KvApplyResult>): void {
    context.scheduler.every(20, () => {
      context.propose({
        type: "expire",
        timestampMs: context.clock.wallMs(),
        keyCountMax: 1,
      }).catch(() => {});
    });
  }
  stop(): void {}
}

Deno.test("a real node's leader tasks run on the leader only and stop proposing after a leadership transfer", async () => {
  const ids = ["n1", "n2", "n3"].map(nodeId);
  const network = new InMemoryNetwork();
  const nodes = ids.map((id) => {
    const state = new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore()),
    );
    const runner = new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 2000,
    });
    const backend = new RaftKvBackend(
      runner,
      state,
      "00000000-0000-4000-8000-000000000000",
    );
    backend.services.add({
      task: new ExpireProbe(),
      encode: encodeCommand,
      decode: decodeApplyResult,
    });
    runner.start();
    backend.startServices();
    return { id, runner, backend };
  });
  const leader = () => nodes.find((n) => n.runner.status().role === "leader");
  try {
    await waitFor("a leader", () => leader() !== undefined, 10_000);
    const first = leader()!;
    await waitFor(
      "the leader's probe to propose",
      () => first.backend.services.stats("test.probe").proposals >= 3,
      10_000,
    );
    for (const name of ["kv.expiry", "queues.dispatch", "test.probe"]) {
      assert.equal(first.backend.services.stats(name).running, true, name);
    }
    assert.match(
      first.backend.services.renderMetrics(),
      /aspen_leader_task_running\{task="test\.probe"\} 1\n/,
    );
    for (const node of nodes.filter((n) => n !== first)) {
      assert.equal(node.backend.services.stats("test.probe").starts, 0);
      assert.equal(node.backend.services.stats("test.probe").proposals, 0);
    }
    const target = nodes.find((n) => n !== first)!;
    first.runner.transferLeader(target.id);
    await waitFor(
      "the target to lead and the old leader's tasks to stop",
      () =>
        target.runner.status().role === "leader" &&
        !first.backend.services.stats("test.probe").running,
      10_000,
    );
    const frozen = first.backend.services.stats("test.probe").proposals;
    await waitFor(
      "the new leader's probe to propose",
      () => target.backend.services.stats("test.probe").proposals >= 3,
      10_000,
    );
    if (first.runner.status().role !== "leader") {
      assert.equal(
        first.backend.services.stats("test.probe").proposals,
        frozen,
        "the old leader proposed nothing after stepping down",
      );
    }
  } finally {
    for (const node of nodes) node.backend.stopServices();
    await Promise.all(nodes.map((n) => n.runner.stop()));
  }
});
