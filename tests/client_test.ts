import assert from "node:assert/strict";
import {
  AuthError,
  CheckFailedError,
  connect,
  errorFromWire,
  InvalidRequestError,
  KvU64,
  KvV8Bytes,
  LimitExceededError,
  MembershipError,
  NotLeaderError,
  TimeoutError,
  TypeMismatchError,
  UnavailableError,
} from "../mod.ts";
import type { AspenClient, KvKey } from "../mod.ts";
import {
  startTestCluster,
  TEST_TOKEN,
  type TestCluster,
} from "./helpers/http_cluster.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function withClient(
  fn: (client: AspenClient, cluster: TestCluster) => Promise<void>,
  pick: (cluster: TestCluster) => string[] = (c) => [c.follower().url!],
  format: "json" | "msgpack" = "json",
): Promise<void> {
  const cluster = await startTestCluster({ serve: true });
  const client = connect(pick(cluster), { token: TEST_TOKEN, format });
  try {
    await fn(client, cluster);
  } finally {
    client.close();
    await cluster.stop();
  }
}

function refusedUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return `http://127.0.0.1:${port}`;
}

for (const format of ["json", "msgpack"] as const) {
  Deno.test(`AspenKv has Deno.Kv's get/getMany/set/delete over ${format}`, async () => {
    await withClient(
      async (client) => {
        const { kv } = client;
        const set = await kv.set(["users", 1], encoder.encode("alice"));
        assert.equal(set.ok, true);
        assert.match(set.versionstamp, /^[0-9a-f]{20}$/);
        const entry = await kv.get<Uint8Array>(["users", 1]);
        assert.deepEqual(entry.key, ["users", 1]);
        assert.equal(decoder.decode(entry.value!), "alice");
        assert.equal(entry.versionstamp, set.versionstamp);
        assert.deepEqual(await kv.get(["nobody"]), {
          key: ["nobody"],
          value: null,
          versionstamp: null,
        });
        await kv.set(["n"], new KvU64(7n));
        const [a, b, c] = await kv.getMany<[Uint8Array, KvU64, unknown]>([
          ["users", 1],
          ["n"],
          ["missing"],
        ]);
        assert.equal(decoder.decode(a.value!), "alice");
        assert.equal(b.value?.value, 7n);
        assert.equal(c.value, null);
        // An eventual read is served by the follower's replica: it catches up.
        let eventual = null;
        for (let i = 0; i < 100 && eventual === null; i++) {
          eventual = (await kv.get<KvU64>(["n"], { consistency: "eventual" }))
            .value;
        }
        assert.equal(eventual?.value, 7n);
        await kv.delete(["users", 1]);
        assert.equal((await kv.get(["users", 1])).value, null);
      },
      undefined,
      format,
    );
  });
}

Deno.test("AspenKv.list() pages with cursor, limit, reverse and batchSize like Deno KV", async () => {
  await withClient(async ({ kv }) => {
    for (let i = 0; i < 12; i++) {
      await kv.set(["items", i], encoder.encode(`v${i}`));
    }
    await kv.set(["other"], encoder.encode("x"));
    const all = [];
    for await (const e of kv.list({ prefix: ["items"] }, { batchSize: 5 })) {
      all.push(e.key[1]);
    }
    assert.deepEqual(all, [...Array(12).keys()]);
    const iterator = kv.list({ prefix: ["items"] }, { limit: 4 });
    assert.throws(() => iterator.cursor, /before first iteration/);
    const first = [];
    for await (const e of iterator) first.push(e.key[1]);
    assert.deepEqual(first, [0, 1, 2, 3]);
    const rest = [];
    for await (
      const e of kv.list({ prefix: ["items"] }, {
        cursor: iterator.cursor,
        batchSize: 3,
      })
    ) rest.push(e.key[1]);
    assert.deepEqual(rest, [4, 5, 6, 7, 8, 9, 10, 11]);
    const reversed = [];
    for await (
      const e of kv.list({ prefix: ["items"] }, { reverse: true, limit: 3 })
    ) reversed.push(e.key[1]);
    assert.deepEqual(reversed, [11, 10, 9]);
    const ranged = [];
    for await (
      const e of kv.list({ start: ["items", 2], end: ["items", 5] }, {
        consistency: "eventual",
      })
    ) ranged.push(e.key[1]);
    assert.deepEqual(ranged, [2, 3, 4]);
    assert.throws(
      () => kv.list({ prefix: ["a"], start: ["b"] }),
      /Start key is not in the keyspace defined by prefix/,
    );
  });
});

Deno.test("AspenKv.atomic() checks, sets, deletes, sums, mins and maxes", async () => {
  await withClient(async ({ kv }) => {
    const counter = await kv.get(["counter"]);
    const ok = await kv.atomic()
      .check(counter)
      .set(["counter"], new KvU64(10n))
      .sum(["counter"], 5n)
      .min(["low"], 3n)
      .max(["high"], 8n)
      .set(["temp"], encoder.encode("t"), { expireIn: 60_000 })
      .delete(["gone"])
      .commit();
    assert.equal(ok.ok, true);
    const [c, low, high] = await kv.getMany<[KvU64, KvU64, KvU64]>([
      ["counter"],
      ["low"],
      ["high"],
    ]);
    assert.deepEqual([c.value?.value, low.value?.value, high.value?.value], [
      15n,
      3n,
      8n,
    ]);
    const stale = await kv.atomic().check(counter).set(
      ["counter"],
      new KvU64(0n),
    ).commit();
    assert.deepEqual(stale, { ok: false });
    const error = await kv.atomic()
      .check({ key: ["low"], versionstamp: low.versionstamp })
      .check({ key: ["counter"], versionstamp: null })
      .delete(["counter"])
      .commitOrThrow()
      .catch((e) => e);
    assert.ok(error instanceof CheckFailedError);
    assert.deepEqual(error.failedChecks, [1]);
    assert.equal((await kv.get<KvU64>(["counter"])).value?.value, 15n);
  });
});

Deno.test("AspenKv keeps every key part type exact", async () => {
  await withClient(async ({ kv }) => {
    const key: KvKey = [
      "s",
      1.5,
      NaN,
      -Infinity,
      -0,
      2n ** 70n,
      false,
      new Uint8Array([0, 255]),
    ];
    await kv.set(key, new Uint8Array([1]));
    const [entry] = await Array.fromAsync(kv.list({ prefix: [] }));
    assert.deepEqual(entry?.key, key);
    assert.ok(Object.is(entry?.key[4], -0));
    assert.deepEqual((await kv.get(key)).value, new Uint8Array([1]));
  });
});

Deno.test("AspenKv stores other JS values as V8 bytes, as Deno KV does", async () => {
  await withClient(async ({ kv }, cluster) => {
    const value = {
      name: "alice",
      tags: ["a", "b"],
      visits: 3,
      big: 10n,
      when: new Date(0),
      nested: new Map([["k", new Set([1, 2])]]),
    };
    await kv.set(["doc"], value);
    assert.deepEqual((await kv.get(["doc"])).value, value);
    await kv.set(["text"], "hello");
    assert.equal((await kv.get(["text"])).value, "hello");
    // The bytes on the wire are V8's: raw HTTP shows encoding "v8" and the string header.
    const response = await fetch(`${cluster.leader()!.url}/v1/kv/get`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ key: ["text"] }),
    });
    const wire = (await response.json()).entry.value;
    assert.equal(wire.encoding, "v8");
    const v8String = new Uint8Array([0xff, 0x0f, 0x22, 0x02, 0x68, 0x69]);
    await kv.set(["raw"], new KvV8Bytes(v8String));
    assert.equal((await kv.get(["raw"])).value, "hi");
    assert.throws(() => kv.atomic().set(["f"], () => 1), TypeError);
    assert.equal((await kv.get(["f"])).value, null);
  });
});

Deno.test("AspenKv rebuilds typed errors from the wire and changes nothing", async () => {
  const cluster = await startTestCluster({ serve: true });
  const url = cluster.follower().url!;
  try {
    const wrong = connect(url, { token: "wrong" });
    await assert.rejects(() => wrong.kv.get(["a"]), AuthError);
    await assert.rejects(
      () => connect(url).kv.get(["a"]),
      /Missing bearer token/,
    );
    const { kv } = connect(url, { token: TEST_TOKEN });
    const big = await kv.set(["big"], new Uint8Array(70_000)).catch((e) => e);
    assert.ok(big instanceof LimitExceededError);
    assert.equal(big.message, "Value too large (max 65536 bytes)");
    assert.equal(big.status, 400);
    await assert.rejects(
      () => kv.set([], new Uint8Array(1)),
      InvalidRequestError,
    );
    await kv.set(["text"], encoder.encode("abc"));
    await assert.rejects(
      () => kv.atomic().sum(["text"], 1n).commit(),
      TypeMismatchError,
    );
    assert.equal(
      decoder.decode((await kv.get<Uint8Array>(["text"])).value!),
      "abc",
    );
    assert.equal((await kv.get(["big"])).value, null);
  } finally {
    await cluster.stop();
  }
});

Deno.test("connect() retries reads and connection failures on other nodes", async () => {
  await withClient(async ({ kv }) => {
    await kv.set(["failover"], encoder.encode("ok"));
    assert.equal(
      decoder.decode((await kv.get<Uint8Array>(["failover"])).value!),
      "ok",
    );
  }, (cluster) => [refusedUrl(), cluster.nodes[0]!.url!]);
});

Deno.test("connect() accepts a ticket and follows the leader for admin calls", async () => {
  await withClient(async (client, cluster) => {
    const ticket = await client.cluster.ticket();
    const viaTicket = connect(ticket, { token: TEST_TOKEN });
    assert.equal(viaTicket.urls.length, 3);
    const status = await viaTicket.cluster.status();
    assert.equal(status.leader, cluster.leader()!.id);
    const { members, leader } = await client.cluster.members();
    assert.equal(leader, cluster.leader()!.id);
    assert.deepEqual(members.map((m) => m.id), ["n1", "n2", "n3"]);
    const target = cluster.nodes.find((n) => n !== cluster.leader())!;
    // The client points at a follower: the 421 names the leader, and the client follows it.
    await client.cluster.transferLeader(target.id);
    assert.equal(cluster.leader()?.id, target.id);
    await assert.rejects(() => client.cluster.remove("n9"), MembershipError);
    await assert.rejects(
      () => client.cluster.promote("n2"),
      InvalidRequestError,
    );
    await client.cluster.addLearner({
      nodeId: "n4",
      httpUrl: "http://127.0.0.1:9",
      quicHost: "127.0.0.1",
      quicPort: 9,
      nodeKey: "k",
      certificateHash: "h",
    });
    assert.deepEqual(target.adminCalls, ["addLearner n4"]);
    viaTicket.close();
  });
});

Deno.test("connect() reports a write without an answer as outcome unknown, a read as unavailable", async () => {
  const release = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      await release.promise;
      return new Response("late");
    },
  );
  try {
    const client = connect(`http://127.0.0.1:${server.addr.port}`, {
      token: "t",
      timeoutMs: 100,
      attemptsMax: 2,
    });
    const write = await client.kv.set(["a"], new Uint8Array(1)).catch((e) => e);
    assert.ok(write instanceof TimeoutError);
    assert.equal(write.outcomeUnknown, true);
    assert.match(write.message, /outcome is unknown/);
    const read = await client.kv.get(["a"]).catch((e) => e);
    assert.ok(read instanceof UnavailableError);
    assert.match(read.message, /no answer within 100 ms/);
    client.close();
    await assert.rejects(() => client.kv.get(["a"]), /client is closed/);
  } finally {
    release.resolve();
    await server.shutdown();
  }
});

Deno.test("errorFromWire() rebuilds each typed error", () => {
  const cases = [
    ["notLeader", 421, NotLeaderError],
    ["checkFailed", 409, CheckFailedError],
    ["limitExceeded", 400, LimitExceededError],
    ["bodyTooLarge", 413, LimitExceededError],
    ["outcomeUnknown", 504, TimeoutError],
    ["unavailable", 503, UnavailableError],
    ["unauthorized", 401, AuthError],
    ["typeMismatch", 409, TypeMismatchError],
    ["notCaughtUp", 409, MembershipError],
    ["invalidKey", 400, InvalidRequestError],
  ] as const;
  for (const [code, status, type] of cases) {
    const error = errorFromWire(status, {
      error: { code, message: `m ${code}`, details: { leaderUrl: "http://l" } },
    }, "http://n");
    assert.ok(error instanceof type, code);
    assert.equal(error.code, code);
    assert.equal(error.status, status);
  }
  const unknown = errorFromWire(504, {
    error: { code: "outcomeUnknown", message: "m", details: {} },
  }, null);
  assert.equal((unknown as TimeoutError).outcomeUnknown, true);
  assert.equal(
    (errorFromWire(421, {
      error: {
        code: "notLeader",
        message: "m",
        details: { leaderUrl: "http://l" },
      },
    }, null) as NotLeaderError).leaderUrl,
    "http://l",
  );
  assert.match(errorFromWire(502, "<html>", null).message, /HTTP status 502/);
});

Deno.test("connect() validates its arguments", () => {
  assert.throws(() => connect([]), /no node URL/);
  assert.throws(() => connect("ftp://x"), /must start with http/);
  assert.throws(() => connect("aspenzzzz"), /Cannot read ticket/);
  assert.throws(() => connect("http://x", { timeoutMs: 0 }), RangeError);
  using client = connect("http://127.0.0.1:1");
  assert.deepEqual(client.urls, ["http://127.0.0.1:1"]);
});
