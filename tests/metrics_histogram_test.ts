import assert from "node:assert/strict";
import { waitFor } from "./helpers/wait_for.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { Histogram } from "../src/base/histogram.ts";
import { HttpMetrics } from "../src/frontends/http/metrics.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import { type LogWriter, SyncLogWriter } from "../src/storage/log_writer.ts";
import { renderMetrics } from "../src/node/metrics.ts";
import { RaftKvBackend } from "../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { type LogIndex, nodeId } from "../src/raft/types.ts";
import { type Stage, StageRecorder } from "../src/node/write_stages.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { setOperation } from "./helpers/node_kv.ts";

/** `name{labels} value` lines of one histogram, by series (labels without `le`). */
function histogram(text: string, name: string) {
  const series = new Map<
    string,
    { buckets: [string, number][]; count: number; sum: number }
  >();
  const get = (labels: string) => {
    let s = series.get(labels);
    if (s === undefined) {
      s = { buckets: [], count: -1, sum: -1 };
      series.set(labels, s);
    }
    return s;
  };
  for (const line of text.split("\n")) {
    const match = /^(\w+?)(_bucket|_sum|_count)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labels = (match[3] ?? "").split(",").filter((l) =>
      l !== "" && !l.startsWith("le=")
    ).join(",");
    const le = /le="([^"]+)"/.exec(match[3] ?? "")?.[1];
    const value = Number(match[4]);
    if (match[2] === "_bucket") get(labels).buckets.push([le!, value]);
    else if (match[2] === "_sum") get(labels).sum = value;
    else get(labels).count = value;
  }
  return series;
}

function assertWellFormed(
  series: ReturnType<typeof histogram>,
  previous?: ReturnType<typeof histogram>,
) {
  for (const [labels, s] of series) {
    const counts = s.buckets.map(([, n]) => n);
    assert.deepEqual(counts, [...counts].sort((a, b) => a - b), labels);
    assert.equal(s.buckets.at(-1)?.[0], "+Inf");
    assert.equal(s.buckets.at(-1)?.[1], s.count, "+Inf bucket is _count");
    const before = previous?.get(labels);
    if (before === undefined) continue;
    for (const [i, [le, n]] of s.buckets.entries()) {
      assert.ok(n >= before.buckets[i]![1], `${labels} le=${le} decreased`);
    }
    assert.ok(s.sum >= before.sum && s.count >= before.count);
  }
}

/** A started one-node runner on memory storage, leading, with its KV backend. */
async function oneNodeRunner(logStore: MemoryLogStore, logWriter?: LogWriter) {
  const id = nodeId("n1");
  const state = new KvReplicatedState(
    new KvStateMachine(new MemoryStateStore()),
  );
  const runner = new RaftRunner({
    id,
    voters: [id],
    logStore,
    ...(logWriter === undefined ? {} : { logWriter }),
    stateMachine: state,
    transport: new InMemoryNetwork().connect(id),
    tickMs: 10,
    requestTimeoutMs: 10_000,
  });
  runner.start();
  const backend = new RaftKvBackend(
    runner,
    state,
    "00000000-0000-4000-8000-000000000000",
  );
  await waitFor("a leader", () => runner.status().role === "leader");
  return { runner, backend };
}

Deno.test("Histogram counts every observation cumulatively", () => {
  const h = new Histogram([1, 10]);
  for (let i = 0; i < 5000; i++) h.observe(i % 20);
  assert.deepEqual(h.lines("x"), [
    'x_bucket{le="1"} 500',
    'x_bucket{le="10"} 2750',
    'x_bucket{le="+Inf"} 5000',
    "x_sum 47500.000",
    "x_count 5000",
  ]);
  assert.deepEqual(h.lines("x", 'a="b"').at(-1), 'x_count{a="b"} 5000');
  assert.throws(() => new Histogram([2, 1]), RangeError);
});

Deno.test("aspen_log_fsync_ms counts every synced log write since start, never fewer", async () => {
  let saves = 0;
  const logStore = new MemoryLogStore();
  const inner = new SyncLogWriter(logStore);
  const counting: LogWriter = {
    save: (request) => {
      // A commit-index-only write is not synced (and not an fsync sample).
      if (request.sync !== false) saves++;
      return inner.save(request);
    },
    compact: (meta) => inner.compact(meta),
    close: () => inner.close(),
  };
  const { runner, backend } = await oneNodeRunner(logStore, counting);
  try {
    let previous: ReturnType<typeof histogram> | undefined;
    // More writes than the old code kept samples of (1024).
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 250; i++) {
        await backend.commit(setOperation(`k${round}-${i}`, "v"));
      }
      const series = histogram(renderMetrics(runner), "aspen_log_fsync_ms");
      const fsync = series.get("");
      assert.ok(fsync !== undefined, "the histogram is exposed");
      assert.equal(
        fsync.count,
        saves,
        "_count is the number of synced log writes",
      );
      assertWellFormed(series, previous);
      previous = series;
    }
    assert.ok(saves > 1500, `${saves} log writes`);
  } finally {
    backend.stopServices();
    await runner.stop();
  }
});

Deno.test("aspen_http_request_ms is cumulative per series", () => {
  const metrics = new HttpMetrics();
  let previous: ReturnType<typeof histogram> | undefined;
  for (let round = 1; round <= 3; round++) {
    for (let i = 0; i < 2000; i++) metrics.record("kv", 200, i % 30);
    const series = histogram(metrics.render(), "aspen_http_request_ms");
    assert.equal(series.get('group="kv",status="2xx"')?.count, round * 2000);
    assertWellFormed(series, previous);
    previous = series;
  }
});

Deno.test("StageRecorder follows a write through every stage, per follower, and forgets replaced entries", () => {
  const stages = new StageRecorder();
  const f1 = nodeId("f1");
  const f2 = nodeId("f2");
  const at = (n: number) => n as LogIndex;
  stages.proposed(at(5), 0);
  stages.proposed(at(6), 1);
  stages.handed(at(6), 2);
  stages.sent(f1, at(6), 2);
  stages.sent(f2, at(5), 2);
  stages.durable(at(6), 5);
  stages.acknowledged(f1, at(6), 7);
  stages.committed(at(6), 7);
  // f2 acknowledges 5 after the commit: still one sample per entry sent to it.
  stages.acknowledged(f2, at(5), 9);
  stages.acknowledged(f2, at(5), 10);
  stages.applied(at(6), 8, 9);
  const count = (stage: Stage) => stages.histogram(stage).count;
  assert.equal(count("write.wait_ready"), 2);
  assert.equal(count("write.log_write"), 2);
  assert.equal(count("write.follower_ack"), 3, "f1: 5 and 6; f2: 5");
  assert.equal(count("write.commit"), 2);
  assert.equal(count("write.wait_apply"), 2);
  assert.equal(count("write.apply"), 1, "one batch");
  assert.equal(count("write.total"), 2);
  assert.equal(stages.histogram("write.total").sum, 9 + 8);
  assert.equal(stages.histogram("write.log_write").sum, 3 + 3);
  assert.equal(stages.tracing, 0);
  // A new leader term reuses index 7: the earlier trace at 7 and above goes.
  stages.proposed(at(7), 20);
  stages.proposed(at(8), 21);
  stages.proposed(at(7), 30);
  assert.equal(stages.tracing, 1);
  stages.applied(at(7), 31, 32);
  assert.equal(stages.histogram("write.total").sum, 9 + 8 + 2);
});

Deno.test("/metrics exposes aspen_stage_ms: every write and read of a one-node runner, in each of its stages", async () => {
  const { runner, backend } = await oneNodeRunner(new MemoryLogStore());
  try {
    const before = histogram(renderMetrics(runner), "aspen_stage_ms");
    const writes = 40;
    const reads = 25;
    for (let i = 0; i < writes; i++) {
      await backend.commit(setOperation(`s${i}`, "v"));
    }
    await Promise.all(
      Array.from({ length: reads }, () => runner.readIndex()),
    );
    const after = histogram(renderMetrics(runner), "aspen_stage_ms");
    assertWellFormed(after, before);
    const delta = (stage: string) =>
      after.get(`stage="${stage}"`)!.count -
      (before.get(`stage="${stage}"`)?.count ?? 0);
    // Leader tasks may propose too: at least every write, never fewer.
    for (
      const stage of [
        "write.wait_ready",
        "write.log_write",
        "write.commit",
        "write.total",
      ]
    ) {
      assert.ok(delta(stage) >= writes, `${stage}: ${delta(stage)}`);
    }
    assert.equal(delta("write.log_write"), delta("write.total"));
    assert.equal(delta("write.follower_ack"), 0, "no followers");
    assert.equal(delta("read.confirm"), reads);
    assert.equal(delta("read.total"), reads);
  } finally {
    backend.stopServices();
    await runner.stop();
  }
});
