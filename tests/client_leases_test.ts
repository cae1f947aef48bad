import assert from "node:assert/strict";
import {
  type AspenClient,
  AuthError,
  connect,
  LeaseLostError,
  LeaseNotFoundError,
} from "../mod.ts";
import {
  type FakeCoordinationServer,
  startFakeCoordinationServer,
} from "./helpers/fake_coordination_server.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "test-token";

async function withServer(
  fn: (server: FakeCoordinationServer, client: AspenClient) => Promise<void>,
  options: { ttlMsMin?: number } = {},
): Promise<void> {
  const server = startFakeCoordinationServer({ token: TOKEN, ...options });
  const client = connect(server.url, { token: TOKEN, timeoutMs: 4000 });
  try {
    await fn(server, client);
  } finally {
    client.close();
    await server.close();
  }
}

Deno.test("leases.grant() answers the granted TTL, timeToLive() and list() show the lease, revoke() ends it", async () => {
  await withServer(async (server, client) => {
    const grant = await client.leases.grant(1000, { id: "00000000000000aa" });
    // The cluster raises a TTL below its minimum and answers what it granted.
    assert.deepEqual(grant, { id: "00000000000000aa", ttlMs: 2000 });
    const ttl = await client.leases.timeToLive(grant.id);
    assert.equal(ttl.ttlMs, 2000);
    assert.ok(ttl.remainingMs > 0 && ttl.remainingMs <= 2000);
    assert.equal(ttl.keys, undefined);
    await client.kv.set(["leased", 1], "v", { lease: grant.id });
    const withKeys = await client.leases.timeToLive(grant.id, { keys: true });
    assert.deepEqual(withKeys.keys, [["leased", 1]]);
    const page = await client.leases.list({ limit: 10 });
    assert.deepEqual(page.leases.map((l) => [l.id, l.keyCount]), [[
      grant.id,
      1,
    ]]);
    assert.equal(page.cursor, null);
    assert.deepEqual(await client.leases.revoke(grant.id), { keysDeleted: 1 });
    assert.equal(server.hasLease(grant.id), false);
    assert.equal((await client.kv.get(["leased", 1])).value, null);
  }, { ttlMsMin: 2000 });
});

Deno.test("leases.keepAlive() answers per id in order, an unknown id as leaseNotFound", async () => {
  await withServer(async (_server, client) => {
    const a = await client.leases.grant(5000);
    const results = await client.leases.keepAlive([a.id, "00000000000000ff"]);
    assert.deepEqual(results, [
      { id: a.id, ttlMs: 5000, remainingMs: 5000 },
      { id: "00000000000000ff", error: "leaseNotFound" },
    ]);
  });
});

Deno.test("leases: an unknown lease is a LeaseNotFoundError (revoke, timeToLive, kv.set with lease)", async () => {
  await withServer(async (_server, client) => {
    const unknown = "0123456789abcdef";
    await assert.rejects(client.leases.revoke(unknown), LeaseNotFoundError);
    await assert.rejects(client.leases.timeToLive(unknown), LeaseNotFoundError);
    await assert.rejects(
      client.kv.set(["k"], "v", { lease: unknown }),
      (error) => error instanceof LeaseNotFoundError && error.status === 404,
    );
    // Nothing applied.
    assert.equal((await client.kv.get(["k"])).value, null);
  });
});

Deno.test("leases: bad arguments are refused before anything is sent", async (t) => {
  await withServer(async (server, client) => {
    const cases: [string, () => Promise<unknown>, ErrorConstructor][] = [
      ["a TTL below 1,000 ms", () => client.leases.grant(999), RangeError],
      [
        "a TTL above 7 days",
        () => client.leases.grant(604_800_001),
        RangeError,
      ],
      ["a bad id", () => client.leases.grant(5000, { id: "XYZ" }), TypeError],
      ["no ids", () => client.leases.keepAlive([]), RangeError],
      [
        "1,001 ids",
        () => client.leases.keepAlive(Array(1001).fill("0".repeat(16))),
        RangeError,
      ],
      ["a list limit of 0", () => client.leases.list({ limit: 0 }), RangeError],
      ["a bad revoke id", () => client.leases.revoke("abc"), TypeError],
    ];
    for (const [what, call, type] of cases) {
      await t.step(what, async () => {
        await assert.rejects(call(), type);
      });
    }
    assert.deepEqual(server.paths("/v1/leases"), []);
  });
});

Deno.test("leases.open() keeps the lease alive past its TTL every TTL/3, and close() revokes it", async () => {
  await withServer(async (server, client) => {
    const lease = await client.leases.open({ ttlMs: 1200 });
    const started = performance.now();
    // Three TTLs: the fake server would have expired it after one.
    await waitFor("three TTLs", () => performance.now() - started > 3600, {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    assert.equal(lease.signal.aborted, false);
    assert.ok(server.hasLease(lease.id));
    const keepAlives = server.paths("/v1/leases/keepalive").length;
    // About 9 at TTL/3; at least one per TTL/2 on a loaded machine.
    assert.ok(keepAlives >= 6, `only ${keepAlives} keep-alives`);
    await lease.close();
    assert.equal(server.hasLease(lease.id), false);
    assert.equal(lease.signal.aborted, true);
    // No timer left: the test's op sanitizer would fail on one.
  });
});

Deno.test("leases.open() signal aborts with LeaseLostError before the cluster could expire the lease when keep-alives fail", async () => {
  await withServer(async (server, client) => {
    const lease = await client.leases.open({ ttlMs: 3000 });
    // Let one keep-alive be acknowledged, then the leader stops answering.
    await waitFor(
      "a keep-alive",
      () => server.paths("/v1/leases/keepalive").length >= 1,
      { timeoutMs: 10_000 },
    );
    server.keepAliveMode = "unavailable";
    const failedAt = performance.now();
    const aborted = new Promise<{ at: number; held: boolean }>((resolve) =>
      lease.signal.addEventListener("abort", () =>
        // Decided at the abort: does the cluster still hold the lease?
        resolve({ at: performance.now(), held: server.hasLease(lease.id) }))
    );
    const { at, held } = await aborted;
    assert.ok(lease.signal.reason instanceof LeaseLostError);
    assert.equal((lease.signal.reason as LeaseLostError).leaseId, lease.id);
    // The holder gave up while the cluster still held the lease …
    assert.equal(held, true);
    // … and not before its last acknowledged keep-alive + 90% of the TTL
    // (that one was sent at most TTL/3 before the failures began).
    assert.ok(at - failedAt >= 3000 * 0.9 - 1000 - 50, `${at - failedAt}`);
    // Retries kept going until then.
    assert.ok(server.paths("/v1/leases/keepalive").length >= 2);
    await lease.close();
  });
});

Deno.test("leases.open() signal aborts with LeaseLostError when the lease ends in the cluster", async () => {
  await withServer(async (server, client) => {
    const lease = await client.leases.open({ ttlMs: 1500 });
    server.expire(lease.id);
    await waitFor("the abort", () => lease.signal.aborted, 10_000);
    const reason = lease.signal.reason as LeaseLostError;
    assert.ok(reason instanceof LeaseLostError);
    assert.match(reason.message, /not found/);
    const sent = server.paths("/v1/leases/keepalive").length;
    // Keep-alives stop once it is lost.
    await new Promise((resolve) => setTimeout(resolve, 800));
    assert.equal(server.paths("/v1/leases/keepalive").length, sent);
    await lease.close(); // revoking a lost lease is no error
  });
});

Deno.test("kv: a leased key goes with its lease; a later set without lease detaches it; checkLease passes only while it lives", async () => {
  await withServer(async (server, client) => {
    const lease = await client.leases.grant(5000);
    await client.kv.set(["a"], "1", { lease: lease.id });
    await client.kv.atomic().set(["b"], "2", { lease: lease.id }).commit();
    await client.kv.set(["c"], "3", { lease: lease.id });
    await client.kv.set(["c"], "3 again"); // detaches
    const atomic = server.requests.find((r) =>
      r.path === "/v1/kv/atomic" &&
      JSON.stringify(r.body).includes('"key":["b"]')
    );
    assert.deepEqual(
      (atomic!.body as { mutations: { lease?: string }[] }).mutations[0]!.lease,
      lease.id,
    );
    const passed = await client.kv.atomic().checkLease(lease.id).set(
      ["d"],
      "4",
    ).commit();
    assert.equal(passed.ok, true);
    server.expire(lease.id);
    assert.equal((await client.kv.get(["a"])).value, null);
    assert.equal((await client.kv.get(["b"])).value, null);
    assert.equal((await client.kv.get(["c"])).value, "3 again");
    const failed = await client.kv.atomic().checkLease(lease.id).set(
      ["e"],
      "5",
    ).commit();
    assert.deepEqual(failed, { ok: false });
    assert.equal((await client.kv.get(["e"])).value, null);
  });
});

Deno.test("kv: a lease on a versionstamped key and malformed lease ids are refused client-side", () => {
  const client = connect("http://127.0.0.1:9", { token: TOKEN });
  try {
    assert.throws(
      () =>
        client.kv.atomic().set(
          ["x", client.kv.commitVersionstamp()],
          "v",
          { lease: "0123456789abcdef" },
        ),
      TypeError,
    );
    assert.throws(() => client.kv.atomic().checkLease("nope"), TypeError);
    assert.throws(
      () => client.kv.atomic().set(["x"], "v", { lease: "ABC" }),
      TypeError,
    );
  } finally {
    client.close();
  }
});

Deno.test("leases: a wrong token is refused with the typed AuthError", async () => {
  const server = startFakeCoordinationServer({ token: TOKEN });
  const client = connect(server.url, { token: "wrong" });
  try {
    await assert.rejects(
      client.leases.grant(5000),
      AuthError,
    );
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("leases.open(): a program that opened a lease exits without closing it (its timers do not hold the process)", async () => {
  const server = startFakeCoordinationServer({ token: TOKEN });
  try {
    const script = `
      import { connect } from ${
      JSON.stringify(new URL("../mod.ts", import.meta.url).href)
    };
      const client = connect(${JSON.stringify(server.url)}, { token: ${
      JSON.stringify(TOKEN)
    } });
      const lease = await client.leases.open({ ttlMs: 60000 });
      console.log(lease.id);
    `;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", `--allow-net=127.0.0.1`, script],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout).trim();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(stdout, /^[0-9a-f]{16}$/);
    // It exited long before its first keep-alive (TTL/3 = 20 s).
    assert.equal(server.paths("/v1/leases/keepalive").length, 0);
  } finally {
    await server.close();
  }
});
