import assert from "node:assert/strict";
import { connect } from "./connect.ts";
import {
  ClaimLostError,
  HookExistsError,
  HookNotFoundError,
  InvalidRequestError,
} from "./errors.ts";
import { hookSelectorToWire, hookWorkerCalls } from "./hooks.ts";
import { HookTargetError } from "../protocol/hook_targets.ts";

/** A client whose fetch answers from `reply` and records each request. */
function stubbed(
  reply: (path: string, body: unknown) => { status: number; body: unknown },
) {
  const requests: { path: string; body: unknown }[] = [];
  const client = connect("http://127.0.0.1:9", {
    token: "t",
    fetch: async (input, init) => {
      const path = new URL(String(input)).pathname;
      const bytes = init?.body as Uint8Array | undefined;
      const body = bytes === undefined
        ? null
        : JSON.parse(new TextDecoder().decode(bytes));
      requests.push({ path, body });
      const answer = reply(path, body);
      return await Promise.resolve(
        new Response(JSON.stringify(answer.body), {
          status: answer.status,
          headers: { "content-type": "application/json" },
        }),
      );
    },
  });
  return { client, requests };
}

const SECRET = "whsec_" + btoa("k".repeat(32));

Deno.test("hookSelectorToWire() writes prefix, range and every key; refuses other shapes", () => {
  assert.deepEqual(hookSelectorToWire({}), {});
  assert.deepEqual(hookSelectorToWire({ prefix: ["orders", 1] }), {
    prefix: ["orders", 1],
  });
  assert.deepEqual(hookSelectorToWire({ start: ["a"], end: ["b"] }), {
    start: ["a"],
    end: ["b"],
  });
  assert.throws(
    () => hookSelectorToWire({ start: ["a"] } as never),
    TypeError,
  );
});

Deno.test("client.hooks.create() sends the wire request and checks its input before sending", async () => {
  const { client, requests } = stubbed(() => ({
    status: 200,
    body: {
      id: "00000000000000aa",
      name: "orders",
      secret: SECRET,
      cursor: null,
      fromRevision: 5,
    },
  }));
  const created = await client.hooks.create({
    name: "orders",
    selector: { prefix: ["orders"] },
    types: ["kv.set"],
    target: {
      webhook: { url: "https://example.com/h", headers: { "X-Team": "a" } },
    },
    secret: SECRET,
    timeoutMs: 5_000,
    retrySchedule: [1_000, 60_000],
  });
  assert.equal(created.secret, SECRET);
  assert.deepEqual(requests, [{
    path: "/v1/hooks/create",
    body: {
      name: "orders",
      selector: { prefix: ["orders"] },
      types: ["kv.set"],
      target: {
        webhook: { url: "https://example.com/h", headers: { "x-team": "a" } },
      },
      secret: SECRET,
      timeoutMs: 5_000,
      retrySchedule: [1_000, 60_000],
    },
  }]);
  const bad: [string, Parameters<typeof client.hooks.create>[0], unknown][] = [
    ["name", { name: "Bad", target: { queue: { queue: "q" } } }, TypeError],
    [
      "url",
      { name: "a", target: { webhook: { url: "ftp://x" } } },
      HookTargetError,
    ],
    ["header", {
      name: "a",
      target: { webhook: { url: "https://x", headers: { host: "y" } } },
    }, HookTargetError],
    [
      "secret",
      { name: "a", secret: "nope", target: { queue: { queue: "q" } } },
      HookTargetError,
    ],
    [
      "types",
      { name: "a", types: [], target: { queue: { queue: "q" } } },
      RangeError,
    ],
    [
      "timeout",
      { name: "a", timeoutMs: 5, target: { queue: { queue: "q" } } },
      HookTargetError,
    ],
  ];
  for (const [what, options, type] of bad) {
    await assert.rejects(
      () => client.hooks.create(options),
      type as typeof Error,
      what,
    );
  }
  assert.equal(requests.length, 1, "nothing sent for bad input");
  client.close();
});

Deno.test("client.hooks rebuilds hookExists, hookNotFound, invalid and claimLost as typed errors", async () => {
  const codes: Record<string, [number, string]> = {
    "/v1/hooks/create": [409, "hookExists"],
    "/v1/hooks/get": [404, "hookNotFound"],
    "/v1/hooks/rotate-secret": [400, "invalid"],
    "/v1/hooks/begin": [409, "claimLost"],
  };
  const { client } = stubbed((path) => {
    const [status, code] = codes[path]!;
    return { status, body: { error: { code, message: `refused: ${code}` } } };
  });
  await assert.rejects(
    () => client.hooks.create({ name: "a", target: { queue: { queue: "q" } } }),
    HookExistsError,
  );
  await assert.rejects(() => client.hooks.get("a"), HookNotFoundError);
  await assert.rejects(
    () => client.hooks.rotateSecret("a"),
    InvalidRequestError,
  );
  await assert.rejects(
    () =>
      hookWorkerCalls(client.hooks).begin({
        hook: "00000000000000aa",
        token: 1,
        event: "5.0",
        attempt: 1,
      }),
    ClaimLostError,
  );
  client.close();
});

Deno.test("client.hooks.get() reads keys back from the wire; deliveries checks limit and outcome", async () => {
  const hook = {
    id: "00000000000000aa",
    name: "orders",
    selector: { prefix: ["orders", { type: "bigint", value: "5" }] },
    types: ["kv.*"],
    target: { queue: { queue: "q" } },
    state: "active",
    cursor: "7.0",
    fromRevision: 3,
    lag: 2,
    timeoutMs: 15_000,
    retryWindowMs: 259_200_000,
    retrySchedule: null,
    createdAtMs: 1,
    worker: null,
    retrying: null,
    deliveries: {
      ok: 1,
      failed: 0,
      timeout: 0,
      error: 0,
      blocked: 0,
      gone: 0,
      unknown: 0,
    },
  };
  const { client, requests } = stubbed((path) =>
    path === "/v1/hooks/get"
      ? { status: 200, body: hook }
      : { status: 200, body: { deliveries: [], cursor: null } }
  );
  const got = await client.hooks.get("orders");
  assert.deepEqual(got.selector, { prefix: ["orders", 5n] });
  assert.equal(got.worker, null);
  await assert.rejects(
    () => client.hooks.deliveries("orders", { limit: 0 }),
    RangeError,
  );
  await assert.rejects(
    () => client.hooks.deliveries("orders", { outcome: "meh" as never }),
    TypeError,
  );
  assert.deepEqual(
    await client.hooks.deliveries("orders", { outcome: "ok", limit: 5 }),
    {
      deliveries: [],
      cursor: null,
    },
  );
  assert.deepEqual(requests.at(-1), {
    path: "/v1/hooks/deliveries",
    body: { hook: "orders", outcome: "ok", limit: 5 },
  });
  await assert.rejects(() => client.hooks.replay("orders", 9, 3), RangeError);
  await assert.rejects(
    () => client.hooks.trigger("orders", { big: "x".repeat(5_000) }),
    RangeError,
  );
  client.close();
});
