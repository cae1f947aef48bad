/**
 * `client.pubsub` (issue 18). Against a small fake server: the wire shape of
 * publishes (values in Deno KV's encodings), the checks made before
 * anything is sent, the consumer's own lease (granted, kept, revoked), its
 * batched acks, its rejoin after a rebalance (the acks of a moved
 * partition fail with `StaleGenerationError`, the others apply), and the
 * push stream's rejoin when fenced. Against real node processes: topics,
 * publish, two consumers sharing a group, every record acked once.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AspenClient,
  type AspenError,
  connect,
  type ConsumerMessage,
  errorFromWire,
  GroupConfigMismatchError,
  GroupNotEmptyError,
  GroupNotFoundError,
  KvU64,
  LeaseLostError,
  MessageFinishedError,
  SequenceTooOldError,
  StaleGenerationError,
  TopicExistsError,
  TopicInUseError,
  TopicNotFoundError,
} from "../mod.ts";
import {
  type FakePubsubServer,
  startFakePubsubServer,
} from "./helpers/fake_pubsub_server.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "test-token";

async function withFake(
  fn: (server: FakePubsubServer, client: AspenClient) => Promise<void>,
): Promise<void> {
  const server = startFakePubsubServer({ token: TOKEN });
  const client = connect(server.url, { token: TOKEN, timeoutMs: 4_000 });
  try {
    await fn(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

function paths(server: FakePubsubServer, path: string) {
  return server.requests.filter((r) => r.path === path);
}

Deno.test("pubsub.publish() sends values in Deno KV's encodings, with key, headers and partition", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("orders", { partitions: 3 });
    const record = await client.pubsub.publish("orders", { id: 1 }, {
      key: "customer-7",
      headers: { source: "test" },
    });
    assert.ok("offset" in record && record.offset === 0);
    const bytes = await client.pubsub.publishBatch("orders", [
      { value: new Uint8Array([1, 2, 3]), partition: 2 },
      { value: "text" },
    ]);
    assert.equal(bytes.length, 2);
    const [first, second] = paths(server, "/v1/topics/publish");
    const one = (first!.body.messages as Record<string, unknown>[])[0]!;
    assert.equal((one.value as { encoding: string }).encoding, "v8");
    assert.equal(one.key, "customer-7");
    assert.deepEqual(one.headers, { source: "test" });
    const batch = second!.body.messages as Record<string, unknown>[];
    assert.deepEqual(batch[0]!.value, { encoding: "bytes", data: "AQID" });
    assert.equal(batch[0]!.partition, 2);
    assert.equal((batch[1]!.value as { encoding: string }).encoding, "v8");
  });
});

Deno.test("pubsub: bad input is refused before anything is sent", async () => {
  await withFake(async (server, client) => {
    const cases: [string, () => Promise<unknown>, ErrorConstructor][] = [
      ["topic name", () => client.pubsub.publish("a b", 1), TypeError],
      [
        "reserved header",
        () => client.pubsub.publish("t", 1, { headers: { "aspen-x": "1" } }),
        TypeError,
      ],
      ["a KvU64", () => client.pubsub.publish("t", new KvU64(1n)), TypeError],
      [
        "sequence without producer",
        () => client.pubsub.publish("t", 1, { sequence: 1 }),
        TypeError,
      ],
      [
        "producer without sequence",
        () =>
          client.pubsub.publishBatch("t", [{ value: 1 }], { producerId: "p" }),
        TypeError,
      ],
      ["empty batch", () => client.pubsub.publishBatch("t", []), RangeError],
      [
        "key too long",
        () => client.pubsub.publish("t", 1, { key: "k".repeat(1025) }),
        RangeError,
      ],
      [
        "partitions 0",
        () => client.pubsub.createTopic("t", { partitions: 0 }),
        RangeError,
      ],
      [
        "ackDeadlineMs 10",
        () => client.pubsub.consumer("t", "g", { ackDeadlineMs: 10 }),
        RangeError,
      ],
      [
        "member id",
        () => client.pubsub.consumer("t", "g", { memberId: "a/b" }),
        TypeError,
      ],
      [
        "reset partition",
        () =>
          client.pubsub.groups.reset("t", "g", "earliest", { partition: 256 }),
        RangeError,
      ],
    ];
    for (const [label, call, type] of cases) {
      await assert.rejects(call, type, label);
    }
    assert.equal(server.requests.length, 0);
  });
});

Deno.test("pubsub: refusals are typed errors; staleGeneration carries generation and assignment", async () => {
  await withFake(async (_server, client) => {
    await assert.rejects(
      () => client.pubsub.publish("absent", 1),
      TopicNotFoundError,
    );
    await client.pubsub.createTopic("t", { partitions: 2 });
    const again = await client.pubsub.createTopic("t", { partitions: 2 });
    assert.equal(again.created, false);
    await assert.rejects(
      () => client.pubsub.createTopic("t", { partitions: 3 }),
      TopicExistsError,
    );
    const consumer = await client.pubsub.consumer("t", "g", {
      maxDeliveries: 3,
    });
    await assert.rejects(
      () => client.pubsub.consumer("t", "g", { maxDeliveries: 4 }),
      GroupConfigMismatchError,
    );
    await consumer.close();
  });
  const error = errorFromWire(409, {
    error: {
      code: "staleGeneration",
      message: "stale",
      details: { generation: 7, assignment: { "0": "a", "1": "b" } },
    },
  }, null);
  assert.ok(error instanceof StaleGenerationError);
  assert.equal(error.generation, 7);
  const table: [string, number, typeof AspenError][] = [
    ["topicExists", 409, TopicExistsError],
    ["topicNotFound", 404, TopicNotFoundError],
    ["topicInUse", 409, TopicInUseError],
    ["groupNotFound", 404, GroupNotFoundError],
    ["groupConfigMismatch", 409, GroupConfigMismatchError],
    ["groupNotEmpty", 409, GroupNotEmptyError],
    ["sequenceTooOld", 409, SequenceTooOldError],
    ["messageFinished", 409, MessageFinishedError],
  ];
  for (const [code, status, type] of table) {
    const rebuilt = errorFromWire(status, {
      error: { code, message: `refused: ${code}`, details: {} },
    }, "http://127.0.0.1:1");
    assert.ok(rebuilt instanceof type, code);
    assert.equal(rebuilt.code, code);
    assert.equal(rebuilt.status, status);
    assert.equal(rebuilt.name, type.name);
  }
  assert.deepEqual(error.assignment, { "0": "a", "1": "b" });
});

Deno.test("pubsub.consumer() without a lease grants one of ttlMs, joins with it, and close() leaves and revokes it", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    const consumer = await client.pubsub.consumer("t", "g", { ttlMs: 5_000 });
    assert.match(consumer.memberId, /^[0-9a-f]{16}$/);
    assert.deepEqual(paths(server, "/v1/leases/grant")[0]?.body, {
      ttlMs: 5_000,
    });
    const join = paths(server, "/v1/groups/join")[0]!.body;
    assert.equal(join.lease, consumer.leaseId);
    assert.equal(join.memberId, consumer.memberId);
    // No group options named: the join takes the group as it is.
    assert.equal(join.options, undefined);
    assert.deepEqual(consumer.partitions, [0]);
    assert.deepEqual(server.leases(), [consumer.leaseId]);
    await consumer.close();
    assert.equal(paths(server, "/v1/groups/leave").length, 1);
    assert.deepEqual(server.leases(), []);
    await assert.rejects(() => consumer.fetch(1), TypeError);
  });
});

Deno.test("pubsub.consumer() with a lease id uses it and leaves it alone on close", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    const grant = await client.leases.grant(10_000);
    const consumer = await client.pubsub.consumer("t", "g", {
      lease: grant.id,
      start: "new",
    });
    assert.equal(consumer.leaseId, grant.id);
    assert.deepEqual(
      paths(server, "/v1/groups/join")[0]!.body.options,
      { start: "new" },
    );
    await consumer.close();
    assert.deepEqual(server.leases(), [grant.id]);
    assert.equal(paths(server, "/v1/leases/grant").length, 1);
  });
});

Deno.test("consumer.fetch() decodes values; acks made together go in one request; an ack of a finished message is false", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    await client.pubsub.publishBatch("t", [
      { value: { n: 1 }, key: "k", headers: { h: "v" } },
      { value: new Uint8Array([9]) },
      { value: "three" },
    ]);
    await using consumer = await client.pubsub.consumer("t", "g");
    const messages = await consumer.fetch(10);
    assert.deepEqual(messages.map((m) => m.value), [
      { n: 1 },
      new Uint8Array([9]),
      "three",
    ]);
    assert.equal(messages[0]!.key, "k");
    assert.deepEqual(messages[0]!.headers, { h: "v" });
    assert.equal(messages[0]!.delivery, 1);
    const results = await Promise.all(messages.map((m) => m.ack()));
    assert.deepEqual(results, [true, true, true]);
    const acks = paths(server, "/v1/groups/ack");
    assert.equal(acks.length, 1);
    assert.equal((acks[0]!.body.acks as unknown[]).length, 3);
    assert.equal(await messages[0]!.ack(), false);
    assert.deepEqual(server.acked("t", "g"), ["0/0", "0/1", "0/2"]);
  });
});

Deno.test("consumer: after a rebalance, acks of the moved partition fail with StaleGenerationError, the others apply, and the next fetch rejoins", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t", { partitions: 2 });
    await client.pubsub.publishBatch("t", [
      { value: "p0", partition: 0 },
      { value: "p1", partition: 1 },
    ]);
    await using consumer = await client.pubsub.consumer("t", "g", {
      memberId: "a-member",
    });
    assert.deepEqual(consumer.partitions, [0, 1]);
    const messages = await consumer.fetch(10);
    assert.equal(messages.length, 2);
    // Another member joins: partition 1 moves to it, partition 0 stays.
    server.addMember("t", "g", "b-member");
    const byPartition = new Map(messages.map((m) => [m.partition, m]));
    const [kept, moved] = await Promise.allSettled([
      byPartition.get(0)!.ack(),
      byPartition.get(1)!.ack(),
    ]);
    assert.deepEqual(kept, { status: "fulfilled", value: true });
    assert.equal(moved!.status, "rejected");
    const reason = (moved as PromiseRejectedResult).reason;
    assert.ok(reason instanceof StaleGenerationError);
    assert.equal(reason.assignment["1"], "b-member");
    assert.deepEqual(server.acked("t", "g"), ["0/0"]);
    const joinsBefore = paths(server, "/v1/groups/join").length;
    await client.pubsub.publish("t", "p0 again", { partition: 0 });
    const next = await consumer.fetch(10);
    assert.deepEqual(next.map((m) => m.value), ["p0 again"]);
    assert.equal(paths(server, "/v1/groups/join").length, joinsBefore + 1);
    assert.deepEqual(consumer.partitions, [0]);
    assert.equal(consumer.generation, 2);
  });
});

Deno.test("consumer.fetch() waits up to maxWaitMs in polls within the request deadline", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    await using consumer = await client.pubsub.consumer("t", "g");
    const waiting = consumer.fetch(5, 3_000);
    await waitFor(
      "a first poll",
      () => paths(server, "/v1/groups/fetch").length >= 1,
    );
    await client.pubsub.publish("t", "late");
    const messages = await waiting;
    assert.deepEqual(messages.map((m) => m.value), ["late"]);
    for (const poll of paths(server, "/v1/groups/fetch")) {
      // Half the client's 4,000 ms deadline at most.
      assert.ok(
        (poll.body.maxWaitMs as number) <= 2_000,
        String(poll.body.maxWaitMs),
      );
    }
  });
});

Deno.test("consumer push: messages stream in; a fenced stream rejoins and goes on with the new generation", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t", { partitions: 2 });
    await client.pubsub.publish("t", "first", { partition: 0 });
    const consumer = await client.pubsub.consumer("t", "g", {
      memberId: "a-member",
    });
    const seen: ConsumerMessage[] = [];
    const reading = (async () => {
      for await (const message of consumer) {
        seen.push(message);
        assert.equal(await message.ack(), true);
        if (seen.length === 2) break;
      }
    })();
    await waitFor("the first message", () => seen.length === 1);
    server.addMember("t", "g", "b-member");
    await waitFor(
      "a stream of the new generation",
      () =>
        paths(server, "/v1/groups/consume").some((r) =>
          r.body.generation === "2"
        ),
    );
    await client.pubsub.publish("t", "second", { partition: 0 });
    await reading;
    assert.deepEqual(seen.map((m) => m.value), ["first", "second"]);
    assert.deepEqual(seen.map((m) => m.generation), [1, 2]);
    assert.deepEqual(server.acked("t", "g"), ["0/0", "0/1"]);
    await consumer.close();
    await waitFor("the stream closed", () => server.streams() === 0);
  });
});

Deno.test("consumer.ackMany() and nack: one request, nacked messages come back with delivery 2", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    await client.pubsub.publishBatch("t", [{ value: 1 }, { value: 2 }]);
    await using consumer = await client.pubsub.consumer("t", "g");
    const [one, two] = await consumer.fetch(10);
    const before = paths(server, "/v1/groups/ack").length;
    assert.deepEqual(
      await consumer.ackMany([
        { message: one! },
        { message: two!, action: "nack", delayMs: 0 },
      ]),
      [true, true],
    );
    assert.equal(paths(server, "/v1/groups/ack").length, before + 1);
    const again = await consumer.fetch(10);
    assert.deepEqual(again.map((m) => [m.value, m.delivery]), [[2, 2]]);
    await assert.rejects(
      () => again[0]!.nack({ delayMs: -1 }),
      RangeError,
    );
  });
});

Deno.test("consumer: once its own lease is lost, fetch and push end with LeaseLostError", async () => {
  await withFake(async (server, client) => {
    await client.pubsub.createTopic("t");
    const consumer = await client.pubsub.consumer("t", "g", { ttlMs: 1_500 });
    const pushed = (async () => {
      for await (const _ of consumer) {
        // Nothing is published: the stream only waits.
      }
    })();
    server.expireLease(consumer.leaseId);
    await assert.rejects(() => pushed, LeaseLostError);
    await assert.rejects(() => consumer.fetch(1), LeaseLostError);
    await consumer.close();
    // The lease was lost: close does not try to leave with it.
    assert.equal(paths(server, "/v1/groups/leave").length, 0);
  });
});

Deno.test("client.pubsub against real nodes: topics, publish, two consumers share a group, every record acked once", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const client = connect(cluster.urls, { token });
    try {
      const created = await client.pubsub.createTopic("events", {
        partitions: 4,
      });
      assert.equal(created.created, true);
      assert.equal(created.topic.partitions, 4);
      assert.deepEqual(
        (await client.pubsub.listTopics()).map((t) => t.name),
        ["events"],
      );
      const messages = Array.from({ length: 40 }, (_, i) => ({
        value: { i },
        key: `key-${i % 8}`,
      }));
      const records = await client.pubsub.publishBatch("events", messages);
      assert.equal(records.length, 40);
      // One key, one partition.
      const partitionOf = new Map<string, number>();
      for (const [i, record] of records.entries()) {
        assert.ok("partition" in record);
        const key = messages[i]!.key;
        const known = partitionOf.get(key);
        if (known !== undefined) assert.equal(record.partition, known);
        partitionOf.set(key, record.partition);
      }
      const described = await client.pubsub.describeTopic("events");
      assert.equal(
        described.partitions.reduce((n, p) => n + p.nextOffset, 0),
        40,
      );
      const a = await client.pubsub.consumer("events", "workers");
      const b = await client.pubsub.consumer("events", "workers");
      const done = new Set<string>();
      const drain = async (consumer: typeof a) => {
        const deadline = Date.now() + 60_000;
        while (done.size < 40 && Date.now() < deadline) {
          const batch = await consumer.fetch(10, 1_000);
          for (const message of batch) {
            const id = `${message.partition}/${message.offset}`;
            assert.equal(await message.ack(), true, id);
            done.add(id);
          }
        }
      };
      await Promise.all([drain(a), drain(b)]);
      assert.equal(done.size, 40);
      const group = await client.pubsub.groups.describe("events", "workers");
      assert.equal(group.members.length, 2);
      assert.equal(group.partitions.reduce((n, p) => n + p.lag, 0), 0);
      await a.close();
      await b.close();
      const after = await client.pubsub.groups.describe("events", "workers");
      assert.equal(after.members.length, 0);
      // The consumers' own leases were revoked.
      assert.equal((await client.leases.list()).leases.length, 0);
    } finally {
      client.close();
    }
  });
});

Deno.test("client.pubsub against a real node: rebalance fences the moved partitions' acks, push, pause, terminate to the dead-letter topic, dedup and delay", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const client = connect(cluster.urls, { token: await cluster.token() });
    try {
      await client.pubsub.createTopic("work", { partitions: 6 });
      const eventual = await client.pubsub.describeTopic("work", {
        consistency: "eventual",
      });
      assert.equal(eventual.partitions.length, 6);
      await client.pubsub.publishBatch(
        "work",
        Array.from({ length: 6 }, (_, p) => ({ value: `p${p}`, partition: p })),
      );
      const a = await client.pubsub.consumer("work", "g", { memberId: "a" });
      assert.deepEqual(a.partitions, [0, 1, 2, 3, 4, 5]);
      const fetched = await a.fetch(10, 5_000);
      assert.equal(fetched.length, 6);
      const b = await client.pubsub.consumer("work", "g", { memberId: "b" });
      assert.ok(b.partitions.length > 0 && b.partitions.length < 6);
      const moved = new Set(b.partitions);
      const outcomes = await Promise.allSettled(fetched.map((m) => m.ack()));
      for (const [i, outcome] of outcomes.entries()) {
        const partition = fetched[i]!.partition;
        if (moved.has(partition)) {
          assert.equal(outcome.status, "rejected", `p${partition}`);
          assert.ok(
            (outcome as PromiseRejectedResult).reason instanceof
              StaleGenerationError,
          );
        } else {
          assert.deepEqual(outcome, { status: "fulfilled", value: true });
        }
      }
      // The moved partitions' deliveries went back: b gets them.
      const taken = await b.fetch(10, 5_000);
      assert.deepEqual(
        taken.map((m) => m.partition).sort(),
        [...moved].sort(),
      );
      assert.deepEqual(await Promise.all(taken.map((m) => m.ack())), [
        ...taken.map(() => true),
      ]);
      // a rejoins on its next fetch and keeps the rest.
      await client.pubsub.publish("work", "again", { partition: 0 });
      const owner = moved.has(0) ? b : a;
      const [again] = await owner.fetch(1, 5_000);
      assert.equal(again?.value, "again");
      await b.close();

      // Push: a owns every partition again after b left.
      await client.pubsub.groups.pause("work", "g");
      await client.pubsub.publish("work", "pushed", { partition: 3 });
      assert.deepEqual(await a.fetch(5, 500), []);
      await client.pubsub.groups.resume("work", "g");
      for await (const message of a) {
        if (message.value !== "pushed") {
          await message.ack();
          continue;
        }
        assert.equal(message.partition, 3);
        assert.equal(await message.terminate(), true);
        break;
      }
      const dlq = await client.pubsub.consumer("work.dlq.g", "reader");
      const [dead] = await dlq.fetch(1, 5_000);
      assert.equal(dead?.value, "pushed");
      assert.equal(dead?.headers["aspen-dlq-reason"], "terminated");
      assert.match(dead?.headers["aspen-source"] ?? "", /^work\/3\/\d+$/);
      await dlq.close();
      await a.close();

      // Idempotent and delayed publish.
      const first = await client.pubsub.publish("work", "once", {
        producerId: "p1",
        sequence: 1,
      });
      const retry = await client.pubsub.publish("work", "once", {
        producerId: "p1",
        sequence: 1,
      });
      assert.equal(first.duplicate, false);
      assert.equal(retry.duplicate, true);
      assert.ok("offset" in first && "offset" in retry);
      assert.deepEqual(
        [retry.partition, retry.offset],
        [first.partition, first.offset],
      );
      const delayed = await client.pubsub.publish("work", "later", {
        delayMs: 60_000,
      });
      assert.ok("scheduled" in delayed);
      assert.equal((await client.pubsub.describeTopic("work")).scheduled, 1);
    } finally {
      client.close();
    }
  });
});

Deno.test("client.pubsub on three nodes: a consumer goes on through the leader's kill -9, every record finished", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const client = connect(cluster.urls, { token: await cluster.token() });
    try {
      await client.pubsub.createTopic("jobs", { partitions: 2 });
      await client.pubsub.publishBatch(
        "jobs",
        Array.from({ length: 30 }, (_, i) => ({ value: i, key: `k${i}` })),
      );
      const consumer = await client.pubsub.consumer("jobs", "g", {
        ackDeadlineMs: 1_000,
      });
      const seen = new Set<number>();
      let killed = false;
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        if (!killed && seen.size >= 10) {
          await cluster.kill(leader);
          killed = true;
        }
        let batch: ConsumerMessage[] = [];
        try {
          batch = await consumer.fetch(5, 1_000);
        } catch {
          // No leader yet: the cluster elects one.
          continue;
        }
        for (const message of batch) seen.add(message.value as number);
        // An ack whose answer is lost may or may not have applied: the
        // group's lag below is the judge.
        await Promise.allSettled(batch.map((m) => m.ack()));
        if (seen.size === 30 && batch.length === 0) {
          const group = await client.pubsub.groups.describe("jobs", "g");
          const lag = group.partitions.reduce((n, p) => n + p.lag, 0);
          if (lag === 0) break;
        }
      }
      assert.ok(killed);
      assert.equal(seen.size, 30);
      const group = await client.pubsub.groups.describe("jobs", "g");
      assert.equal(group.partitions.reduce((n, p) => n + p.lag, 0), 0);
      await consumer.close();
    } finally {
      client.close();
    }
  });
});

Deno.test("client.pubsub on three nodes: push goes on through the leader's kill -9; idempotent publishes retried through it land once", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const client = connect(cluster.urls, { token: await cluster.token() });
    try {
      await client.pubsub.createTopic("feed");
      const publish = async (i: number) => {
        const deadline = Date.now() + 60_000;
        while (true) {
          try {
            return await client.pubsub.publish("feed", i, {
              producerId: "writer",
              sequence: i,
            });
          } catch (error) {
            // Outcome unknown or no leader: the same sequence again is safe.
            if (Date.now() > deadline) throw error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      };
      const consumer = await client.pubsub.consumer("feed", "g", {
        ackDeadlineMs: 1_000,
      });
      const seen: number[] = [];
      const reading = (async () => {
        for await (const message of consumer) {
          seen.push(message.value as number);
          await message.ack().catch(() => {});
          if (new Set(seen).size === 20) break;
        }
      })();
      for (let i = 0; i < 10; i++) await publish(i);
      await waitFor(
        "the first ten pushed",
        () => new Set(seen).size === 10,
        30_000,
      );
      await cluster.kill(leader);
      for (let i = 10; i < 20; i++) await publish(i);
      await reading;
      // Each sequence was appended once: twenty records.
      const topic = await client.pubsub.describeTopic("feed");
      assert.equal(topic.partitions[0]!.nextOffset, 20);
      assert.deepEqual(
        [...new Set(seen)].sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i),
      );
      await consumer.close();
    } finally {
      client.close();
    }
  });
});
