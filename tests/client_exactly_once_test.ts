/**
 * Exactly-once writes end to end: when a write's answer is lost after the
 * cluster applied it, the client retries with the same session and sequence
 * number, and the cluster answers with the first result instead of applying
 * it again.
 */
import assert from "node:assert/strict";
import { connect, type KvU64, TimeoutError } from "../mod.ts";
import { startTestCluster, TEST_TOKEN } from "./helpers/http_cluster.ts";

Deno.test("connect().kv retries a write whose answer was lost, and the cluster applies it once", async () => {
  const cluster = await startTestCluster({ serve: true });
  try {
    const urls = cluster.nodes.map((n) => n.url!);
    let dropped = 0;
    const sessions: unknown[] = [];
    // Deliver every request, but lose the answer to the first atomic write.
    const lossyFetch: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input).endsWith("/v1/kv/atomic")) {
        sessions.push(
          JSON.parse(new TextDecoder().decode(init?.body as Uint8Array))
            .session,
        );
        if (dropped === 0) {
          dropped++;
          await response.body?.cancel();
          throw new TypeError("connection reset by peer (answer lost)");
        }
      }
      return response;
    };
    using client = connect(urls, {
      token: TEST_TOKEN,
      fetch: lossyFetch,
      format: "json",
    });
    const result = await client.kv.atomic().sum(["visits"], 1n).commit();
    assert.equal(result.ok, true);
    assert.equal(dropped, 1);
    // The retry carried the very same session and sequence number.
    assert.equal(sessions.length, 2);
    assert.deepEqual(sessions[0], sessions[1]);
    using reader = connect(urls, { token: TEST_TOKEN });
    const entry = await reader.kv.get<KvU64>(["visits"]);
    assert.equal(entry.value?.value, 1n);
    // The retried write answered with the first attempt's versionstamp.
    assert.equal(entry.versionstamp, result.ok ? result.versionstamp : null);
  } finally {
    await cluster.stop();
  }
});

Deno.test("the HTTP API refuses a malformed session with 400 and changes nothing", async () => {
  const cluster = await startTestCluster();
  try {
    const app = cluster.apps[0]!;
    for (
      const session of [{ clientId: "", seq: 1 }, { clientId: "c", seq: -1 }, {
        clientId: "c",
        seq: 1.5,
      }, "x"]
    ) {
      const response = await app.request("/v1/kv/set", {
        method: "POST",
        headers: {
          authorization: `Bearer ${TEST_TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          key: ["k"],
          value: { encoding: "bytes", data: "AA==" },
          session,
        }),
      });
      assert.equal(response.status, 400, JSON.stringify(session));
      await response.body?.cancel();
    }
    const get = await app.request("/v1/kv/get?consistency=eventual", {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ key: ["k"] }),
    });
    assert.equal((await get.json()).entry.value, null);
  } finally {
    await cluster.stop();
  }
});

Deno.test("connect().kv reports outcome unknown, not unavailable, when a lost answer is followed by 503s", async () => {
  const cluster = await startTestCluster({ serve: true });
  try {
    let attempts = 0;
    // The first attempt reaches the cluster (and applies) but its answer is
    // lost; every retry is told "unavailable" (as during a failover).
    const fetchLosingThenRefusing: typeof fetch = async (input, init) => {
      if (!String(input).endsWith("/v1/kv/atomic")) {
        return await fetch(input, init);
      }
      attempts++;
      if (attempts === 1) {
        const response = await fetch(input, init);
        await response.body?.cancel();
        throw new TypeError("connection reset by peer (answer lost)");
      }
      return new Response(
        JSON.stringify({
          error: { code: "unavailable", message: "No leader", details: {} },
        }),
        {
          status: 503,
          headers: { "content-type": "application/json" },
        },
      );
    };
    using client = connect(cluster.nodes.map((n) => n.url!), {
      token: TEST_TOKEN,
      fetch: fetchLosingThenRefusing,
      format: "json",
    });
    const error = await client.kv.atomic().sum(["applied-once"], 1n).commit()
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(attempts > 1, "the write was retried");
    assert.ok(
      error instanceof TimeoutError,
      `expected TimeoutError, got ${error}`,
    );
    assert.equal(error.outcomeUnknown, true);
    // And it did apply: "unavailable" would have been a lie.
    using reader = connect(cluster.nodes.map((n) => n.url!), {
      token: TEST_TOKEN,
    });
    assert.equal(
      (await reader.kv.get<KvU64>(["applied-once"])).value?.value,
      1n,
    );
  } finally {
    await cluster.stop();
  }
});

Deno.test("the HTTP API answers a session reused on a different write with 409 sessionReused and writes nothing", async () => {
  const cluster = await startTestCluster();
  try {
    const app = cluster.apps[0]!;
    const set = (key: string) =>
      app.request("/v1/kv/set", {
        method: "POST",
        headers: {
          authorization: `Bearer ${TEST_TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          key: [key],
          value: { encoding: "bytes", data: "AA==" },
          session: { clientId: "reuser", seq: 1 },
        }),
      });
    const first = await set("a");
    assert.equal(first.status, 200);
    const firstBody = await first.json();
    // The same write again: its first result.
    const retry = await set("a");
    assert.deepEqual(await retry.json(), firstBody);
    // Same session, another key: refused, typed, nothing written.
    const reused = await set("b");
    assert.equal(reused.status, 409);
    assert.equal((await reused.json()).error.code, "sessionReused");
    const get = await app.request("/v1/kv/get", {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ key: ["b"] }),
    });
    assert.equal((await get.json()).entry.value, null);
  } finally {
    await cluster.stop();
  }
});
