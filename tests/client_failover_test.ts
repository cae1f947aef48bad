/**
 * The client module's choice of node while nodes fail: a node that refused
 * a connection (its process is gone) is passed over while another node can
 * be tried, and the client still cycles through every node when all of them
 * refuse. A stub `fetch` records which node each attempt went to.
 */
import assert from "node:assert/strict";
import { HttpTransport } from "../src/client/_transport.ts";
import { UnavailableError } from "../src/client/errors.ts";
import { ROUTES } from "../src/protocol/http_api.ts";

/** A transport over `urls` whose fetch answers per node with `answer`. */
function transport(
  urls: readonly string[],
  answer: (node: string) => Response | "refused",
  attemptsMax: number,
): { transport: HttpTransport; attempts: string[] } {
  const attempts: string[] = [];
  const fetchStub: typeof fetch = (input) => {
    const node = new URL(String(input)).host;
    attempts.push(node);
    const reply = answer(node);
    if (reply === "refused") {
      return Promise.reject(
        new TypeError("client error (Connect)", {
          cause: new Error(
            "tcp connect error: Connection refused (os error 111)",
          ),
        }),
      );
    }
    return Promise.resolve(reply);
  };
  return {
    attempts,
    transport: new HttpTransport({
      urls,
      token: undefined,
      timeoutMs: 5_000,
      format: "json",
      attemptsMax,
      fetch: fetchStub,
      // Far longer than the test: the choice, not the expiry, is under test.
      downMs: 3_600_000,
    }),
  };
}

function unavailable(): Response {
  return new Response(
    JSON.stringify({
      error: { code: "unavailable", message: "No leader", details: {} },
    }),
    { status: 503, headers: { "content-type": "application/json" } },
  );
}

Deno.test("a write passes over the node that refused its connection and retries the others", async () => {
  const { transport: client, attempts } = transport(
    ["http://a.test", "http://b.test", "http://c.test"],
    (node) => node === "a.test" ? "refused" : unavailable(),
    6,
  );
  const error = await client.request(
    "POST",
    ROUTES.kvSet,
    { key: [], value: null },
    "write",
  ).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof UnavailableError, `got ${error}`);
  // The old rotation went back to a.test on the fourth attempt.
  assert.deepEqual(attempts, [
    "a.test",
    "b.test",
    "c.test",
    "b.test",
    "c.test",
    "b.test",
  ]);
  // A later request starts on a node that answered, not on a.test.
  attempts.length = 0;
  await client.request("GET", ROUTES.clusterStatus, undefined, "idempotent")
    .catch(() => {});
  assert.notEqual(attempts[0], "a.test");
  assert.ok(!attempts.includes("a.test"), `attempts ${attempts}`);
  client.close();
});

Deno.test("a read cycles through every node when all of them refuse connections", async () => {
  const { transport: client, attempts } = transport(
    ["http://a.test", "http://b.test"],
    () => "refused",
    4,
  );
  const error = await client.request(
    "GET",
    ROUTES.clusterStatus,
    undefined,
    "idempotent",
  ).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof UnavailableError, `got ${error}`);
  assert.match((error as Error).message, /Cannot reach http:\/\/b\.test/);
  assert.deepEqual(attempts, ["a.test", "b.test", "a.test", "b.test"]);
  client.close();
});

Deno.test("a node that answers is kept after another node refused a connection", async () => {
  let calls = 0;
  const { transport: client, attempts } = transport(
    ["http://a.test", "http://b.test", "http://c.test"],
    (node) => {
      if (node === "a.test") return "refused";
      calls++;
      return new Response(JSON.stringify({ ok: true }), {
        headers: { "content-type": "application/json" },
      });
    },
    6,
  );
  for (let i = 0; i < 3; i++) {
    await client.request("GET", ROUTES.clusterStatus, undefined, "idempotent");
  }
  assert.equal(calls, 3);
  assert.deepEqual(attempts, ["a.test", "b.test", "b.test", "b.test"]);
  assert.deepEqual(client.urls, [
    "http://b.test",
    "http://c.test",
    "http://a.test",
  ]);
  client.close();
});
