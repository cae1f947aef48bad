import assert from "node:assert/strict";
import { Hono } from "hono";
import { createHttpApp } from "../src/frontends/http/app.ts";
import {
  KvOutcomeUnknownError,
  KvUnavailableError,
} from "../src/services/kv/api.ts";
import type { KvBackend } from "../src/services/kv/api.ts";
import type { NodeApi } from "../src/node/node_api.ts";
import { ERROR_CODES, ERROR_STATUS } from "../src/protocol/http_api.ts";
import {
  keyFromWire,
  keyToWire,
  toBase64,
} from "../src/protocol/http_api_codec.ts";
import {
  OTHER_TOKEN,
  startTestCluster,
  type TestCluster,
} from "./helpers/http_cluster.ts";
import { bytesValue, call } from "./helpers/http_request.ts";

async function withCluster(
  fn: (cluster: TestCluster, app: Hono) => Promise<void>,
  options: { bodyLimitBytes?: number; kvConnect?: Hono } = {},
): Promise<void> {
  const cluster = await startTestCluster(options);
  try {
    const follower = cluster.nodes.indexOf(cluster.follower());
    await fn(cluster, cluster.apps[follower]!);
  } finally {
    await cluster.stop();
  }
}

function text(value: { data: string } | null): string | null {
  return value === null ? null : atob(value.data);
}

async function getText(app: Hono, key: unknown[]): Promise<string | null> {
  const { status, body } = await call(app, "POST", "/v1/kv/get", { key });
  assert.equal(status, 200);
  return text(body.entry.value);
}

Deno.test("createHttpApp() serves every KV route through a follower", async (t) => {
  await withCluster(async (cluster, app) => {
    await t.step("set then get (strong and eventual)", async () => {
      const set = await call(app, "POST", "/v1/kv/set", {
        key: ["users", 1],
        value: bytesValue("alice"),
      });
      assert.equal(set.status, 200);
      assert.equal(set.body.ok, true);
      assert.match(set.body.versionstamp, /^[0-9a-f]{20}$/);
      const got = await call(app, "POST", "/v1/kv/get", { key: ["users", 1] });
      assert.deepEqual(got.body.entry, {
        key: ["users", 1],
        value: { encoding: "bytes", data: btoa("alice") },
        versionstamp: set.body.versionstamp,
      });
      const leaderApp = cluster.apps[cluster.nodes.indexOf(cluster.leader()!)]!;
      const eventual = await call(
        leaderApp,
        "POST",
        "/v1/kv/get?consistency=eventual",
        { key: ["users", 1] },
      );
      assert.equal(text(eventual.body.entry.value), "alice");
    });

    await t.step(
      "get of an absent key has null value and versionstamp",
      async () => {
        const got = await call(app, "POST", "/v1/kv/get", { key: ["nobody"] });
        assert.deepEqual(got.body.entry, {
          key: ["nobody"],
          value: null,
          versionstamp: null,
        });
      },
    );

    await t.step("get-many reads keys in order", async () => {
      await call(app, "POST", "/v1/kv/set", {
        key: ["users", 2],
        value: bytesValue("bob"),
      });
      const got = await call(app, "POST", "/v1/kv/get-many", {
        keys: [["users", 2], ["missing"], ["users", 1]],
      });
      assert.equal(got.status, 200);
      assert.deepEqual(
        got.body.entries.map((e: { value: { data: string } | null }) =>
          text(e.value)
        ),
        [
          "bob",
          null,
          "alice",
        ],
      );
    });

    await t.step("delete removes the key", async () => {
      const deleted = await call(app, "POST", "/v1/kv/delete", {
        key: ["users", 2],
      });
      assert.equal(deleted.status, 200);
      assert.equal(await getText(app, ["users", 2]), null);
    });

    await t.step(
      "list by prefix, start/end, limit, reverse and cursor",
      async () => {
        for (let i = 0; i < 5; i++) {
          await call(app, "POST", "/v1/kv/set", {
            key: ["list", i],
            value: bytesValue(`v${i}`),
          });
        }
        const all = await call(app, "POST", "/v1/kv/list", {
          selector: { prefix: ["list"] },
        });
        assert.deepEqual(
          all.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [0, 1, 2, 3, 4],
        );
        assert.equal(all.body.cursor, null);
        const page1 = await call(app, "POST", "/v1/kv/list", {
          selector: { prefix: ["list"] },
          limit: 2,
        });
        assert.deepEqual(
          page1.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [0, 1],
        );
        assert.equal(typeof page1.body.cursor, "string");
        const page2 = await call(app, "POST", "/v1/kv/list", {
          selector: { prefix: ["list"] },
          limit: 2,
          cursor: page1.body.cursor,
        });
        assert.deepEqual(
          page2.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [2, 3],
        );
        const reversed = await call(app, "POST", "/v1/kv/list", {
          selector: { prefix: ["list"] },
          reverse: true,
          limit: 3,
        });
        assert.deepEqual(
          reversed.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [4, 3, 2],
        );
        const ranged = await call(app, "POST", "/v1/kv/list", {
          selector: { start: ["list", 1], end: ["list", 3] },
        });
        assert.deepEqual(
          ranged.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [1, 2],
        );
        const narrowed = await call(
          app,
          "POST",
          "/v1/kv/list?consistency=eventual",
          {
            selector: { prefix: ["list"], start: ["list", 3] },
          },
        );
        assert.deepEqual(
          narrowed.body.entries.map((e: { key: unknown[] }) => e.key[1]),
          [3, 4],
        );
      },
    );

    await t.step("atomic: checks, set, delete, sum, min, max", async () => {
      const current = await call(app, "POST", "/v1/kv/get", {
        key: ["users", 1],
      });
      const ok = await call(app, "POST", "/v1/kv/atomic", {
        checks: [
          { key: ["users", 1], versionstamp: current.body.entry.versionstamp },
          { key: ["counter"], versionstamp: null },
        ],
        mutations: [
          {
            type: "set",
            key: ["counter"],
            value: { encoding: "le64", u64: "10" },
          },
          {
            type: "sum",
            key: ["counter"],
            value: { encoding: "le64", u64: "5" },
          },
          { type: "min", key: ["low"], value: { encoding: "le64", u64: "7" } },
          { type: "max", key: ["high"], value: { encoding: "le64", u64: "9" } },
          { type: "delete", key: ["users", 1] },
        ],
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const got = await call(app, "POST", "/v1/kv/get-many", {
        keys: [["counter"], ["low"], ["high"], ["users", 1]],
      });
      assert.deepEqual(
        got.body.entries.map((e: { value: { u64?: string } | null }) =>
          e.value?.u64 ?? null
        ),
        ["15", "7", "9", null],
      );
      assert.deepEqual(
        got.body.entries[0].value.data,
        toBase64(new Uint8Array([15, 0, 0, 0, 0, 0, 0, 0])),
      );
    });

    await t.step(
      "atomic with a failing check: 409 checkFailed, nothing changed",
      async () => {
        const failed = await call(app, "POST", "/v1/kv/atomic", {
          checks: [{ key: ["counter"], versionstamp: null }],
          mutations: [{
            type: "set",
            key: ["after-failed-check"],
            value: bytesValue("x"),
          }],
        });
        assert.equal(failed.status, 409);
        assert.equal(failed.body.error.code, "checkFailed");
        assert.deepEqual(failed.body.error.details.failedChecks, [0]);
        assert.equal(await getText(app, ["after-failed-check"]), null);
      },
    );

    await t.step(
      "sum on a non-u64 value: 409 typeMismatch, nothing changed",
      async () => {
        await call(app, "POST", "/v1/kv/set", {
          key: ["text"],
          value: bytesValue("abc"),
        });
        const failed = await call(app, "POST", "/v1/kv/atomic", {
          mutations: [
            { type: "set", key: ["other"], value: bytesValue("x") },
            {
              type: "sum",
              key: ["text"],
              value: { encoding: "le64", u64: "1" },
            },
          ],
        });
        assert.equal(failed.status, 409);
        assert.equal(failed.body.error.code, "typeMismatch");
        assert.equal(await getText(app, ["other"]), null);
        assert.equal(await getText(app, ["text"]), "abc");
      },
    );

    await t.step("set with expireIn stores the key", async () => {
      const set = await call(app, "POST", "/v1/kv/set", {
        key: ["expiring"],
        value: bytesValue("soon"),
        expireIn: 60_000,
      });
      assert.equal(set.status, 200);
      assert.equal(await getText(app, ["expiring"]), "soon");
    });
  });
});

Deno.test("createHttpApp() keeps every Deno KV key part exact, in JSON and MessagePack", async () => {
  await withCluster(async (_cluster, app) => {
    const key = [
      "s",
      "",
      1.5,
      NaN,
      Infinity,
      -Infinity,
      -0,
      0,
      12345678901234567890123n,
      -5n,
      true,
      false,
      new Uint8Array([0, 1, 255]),
    ];
    const wire = keyToWire(key);
    const set = await call(app, "POST", "/v1/kv/set", {
      key: wire,
      value: bytesValue("all"),
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const json = await call(app, "POST", "/v1/kv/list", {
      selector: { prefix: [] },
    });
    assert.equal(json.body.entries.length, 1);
    assert.deepEqual(keyFromWire(json.body.entries[0].key), key);
    assert.ok(Object.is(keyFromWire(json.body.entries[0].key)[6], -0));

    const packed = await call(
      app,
      "POST",
      "/v1/kv/get",
      { key: keyToWire(key) },
      { format: "msgpack", accept: "msgpack" },
    );
    assert.equal(packed.status, 200);
    assert.equal(packed.contentType, "application/msgpack");
    assert.ok(packed.body.entry.value.data instanceof Uint8Array);
    assert.deepEqual(keyFromWire(packed.body.entry.key), key);
  });
});

Deno.test("createHttpApp() speaks MessagePack by content negotiation", async () => {
  await withCluster(async (_cluster, app) => {
    const bytes = new Uint8Array([0, 159, 146, 150, 255]);
    const set = await call(app, "POST", "/v1/kv/set", {
      key: ["bin"],
      value: { encoding: "bytes", data: bytes },
    }, { format: "msgpack" });
    assert.equal(set.status, 200);
    assert.equal(set.contentType, "application/json");
    const got = await call(app, "POST", "/v1/kv/get", { key: ["bin"] }, {
      format: "msgpack",
      accept: "msgpack",
    });
    assert.deepEqual(got.body.entry.value, { encoding: "bytes", data: bytes });
    const asJson = await call(app, "POST", "/v1/kv/get", { key: ["bin"] });
    assert.equal(asJson.body.entry.value.data, toBase64(bytes));
    const error = await call(app, "POST", "/v1/kv/get", { key: "nope" }, {
      format: "msgpack",
      accept: "msgpack",
    });
    assert.equal(error.status, 400);
    assert.equal(error.contentType, "application/msgpack");
    assert.equal(error.body.error.code, "invalidKey");
  });
});

Deno.test("createHttpApp() refuses bad input with 4xx and a clear message, changing nothing", async (t) => {
  await withCluster(async (_cluster, app) => {
    await call(app, "POST", "/v1/kv/set", {
      key: ["keep"],
      value: bytesValue("original"),
    });
    const big = "a".repeat(70_000);
    const cases: {
      name: string;
      path: string;
      body?: unknown;
      raw?: string;
      headers?: Record<string, string>;
      status: number;
      code: string;
      message: RegExp;
    }[] = [
      {
        name: "key not a list",
        path: "/v1/kv/set",
        body: { key: "keep", value: bytesValue("x") },
        status: 400,
        code: "invalidKey",
        message: /Invalid 'key': expected a list/,
      },
      {
        name: "key part of unknown type",
        path: "/v1/kv/set",
        body: { key: [{ type: "date", value: 1 }], value: bytesValue("x") },
        status: 400,
        code: "invalidKey",
        message: /unknown type 'date'/,
      },
      {
        name: "key part null",
        path: "/v1/kv/set",
        body: { key: ["keep", null], value: bytesValue("x") },
        status: 400,
        code: "invalidKey",
        message: /key\[1\]/,
      },
      {
        name: "bigint part not decimal",
        path: "/v1/kv/set",
        body: {
          key: [{ type: "bigint", value: "12x" }],
          value: bytesValue("x"),
        },
        status: 400,
        code: "invalidKey",
        message: /decimal integer/,
      },
      {
        name: "bytes part not base64",
        path: "/v1/kv/set",
        body: { key: [{ type: "bytes", value: "%%" }], value: bytesValue("x") },
        status: 400,
        code: "invalidKey",
        message: /base64/,
      },
      {
        name: "empty key",
        path: "/v1/kv/set",
        body: { key: [], value: bytesValue("x") },
        status: 400,
        code: "invalidKey",
        message: /key cannot be empty/,
      },
      {
        name: "key too large",
        path: "/v1/kv/set",
        body: { key: ["k".repeat(3000)], value: bytesValue("x") },
        status: 400,
        code: "limitExceeded",
        message: /Key too large for write \(max 2048 bytes\)/,
      },
      {
        name: "value too large",
        path: "/v1/kv/set",
        body: { key: ["keep"], value: bytesValue(big) },
        status: 400,
        code: "limitExceeded",
        message: /Value too large \(max 65536 bytes\)/,
      },
      {
        name: "unknown encoding",
        path: "/v1/kv/set",
        body: { key: ["keep"], value: { encoding: "utf8", data: "" } },
        status: 400,
        code: "invalid",
        message: /'value.encoding'/,
      },
      {
        name: "le64 of 3 bytes",
        path: "/v1/kv/set",
        body: { key: ["keep"], value: { encoding: "le64", data: "AAAA" } },
        status: 400,
        code: "invalid",
        message: /must be 8 bytes/,
      },
      {
        name: "u64 out of range",
        path: "/v1/kv/set",
        body: {
          key: ["keep"],
          value: { encoding: "le64", u64: "18446744073709551616" },
        },
        status: 400,
        code: "invalid",
        message: /at most 2\^64-1/,
      },
      {
        name: "missing value",
        path: "/v1/kv/set",
        body: { key: ["keep"] },
        status: 400,
        code: "badRequest",
        message: /missing 'value'/,
      },
      {
        name: "unknown field",
        path: "/v1/kv/set",
        body: { key: ["keep"], value: bytesValue("x"), expirein: 5 },
        status: 400,
        code: "badRequest",
        message: /unknown field 'expirein'/,
      },
      {
        name: "negative expireIn",
        path: "/v1/kv/set",
        body: { key: ["keep"], value: bytesValue("x"), expireIn: -1 },
        status: 400,
        code: "badRequest",
        message: /'expireIn'/,
      },
      {
        name: "bad JSON",
        path: "/v1/kv/set",
        raw: '{"key": [',
        status: 400,
        code: "badRequest",
        message: /not valid JSON/,
      },
      {
        name: "body not an object",
        path: "/v1/kv/set",
        raw: "[1,2]",
        status: 400,
        code: "badRequest",
        message: /expected an object/,
      },
      {
        name: "empty body",
        path: "/v1/kv/set",
        raw: "",
        status: 400,
        code: "badRequest",
        message: /body is empty/,
      },
      {
        name: "bad MessagePack",
        path: "/v1/kv/set",
        raw: "\xc1",
        headers: { "content-type": "application/msgpack" },
        status: 400,
        code: "badRequest",
        message: /not valid MessagePack/,
      },
      {
        name: "unsupported content type",
        path: "/v1/kv/set",
        raw: "key=keep",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        status: 415,
        code: "unsupportedMediaType",
        message: /application\/json or application\/msgpack/,
      },
      {
        name: "bad versionstamp in check",
        path: "/v1/kv/atomic",
        body: {
          checks: [{ key: ["keep"], versionstamp: "xyz" }],
          mutations: [{ type: "delete", key: ["keep"] }],
        },
        status: 400,
        code: "invalid",
        message: /checks\[0\].versionstamp/,
      },
      {
        name: "unknown mutation type",
        path: "/v1/kv/atomic",
        body: { mutations: [{ type: "append", key: ["keep"] }] },
        status: 400,
        code: "badRequest",
        message: /mutations\[0\].type/,
      },
      {
        name: "too many mutations",
        path: "/v1/kv/atomic",
        body: {
          mutations: Array.from(
            { length: 1001 },
            () => ({ type: "delete", key: ["keep"] }),
          ),
        },
        status: 400,
        code: "limitExceeded",
        message: /Too many mutations \(max 1000\)/,
      },
      {
        name: "too many get-many keys",
        path: "/v1/kv/get-many",
        body: { keys: Array.from({ length: 11 }, (_, i) => [i]) },
        status: 400,
        code: "badRequest",
        message: /Too many ranges \(max 10\)/,
      },
      {
        name: "list limit out of range",
        path: "/v1/kv/list",
        body: { selector: { prefix: [] }, limit: 1001 },
        status: 400,
        code: "badRequest",
        message: /'limit'/,
      },
      {
        name: "list start outside prefix",
        path: "/v1/kv/list",
        body: { selector: { prefix: ["a"], start: ["b"] } },
        status: 400,
        code: "invalid",
        message: /Start key is not in the keyspace defined by prefix/,
      },
      {
        name: "list bad cursor",
        path: "/v1/kv/list",
        body: { selector: { prefix: ["a"] }, cursor: "!!" },
        status: 400,
        code: "invalid",
        message: /invalid cursor/,
      },
      {
        name: "bad consistency",
        path: "/v1/kv/get?consistency=weak",
        body: { key: ["keep"] },
        status: 400,
        code: "badRequest",
        message: /'consistency'/,
      },
      {
        name: "unknown route",
        path: "/v1/kv/explode",
        body: { key: ["keep"] },
        status: 404,
        code: "notFound",
        message: /Unknown route: POST \/v1\/kv\/explode/,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const result = await call(app, "POST", c.path, c.body, {
          raw: c.raw,
          headers: c.raw !== undefined
            ? { "content-type": "application/json", ...c.headers }
            : c.headers,
        });
        assert.equal(result.status, c.status, JSON.stringify(result.body));
        assert.equal(result.body.error.code, c.code);
        assert.match(result.body.error.message, c.message);
        assert.equal(await getText(app, ["keep"]), "original");
      });
    }
    await t.step("GET on a POST route is an unknown route", async () => {
      const result = await call(app, "GET", "/v1/kv/set");
      assert.equal(result.status, 404);
      assert.equal(result.body.error.code, "notFound");
    });
    const list = await call(app, "POST", "/v1/kv/list", {
      selector: { prefix: [] },
    });
    assert.deepEqual(list.body.entries.map((e: { key: unknown[] }) => e.key), [[
      "keep",
    ]]);
  });
});

Deno.test("createHttpApp() refuses too-large bodies with 413 before or while reading them", async () => {
  await withCluster(async (_cluster, app) => {
    const body = JSON.stringify({
      key: ["big"],
      value: bytesValue("x".repeat(2000)),
    });
    const declared = await call(app, "POST", "/v1/kv/set", undefined, {
      raw: body,
      headers: {
        "content-type": "application/json",
        "content-length": String(body.length),
      },
    });
    assert.equal(declared.status, 413);
    assert.equal(declared.body.error.code, "bodyTooLarge");
    assert.match(
      declared.body.error.message,
      /Request body too large \(max 1024 bytes\)/,
    );
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        if (pulled > 100) controller.close();
        else controller.enqueue(new Uint8Array(512).fill(32));
      },
    });
    const streamed = await call(app, "POST", "/v1/kv/set", undefined, {
      raw: stream,
      headers: { "content-type": "application/json" },
    });
    assert.equal(streamed.status, 413);
    assert.ok(pulled < 10, `read ${pulled} chunks of a too-large stream`);
    const got = await call(app, "POST", "/v1/kv/get", { key: ["big"] });
    assert.equal(got.body.entry.value, null);
  }, { bodyLimitBytes: 1024 });
});

Deno.test("createHttpApp() checks the bearer token on everything but /health", async () => {
  await withCluster(async (_cluster, app) => {
    const missing = await call(app, "POST", "/v1/kv/set", {
      key: ["t"],
      value: bytesValue("x"),
    }, { token: null });
    assert.equal(missing.status, 401);
    assert.equal(missing.body.error.code, "unauthorized");
    assert.match(missing.body.error.message, /Missing bearer token/);
    const wrong = await call(app, "POST", "/v1/kv/set", {
      key: ["t"],
      value: bytesValue("x"),
    }, { token: "test-token-0123456788" });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /Invalid bearer token/);
    for (const path of ["/metrics", "/v1/cluster/status", "/nowhere"]) {
      assert.equal(
        (await call(app, "GET", path, undefined, { token: "bad" })).status,
        401,
        path,
      );
    }
    const rotated = await call(app, "POST", "/v1/kv/get", { key: ["t"] }, {
      token: OTHER_TOKEN,
    });
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.entry.value, null);
    const health = await call(app, "GET", "/health", undefined, {
      token: null,
    });
    assert.deepEqual([health.status, health.body], [200, {
      ok: true,
      reason: null,
    }]);
  });
});

Deno.test("createHttpApp() serves cluster status, members, ticket and admin calls", async (t) => {
  await withCluster(async (cluster, followerApp) => {
    const leader = cluster.leader()!;
    const leaderApp = cluster.apps[cluster.nodes.indexOf(leader)]!;
    await t.step("status and members", async () => {
      const status = await call(followerApp, "GET", "/v1/cluster/status");
      assert.equal(status.status, 200);
      assert.equal(status.body.leader, leader.id);
      assert.equal(status.body.role, "follower");
      assert.deepEqual(status.body.members.map((m: { id: string }) => m.id), [
        "n1",
        "n2",
        "n3",
      ]);
      const members = await call(
        leaderApp,
        "GET",
        "/v1/cluster/members",
        undefined,
        { accept: "msgpack" },
      );
      assert.equal(members.body.leader, leader.id);
      assert.equal(members.body.members.length, 3);
      assert.ok(
        members.body.members.every((m: { match: number | null }) =>
          typeof m.match === "number"
        ),
      );
    });
    await t.step("ticket", async () => {
      const ticket = await call(followerApp, "GET", "/v1/cluster/ticket");
      assert.match(ticket.body.ticket, /^aspen[a-z2-7]+$/);
    });
    await t.step(
      "admin on a follower: 421 notLeader naming the leader",
      async () => {
        const result = await call(followerApp, "POST", "/v1/cluster/promote", {
          nodeId: "n9",
        });
        assert.equal(result.status, 421);
        assert.equal(result.body.error.code, "notLeader");
        assert.ok("leaderUrl" in result.body.error.details);
      },
    );
    await t.step("admin errors on the leader", async () => {
      const unknown = await call(leaderApp, "POST", "/v1/cluster/remove", {
        nodeId: "n9",
      });
      assert.deepEqual([unknown.status, unknown.body.error.code], [
        404,
        "unknownNode",
      ]);
      const notLearner = await call(leaderApp, "POST", "/v1/cluster/promote", {
        nodeId: "n2",
      });
      assert.deepEqual([notLearner.status, notLearner.body.error.code], [
        400,
        "invalid",
      ]);
      const badBody = await call(leaderApp, "POST", "/v1/cluster/add-learner", {
        nodeId: "n4",
      });
      assert.equal(badBody.status, 400);
      assert.match(badBody.body.error.message, /'httpUrl'/);
      assert.deepEqual(leader.adminCalls, []);
    });
    await t.step("add-learner on the leader", async () => {
      const added = await call(leaderApp, "POST", "/v1/cluster/add-learner", {
        nodeId: "n4",
        httpUrl: "http://127.0.0.1:9",
        quicHost: "127.0.0.1",
        quicPort: 9,
        nodeKey: "key",
        certificateHash: "hash",
      });
      assert.deepEqual([added.status, added.body], [200, { ok: true }]);
      assert.deepEqual(leader.adminCalls, ["addLearner n4"]);
    });
    await t.step("transfer-leader moves leadership", async () => {
      const target = cluster.nodes.find((n) => n !== leader)!;
      const moved = await call(
        leaderApp,
        "POST",
        "/v1/cluster/transfer-leader",
        { nodeId: target.id },
      );
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
      assert.equal(cluster.leader()?.id, target.id);
    });
  });
});

function stubNode(
  overrides: Partial<NodeApi>,
  backend: Partial<KvBackend> = {},
): NodeApi {
  const fail = () => Promise.reject(new Error("not in this stub"));
  return {
    backend: {
      databaseId: "stub",
      read: fail,
      commit: fail,
      watch: () => {
        throw new Error("not in this stub");
      },
      ...backend,
    },
    status: () => {
      throw new Error("not in this stub");
    },
    health: () => ({ ok: true, reason: null }),
    metrics: () => "aspen_up 1\n",
    clientTicket: () => "aspen",
    addLearner: fail,
    promote: fail,
    remove: fail,
    transferLeader: fail,
    ...overrides,
  };
}

Deno.test("createHttpApp() maps health, metrics and backend failures", async (t) => {
  const errors: unknown[] = [];
  const app = createHttpApp({
    node: stubNode(
      { health: () => ({ ok: false, reason: "No leader known" }) },
      {
        read: () =>
          Promise.reject(
            new KvUnavailableError("Cannot serve a strong read: no leader"),
          ),
        commit: () =>
          Promise.reject(
            new KvOutcomeUnknownError(
              "Commit outcome unknown: deadline passed",
            ),
          ),
      },
    ),
    tokens: ["t"],
    logError: (error) => errors.push(error),
  });
  await t.step("/health is 503 with a reason", async () => {
    const health = await call(app, "GET", "/health", undefined, {
      token: null,
    });
    assert.deepEqual([health.status, health.body], [503, {
      ok: false,
      reason: "No leader known",
    }]);
  });
  await t.step("/metrics is Prometheus text", async () => {
    const metrics = await call(app, "GET", "/metrics", undefined, {
      token: "t",
    });
    assert.equal(metrics.status, 200);
    assert.equal(
      metrics.contentType,
      "text/plain; version=0.0.4; charset=utf-8",
    );
    assert.equal(metrics.body, "aspen_up 1\n");
  });
  await t.step("unavailable read is 503", async () => {
    const read = await call(app, "POST", "/v1/kv/get", { key: ["a"] }, {
      token: "t",
    });
    assert.deepEqual([read.status, read.body.error.code], [503, "unavailable"]);
  });
  await t.step("unknown commit outcome is 504 outcomeUnknown", async () => {
    const write = await call(app, "POST", "/v1/kv/set", {
      key: ["a"],
      value: bytesValue("x"),
    }, { token: "t" });
    assert.deepEqual([write.status, write.body.error.code], [
      504,
      "outcomeUnknown",
    ]);
    assert.match(write.body.error.message, /outcome unknown/);
  });
  await t.step(
    "an unexpected error is 500 internal and logged, without its message",
    async () => {
      const status = await call(app, "GET", "/v1/cluster/status", undefined, {
        token: "t",
      });
      assert.deepEqual([status.status, status.body.error.code], [
        500,
        "internal",
      ]);
      assert.doesNotMatch(status.body.error.message, /stub/);
      assert.equal(errors.length, 1);
    },
  );
});

Deno.test("createHttpApp() mounts a KV Connect sub-app behind the token check", async () => {
  const kvConnect = new Hono();
  kvConnect.post("/v2/database", (c) => c.json({ mounted: true }));
  const app = createHttpApp({ node: stubNode({}), tokens: ["t"], kvConnect });
  assert.deepEqual(
    (await call(app, "POST", "/v2/database", undefined, { token: "t" })).body,
    { mounted: true },
  );
  assert.equal(
    (await call(app, "POST", "/v2/database", undefined, { token: "u" })).status,
    401,
  );
});

Deno.test("createHttpApp() validates its options", () => {
  assert.throws(
    () => createHttpApp({ node: stubNode({}), tokens: [""] }),
    RangeError,
  );
  assert.throws(
    () =>
      createHttpApp({ node: stubNode({}), tokens: null, bodyLimitBytes: 0 }),
    /'bodyLimitBytes' must be a positive integer/,
  );
});

Deno.test("ERROR_STATUS gives every error code a 4xx or 5xx status", () => {
  for (const code of ERROR_CODES) {
    assert.ok(ERROR_STATUS[code] >= 400 && ERROR_STATUS[code] < 600, code);
  }
});
