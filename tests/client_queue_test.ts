import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import type { AspenClient, KvEntryMaybe } from "../mod.ts";
import {
  startTestCluster,
  TEST_TOKEN,
  type TestCluster,
} from "./helpers/http_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

async function withCluster(
  fn: (cluster: TestCluster, open: () => AspenClient) => Promise<void>,
): Promise<void> {
  const cluster = await startTestCluster({ serve: true });
  const clients: AspenClient[] = [];
  // Every node's URL, a follower first: listen must find the leader itself.
  const urls = [
    cluster.follower().url!,
    ...cluster.nodes.map((n) => n.url!).filter((u) =>
      u !== cluster.follower().url
    ),
  ];
  const open = () => {
    const client = connect(urls, { token: TEST_TOKEN, timeoutMs: 4000 });
    clients.push(client);
    return client;
  };
  try {
    await fn(cluster, open);
  } finally {
    for (const client of clients) client.close();
    await cluster.stop();
  }
}

Deno.test("AspenKv.listenQueue() delivers enqueued values and acks them", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    const received: unknown[] = [];
    const listening = kv.listenQueue((value) => {
      received.push(value);
    });
    const result = await kv.enqueue({ n: 1, tags: ["a"] });
    assert.equal(result.ok, true);
    assert.match(result.versionstamp, /^[0-9a-f]{20}$/);
    await kv.enqueue(new Uint8Array([1, 2]));
    await waitFor("two deliveries", () => received.length === 2, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.deepEqual(received, [{ n: 1, tags: ["a"] }, new Uint8Array([1, 2])]);
    await waitFor("the acks", async () => (await kv.queueInfo()).length === 0, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    // The queue is invisible to Deno KV reads.
    const all = [];
    for await (const entry of kv.list({ prefix: [] })) all.push(entry);
    assert.deepEqual(all, []);
    kv.close();
    await listening; // resolves once the client closes, as Deno's does
  });
});

Deno.test("AspenKv.enqueue() with a delay is not delivered before it is ready", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    await kv.enqueue("later", { delay: 400 });
    const [waiting] = await kv.peekQueue<string>();
    assert.equal(waiting?.value, "later");
    assert.equal(waiting?.delivery, 0);
    let deliveredAtMs = 0;
    kv.listenQueue(() => {
      deliveredAtMs = Date.now();
    });
    await waitFor("the delivery", () => deliveredAtMs > 0, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    // Same process, same clock as the leader that stamped readyAtMs.
    assert.ok(
      deliveredAtMs >= waiting!.readyAtMs,
      `delivered at ${deliveredAtMs}, ready at ${waiting!.readyAtMs}`,
    );
  });
});

Deno.test("AspenKv.listenQueue() retries a throwing handler after its backoff schedule", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    const attempts: number[] = [];
    kv.listenQueue((value: string) => {
      attempts.push(Date.now());
      if (attempts.length < 3) throw new Error(`fail ${value}`);
    });
    await kv.enqueue("flaky", {
      backoffSchedule: [150, 300],
      keysIfUndelivered: [["dead", "flaky"]],
    });
    await waitFor("the third attempt", () => attempts.length === 3, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    await waitFor("the ack", async () => (await kv.queueInfo()).length === 0, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.ok(attempts[1]! - attempts[0]! >= 150, "first backoff step kept");
    assert.ok(attempts[2]! - attempts[1]! >= 300, "second backoff step kept");
    assert.equal((await kv.get(["dead", "flaky"])).value, null);
  });
});

Deno.test("AspenKv.enqueue() writes keysIfUndelivered once every delivery failed", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    let attempts = 0;
    kv.listenQueue(() => {
      attempts++;
      throw new Error("always");
    });
    await kv.enqueue({ order: 7 }, {
      backoffSchedule: [20, 20],
      keysIfUndelivered: [["dead", 1], ["dead", 2]],
    });
    await waitFor(
      "the dead letters",
      async () => (await kv.get(["dead", 2])).value !== null,
      { timeoutMs: 8000, intervalMs: 20 },
    );
    assert.equal(attempts, 3, "one delivery plus one per backoff step");
    assert.deepEqual((await kv.get(["dead", 1])).value, { order: 7 });
    assert.deepEqual((await kv.get(["dead", 2])).value, { order: 7 });
    assert.equal((await kv.queueInfo()).length, 0);
  });
});

Deno.test("AspenKv.listenQueue() redelivers a message whose consumer crashed", async () => {
  await withCluster(async (_cluster, open) => {
    const crashed = open();
    let started = false;
    const hang = Promise.withResolvers<void>();
    crashed.kv.listenQueue(async () => {
      started = true;
      await hang.promise;
    }, { leaseMs: 300 });
    const { kv } = open();
    await kv.enqueue("job", { backoffSchedule: [0] });
    await waitFor("the first delivery", () => started, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.equal((await kv.queueInfo()).leasedCount, 1);
    crashed.close(); // the consumer dies: no ack, no nack
    hang.resolve();
    const received: string[] = [];
    kv.listenQueue((value: string) => {
      received.push(value);
    });
    await waitFor("the redelivery", () => received.length === 1, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.deepEqual(received, ["job"]);
    await waitFor("the ack", async () => (await kv.queueInfo()).length === 0, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
  });
});

Deno.test("AspenKv.listenQueue() keeps delivering across a leader change", async () => {
  await withCluster(async (cluster, open) => {
    const { kv } = open();
    const received = new Set<number>();
    kv.listenQueue((n: number) => {
      received.add(n);
    });
    for (let n = 0; n < 5; n++) await kv.enqueue(n);
    for (let n = 5; n < 10; n++) await kv.enqueue(n, { delay: 600 });
    await waitFor("the first five", () => received.size >= 5, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    const leader = cluster.leader()!;
    const next = cluster.nodes.find((n) => n !== leader)!;
    await leader.transferLeader(next.id);
    assert.equal(cluster.leader()?.id, next.id);
    for (let n = 10; n < 15; n++) await kv.enqueue(n);
    await waitFor("all fifteen", () => received.size === 15, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.deepEqual([...received].sort((a, b) => a - b), [
      ...Array(15).keys(),
    ]);
    await waitFor("the acks", async () => (await kv.queueInfo()).length === 0, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
  });
});

Deno.test("AspenKv named queues have their own length, peek and concurrency limit", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    await kv.configureQueue({ queue: "mail", concurrencyMax: 1 });
    for (let n = 0; n < 3; n++) await kv.enqueue(n, { queue: "mail" });
    await kv.enqueue("other");
    assert.deepEqual(await kv.queueInfo("mail"), {
      queue: "mail",
      length: 3,
      leasedCount: 0,
      concurrencyMax: 1,
    });
    assert.deepEqual(
      (await kv.peekQueue<number>({ queue: "mail", limit: 2 })).map((m) =>
        m.value
      ),
      [0, 1],
    );
    let running = 0;
    let runningMax = 0;
    const done: number[] = [];
    kv.listenQueue(async (n: number) => {
      running++;
      runningMax = Math.max(runningMax, running);
      await new Promise((resolve) => setTimeout(resolve, 30));
      running--;
      done.push(n);
    }, { queue: "mail", concurrency: 3 });
    await waitFor("the mail queue", () => done.length === 3, {
      timeoutMs: 8000,
      intervalMs: 20,
    });
    assert.equal(runningMax, 1, "the queue's limit wins over the listener's");
    assert.equal((await kv.queueInfo()).length, 1, "the default queue waits");
    await assert.rejects(
      () => kv.enqueue(1, { queue: "not valid" }),
      /Invalid queue name/,
    );
  });
});

Deno.test("AspenKv.watch() streams entry arrays on every change", async () => {
  await withCluster(async (_cluster, open) => {
    const { kv } = open();
    await kv.set(["a"], "one");
    const stream = kv.watch<[string, string]>([["a"], ["b"]]);
    const reader = stream.getReader();
    const first = await reader.read();
    assert.deepEqual(
      first.value?.map((e: KvEntryMaybe<string>) => e.value),
      ["one", null],
    );
    const set = await kv.set(["b"], "two");
    const second = await reader.read();
    assert.deepEqual(second.value?.map((e) => e.value), ["one", "two"]);
    assert.equal(second.value?.[1].versionstamp, set.versionstamp);
    await kv.delete(["a"]);
    const third = await reader.read();
    assert.deepEqual(third.value?.map((e) => e.value), [null, "two"]);
    await reader.cancel();
  });
});
