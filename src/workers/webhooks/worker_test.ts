import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { connect } from "../../client/connect.ts";
import type { WireEvent } from "../../protocol/http_api_events.ts";
import type {
  HookFinishRequest,
  WireClaim,
} from "../../protocol/http_api_hooks.ts";
import { waitFor } from "../../../tests/helpers/wait_for.ts";
import { TargetGuard } from "./guard.ts";
import { eventForHook, typesWithOwnEvents } from "./_hook_loop.ts";
import { type DeliveryReport, WebhookWorker } from "./worker.ts";

const HOOK = "00000000000000aa";
const SECRET = "whsec_" + btoa("s".repeat(32));

Deno.test("typesWithOwnEvents() adds hook.test and hook.gap unless a pattern covers them", () => {
  assert.deepEqual(typesWithOwnEvents(["kv.*"]), [
    "kv.*",
    "hook.test",
    "hook.gap",
  ]);
  assert.deepEqual(typesWithOwnEvents(["hook.*"]), ["hook.*"]);
  assert.deepEqual(typesWithOwnEvents(["*"]), ["*"]);
  assert.deepEqual(typesWithOwnEvents(["kv.set", "hook.test"]), [
    "kv.set",
    "hook.test",
    "hook.gap",
  ]);
});

Deno.test("eventForHook() keeps hook.test and hook.gap for their own hook only", () => {
  const event = (type: string, hook?: string): WireEvent => ({
    id: "5.0",
    revision: 5,
    index: 0,
    type,
    ...(hook === undefined ? {} : { data: { hook } }),
  });
  assert.ok(eventForHook(event("kv.set"), HOOK));
  assert.ok(eventForHook(event("hook.test", HOOK), HOOK));
  assert.ok(!eventForHook(event("hook.test", "00000000000000bb"), HOOK));
  assert.ok(!eventForHook(event("hook.gap", "00000000000000bb"), HOOK));
});

/**
 * A fake cluster for one claimed hook: leases, claim, list, deliveries,
 * events, begin and finish, recording each worker call. The first finish's
 * answer is lost (applied, then the connection fails), as a leader change
 * may do.
 */
function fakeCluster(events: WireEvent[], claim: WireClaim) {
  const calls: { path: string; body: Record<string, unknown> }[] = [];
  let finishes = 0;
  let cursor: string | null = claim.cursor;
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json" },
    });
  const fetchStub = (input: RequestInfo | URL, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const bytes = init?.body as Uint8Array | undefined;
    const body = bytes === undefined
      ? {}
      : JSON.parse(new TextDecoder().decode(bytes));
    calls.push({ path, body });
    switch (path) {
      case "/v1/leases/grant":
        return Promise.resolve(json({ id: "00000000000000ff", ttlMs: 10_000 }));
      case "/v1/leases/keepalive":
        return Promise.resolve(
          json({
            leases: [{
              id: "00000000000000ff",
              ttlMs: 10_000,
              remainingMs: 10_000,
            }],
          }),
        );
      case "/v1/leases/revoke":
        return Promise.resolve(json({ keysDeleted: 0 }));
      case "/v1/hooks/claim":
        return Promise.resolve(
          json({ clusterId: "c1", claims: [{ ...claim, cursor }] }),
        );
      case "/v1/hooks/list":
        return Promise.resolve(
          json({
            hooks: [{
              id: HOOK,
              state: "active",
              selector: {},
              target: { queue: { queue: "x" } },
            }],
          }),
        );
      case "/v1/hooks/deliveries":
        return Promise.resolve(json({ deliveries: [], cursor: null }));
      case "/v1/events/list": {
        const after = body.after as string | undefined;
        const from = Number(body.fromRevision ?? 0);
        const start = after === undefined
          ? events.filter((e) => e.revision < from).length
          : events.findIndex((e) => e.id === after) + 1;
        return Promise.resolve(
          json({
            events: events.slice(start),
            nextRevision: (events.at(-1)?.revision ?? 0) + 1,
            compactRevision: 1,
            headRevision: events.at(-1)?.revision ?? 0,
          }),
        );
      }
      case "/v1/events/status":
        return Promise.resolve(
          json({
            compactRevision: 1,
            headRevision: events.at(-1)?.revision ?? 0,
          }),
        );
      case "/v1/hooks/begin":
        return Promise.resolve(json({ ok: true, cursor }));
      case "/v1/hooks/finish": {
        finishes++;
        const finish = body as unknown as HookFinishRequest;
        if (finish.outcome === "ok") cursor = finish.event;
        if (finishes === 1) {
          return Promise.reject(new TypeError("connection reset by peer"));
        }
        return Promise.resolve(json({ ok: true, cursor }));
      }
    }
    return Promise.resolve(
      json({ error: { code: "notFound", message: path } }, 404),
    );
  };
  return { calls, fetch: fetchStub, cursor: () => cursor };
}

Deno.test("WebhookWorker continues a retried event's attempts, resends a finish whose answer was lost, and delivers in order", async () => {
  const received: { id: string; attempt: string; ok: boolean }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const text = await request.text();
      let ok = true;
      try {
        new Webhook(SECRET).verify(text, Object.fromEntries(request.headers));
      } catch {
        ok = false;
      }
      received.push({
        id: request.headers.get("webhook-id") ?? "",
        attempt: request.headers.get("aspen-attempt") ?? "",
        ok,
      });
      return new Response(null, { status: 204 });
    },
  );
  const events: WireEvent[] = [5, 6, 7].map((revision) => ({
    id: `${revision}.0`,
    revision,
    index: 0,
    type: "kv.set",
  }));
  const claim: WireClaim = {
    hook: HOOK,
    name: "orders",
    token: 3,
    url: `http://127.0.0.1:${server.addr.port}/h`,
    headers: {},
    selector: {},
    types: ["kv.*"],
    secrets: [SECRET],
    timeoutMs: 5_000,
    retryWindowMs: 86_400_000,
    retrySchedule: null,
    cursor: "4.0",
    fromRevision: 4,
    retrying: {
      event: "5.0",
      attempt: 2,
      firstFailureAtMs: Date.now() - 1_000,
      nextAttemptAtMs: Date.now(),
    },
    replay: null,
  };
  const fake = fakeCluster(events, claim);
  const client = connect("http://127.0.0.1:9", {
    token: "admin",
    fetch: fake.fetch,
  });
  const reports: DeliveryReport[] = [];
  const worker = new WebhookWorker({
    client,
    name: "w1",
    guard: new TargetGuard(["127.0.0.1/32"]),
    onDelivery: (report) => reports.push(report),
    claimIntervalMs: 50,
  });
  try {
    worker.start();
    await waitFor("the cursor at 7.0", () => fake.cursor() === "7.0");
  } finally {
    await worker.stop();
    client.close();
    await server.shutdown();
  }
  // One request per event, in order, signed; 5.0 continues at attempt 3.
  assert.deepEqual(received, [
    { id: "c1.5.0", attempt: "3", ok: true },
    { id: "c1.6.0", attempt: "1", ok: true },
    { id: "c1.7.0", attempt: "1", ok: true },
  ]);
  const finishes = fake.calls.filter((c) => c.path === "/v1/hooks/finish");
  // The first finish's answer was lost: sent again, unchanged.
  assert.equal(finishes.length, 4);
  assert.deepEqual(finishes[0]!.body, finishes[1]!.body);
  assert.equal(finishes[0]!.body.attempt, 3);
  assert.equal(finishes[0]!.body.token, 3);
  const begins = fake.calls.filter((c) => c.path === "/v1/hooks/begin");
  assert.deepEqual(begins.map((c) => [c.body.event, c.body.attempt]), [
    ["5.0", 3],
    ["6.0", 1],
    ["7.0", 1],
  ]);
  assert.deepEqual(
    reports.map((r) => `${r.event}#${r.attempt}:${r.outcome}`),
    ["5.0#3:ok", "6.0#1:ok", "7.0#1:ok"],
  );
  // Stopped: the lease is revoked.
  assert.ok(fake.calls.some((c) => c.path === "/v1/leases/revoke"));
});
