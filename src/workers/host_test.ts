import assert from "node:assert/strict";
import { deliveryLine, WorkerHost } from "./host.ts";

Deno.test("WorkerHost.run() starts every worker, stops them all when its signal aborts, a line each", async () => {
  const events: string[] = [];
  const lines: string[] = [];
  const host = new WorkerHost({
    log: (line) => lines.push(line),
    signals: false,
    nowMs: () => 0,
  });
  for (const name of ["a", "b"]) {
    host.add({
      kind: "webhooks",
      name,
      start: () => events.push(`start ${name}`),
      stop: async () => {
        await Promise.resolve();
        events.push(`stop ${name}`);
      },
    });
  }
  assert.throws(
    () => host.add({ kind: "x", name: "a", start() {}, stop: async () => {} }),
    TypeError,
  );
  const abort = new AbortController();
  const running = host.run(abort.signal);
  assert.deepEqual(events, ["start a", "start b"]);
  abort.abort();
  await running;
  assert.deepEqual(events, ["start a", "start b", "stop a", "stop b"]);
  assert.deepEqual(lines, [
    "1970-01-01T00:00:00.000Z info worker=a webhooks worker started",
    "1970-01-01T00:00:00.000Z info worker=b webhooks worker started",
    "1970-01-01T00:00:00.000Z info worker=a stopped",
    "1970-01-01T00:00:00.000Z info worker=b stopped",
  ]);
  await assert.rejects(() => host.run(), RangeError);
});

Deno.test("deliveryLine() names the hook, event, attempt, outcome and next attempt, and quotes the error", () => {
  const line = deliveryLine("w1", {
    hook: "00000000000000aa",
    name: "orders",
    event: "17.2",
    attempt: 3,
    replay: true,
    outcome: "failed",
    status: 503,
    latencyMs: 12,
    error: "Service down",
    nextAttemptAtMs: 60_000,
    disable: null,
  }, 0);
  assert.equal(
    line,
    '1970-01-01T00:00:00.000Z delivery worker=w1 hook=orders id=00000000000000aa event=17.2 attempt=3 outcome=failed status=503 latency=12ms replay next=1970-01-01T00:01:00.000Z error="Service down"',
  );
  const blocked = deliveryLine("w1", {
    hook: "00000000000000aa",
    name: "orders",
    event: "17.2",
    attempt: 1,
    replay: false,
    outcome: "blocked",
    status: null,
    latencyMs: 0,
    error: null,
    nextAttemptAtMs: null,
    disable: "targetBlocked",
  }, 0);
  assert.match(blocked, /status=- latency=0ms disabled=targetBlocked$/);
});
