/**
 * The default install is closed (issue 13, findings 2, 5, 9 and 11): a real
 * node with no tokens configured requires the cluster's data token on every
 * route and its admin token on admin routes; bodies need a JSON or
 * MessagePack Content-Type; a foreign Host is refused; no CORS header is
 * sent without an allowlist; the join route reads through the body limit
 * and answers malformed bodies with typed 4xx errors and no internal text;
 * `/v1/kv/watch` checks key sizes.
 */
import assert from "node:assert/strict";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode, type ServingNode } from "../src/server/serve.ts";
import { deriveToken } from "../src/cluster/access_tokens.ts";
import { waitFor } from "./helpers/wait_for.ts";

const HOST = "127.0.0.1";

async function withNode(
  fn: (serving: ServingNode, dir: string) => Promise<void>,
  config: Record<string, unknown> = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen-security-" });
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: dir,
      httpPort: freeTcpPorts(HOST, 1)[0]!,
      quicPort: 0,
      tickMs: 20,
      ...config,
    }),
    { log: () => {} },
  );
  try {
    await waitFor(
      "the node to lead",
      () => serving.node.runner.status().role === "leader",
      { timeoutMs: 20_000, intervalMs: 20 },
    );
    await fn(serving, dir);
  } finally {
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

interface Sent {
  readonly status: number;
  readonly text: string;
  readonly headers: Headers;
}

async function send(
  url: string,
  init: RequestInit & { token?: string | null } = {},
): Promise<Sent> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const response = await fetch(url, {
    ...init,
    headers,
    signal: AbortSignal.timeout(15_000),
  });
  return {
    status: response.status,
    text: await response.text(),
    headers: response.headers,
  };
}

const JSON_TYPE = { "content-type": "application/json" };

Deno.test("a node with no configured tokens requires the cluster's data token everywhere and its admin token on admin routes", async () => {
  await withNode(async (serving, dir) => {
    const data = serving.kvConnectTokens[0]!;
    const admin = serving.adminTokens[0]!;
    assert.notEqual(data, admin);
    // Both are derived from the cluster key and kept in the folder.
    const key = await Deno.readFile(`${dir}/cluster.key`);
    assert.equal(data, deriveToken(key, "data"));
    assert.equal(admin, deriveToken(key, "admin"));
    assert.equal((await Deno.readTextFile(`${dir}/access.token`)).trim(), data);
    assert.equal((await Deno.readTextFile(`${dir}/admin.token`)).trim(), admin);
    assert.equal((await Deno.stat(`${dir}/admin.token`)).mode! & 0o077, 0);

    const set = (token: string | null) =>
      send(`${serving.url}/v1/kv/set`, {
        method: "POST",
        headers: JSON_TYPE,
        body: JSON.stringify({
          key: ["a"],
          value: { encoding: "bytes", data: btoa("x") },
        }),
        token,
      });
    const anonymous = await set(null);
    assert.equal(anonymous.status, 401);
    assert.equal(JSON.parse(anonymous.text).error.code, "unauthorized");
    assert.equal((await set("wrong-token-0123456789")).status, 401);
    assert.equal((await set(data)).status, 200);
    assert.equal((await set(admin)).status, 200, "admin covers data routes");

    for (
      const path of ["/metrics", "/v1/cluster/status", "/v1/cluster/ticket"]
    ) {
      assert.equal((await send(`${serving.url}${path}`)).status, 401, path);
      assert.equal(
        (await send(`${serving.url}${path}`, { token: data })).status,
        200,
        path,
      );
    }
    // /health stays open (load balancers), and says nothing secret.
    assert.equal((await send(`${serving.url}/health`)).status, 200);

    // Admin routes: the data token is forbidden, the admin token works.
    for (const path of ["/v1/cluster/snapshot", "/v1/cluster/join-ticket"]) {
      assert.equal((await send(`${serving.url}${path}`)).status, 401, path);
      const forbidden = await send(`${serving.url}${path}`, { token: data });
      assert.equal(forbidden.status, 403, path);
      assert.equal(JSON.parse(forbidden.text).error.code, "forbidden");
      assert.equal(
        (await send(`${serving.url}${path}`, { token: admin })).status,
        200,
        path,
      );
    }
    const transfer = await send(`${serving.url}/v1/cluster/transfer-leader`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ nodeId: serving.node.id }),
      token: data,
    });
    assert.equal(transfer.status, 403);

    // KV Connect takes the same data token.
    const metadata = (token: string | null) =>
      send(`${serving.url}/kv`, {
        method: "POST",
        headers: JSON_TYPE,
        body: JSON.stringify({ supportedVersions: [2, 3] }),
        token,
      });
    assert.equal((await metadata(null)).status, 401);
    assert.equal((await metadata(data)).status, 200);
    assert.equal(
      (await metadata(admin)).status,
      200,
      "admin covers KV Connect",
    );
  });
});

Deno.test("bodies need a JSON or MessagePack Content-Type, a foreign Host is refused, and no CORS header is sent without an allowlist", async () => {
  await withNode(async (serving) => {
    const token = serving.kvConnectTokens[0]!;
    const body = JSON.stringify({ key: ["a"] });
    // What a cross-site form or a no-preflight fetch sends.
    for (
      const type of [null, "text/plain", "application/x-www-form-urlencoded"]
    ) {
      const reply = await send(`${serving.url}/v1/kv/get`, {
        method: "POST",
        headers: type === null ? {} : { "content-type": type },
        body: type === null ? new TextEncoder().encode(body) : body,
        token,
      });
      assert.equal(reply.status, 415, String(type));
      assert.equal(JSON.parse(reply.text).error.code, "unsupportedMediaType");
    }
    assert.equal(
      (await send(`${serving.url}/v1/kv/get`, {
        method: "POST",
        headers: JSON_TYPE,
        body,
        token,
      })).status,
      200,
    );

    // DNS rebinding: the attacker's name reaches the node with its own Host.
    const port = new URL(serving.url).port;
    const viaHost = (host: string) =>
      rawRequest(
        Number(port),
        `GET /v1/cluster/status HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`,
      );
    assert.match(await viaHost("evil.example:" + port), /^HTTP\/1\.1 421/);
    assert.match(await viaHost("127.0.0.1:" + port), /^HTTP\/1\.1 200/);
    assert.match(await viaHost("localhost:" + port), /^HTTP\/1\.1 200/);

    const preflight = await send(`${serving.url}/v1/kv/set`, {
      method: "OPTIONS",
      headers: {
        origin: "https://evil.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
      },
    });
    assert.equal(preflight.headers.get("access-control-allow-origin"), null);
  });
});

Deno.test("CORS answers only the configured origins", async () => {
  await withNode(async (serving) => {
    const ask = (origin: string) =>
      send(`${serving.url}/v1/kv/set`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization,content-type",
        },
      });
    assert.equal(
      (await ask("https://app.example")).headers.get(
        "access-control-allow-origin",
      ),
      "https://app.example",
    );
    assert.equal(
      (await ask("https://evil.example")).headers.get(
        "access-control-allow-origin",
      ),
      null,
    );
  }, { corsOrigins: ["https://app.example"] });
});

/** Bodies the old join route answered with 503 and internal error text. */
const MALFORMED_JOINS: readonly (readonly [string, string])[] = [
  ["null", "null"],
  ["empty object", "{}"],
  ["number token", '{"token":5}'],
  ["array", "[]"],
  ["string", '"join"'],
  ["number", "5"],
  ["true", "true"],
  ["not JSON", "{"],
  ["token only", '{"token":"abc"}'],
  ["null token", '{"token":null,"address":{}}'],
  ["empty token", '{"token":"","address":{}}'],
  ["non-base64 token", '{"token":"!!!","address":{}}'],
  ["address null", '{"token":"abc","address":null}'],
  ["address string", '{"token":"abc","address":"x"}'],
  ["address array", '{"token":"abc","address":[]}'],
  ["address empty", '{"token":"abc","address":{}}'],
  ["unknown field", '{"token":"abc","address":{},"x":1}'],
  [
    "bad quicPort",
    '{"token":"abc","address":{"nodeId":"a","httpUrl":"http://x","quicHost":"h","quicPort":"1","nodeKey":"a","certificateHash":"a"}}',
  ],
  [
    "port out of range",
    '{"token":"abc","address":{"nodeId":"a","httpUrl":"http://x","quicHost":"h","quicPort":70000,"nodeKey":"a","certificateHash":"a"}}',
  ],
  [
    "non-base64 node key",
    '{"token":"abc","address":{"nodeId":"a","httpUrl":"http://x","quicHost":"h","quicPort":1,"nodeKey":"%%","certificateHash":"a"}}',
  ],
  [
    "forged token",
    '{"token":"abcd","address":{"nodeId":"a","httpUrl":"http://x","quicHost":"h","quicPort":1,"nodeKey":"AAAA","certificateHash":"AAAA"}}',
  ],
  [
    "msgpack token in base64url",
    '{"token":"kwAAAA","address":{"nodeId":"a","httpUrl":"http://x","quicHost":"h","quicPort":1,"nodeKey":"AAAA","certificateHash":"AAAA"}}',
  ],
  ["nested deep", "[".repeat(10_000) + "]".repeat(10_000)],
  ["empty body", ""],
  ["whitespace", "   "],
  ["huge string token", `{"token":"${"a".repeat(5000)}","address":{}}`],
  ["number address", '{"token":"abc","address":5}'],
];

Deno.test("POST /v1/cluster/join answers every malformed body with a typed 4xx and no internal text, and refuses an oversized body before reading it", async () => {
  await withNode(async (serving) => {
    for (const [name, body] of MALFORMED_JOINS) {
      const reply = await send(`${serving.url}/v1/cluster/join`, {
        method: "POST",
        headers: JSON_TYPE,
        body,
      });
      assert.ok(
        reply.status >= 400 && reply.status < 500,
        `${name}: ${reply.status} ${reply.text}`,
      );
      const error = JSON.parse(reply.text).error;
      assert.equal(typeof error.code, "string", name);
      assert.doesNotMatch(
        error.message,
        /TypeError|SyntaxError|RangeError|Cannot read|is not a function|file:\/\/| {4}at /,
        name,
      );
    }
    // A declared 10 GB body with nothing sent: refused at once (413).
    const port = Number(new URL(serving.url).port);
    const declared = await rawRequest(
      port,
      `POST /v1/cluster/join HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n`,
    );
    assert.match(declared, /^HTTP\/1\.1 413/);
    // A streamed body past the limit is cut off (413), not buffered.
    const big = new ReadableStream<Uint8Array>({
      start(controller) {
        const chunk = new Uint8Array(256 * 1024).fill(0x20);
        for (let i = 0; i < 16; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const streamed = await send(`${serving.url}/v1/cluster/join`, {
      method: "POST",
      headers: JSON_TYPE,
      body: big,
    });
    assert.equal(streamed.status, 413);
  });
});

Deno.test("/v1/kv/watch refuses a key over 2,049 bytes with 400, as KV Connect does", async () => {
  await withNode(async (serving) => {
    const token = serving.kvConnectTokens[0]!;
    const reply = await send(`${serving.url}/v1/kv/watch`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ keys: [["k".repeat(2_100)]] }),
      token,
    });
    assert.equal(reply.status, 400);
    assert.equal(JSON.parse(reply.text).error.code, "limitExceeded");
  });
});

/** Sends raw bytes and returns what the node answers until it closes (or 5 s). */
async function rawRequest(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: HOST, port });
  try {
    await conn.write(new TextEncoder().encode(text));
    const buffer = new Uint8Array(64 * 1024);
    let out = "";
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !/\r\n\r\n/.test(out)) {
      const n = await conn.read(buffer);
      if (n === null) break;
      out += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return out;
  } finally {
    conn.close();
  }
}
