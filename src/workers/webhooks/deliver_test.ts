import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { HookTargetError } from "../../protocol/hook_targets.ts";
import {
  connectTarget,
  deliver,
  type DeliverRequest,
  RESPONSE_BODY_BYTES_MAX,
} from "./deliver.ts";
import { type Resolver, TargetGuard } from "./guard.ts";
import { DEFAULT_RETRY_POLICY, nextAttempt } from "./schedule.ts";
import { generateSecret, parseSecret } from "./sign.ts";

const CURRENT = generateSecret(new Uint8Array(32).fill(11));
const PREVIOUS = generateSecret(new Uint8Array(32).fill(12));
const BODY = JSON.stringify({ revision: 7, index: 0, type: "kv.set" });

/** What the receiver saw of one request. */
interface Received {
  readonly url: string;
  readonly headers: Headers;
  readonly body: string;
  /** Webhook.verify's result with each secret, or the error it threw. */
  readonly verifiedWith: Record<"current" | "previous", unknown>;
}

type Handler = (request: Request) => Response | Promise<Response>;

/** A Deno.serve receiver on 127.0.0.1:0 that verifies every request. */
function startReceiver(handler: Handler) {
  const received: Received[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const body = await request.text();
      const headers = Object.fromEntries(request.headers);
      const verify = (secret: string) => {
        try {
          return new Webhook(secret).verify(body, headers);
        } catch (error) {
          return error;
        }
      };
      received.push({
        url: request.url,
        headers: request.headers,
        body,
        verifiedWith: { current: verify(CURRENT), previous: verify(PREVIOUS) },
      });
      return await handler(request);
    },
  );
  return {
    port: server.addr.port,
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    received,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

const noDns: Resolver = (hostname) => {
  throw new Error(`unexpected DNS lookup of ${hostname}`);
};
const LOCAL = new TargetGuard(["127.0.0.1/32"], { resolve: noDns });

function attempt(
  url: string,
  overrides: Partial<DeliverRequest> = {},
): DeliverRequest {
  return {
    url,
    body: new TextEncoder().encode(BODY),
    id: "cluster1.7.0",
    timestampSec: Math.floor(Date.now() / 1000),
    secrets: [parseSecret(CURRENT)],
    attempt: 1,
    guard: LOCAL,
    ...overrides,
  };
}

Deno.test("deliver() sends a signed POST that standardwebhooks verifies, with Aspen's and the user's headers", async () => {
  await using receiver = startReceiver(() => new Response("thanks"));
  const result = await deliver(attempt(receiver.url + "?q=1", {
    headers: { "X-Team": "orders" },
    secrets: [parseSecret(CURRENT), parseSecret(PREVIOUS)],
    attempt: 3,
    replayOf: "replay-9",
  }));
  assert.equal(result.outcome, "ok");
  assert.equal(result.status, 200);
  assert.equal(result.error, undefined);
  assert.ok(result.latencyMs >= 0);
  assert.equal(receiver.received.length, 1);
  const [seen] = receiver.received;
  assert.ok(seen !== undefined);
  assert.equal(seen.body, BODY);
  assert.deepEqual(seen.verifiedWith.current, JSON.parse(BODY));
  assert.deepEqual(seen.verifiedWith.previous, JSON.parse(BODY));
  assert.equal(seen.headers.get("webhook-id"), "cluster1.7.0");
  assert.equal(seen.headers.get("aspen-attempt"), "3");
  assert.equal(seen.headers.get("aspen-replay"), "replay-9");
  assert.equal(seen.headers.get("content-type"), "application/json");
  assert.equal(seen.headers.get("x-team"), "orders");
  assert.equal(seen.headers.get("host"), `127.0.0.1:${receiver.port}`);
  assert.equal(new URL(seen.url).search, "?q=1");
});

Deno.test("deliver() sends one signature without a rotation and no aspen-replay on a first delivery", async () => {
  await using receiver = startReceiver(() =>
    new Response(null, { status: 204 })
  );
  const result = await deliver(attempt(receiver.url));
  assert.equal(result.outcome, "ok");
  assert.equal(result.status, 204);
  const [seen] = receiver.received;
  assert.ok(seen !== undefined);
  assert.deepEqual(seen.verifiedWith.current, JSON.parse(BODY));
  assert.ok(seen.verifiedWith.previous instanceof Error);
  assert.equal(seen.headers.get("webhook-signature")?.split(" ").length, 1);
  assert.equal(seen.headers.get("aspen-replay"), null);
  assert.equal(seen.headers.get("aspen-attempt"), "1");
});

Deno.test("deliver() classifies the receiver's answers", async (t) => {
  const cases: [
    name: string,
    response: () => Response,
    expected: { status: number; outcome: string; retryAfterMs?: number },
  ][] = [
    [
      "503 with Retry-After",
      () =>
        new Response("busy", { status: 503, headers: { "retry-after": "7" } }),
      { status: 503, outcome: "failed", retryAfterMs: 7_000 },
    ],
    ["503 without Retry-After", () => new Response("busy", { status: 503 }), {
      status: 503,
      outcome: "failed",
    }],
    [
      "429 with Retry-After",
      () =>
        new Response(null, { status: 429, headers: { "retry-after": "120" } }),
      { status: 429, outcome: "failed", retryAfterMs: 120_000 },
    ],
    [
      "429 with a Retry-After past 1 h",
      () =>
        new Response(null, {
          status: 429,
          headers: { "retry-after": "86400" },
        }),
      { status: 429, outcome: "failed", retryAfterMs: 3_600_000 },
    ],
    [
      "500 ignores Retry-After",
      () =>
        new Response(null, { status: 500, headers: { "retry-after": "7" } }),
      { status: 500, outcome: "failed" },
    ],
    ["410", () => new Response("bye", { status: 410 }), {
      status: 410,
      outcome: "gone",
    }],
    ["200", () => new Response("{}"), { status: 200, outcome: "ok" }],
  ];
  for (const [name, response, expected] of cases) {
    await t.step(name, async () => {
      await using receiver = startReceiver(response);
      const result = await deliver(attempt(receiver.url));
      assert.equal(result.status, expected.status);
      assert.equal(result.outcome, expected.outcome);
      assert.equal(result.retryAfterMs, expected.retryAfterMs);
      assert.equal(receiver.received.length, 1);
    });
  }
});

Deno.test("deliver() does not follow a 302", async () => {
  await using receiver = startReceiver((request) =>
    new URL(request.url).pathname === "/hook"
      ? new Response(null, { status: 302, headers: { location: "/elsewhere" } })
      : new Response("followed")
  );
  const result = await deliver(attempt(receiver.url));
  assert.equal(result.status, 302);
  assert.equal(result.outcome, "failed");
  assert.match(result.error ?? "", /302 not followed/);
  assert.equal(receiver.received.length, 1);
});

Deno.test("deliver() times out a receiver that hangs", async () => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  await using receiver = startReceiver(async (request) => {
    const aborted = new Promise<void>((resolve) =>
      request.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    await Promise.race([released, aborted]);
    return new Response("late");
  });
  try {
    const result = await deliver(attempt(receiver.url, { timeoutMs: 1_000 }));
    assert.equal(result.outcome, "timeout");
    assert.equal(result.status, undefined);
    assert.match(result.error ?? "", /TimeoutError/);
  } finally {
    release();
  }
});

Deno.test("deliver() reads at most 64 KiB of an endless body", async () => {
  let cancelled = false;
  let pulledBytes = 0;
  await using receiver = startReceiver(() =>
    new Response(
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulledBytes += 16 * 1024;
          controller.enqueue(new Uint8Array(16 * 1024));
        },
        cancel() {
          cancelled = true;
        },
      }),
    )
  );
  // Reading it all would end in the timeout; a bounded read answers ok.
  const result = await deliver(attempt(receiver.url, { timeoutMs: 30_000 }));
  assert.equal(result.outcome, "ok");
  assert.equal(result.status, 200);
  assert.ok(pulledBytes >= RESPONSE_BODY_BYTES_MAX);
  const deadline = Date.now() + 10_000;
  while (!cancelled && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(cancelled, "the receiver's stream was never cancelled");
});

Deno.test("deliver() blocks a refused target without sending anything", async () => {
  await using receiver = startReceiver(() => new Response("should not come"));
  const guard = new TargetGuard([], { resolve: noDns });
  const result = await deliver(
    attempt(receiver.url + "?token=hunter2", { guard }),
  );
  assert.equal(result.outcome, "blocked");
  assert.equal(result.status, undefined);
  assert.match(result.error ?? "", /'127\.0\.0\.1'.*loopback/);
  assert.ok(!(result.error ?? "").includes("hunter2"));
  assert.equal(receiver.received.length, 0);
});

Deno.test("deliver() connects plain http to the checked address and keeps the name in Host", async () => {
  await using receiver = startReceiver(() => new Response("ok"));
  // hook.test exists in no DNS: the request can only arrive because the
  // worker connects to the address the guard checked.
  const resolve: Resolver = (hostname, recordType) =>
    Promise.resolve(
      hostname === "hook.test" && recordType === "A" ? ["127.0.0.1"] : [],
    );
  const guard = new TargetGuard(["127.0.0.1/32"], { resolve });
  const result = await deliver(
    attempt(`http://hook.test:${receiver.port}/hook`, { guard }),
  );
  assert.equal(result.outcome, "ok");
  const [seen] = receiver.received;
  assert.equal(seen?.headers.get("host"), `hook.test:${receiver.port}`);
});

Deno.test("deliver() reports a refused connection as error, without the path or query", async () => {
  let port: number;
  {
    await using closed = startReceiver(() => new Response());
    port = closed.port;
  }
  const result = await deliver(
    attempt(`http://127.0.0.1:${port}/secret-path?token=hunter2`),
  );
  assert.equal(result.outcome, "error");
  assert.equal(result.status, undefined);
  const error = result.error ?? "";
  assert.ok(error.length > 0 && error.length <= 256);
  assert.ok(!error.includes("hunter2"), error);
  assert.ok(!error.includes("secret-path"), error);
});

Deno.test("deliver() refuses invalid headers, URLs and timeouts before sending", async (t) => {
  await using receiver = startReceiver(() => new Response());
  const refusals: [string, Partial<DeliverRequest>, string][] = [
    [
      "webhook-* header",
      { headers: { "webhook-id": "forged" } },
      "invalidHeader",
    ],
    ["aspen-* header", { headers: { "Aspen-Attempt": "9" } }, "invalidHeader"],
    ["host header", { headers: { host: "evil.test" } }, "invalidHeader"],
    [
      "content-length header",
      { headers: { "content-length": "1" } },
      "invalidHeader",
    ],
    [
      "hop-by-hop header",
      { headers: { "transfer-encoding": "chunked" } },
      "invalidHeader",
    ],
    [
      "proxy-* header",
      { headers: { "proxy-authorization": "x" } },
      "invalidHeader",
    ],
    ["17 headers", {
      headers: Object.fromEntries(
        Array.from({ length: 17 }, (_, i) => [`x-${i}`, "v"]),
      ),
    }, "tooManyHeaders"],
    ["timeout below 1 s", { timeoutMs: 999 }, "invalidTimeout"],
    ["timeout above 30 s", { timeoutMs: 30_001 }, "invalidTimeout"],
    [
      "userinfo",
      { url: `http://user:pw@127.0.0.1:${receiver.port}/` },
      "invalidUrl",
    ],
    ["scheme", { url: `ftp://127.0.0.1:${receiver.port}/` }, "invalidUrl"],
  ];
  for (const [name, overrides, code] of refusals) {
    await t.step(name, async () => {
      await assert.rejects(
        deliver(attempt(receiver.url, overrides)),
        (error: unknown) =>
          error instanceof HookTargetError && error.code === code,
      );
    });
  }
  assert.equal(receiver.received.length, 0);
});

Deno.test("deliver() rejects with the caller's reason when aborted", async () => {
  const { promise: released, resolve: release } = Promise.withResolvers<void>();
  const arrived = Promise.withResolvers<void>();
  await using receiver = startReceiver(async (request) => {
    arrived.resolve();
    const aborted = new Promise<void>((resolve) =>
      request.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    await Promise.race([released, aborted]);
    return new Response("late");
  });
  const controller = new AbortController();
  const reason = new Error("worker stopping");
  try {
    const pending = deliver(
      attempt(receiver.url, { signal: controller.signal }),
    );
    await arrived.promise;
    controller.abort(reason);
    await assert.rejects(pending, (error: unknown) => error === reason);
  } finally {
    release();
  }
  await assert.rejects(
    deliver(attempt(receiver.url, { signal: AbortSignal.abort(reason) })),
    (error: unknown) => error === reason,
  );
});

Deno.test("connectTarget() pins plain http to the address and leaves https on the name", () => {
  const v4 = connectTarget(new URL("http://hook.test/h?a=1"), {
    address: "93.184.216.34",
    family: 4,
  });
  assert.equal(v4.url.href, "http://93.184.216.34/h?a=1");
  assert.equal(v4.host, "hook.test");
  const v6 = connectTarget(new URL("http://hook.test:8080/h"), {
    address: "2606:2800:220:1::1",
    family: 6,
  });
  assert.equal(v6.url.href, "http://[2606:2800:220:1::1]:8080/h");
  assert.equal(v6.host, "hook.test:8080");
  const tls = new URL("https://hook.test/h");
  const https = connectTarget(tls, { address: "93.184.216.34", family: 4 });
  assert.equal(https.url, tls);
  assert.equal(https.host, null);
});

Deno.test("deliver() results feed nextAttempt(): a 503's Retry-After is the floor of the retry", async () => {
  await using receiver = startReceiver(() =>
    new Response(null, { status: 503, headers: { "retry-after": "600" } })
  );
  const result = await deliver(attempt(receiver.url, { attempt: 2 }));
  assert.equal(result.outcome, "failed");
  const nowMs = 5_000_000;
  const next = nextAttempt({
    attempt: 2,
    firstFailureAtMs: nowMs - 1_000,
    nowMs,
    outcome: result.outcome,
    retryAfterMs: result.retryAfterMs,
    random: 0.5,
    policy: DEFAULT_RETRY_POLICY,
  });
  // The schedule's second step is 5 s; the receiver asked for 10 min.
  assert.deepEqual(next, { nextAttemptAtMs: nowMs + 600_000 });
});
