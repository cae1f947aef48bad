import assert from "node:assert/strict";
import type { Hono } from "hono";
import { serializeV8 } from "../src/model/v8_codec.ts";
import { toBase64 } from "../src/protocol/http_api_codec.ts";
import {
  startTestCluster,
  TEST_TOKEN,
  type TestCluster,
} from "./helpers/http_cluster.ts";
import { call } from "./helpers/http_request.ts";

async function withCluster(
  fn: (cluster: TestCluster, leader: Hono, follower: Hono) => Promise<void>,
): Promise<void> {
  const cluster = await startTestCluster();
  try {
    const app = (node: TestCluster["nodes"][number]) =>
      cluster.apps[cluster.nodes.indexOf(node)]!;
    await fn(cluster, app(cluster.leader()!), app(cluster.follower()));
  } finally {
    await cluster.stop();
  }
}

const payload = toBase64(serializeV8("hello"));

Deno.test("createHttpApp() serves the queue routes: enqueue, listen on the leader, ack, nack, info, peek, configure", async () => {
  await withCluster(async (_cluster, leader, follower) => {
    const enqueued = await call(follower, "POST", "/v1/kv/atomic", {
      mutations: [],
      enqueues: [{ payload, backoffSchedule: [0], queue: "q" }],
    });
    assert.equal(enqueued.status, 200, JSON.stringify(enqueued.body));
    const info = await call(follower, "POST", "/v1/queue/info", { queue: "q" });
    assert.deepEqual(info.body, {
      queue: "q",
      length: 1,
      leasedCount: 0,
      concurrencyMax: null,
    });
    const peek = await call(follower, "POST", "/v1/queue/peek", { queue: "q" });
    assert.equal(peek.body.messages.length, 1);
    assert.equal(peek.body.messages[0].payload, payload);

    const refused = await call(follower, "POST", "/v1/queue/listen", {
      queue: "q",
    });
    assert.equal(refused.status, 421);
    assert.equal(refused.body.error.code, "notLeader");

    const first = await call(leader, "POST", "/v1/queue/listen", {
      queue: "q",
      waitMs: 2000,
    });
    assert.equal(first.status, 200);
    const [message] = first.body.messages;
    assert.equal(message.id, peek.body.messages[0].id);
    assert.equal(message.delivery, 1);
    assert.equal(message.payload, payload);
    const nacked = await call(follower, "POST", "/v1/queue/nack", {
      messages: [{ id: message.id, delivery: 1 }],
    });
    assert.deepEqual(nacked.body, { count: 1 });
    const second = await call(leader, "POST", "/v1/queue/listen", {
      queue: "q",
      waitMs: 2000,
    });
    assert.equal(second.body.messages[0].delivery, 2);
    const acked = await call(follower, "POST", "/v1/queue/ack", {
      ids: [message.id],
    });
    assert.deepEqual(acked.body, { count: 1 });
    const empty = await call(leader, "POST", "/v1/queue/listen", {
      queue: "q",
      waitMs: 0,
    });
    assert.deepEqual(empty.body, { messages: [] });

    const configured = await call(follower, "POST", "/v1/queue/configure", {
      queue: "q",
      concurrencyMax: 5,
    });
    assert.equal(configured.status, 200);
    assert.equal(
      (await call(follower, "POST", "/v1/queue/info", { queue: "q" })).body
        .concurrencyMax,
      5,
    );
  });
});

Deno.test("createHttpApp() refuses bad queue requests with 4xx", async (t) => {
  await withCluster(async (_cluster, leader) => {
    const cases: [string, string, unknown, number, string][] = [
      ["bad queue name", "/v1/queue/info", { queue: "a b" }, 400, "invalid"],
      ["bad id", "/v1/queue/ack", { ids: ["xyz"] }, 400, "invalid"],
      [
        "too many ids",
        "/v1/queue/ack",
        { ids: Array(101).fill("00000000000000010000") },
        400,
        "limitExceeded",
      ],
      [
        "lease too long",
        "/v1/queue/listen",
        { leaseMs: 3_600_001 },
        400,
        "badRequest",
      ],
      [
        "unknown field",
        "/v1/queue/peek",
        { limit: 1, extra: 1 },
        400,
        "badRequest",
      ],
      [
        "reserved dead-letter key",
        "/v1/kv/atomic",
        {
          mutations: [],
          enqueues: [{
            payload,
            keysIfUndelivered: [[{ type: "bytes", value: "/w==" }]],
          }],
        },
        200,
        "",
      ],
      [
        "delay over 30 days",
        "/v1/kv/atomic",
        {
          mutations: [],
          enqueues: [{ payload, delay: 30 * 24 * 3600 * 1000 + 1 }],
        },
        400,
        "limitExceeded",
      ],
      ["watch without keys", "/v1/kv/watch", { keys: [] }, 400, "badRequest"],
    ];
    for (const [name, path, body, status, code] of cases) {
      await t.step(name, async () => {
        const reply = await call(leader, "POST", path, body);
        assert.equal(reply.status, status, JSON.stringify(reply.body));
        if (code !== "") assert.equal(reply.body.error.code, code);
      });
    }
  });
});

Deno.test("createHttpApp() streams /v1/kv/watch as JSON lines", async () => {
  await withCluster(async (_cluster, leader, follower) => {
    const response = await follower.request("/v1/kv/watch", {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ keys: [["w"]] }),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/jsonl");
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    const first = await reader.read();
    assert.deepEqual(JSON.parse(first.value!), {
      entries: [{ key: ["w"], value: null, versionstamp: null }],
    });
    const set = await call(leader, "POST", "/v1/kv/set", {
      key: ["w"],
      value: { encoding: "bytes", data: "AQ==" },
    });
    const second = await reader.read();
    assert.deepEqual(JSON.parse(second.value!).entries[0], {
      key: ["w"],
      value: { encoding: "bytes", data: "AQ==" },
      versionstamp: set.body.versionstamp,
    });
    await reader.cancel();
  });
});
