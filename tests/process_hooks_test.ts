/**
 * Durable hooks over real node processes (issue 17): a queue hook gets each
 * matching event exactly once in its queue across a kill -9 of the leader
 * while stock `Deno.openKv` writes run; management (create, get, list,
 * disable, enable, rotate-secret, delete) shows no secret after create;
 * bad input is refused with a typed 4xx and changes nothing; the worker
 * routes need the admin token and are fenced by the claim's token.
 *
 * @module
 */
import assert from "node:assert/strict";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { stockWriter } from "./helpers/stock_writer.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { deserializeV8 } from "../src/model/v8_codec.ts";
import { fromBase64 } from "../src/protocol/http_api_codec.ts";
import type {
  HookClaimResponse,
  HookCreateResponse,
  WireHook,
} from "../src/protocol/http_api_hooks.ts";

async function post<T>(
  url: string,
  token: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as T };
}

interface Peeked {
  messages: { payload: string }[];
}

Deno.test("a queue hook enqueues each matching stock write exactly once across a kill -9 of the leader", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const token = await cluster.token();
    const entry = (leader + 1) % 3;
    const url = cluster.node(entry).url;
    const created = await post<HookCreateResponse>(
      url,
      token,
      "/v1/hooks/create",
      {
        name: "stock-queue",
        selector: { prefix: ["stock"] },
        types: ["kv.set"],
        target: { queue: { queue: "hooked" } },
      },
    );
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.equal(created.body.secret, null);
    const writer = stockWriter(`${url}/kv`, token, 120);
    await waitFor("40 acknowledged writes", () => writer.acked.size >= 40, {
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    await cluster.kill(leader);
    await writer.done();
    assert.equal(writer.acked.size, 120);
    // Every acknowledged write is enqueued once, in order.
    let payloads: Record<string, unknown>[] = [];
    await waitFor(
      () => `120 queued events (had ${payloads.length})`,
      async () => {
        const peeked = await post<Peeked>(url, token, "/v1/queue/peek", {
          queue: "hooked",
          limit: 1000,
        });
        if (peeked.status !== 200) return false;
        payloads = peeked.body.messages.map((m) =>
          deserializeV8(fromBase64(m.payload)!) as Record<string, unknown>
        );
        return payloads.length >= 120;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    assert.equal(payloads.length, 120);
    const seen = new Set<number>();
    for (const payload of payloads) {
      assert.equal(payload.type, "kv.set");
      const key = payload.key as unknown[];
      assert.equal(key[0], "stock");
      const n = key[1] as number;
      assert.ok(!seen.has(n), `event of ${n} enqueued twice`);
      seen.add(n);
      assert.equal(payload.value, `value-${n}`);
      assert.equal(
        payload.versionstamp,
        writer.acked.get(n),
        `versionstamp of ${n}`,
      );
    }
    const hook = await post<WireHook>(url, token, "/v1/hooks/get", {
      hook: "stock-queue",
    });
    assert.equal(hook.status, 200);
    assert.equal(hook.body.state, "active");
    // The cursor moved past the writes (kept as "from the next revision").
    assert.ok(
      hook.body.cursor !== null ||
        hook.body.fromRevision > created.body.fromRevision + 120,
      JSON.stringify(hook.body),
    );
  });
});

Deno.test("hooks: management shows the secret only at create and rotation; bad input is a typed 4xx; worker routes need the admin token and a live claim", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const admin = await cluster.adminToken();
    const url = cluster.node(0).url;
    const create = (body: unknown) =>
      post<HookCreateResponse & { error?: { code: string } }>(
        url,
        token,
        "/v1/hooks/create",
        body,
      );
    const made = await create({
      name: "orders",
      selector: { prefix: ["orders"] },
      target: {
        webhook: {
          url: "https://example.com/hook",
          headers: { "x-team": "blue" },
        },
      },
    });
    assert.equal(made.status, 200, JSON.stringify(made.body));
    assert.match(made.body.secret!, /^whsec_/);
    const got = await post<WireHook>(url, token, "/v1/hooks/get", {
      hook: made.body.id,
    });
    assert.equal(got.status, 200);
    assert.equal(got.body.name, "orders");
    assert.equal(got.body.worker, null);
    assert.ok(!JSON.stringify(got.body).includes(made.body.secret!.slice(6)));
    assert.ok(!JSON.stringify(got.body).includes("blue"));
    const listed = await post<{ hooks: WireHook[] }>(
      url,
      token,
      "/v1/hooks/list",
      {},
    );
    assert.deepEqual(listed.body.hooks.map((h) => h.id), [made.body.id]);
    // Refusals: nothing changes.
    const refusals: [unknown, number, string][] = [
      [
        { ...{ name: "orders" }, target: { queue: { queue: "q" } } },
        409,
        "hookExists",
      ],
      [{ name: "Bad Name", target: { queue: { queue: "q" } } }, 400, "invalid"],
      [{ name: "a", target: { webhook: { url: "ftp://x/" } } }, 400, "invalid"],
      [
        { name: "a", target: { webhook: { url: "https://u:p@x/" } } },
        400,
        "invalid",
      ],
      [
        {
          name: "a",
          target: { webhook: { url: "https://x/", headers: { host: "y" } } },
        },
        400,
        "invalid",
      ],
      [
        {
          name: "a",
          target: { webhook: { url: "https://x/" } },
          secret: "nope",
        },
        400,
        "invalid",
      ],
      [
        {
          name: "a",
          target: { webhook: { url: "https://x/" } },
          timeoutMs: 60_000,
        },
        400,
        "invalid",
      ],
      [{ name: "a", target: { job: { type: "t" } } }, 400, "unsupported"],
      [{ name: "a", target: {} }, 400, "badRequest"],
      [
        { name: "a", target: { queue: { queue: "q" } }, types: ["BAD"] },
        400,
        "badRequest",
      ],
      [
        {
          name: "a",
          target: { queue: { queue: "q" } },
          fromRevision: 1,
          extra: 1,
        },
        400,
        "badRequest",
      ],
    ];
    for (const [body, status, code] of refusals) {
      const answer = await create(body);
      assert.equal(answer.status, status, JSON.stringify(body));
      assert.equal(answer.body.error?.code, code, JSON.stringify(body));
    }
    const unknown = await post<{ error: { code: string } }>(
      url,
      token,
      "/v1/hooks/get",
      { hook: "nope" },
    );
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, "hookNotFound");
    const after = await post<{ hooks: WireHook[] }>(
      url,
      token,
      "/v1/hooks/list",
      {},
    );
    assert.equal(after.body.hooks.length, 1);
    // Rotation shows the new secret once.
    const rotated = await post<HookCreateResponse>(
      url,
      token,
      "/v1/hooks/rotate-secret",
      { hook: "orders" },
    );
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, made.body.secret);
    // Disable and enable.
    const disabled = await post<WireHook>(url, token, "/v1/hooks/disable", {
      hook: "orders",
    });
    assert.equal(disabled.body.state, "disabled");
    const enabled = await post<WireHook>(url, token, "/v1/hooks/enable", {
      hook: "orders",
    });
    assert.equal(enabled.body.state, "active");
    // Worker routes: the data token is refused; a claim needs a live lease.
    const noAdmin = await post<{ error: { code: string } }>(
      url,
      token,
      "/v1/hooks/claim",
      { worker: "w1", lease: "00000000000000aa" },
    );
    assert.ok(noAdmin.status === 401 || noAdmin.status === 403);
    const deadLease = await post<{ error: { code: string } }>(
      url,
      admin,
      "/v1/hooks/claim",
      { worker: "w1", lease: "00000000000000aa" },
    );
    assert.equal(deadLease.status, 409);
    assert.equal(deadLease.body.error.code, "claimLost");
    const lease = await post<{ id: string }>(url, token, "/v1/leases/grant", {
      ttlMs: 10_000,
    });
    assert.equal(lease.status, 200);
    const claim = await post<HookClaimResponse>(
      url,
      admin,
      "/v1/hooks/claim",
      { worker: "w1", lease: lease.body.id },
    );
    assert.equal(claim.status, 200, JSON.stringify(claim.body));
    assert.equal(claim.body.claims.length, 1);
    const held = claim.body.claims[0]!;
    assert.equal(held.secrets.length, 2);
    assert.equal(held.secrets[0], rotated.body.secret);
    assert.equal(held.secrets[1], made.body.secret);
    const shown = await post<WireHook>(url, token, "/v1/hooks/get", {
      hook: "orders",
    });
    assert.equal(shown.body.worker, "w1");
    // Begin and finish, fenced by the token; a repeated finish applies once.
    const begin = await post<{ ok: boolean }>(url, admin, "/v1/hooks/begin", {
      hook: held.hook,
      token: held.token,
      event: "5.0",
      attempt: 1,
    });
    assert.equal(begin.status, 200, JSON.stringify(begin.body));
    const stale = await post<{ error: { code: string } }>(
      url,
      admin,
      "/v1/hooks/begin",
      { hook: held.hook, token: held.token + 1, event: "5.0", attempt: 1 },
    );
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, "claimLost");
    const report = {
      hook: held.hook,
      token: held.token,
      event: "5.0",
      attempt: 1,
      status: 503,
      latencyMs: 12,
      outcome: "failed",
      error: "503 Service Unavailable",
      nextAttemptAtMs: Date.now() + 5_000,
    };
    for (let i = 0; i < 2; i++) {
      const finish = await post<{ ok: boolean }>(
        url,
        admin,
        "/v1/hooks/finish",
        report,
      );
      assert.equal(finish.status, 200, JSON.stringify(finish.body));
    }
    const log = await post<
      { deliveries: { eventId: string; outcome: string }[] }
    >(
      url,
      token,
      "/v1/hooks/deliveries",
      { hook: "orders" },
    );
    assert.equal(log.status, 200);
    assert.deepEqual(
      log.body.deliveries.map((d) => [d.eventId, d.outcome]),
      [["5.0", "failed"]],
    );
    const retrying = await post<WireHook>(url, token, "/v1/hooks/get", {
      hook: "orders",
    });
    assert.equal(retrying.body.retrying?.event, "5.0");
    assert.equal(retrying.body.retrying?.attempt, 1);
    // Metrics from replicated state, with no secret in them.
    const metrics = await (await fetch(`${url}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    })).text();
    assert.match(
      metrics,
      /aspen_hook_deliveries_total\{hook="orders",outcome="failed"\} 1/,
    );
    assert.match(metrics, /aspen_hook_retrying\{hook="orders"\} 1/);
    assert.match(
      metrics,
      /aspen_hook_delivery_seconds_count\{hook="orders"\} 1/,
    );
    assert.match(metrics, /aspen_events_history_bytes \d+/);
    for (const secret of [made.body.secret!, rotated.body.secret!]) {
      assert.ok(!metrics.includes(secret.slice(6)));
    }
    // Revoking the lease frees the claim.
    await post(url, token, "/v1/leases/revoke", { id: lease.body.id });
    await waitFor(
      "the claim to end",
      async () =>
        (await post<WireHook>(url, token, "/v1/hooks/get", { hook: "orders" }))
          .body.worker === null,
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    const deleted = await post(url, token, "/v1/hooks/delete", {
      hook: "orders",
    });
    assert.equal(deleted.status, 200);
    const gone = await post(url, token, "/v1/hooks/get", { hook: "orders" });
    assert.equal(gone.status, 404);
  });
});
