/**
 * The `/v1/topics/...` and `/v1/groups/...` routes on a real node (in this
 * process, SQLite storage, its HTTP listener on 127.0.0.1, the pub/sub
 * leader task running): topics created, listed, described and deleted;
 * keyed publishes where Kafka's partitioner puts them, batches, delayed and
 * idempotent publishes; join, fetch (also waiting), ack, describe, a
 * rebalance fencing an ack with 409 `staleGeneration` and its details;
 * the SSE consume stream; bad input answered with a typed 4xx and nothing
 * changed; every route behind the bearer check.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode, type ServingNode } from "../src/server/serve.ts";
import { ROUTES } from "../src/protocol/http_api.ts";
import { PUBSUB_LIMITS } from "../src/protocol/http_api_pubsub.ts";
import { provisionLocalCluster } from "./helpers/node_plan.ts";
import { SseReader } from "./helpers/sse_reader.ts";
import { waitFor, waitForValue } from "./helpers/wait_for.ts";

const HOST = "127.0.0.1";
const TOKEN = "pubsub-test-token-0123456789";

/** A node serving HTTP, and requests to it. */
interface Api {
  readonly serving: ServingNode;
  post(
    path: string,
    body: unknown,
    token?: string | null,
  ): Promise<{ status: number; body: Record<string, unknown> }>;
  /** POST that must answer 200; its body. */
  ok(path: string, body: unknown): Promise<Record<string, unknown>>;
}

async function withNode(
  fn: (api: Api) => Promise<void>,
  config: { readonly streamsPerTokenMax?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-pubsub-" });
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: dir,
      httpPort: freeTcpPorts(HOST, 1)[0]!,
      quicPort: 0,
      tickMs: 20,
      tokens: [TOKEN],
      ...config,
    }),
    { log: () => {} },
  );
  const post: Api["post"] = async (path, body, token = TOKEN) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
    };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const response = await fetch(`${serving.url}${path}`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const api: Api = {
    serving,
    post,
    ok: async (path, body) => {
      const answer = await post(path, body);
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer)}`);
      return answer.body;
    },
  };
  try {
    await waitFor(
      "the node to lead",
      () => serving.node.runner.status().role === "leader",
      20_000,
    );
    await fn(api);
  } finally {
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

function text(value: string): { encoding: "bytes"; data: string } {
  return { encoding: "bytes", data: btoa(value) };
}

function untext(value: unknown): string {
  const wire = value as { encoding: string; data: string };
  assert.equal(wire.encoding, "bytes");
  return atob(wire.data);
}

async function grantLease(api: Api): Promise<string> {
  const lease = await api.ok(ROUTES.leaseGrant, { ttlMs: 60_000 });
  return lease.id as string;
}

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("POST /v1/topics/* creates, lists, describes and deletes topics", async () => {
  await withNode(async (api) => {
    const created = await api.ok(ROUTES.topicCreate, {
      name: "orders",
      partitions: 3,
      retention: { maxMessages: 1000 },
      dedupWindowMs: 60_000,
    }) as Json;
    assert.equal(created.created, true);
    assert.equal(created.topic.name, "orders");
    assert.equal(created.topic.partitions, 3);
    assert.deepEqual(created.topic.retention, { maxMessages: 1000 });
    assert.equal(created.topic.dedupWindowMs, 60_000);
    assert.equal(typeof created.topic.createdAtMs, "number");
    const again = await api.ok(ROUTES.topicCreate, {
      name: "orders",
      partitions: 3,
      retention: { maxMessages: 1000 },
      dedupWindowMs: 60_000,
    }) as Json;
    assert.deepEqual(again, { ...created, created: false });
    const other = await api.post(ROUTES.topicCreate, {
      name: "orders",
      partitions: 4,
    });
    assert.equal(other.status, 409);
    assert.equal((other.body as Json).error.code, "topicExists");
    await api.ok(ROUTES.topicCreate, { name: "audit" });

    const listed = await api.ok(ROUTES.topicList, {}) as Json;
    assert.deepEqual(listed.topics.map((t: Json) => t.name), [
      "audit",
      "orders",
    ]);
    const eventual = await api.post(
      `${ROUTES.topicList}?consistency=eventual`,
      {},
    );
    assert.deepEqual(eventual.body, listed);

    await api.ok(ROUTES.topicPublish, {
      topic: "orders",
      messages: [{ value: text("a"), partition: 1 }],
    });
    const described = await api.ok(ROUTES.topicDescribe, {
      name: "orders",
    }) as Json;
    assert.equal(described.name, "orders");
    assert.deepEqual(described.partitions, [
      { partition: 0, firstOffset: 0, nextOffset: 0, bytes: 0 },
      { partition: 1, firstOffset: 0, nextOffset: 1, bytes: 1 },
      { partition: 2, firstOffset: 0, nextOffset: 0, bytes: 0 },
    ]);
    assert.deepEqual(described.groups, []);
    assert.equal(described.scheduled, 0);

    const deleted = await api.ok(ROUTES.topicDelete, { name: "orders" });
    assert.deepEqual(deleted, { deleted: true });
    const gone = await api.post(ROUTES.topicDescribe, { name: "orders" });
    assert.equal(gone.status, 404);
    assert.equal((gone.body as Json).error.code, "topicNotFound");
    const missing = await api.post(ROUTES.topicDelete, { name: "never" });
    assert.equal(missing.status, 404);
    assert.equal((missing.body as Json).error.code, "topicNotFound");
    const publishMissing = await api.post(ROUTES.topicPublish, {
      topic: "never",
      messages: [{ value: text("x") }],
    });
    assert.equal(publishMissing.status, 404);
    assert.equal((publishMissing.body as Json).error.code, "topicNotFound");
  });
});

Deno.test("POST /v1/topics/publish puts keyed messages where Kafka's partitioner does, batches in order, and round-robins the rest", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "k", partitions: 6 });
    // Kafka's murmur2 test vectors (positive, mod 6).
    const expected: [string, number][] = [
      ["21", 0],
      ["foobar", 0],
      ["a-little-bit-long-string", 2],
      ["a-little-bit-longer-string", 5],
      ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 5],
      ["abc", 3],
    ];
    const keyed = await api.ok(ROUTES.topicPublish, {
      topic: "k",
      messages: expected.map(([key]) => ({ key, value: text(key) })),
    }) as Json;
    assert.deepEqual(
      keyed.records.map((r: Json) => r.partition),
      expected.map(([, p]) => p),
    );
    // Offsets contiguous per partition, in batch order.
    assert.deepEqual(keyed.records.map((r: Json) => r.offset), [
      0,
      1,
      0,
      0,
      1,
      0,
    ]);
    assert.ok(keyed.records.every((r: Json) => r.duplicate === false));
    const unkeyed = await api.ok(ROUTES.topicPublish, {
      topic: "k",
      messages: Array.from({ length: 6 }, (_, i) => ({ value: text(`u${i}`) })),
    }) as Json;
    // Round robin: six unkeyed messages cover the six partitions.
    assert.deepEqual(
      [...new Set(unkeyed.records.map((r: Json) => r.partition))].sort(),
      [0, 1, 2, 3, 4, 5],
    );
    const explicit = await api.ok(ROUTES.topicPublish, {
      topic: "k",
      messages: [{ key: "abc", partition: 4, value: text("e") }],
    }) as Json;
    assert.equal(explicit.records[0].partition, 4);
    const described = await api.ok(ROUTES.topicDescribe, { name: "k" }) as Json;
    const total = described.partitions.reduce(
      (sum: number, p: Json) => sum + p.nextOffset,
      0,
    );
    assert.equal(total, 13);
    const outOfRange = await api.post(ROUTES.topicPublish, {
      topic: "k",
      messages: [{ partition: 6, value: text("x") }],
    });
    assert.equal(outOfRange.status, 400, JSON.stringify(outOfRange.body));
    assert.equal((outOfRange.body as Json).error.code, "invalid");
  });
});

Deno.test("POST /v1/topics/publish with a producer dedups inside the window and refuses an old sequence past it", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "idem", partitions: 1 });
    const first = await api.ok(ROUTES.topicPublish, {
      topic: "idem",
      producerId: "p1",
      messages: [
        { sequence: 1, value: text("one") },
        { sequence: 2, value: text("two") },
      ],
    }) as Json;
    assert.deepEqual(first.records, [
      { partition: 0, offset: 0, duplicate: false },
      { partition: 0, offset: 1, duplicate: false },
    ]);
    const retried = await api.ok(ROUTES.topicPublish, {
      topic: "idem",
      producerId: "p1",
      messages: [
        { sequence: 2, value: text("two") },
        { sequence: 3, value: text("three") },
      ],
    }) as Json;
    assert.deepEqual(retried.records, [
      { partition: 0, offset: 1, duplicate: true },
      { partition: 0, offset: 2, duplicate: false },
    ]);
    const described = await api.ok(ROUTES.topicDescribe, {
      name: "idem",
    }) as Json;
    assert.equal(described.partitions[0].nextOffset, 3);

    // A window of 0: every sequence has left it at once.
    await api.ok(ROUTES.topicCreate, { name: "nowindow", dedupWindowMs: 0 });
    await api.ok(ROUTES.topicPublish, {
      topic: "nowindow",
      producerId: "p",
      messages: [{ sequence: 5, value: text("five") }],
    });
    const old = await api.post(ROUTES.topicPublish, {
      topic: "nowindow",
      producerId: "p",
      messages: [{ sequence: 6, value: text("six") }, {
        sequence: 5,
        value: text("five"),
      }],
    });
    assert.equal(old.status, 409, JSON.stringify(old.body));
    assert.equal((old.body as Json).error.code, "sequenceTooOld");
    const after = await api.ok(ROUTES.topicDescribe, {
      name: "nowindow",
    }) as Json;
    // The whole batch was refused: sequence 6 was not appended either.
    assert.equal(after.partitions[0].nextOffset, 1);
  });
});

Deno.test("POST /v1/topics/publish holds a delayed message until it is due, then the leader appends it", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "later" });
    const before = Date.now();
    const published = await api.ok(ROUTES.topicPublish, {
      topic: "later",
      messages: [{ value: text("soon"), delayMs: 400 }],
    }) as Json;
    const record = published.records[0];
    assert.equal(typeof record.scheduled, "string");
    assert.equal(record.duplicate, false);
    assert.ok(record.deliverAtMs >= before + 400);
    const lease = await grantLease(api);
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "later",
      group: "g",
      lease,
    }) as Json;
    const fetched = await waitForValue("the delayed message", async () => {
      const answer = await api.ok(ROUTES.groupFetch, {
        topic: "later",
        group: "g",
        memberId: joined.memberId,
        generation: joined.generation,
      }) as Json;
      return answer.messages.length > 0 ? answer.messages : null;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    assert.equal(fetched.length, 1);
    assert.equal(untext(fetched[0].value), "soon");
    // Never early: appended at or after its time.
    assert.ok(fetched[0].publishedAtMs >= record.deliverAtMs);
    const described = await api.ok(ROUTES.topicDescribe, {
      name: "later",
    }) as Json;
    assert.equal(described.scheduled, 0);
  });
});

Deno.test("POST /v1/groups/* joins, fetches, acks and describes; a rebalance fences the old owner's ack with 409 staleGeneration", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "t", partitions: 4 });
    await api.ok(ROUTES.topicPublish, {
      topic: "t",
      messages: Array.from({ length: 8 }, (_, i) => ({
        partition: i % 4,
        value: text(`m${i}`),
        headers: { n: String(i) },
      })),
    });
    const leaseA = await grantLease(api);
    const a = await api.ok(ROUTES.groupJoin, {
      topic: "t",
      group: "g",
      memberId: "a",
      lease: leaseA,
      options: { ackDeadlineMs: 60_000 },
    }) as Json;
    assert.equal(a.memberId, "a");
    assert.deepEqual(a.partitions, [0, 1, 2, 3]);
    const rejoin = await api.ok(ROUTES.groupJoin, {
      topic: "t",
      group: "g",
      memberId: "a",
      lease: leaseA,
    }) as Json;
    assert.deepEqual(rejoin, a);
    const mismatch = await api.post(ROUTES.groupJoin, {
      topic: "t",
      group: "g",
      memberId: "a",
      lease: leaseA,
      options: { ackDeadlineMs: 5_000 },
    });
    assert.equal(mismatch.status, 409);
    assert.equal((mismatch.body as Json).error.code, "groupConfigMismatch");

    const fetched = await api.ok(ROUTES.groupFetch, {
      topic: "t",
      group: "g",
      memberId: "a",
      generation: a.generation,
      batch: 8,
    }) as Json;
    assert.equal(fetched.generation, a.generation);
    assert.equal(fetched.messages.length, 8);
    const seen = fetched.messages.map((m: Json) =>
      `${m.partition}/${m.offset}/${untext(m.value)}/${m.headers.n}`
    ).sort();
    assert.deepEqual(
      seen,
      Array.from(
        { length: 8 },
        (_, i) => `${i % 4}/${Math.floor(i / 4)}/m${i}/${i}`,
      ).sort(),
    );
    assert.ok(fetched.messages.every((m: Json) => m.delivery === 1));
    const first = fetched.messages.find((m: Json) =>
      m.partition === 0 && m.offset === 0
    );
    const acked = await api.ok(ROUTES.groupAck, {
      topic: "t",
      group: "g",
      memberId: "a",
      generation: a.generation,
      acks: [{ partition: 0, offset: 0, action: "ack" }],
    }) as Json;
    assert.deepEqual(acked.results, [{ partition: 0, offset: 0, ok: true }]);
    assert.ok(first !== undefined);
    const twice = await api.ok(ROUTES.groupAck, {
      topic: "t",
      group: "g",
      memberId: "a",
      generation: a.generation,
      acks: [{ partition: 0, offset: 0, action: "ack" }],
    }) as Json;
    assert.deepEqual(twice.results, [{
      partition: 0,
      offset: 0,
      ok: false,
      reason: "finished",
    }]);
    const described = await api.ok(ROUTES.groupDescribe, {
      topic: "t",
      group: "g",
    }) as Json;
    assert.equal(described.generation, a.generation);
    assert.deepEqual(described.members, [{
      id: "a",
      lease: leaseA,
      partitions: [0, 1, 2, 3],
    }]);
    const p0 = described.partitions.find((p: Json) => p.partition === 0);
    assert.equal(p0.cursor, 1);
    assert.equal(p0.nextOffset, 2);
    assert.equal(p0.lag, 1);
    assert.equal(p0.pending, 1);
    const listed = await api.ok(ROUTES.groupList, { topic: "t" }) as Json;
    assert.deepEqual(listed.groups.map((g: Json) => [g.group, g.members]), [
      ["g", 1],
    ]);
    const topic = await api.ok(ROUTES.topicDescribe, { name: "t" }) as Json;
    assert.deepEqual(topic.groups, ["g"]);
    const inUse = await api.post(ROUTES.topicDelete, { name: "t" });
    assert.equal(inUse.status, 409);
    assert.equal((inUse.body as Json).error.code, "topicInUse");

    // A second member takes some partitions; acks of A on them are fenced.
    const b = await api.ok(ROUTES.groupJoin, {
      topic: "t",
      group: "g",
      memberId: "b",
      lease: await grantLease(api),
    }) as Json;
    assert.ok(b.generation > a.generation);
    assert.ok(b.partitions.length > 0, "b got partitions (else rename it)");
    const moved = b.partitions[0] as number;
    const fenced = await api.post(ROUTES.groupAck, {
      topic: "t",
      group: "g",
      memberId: "a",
      generation: a.generation,
      acks: [{ partition: moved, offset: 1, action: "ack" }],
    });
    assert.equal(fenced.status, 409, JSON.stringify(fenced.body));
    const error = (fenced.body as Json).error;
    assert.equal(error.code, "staleGeneration");
    assert.equal(error.details.generation, b.generation);
    assert.equal(error.details.assignment[String(moved)], "b");
    const after = await api.ok(ROUTES.groupDescribe, {
      topic: "t",
      group: "g",
    }) as Json;
    const movedRow = after.partitions.find((p: Json) => p.partition === moved);
    assert.equal(movedRow.owner, "b");
    // Nothing changed: the fenced ack finished nothing.
    assert.equal(movedRow.cursor, moved === 0 ? 1 : 0);

    const left = await api.ok(ROUTES.groupLeave, {
      topic: "t",
      group: "g",
      memberId: "b",
    }) as Json;
    assert.equal(left.left, true);
    assert.ok(left.generation > b.generation);
  });
});

Deno.test("POST /v1/topics/publish and /v1/groups/fetch speak MessagePack: values are binary", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "bin" });
    const msgpack = async (path: string, body: unknown) => {
      const response = await fetch(`${api.serving.url}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/msgpack",
          accept: "application/msgpack",
        },
        body: encode(body),
      });
      assert.equal(response.status, 200);
      assert.match(
        response.headers.get("content-type") ?? "",
        /^application\/msgpack/,
      );
      return decode(new Uint8Array(await response.arrayBuffer())) as Json;
    };
    const value = new Uint8Array([0, 1, 2, 255]);
    const published = await msgpack(ROUTES.topicPublish, {
      topic: "bin",
      messages: [{ value: { encoding: "bytes", data: value } }, {
        // A V8-serialized value, kept as its bytes and encoding.
        value: { encoding: "v8", data: new Uint8Array([0xff, 0x0f, 0x54]) },
      }],
    });
    assert.deepEqual(published.records.map((r: Json) => r.offset), [0, 1]);
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "bin",
      group: "g",
      lease: await grantLease(api),
    }) as Json;
    const fetched = await msgpack(ROUTES.groupFetch, {
      topic: "bin",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
    });
    assert.deepEqual(fetched.messages.map((m: Json) => m.value), [
      { encoding: "bytes", data: value },
      { encoding: "v8", data: new Uint8Array([0xff, 0x0f, 0x54]) },
    ]);
  });
});

Deno.test("POST /v1/groups/fetch with maxWaitMs answers once a message is published", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "w" });
    const lease = await grantLease(api);
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "w",
      group: "g",
      lease,
    }) as Json;
    assert.match(joined.memberId, /^[0-9a-f]{16}$/);
    const empty = await api.ok(ROUTES.groupFetch, {
      topic: "w",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
      maxWaitMs: 50,
    }) as Json;
    assert.deepEqual(empty.messages, []);
    const waiting = api.ok(ROUTES.groupFetch, {
      topic: "w",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
      maxWaitMs: PUBSUB_LIMITS.fetchWaitMsMax,
    });
    await api.ok(ROUTES.topicPublish, {
      topic: "w",
      messages: [{ value: text("late") }],
    });
    const answer = await waiting as Json;
    assert.equal(answer.messages.length, 1);
    assert.equal(untext(answer.messages[0].value), "late");
    const tooLong = await api.post(ROUTES.groupFetch, {
      topic: "w",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
      maxWaitMs: PUBSUB_LIMITS.fetchWaitMsMax + 1,
    });
    assert.equal(tooLong.status, 400);
  });
});

Deno.test("GET /v1/groups/consume streams deliveries as SSE and refuses a stranger with 409 before any frame", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "push", partitions: 2 });
    await api.ok(ROUTES.topicPublish, {
      topic: "push",
      messages: [{ value: text("before"), partition: 0 }],
    });
    const lease = await grantLease(api);
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "push",
      group: "g",
      memberId: "m",
      lease,
    }) as Json;
    const url = (member: string) =>
      `${api.serving.url}${ROUTES.groupConsume}?topic=push&group=g&member=${member}&generation=${joined.generation}`;
    const stranger = await fetch(url("nobody"), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(stranger.status, 409);
    assert.equal((await stranger.json()).error.code, "staleGeneration");
    const unauthenticated = await fetch(url("m"));
    assert.equal(unauthenticated.status, 401);
    await unauthenticated.body?.cancel();

    const response = await fetch(url("m"), {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /^text\/event-stream/,
    );
    const reader = new SseReader(response);
    try {
      const firstFrame = await reader.next(20_000);
      assert.equal(firstFrame?.event, "message");
      const first = firstFrame!.data as Json;
      assert.equal(untext(first.value), "before");
      assert.equal(first.delivery, 1);
      await api.ok(ROUTES.topicPublish, {
        topic: "push",
        messages: [{ value: text("after"), partition: 1, key: "k" }],
      });
      const second = await reader.next(20_000);
      assert.equal(second?.event, "message");
      assert.equal(untext((second!.data as Json).value), "after");
      assert.equal((second!.data as Json).key, "k");
      assert.equal((second!.data as Json).partition, 1);
      const described = await api.ok(ROUTES.groupDescribe, {
        topic: "push",
        group: "g",
      }) as Json;
      // Both recorded as deliveries before they were sent.
      assert.equal(
        described.partitions.reduce((n: number, p: Json) => n + p.pending, 0),
        2,
      );
      // The member leaves: the stream says it is fenced, then ends.
      const left = await api.ok(ROUTES.groupLeave, {
        topic: "push",
        group: "g",
        memberId: "m",
      }) as Json;
      assert.equal(left.left, true);
      const fenced = await reader.next(20_000);
      assert.equal(fenced?.event, "fenced");
      assert.equal((fenced!.data as Json).generation, left.generation);
      assert.deepEqual((fenced!.data as Json).assignment, {});
      assert.equal(await reader.next(20_000), null);
    } finally {
      await reader.close();
    }
  });
});

Deno.test("consume streams and waiting fetches take slots of the stream budget: past it 429, a closed stream frees its slot", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "b" });
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "b",
      group: "g",
      lease: await grantLease(api),
    }) as Json;
    const consume = () =>
      fetch(
        `${api.serving.url}${ROUTES.groupConsume}?topic=b&group=g&member=${joined.memberId}&generation=${joined.generation}`,
        { headers: { authorization: `Bearer ${TOKEN}` } },
      );
    const first = await consume();
    assert.equal(first.status, 200);
    assert.match(
      api.serving.node.metrics(),
      /aspen_pubsub_consume_streams 1\n/,
    );
    const second = await consume();
    assert.equal(second.status, 429);
    assert.equal((await second.json()).error.code, "tooManyStreams");
    const waiting = await api.post(ROUTES.groupFetch, {
      topic: "b",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
      maxWaitMs: 10_000,
    });
    assert.equal(waiting.status, 429);
    // A fetch that does not wait needs no slot.
    await api.ok(ROUTES.groupFetch, {
      topic: "b",
      group: "g",
      memberId: joined.memberId,
      generation: joined.generation,
    });
    await first.body!.cancel();
    const again = await waitForValue("a freed slot", async () => {
      const response = await consume();
      if (response.status === 200) return response;
      await response.body?.cancel();
      return null;
    }, { timeoutMs: 20_000, intervalMs: 50 });
    await again.body!.cancel();
  }, { streamsPerTokenMax: 1 });
});

Deno.test("pub/sub routes refuse bad input with a typed 4xx and change nothing", async () => {
  await withNode(async (api) => {
    await api.ok(ROUTES.topicCreate, { name: "ok" });
    const lease = await grantLease(api);
    const joined = await api.ok(ROUTES.groupJoin, {
      topic: "ok",
      group: "g",
      lease,
    }) as Json;
    const snapshot = async () =>
      JSON.stringify([
        await api.ok(ROUTES.topicList, {}),
        await api.ok(ROUTES.topicDescribe, { name: "ok" }),
        await api.ok(ROUTES.groupDescribe, { topic: "ok", group: "g" }),
      ]);
    const before = await snapshot();
    const big = btoa("x".repeat(PUBSUB_LIMITS.messageBytesMax + 1));
    const cases: [string, string, unknown, number, string][] = [
      [
        "invalid name",
        ROUTES.topicCreate,
        { name: "bad name!" },
        400,
        "invalid",
      ],
      [
        "too many partitions",
        ROUTES.topicCreate,
        { name: "x", partitions: 257 },
        400,
        "invalid",
      ],
      [
        "unknown field",
        ROUTES.topicCreate,
        { name: "x", color: "red" },
        400,
        "badRequest",
      ],
      [
        "unknown retention field",
        ROUTES.topicCreate,
        { name: "x", retention: { forever: true } },
        400,
        "invalid",
      ],
      [
        "oversize message",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: [{ value: { encoding: "bytes", data: big } }],
        },
        400,
        "limitExceeded",
      ],
      [
        "batch over 1000",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: Array.from(
            { length: PUBSUB_LIMITS.batchMessagesMax + 1 },
            () => ({ value: text("x") }),
          ),
        },
        400,
        "limitExceeded",
      ],
      [
        "empty batch",
        ROUTES.topicPublish,
        { topic: "ok", messages: [] },
        400,
        "invalid",
      ],
      [
        "bad value encoding",
        ROUTES.topicPublish,
        { topic: "ok", messages: [{ value: { encoding: "utf8", data: "" } }] },
        400,
        "invalid",
      ],
      [
        "le64 value",
        ROUTES.topicPublish,
        { topic: "ok", messages: [{ value: { encoding: "le64", u64: "1" } }] },
        400,
        "invalid",
      ],
      [
        "bad base64",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: [{ value: { encoding: "bytes", data: "%%%" } }],
        },
        400,
        "invalid",
      ],
      [
        "reserved header",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: [{
            value: text("x"),
            headers: { "aspen-dlq-reason": "x" },
          }],
        },
        400,
        "invalid",
      ],
      [
        "a good message beside a bad one",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: [
            { value: text("fine") },
            {
              value: text("x"),
              key: "k".repeat(PUBSUB_LIMITS.keyBytesMax + 1),
            },
          ],
        },
        400,
        "limitExceeded",
      ],
      [
        "sequence without producer",
        ROUTES.topicPublish,
        { topic: "ok", messages: [{ value: text("x"), sequence: 1 }] },
        400,
        "invalid",
      ],
      [
        "delay too long",
        ROUTES.topicPublish,
        {
          topic: "ok",
          messages: [{
            value: text("x"),
            delayMs: PUBSUB_LIMITS.delayMsMax + 1,
          }],
        },
        400,
        "invalid",
      ],
      [
        "bad lease",
        ROUTES.groupJoin,
        { topic: "ok", group: "g2", lease: "nope" },
        400,
        "invalid",
      ],
      [
        "unknown lease",
        ROUTES.groupJoin,
        { topic: "ok", group: "g2", lease: "00000000000000ff" },
        404,
        "leaseNotFound",
      ],
      [
        "bad group option",
        ROUTES.groupJoin,
        { topic: "ok", group: "g2", lease, options: { maxDeliveries: 0 } },
        400,
        "invalid",
      ],
      [
        "bad member id",
        ROUTES.groupJoin,
        { topic: "ok", group: "g2", lease, memberId: "no spaces" },
        400,
        "invalid",
      ],
      [
        "fetch batch over 1000",
        ROUTES.groupFetch,
        {
          topic: "ok",
          group: "g",
          memberId: joined.memberId,
          generation: joined.generation,
          batch: PUBSUB_LIMITS.fetchBatchMax + 1,
        },
        400,
        "invalid",
      ],
      [
        "acks over 1000",
        ROUTES.groupAck,
        {
          topic: "ok",
          group: "g",
          memberId: joined.memberId,
          generation: joined.generation,
          acks: Array.from(
            { length: PUBSUB_LIMITS.acksMax + 1 },
            (_, i) => ({ partition: 0, offset: i, action: "ack" }),
          ),
        },
        400,
        "invalid",
      ],
      [
        "bad ack action",
        ROUTES.groupAck,
        {
          topic: "ok",
          group: "g",
          memberId: joined.memberId,
          generation: joined.generation,
          acks: [{ partition: 0, offset: 0, action: "maybe" }],
        },
        400,
        "invalid",
      ],
      [
        "bad reset target",
        ROUTES.groupReset,
        { topic: "ok", group: "g", to: "yesterday" },
        400,
        "invalid",
      ],
      [
        "reset of a group with members",
        ROUTES.groupReset,
        { topic: "ok", group: "g", to: "earliest" },
        409,
        "groupNotEmpty",
      ],
      [
        "unknown group",
        ROUTES.groupDescribe,
        { topic: "ok", group: "none" },
        404,
        "groupNotFound",
      ],
      [
        "generation not a number",
        ROUTES.groupFetch,
        {
          topic: "ok",
          group: "g",
          memberId: joined.memberId,
          generation: "1",
        },
        400,
        "badRequest",
      ],
    ];
    for (const [what, route, body, status, code] of cases) {
      const answer = await api.post(route, body);
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer)}`);
      assert.equal((answer.body as Json).error.code, code, what);
      assert.equal(typeof (answer.body as Json).error.message, "string");
    }
    assert.equal(await snapshot(), before);
  });
});

Deno.test("every pub/sub route is behind the bearer check", async () => {
  await withNode(async (api) => {
    const routes = Object.entries(ROUTES).filter(([name]) =>
      /^(topic|group)/.test(name) && name !== "groupConsume"
    );
    assert.equal(routes.length, 14);
    for (const [, route] of routes) {
      for (const token of [null, "wrong-token-0123456789"]) {
        const answer = await api.post(route, { name: "x" }, token);
        assert.equal(answer.status, 401, `${route} with ${token}`);
        assert.equal((answer.body as Json).error.code, "unauthorized");
      }
    }
    const listed = await api.ok(ROUTES.topicList, {}) as Json;
    assert.deepEqual(listed.topics, []);
  });
});

Deno.test("three nodes: a follower serves publish, join, a waiting fetch and acks; after the leader stops, a delayed message is released by the new one", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-pubsub-3-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: (ServingNode | null)[] = [];
  const request = async (
    node: ServingNode,
    path: string,
    body: unknown,
  ): Promise<Json> => {
    const response = await fetch(`${node.url}${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    assert.equal(response.status, 200, `${path}: ${JSON.stringify(answer)}`);
    return answer;
  };
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(
        await serveNode(
          resolveNodeConfig({
            dataDir: plan.dataDir,
            httpPort: httpPorts[i]!,
            quicPort: plan.quicPort,
            tickMs: 20,
            requestTimeoutMs: 3000,
            tokens: [TOKEN],
          }),
          { log: () => {} },
        ),
      );
    }
    const live = () => nodes.filter((n): n is ServingNode => n !== null);
    const leader = () =>
      live().find((n) => n.node.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined, 30_000);
    const follower = live().find((n) => n !== leader())!;
    const other = live().find((n) => n !== leader() && n !== follower)!;

    await request(follower, ROUTES.topicCreate, { name: "r", partitions: 3 });
    const lease = (await request(follower, ROUTES.leaseGrant, {
      ttlMs: 60_000,
    })).id;
    const joined = await request(follower, ROUTES.groupJoin, {
      topic: "r",
      group: "g",
      memberId: "c1",
      lease,
    });
    assert.deepEqual(joined.partitions, [0, 1, 2]);
    const member = {
      topic: "r",
      group: "g",
      memberId: "c1",
      generation: joined.generation,
    };
    const waiting = request(follower, ROUTES.groupFetch, {
      ...member,
      batch: 10,
      maxWaitMs: PUBSUB_LIMITS.fetchWaitMsMax,
    });
    const published = await request(other, ROUTES.topicPublish, {
      topic: "r",
      messages: [{ key: "abc", value: text("one") }],
    });
    const fetched = await waiting;
    assert.equal(fetched.messages.length, 1);
    assert.equal(fetched.messages[0].partition, published.records[0].partition);
    assert.equal(fetched.messages[0].offset, published.records[0].offset);
    const acked = await request(follower, ROUTES.groupAck, {
      ...member,
      acks: [{
        partition: fetched.messages[0].partition,
        offset: fetched.messages[0].offset,
        action: "ack",
      }],
    });
    assert.equal(acked.results[0].ok, true);
    // A strong read on another follower sees the ack.
    const described = await request(other, ROUTES.groupDescribe, {
      topic: "r",
      group: "g",
    });
    const row = described.partitions.find((p: Json) =>
      p.partition === published.records[0].partition
    );
    assert.equal(row.cursor, 1);
    assert.equal(row.pending, 0);

    const delayed = await request(follower, ROUTES.topicPublish, {
      topic: "r",
      messages: [{ value: text("later"), partition: 2, delayMs: 1_500 }],
    });
    assert.equal(typeof delayed.records[0].scheduled, "string");
    const oldLeader = leader()!;
    await oldLeader.stop();
    nodes[nodes.indexOf(oldLeader)] = null;
    await waitFor(
      "a new leader",
      () => leader() !== undefined,
      30_000,
    );
    const survivor = live()[0]!;
    const released = await waitForValue("the delayed message", async () => {
      const answer = await request(survivor, ROUTES.groupFetch, {
        ...member,
        maxWaitMs: 1_000,
      });
      return answer.messages.length > 0 ? answer.messages : null;
    }, { timeoutMs: 30_000, intervalMs: 50, retryErrors: true });
    assert.equal(untext(released[0].value), "later");
    assert.equal(released[0].partition, 2);
    assert.ok(released[0].publishedAtMs >= delayed.records[0].deliverAtMs);
  } finally {
    for (const node of nodes) await node?.stop();
    await Deno.remove(root, { recursive: true });
  }
});
