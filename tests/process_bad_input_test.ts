/**
 * Bad input against a real node process started with `ASPEN_TOKENS`:
 * malformed keys and bodies, oversize values and bodies, a wrong or missing
 * token, unknown routes. Each gets a 4xx with a typed error body and a clear
 * message, and nothing changes (same commit index, same entries). The CLI
 * against the same node prints one error line and exits with its code.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { aspen as runCli, type CliResult } from "./helpers/cli_run.ts";

const TOKEN = "process-test-token-0123456789";

interface BadRequest {
  readonly name: string;
  readonly method?: string;
  readonly path: string;
  readonly token?: string | null;
  readonly contentType?: string;
  readonly body?: string;
  readonly status: number;
  readonly code: string;
  /** What the message must say. */
  readonly message: RegExp;
}

const json = (value: unknown) => JSON.stringify(value);
const v8String = { encoding: "bytes", data: btoa("ok") };

const BAD_REQUESTS: readonly BadRequest[] = [
  {
    name: "wrong token",
    path: "/v1/kv/set",
    token: "wrong-token-0123456789",
    body: json({ key: ["a"], value: v8String }),
    status: 401,
    code: "unauthorized",
    message: /token/i,
  },
  {
    name: "missing token",
    path: "/v1/kv/get",
    token: null,
    body: json({ key: ["sentinel"] }),
    status: 401,
    code: "unauthorized",
    message: /token/i,
  },
  {
    name: "unknown route",
    path: "/v1/kv/frobnicate",
    body: json({}),
    status: 404,
    code: "notFound",
    message: /frobnicate|route|not found/i,
  },
  {
    name: "unknown route (GET)",
    method: "GET",
    path: "/v2/anything",
    status: 404,
    code: "notFound",
    message: /anything|route|not found/i,
  },
  {
    name: "key that is not a list",
    path: "/v1/kv/set",
    body: json({ key: "a", value: v8String }),
    status: 400,
    code: "invalidKey",
    message: /key/,
  },
  {
    name: "key part of an unknown type",
    path: "/v1/kv/set",
    body: json({ key: [{ type: "date", value: 1 }], value: v8String }),
    status: 400,
    code: "invalidKey",
    message: /key/,
  },
  {
    name: "bigint key part that is not a number",
    path: "/v1/kv/set",
    body: json({ key: [{ type: "bigint", value: "12x" }], value: v8String }),
    status: 400,
    code: "invalidKey",
    message: /12x|bigint/i,
  },
  {
    name: "empty key in a set",
    path: "/v1/kv/set",
    body: json({ key: [], value: v8String }),
    status: 400,
    code: "invalidKey",
    message: /key/i,
  },
  {
    name: "body that is not JSON",
    path: "/v1/kv/set",
    body: '{"key": ["a"], "value": ',
    status: 400,
    code: "badRequest",
    message: /JSON|body/i,
  },
  {
    name: "unknown field",
    path: "/v1/kv/set",
    body: json({ key: ["a"], value: v8String, colour: "red" }),
    status: 400,
    code: "badRequest",
    message: /colour/,
  },
  {
    name: "value over 64 KiB",
    path: "/v1/kv/set",
    body: json({
      key: ["big"],
      value: { encoding: "bytes", data: btoa("x".repeat(65_537)) },
    }),
    status: 400,
    code: "limitExceeded",
    message: /value/i,
  },
  {
    name: "key over 2 KiB",
    path: "/v1/kv/set",
    body: json({ key: ["k".repeat(2_100)], value: v8String }),
    status: 400,
    code: "limitExceeded",
    message: /key/i,
  },
  {
    name: "body over the 2 MiB limit",
    path: "/v1/kv/set",
    body: json({
      key: ["huge"],
      value: { encoding: "bytes", data: btoa("x".repeat(1_600_000)) },
    }),
    status: 413,
    code: "bodyTooLarge",
    message: /body|large|limit/i,
  },
  {
    name: "atomic with a malformed check versionstamp",
    path: "/v1/kv/atomic",
    body: json({
      checks: [{ key: ["sentinel"], versionstamp: "not-hex" }],
      mutations: [{ type: "set", key: ["sentinel"], value: v8String }],
    }),
    status: 400,
    code: "invalid",
    message: /versionstamp/i,
  },
  {
    name: "unsupported content type",
    path: "/v1/kv/set",
    contentType: "text/plain",
    body: "key=a",
    status: 415,
    code: "unsupportedMediaType",
    message: /content type|json|msgpack/i,
  },
];

async function send(url: string, request: BadRequest): Promise<Response> {
  const headers: Record<string, string> = {
    "content-type": request.contentType ?? "application/json",
  };
  const token = request.token === undefined ? TOKEN : request.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  return await fetch(`${url}${request.path}`, {
    method: request.method ?? "POST",
    headers,
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
}

/** The CLI against `url`, through the shared runner. */
function aspen(url: string, args: readonly string[]): Promise<CliResult> {
  return runCli(["--url", url, ...args]);
}

Deno.test("node process answers bad input with a typed 4xx and changes nothing; the CLI prints one error line with its exit code", async (t) => {
  await withProcessCluster({
    count: 1,
    env: { ASPEN_TOKENS: TOKEN },
    token: TOKEN,
  }, async (cluster) => {
    await cluster.waitForLeader(10_000);
    const url = cluster.node(0).url;
    using client = connect(url, { token: TOKEN });
    const sentinel = await client.kv.set(["sentinel"], "unchanged");
    const before = (await cluster.status(0))!;
    const listAll = async () => {
      const entries = [];
      for await (const entry of client.kv.list({ prefix: [] })) {
        entries.push([entry.key, entry.value, entry.versionstamp]);
      }
      return entries;
    };
    const entriesBefore = await listAll();

    for (const request of BAD_REQUESTS) {
      await t.step(
        `${request.name}: ${request.status} ${request.code}`,
        async () => {
          const response = await send(url, request);
          const text = await response.text();
          assert.equal(response.status, request.status, text);
          assert.match(
            response.headers.get("content-type") ?? "",
            /application\/json/,
          );
          const body = JSON.parse(text);
          assert.equal(body.error?.code, request.code, text);
          const message: string = body.error.message;
          assert.match(message, /^[A-Z]/, "the message starts with a capital");
          assert.doesNotMatch(
            message,
            /\.$/,
            "the message has no final period",
          );
          assert.match(message, request.message);
        },
      );
    }

    await t.step("KV Connect refuses a wrong token", async () => {
      const response = await fetch(`${url}/kv`, {
        method: "POST",
        headers: {
          authorization: "Bearer wrong-token-0123456789",
          "content-type": "application/json",
        },
        body: json({ supportedVersions: [2, 3] }),
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(response.status, 401);
      assert.notEqual((await response.text()).trim(), "");
    });

    await t.step("nothing changed", async () => {
      const after = (await cluster.status(0))!;
      assert.equal(after.commitIndex, before.commitIndex);
      assert.deepEqual(await listAll(), entriesBefore);
      const got = await client.kv.get(["sentinel"]);
      assert.equal(got.versionstamp, sentinel.versionstamp);
    });

    const cases: {
      name: string;
      args: string[];
      code: number;
      stderr: RegExp;
    }[] = [
      {
        name: "wrong token",
        args: ["--token", "wrong-token-0123456789", "kv", "get", "sentinel"],
        code: 4,
        stderr: /token/i,
      },
      {
        name: "missing token",
        args: ["kv", "get", "sentinel"],
        code: 4,
        stderr: /token/i,
      },
      {
        name: "malformed key",
        args: ["--token", TOKEN, "kv", "set", '["a", {"type": "date"}]', "v"],
        code: 2,
        stderr: /key/i,
      },
      {
        name: "key that is not JSON",
        args: ["--token", TOKEN, "kv", "get", '["a", '],
        code: 2,
        stderr: /key/i,
      },
      {
        name: "oversize value",
        args: ["--token", TOKEN, "kv", "set", "big", "x".repeat(70_000)],
        code: 2,
        stderr: /value|limit|large/i,
      },
      {
        name: "oversize key",
        args: ["--token", TOKEN, "kv", "set", "k".repeat(2_100), "v"],
        code: 2,
        stderr: /key|limit|large/i,
      },
    ];
    for (const { name, args, code, stderr } of cases) {
      await t.step(`aspen CLI, ${name}: exit ${code}`, async () => {
        const result = await aspen(url, args);
        assert.equal(result.code, code, result.stderr);
        assert.equal(result.stdout, "");
        const lines = result.stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, `one error line: ${result.stderr}`);
        assert.match(lines[0]!, /^aspen: /);
        assert.match(lines[0]!, stderr);
      });
    }

    await t.step("still nothing changed after the CLI", async () => {
      const after = (await cluster.status(0))!;
      assert.equal(after.commitIndex, before.commitIndex);
      assert.deepEqual(await listAll(), entriesBefore);
    });
  });
});
