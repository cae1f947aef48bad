import assert from "node:assert/strict";
import {
  AcquireTimeoutError,
  type AspenClient,
  connect,
  LeaseLostError,
  LeaseNotFoundError,
  NotHolderError,
  PermitsMismatchError,
} from "../mod.ts";
import {
  type FakeCoordinationServer,
  startFakeCoordinationServer,
} from "./helpers/fake_coordination_server.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "test-token";

async function withServer(
  fn: (
    server: FakeCoordinationServer,
    open: (fetch?: typeof globalThis.fetch) => AspenClient,
  ) => Promise<void>,
): Promise<void> {
  const server = startFakeCoordinationServer({ token: TOKEN });
  const clients: AspenClient[] = [];
  const open = (fetch?: typeof globalThis.fetch) => {
    const client = connect(server.url, {
      token: TOKEN,
      timeoutMs: 4000,
      fetch,
    });
    clients.push(client);
    return client;
  };
  try {
    await fn(server, open);
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
    await server.close();
  }
}

Deno.test("locks.acquire() without a lease uses the client's own kept-alive lease; waiters are granted FIFO with increasing tokens", async () => {
  await withServer(async (server, open) => {
    const [a, b, c] = [open(), open(), open()];
    const first = await a.locks.acquire("job");
    assert.match(first.token, /^[0-9a-f]{20}$/);
    assert.match(first.lease, /^[0-9a-f]{16}$/);
    assert.equal(first.name, "job");
    // The own lease was granted with TTL 10,000 ms.
    const grant = server.requests.find((r) => r.path === "/v1/leases/grant");
    assert.deepEqual(grant?.body, { ttlMs: 10_000 });
    const second = b.locks.acquire("job");
    await waitFor(
      "b queued",
      async () => (await a.locks.status("job")).waiters.length === 1,
    );
    const third = c.locks.acquire("job");
    await waitFor(
      "c queued",
      async () => (await a.locks.status("job")).waiters.length === 2,
    );
    const status = await a.locks.status("job");
    assert.equal(status.permits, 1);
    assert.deepEqual(status.holders.map((h) => h.token), [first.token]);
    await first.release();
    const got2 = await second;
    assert.ok(got2.token > first.token);
    await got2.release();
    const got3 = await third;
    assert.ok(got3.token > got2.token);
    await got3.release();
    assert.deepEqual((await a.locks.status("job")).holders, []);
    // Every acquire of one client shares its one lease.
    const again = await a.locks.acquire("other");
    assert.equal(again.lease, first.lease);
    await again.release();
  });
});

Deno.test("locks.acquire() long-polls with waitMs at most half the request deadline", async () => {
  await withServer(async (server, open) => {
    const client = open();
    const lease = await client.leases.grant(60_000);
    const held = await client.locks.acquire("poll", { lease: lease.id });
    const other = await client.leases.grant(60_000);
    await assert.rejects(
      client.locks.acquire("poll", { lease: other.id, timeoutMs: 2500 }),
      AcquireTimeoutError,
    );
    const waits = server.requests.filter((r) => r.path === "/v1/locks/acquire")
      .map((r) => (r.body as { waitMs: number }).waitMs);
    // 2000 (half the 4000 ms request deadline), then what is left of the
    // 2500, then the final ask without waiting.
    assert.equal(waits[1], 2000, `${waits}`);
    assert.ok(waits.slice(2, -1).every((w) => w <= 500), `${waits}`);
    assert.equal(waits.at(-1), 0);
    await held.release();
  });
});

Deno.test("locks.acquire() times out with AcquireTimeoutError and cancels its place in the queue", async () => {
  await withServer(async (server, open) => {
    const [a, b] = [open(), open()];
    const held = await a.locks.acquire("busy");
    const started = performance.now();
    await assert.rejects(
      b.locks.acquire("busy", { timeoutMs: 300 }),
      (error) =>
        error instanceof AcquireTimeoutError &&
        error.message === "lock busy not acquired within 300 ms",
    );
    assert.ok(performance.now() - started >= 300);
    assert.ok(server.paths("/v1/locks/cancel").length === 1);
    assert.deepEqual((await a.locks.status("busy")).waiters, []);
    await held.release();
    // Nothing was orphaned: the lock is free.
    assert.deepEqual((await a.locks.status("busy")).holders, []);
  });
});

Deno.test("locks.acquire(): a grant won in the race with the timeout is the result, not orphaned", async () => {
  await withServer(async (_server, open) => {
    const a = open();
    const held = await a.locks.acquire("race");
    let released = false;
    // When b's final ask (waitMs 0 after the timeout) goes out, a releases first.
    const racing: typeof fetch = async (input, init) => {
      const raw = init?.body;
      const body = typeof raw === "string"
        ? raw
        : raw instanceof Uint8Array
        ? new TextDecoder().decode(raw)
        : "";
      if (
        !released && String(input).endsWith("/v1/locks/acquire") &&
        body.includes('"waitMs":0') && body.includes('"name":"race"')
      ) {
        released = true;
        await held.release();
      }
      return fetch(input, init);
    };
    const b = open(racing);
    const lease = await b.leases.grant(60_000);
    // Queued for 300 ms, then the final ask meets the release.
    const grant = await b.locks.acquire("race", {
      lease: lease.id,
      timeoutMs: 300,
    });
    assert.equal(released, true);
    assert.ok(grant.token > held.token);
    const status = await a.locks.status("race");
    assert.deepEqual(status.holders.map((h) => h.token), [grant.token]);
    await grant.release();
  });
});

Deno.test("locks.acquire(): semaphores admit `permits` holders; another permits count is a PermitsMismatchError", async () => {
  await withServer(async (_server, open) => {
    const client = open();
    const leases = await Promise.all(
      [0, 1, 2].map(() => client.leases.grant(60_000)),
    );
    const one = await client.locks.acquire("pool", {
      lease: leases[0]!.id,
      permits: 2,
    });
    const two = await client.locks.acquire("pool", {
      lease: leases[1]!.id,
      permits: 2,
    });
    assert.notEqual(one.token, two.token);
    await assert.rejects(
      client.locks.acquire("pool", {
        lease: leases[2]!.id,
        permits: 2,
        timeoutMs: 100,
      }),
      AcquireTimeoutError,
    );
    await assert.rejects(
      client.locks.acquire("pool", { lease: leases[2]!.id, permits: 3 }),
      (error) => error instanceof PermitsMismatchError && error.status === 409,
    );
    // Acquiring again with a holding lease answers the same grant.
    const same = await client.locks.acquire("pool", {
      lease: leases[0]!.id,
      permits: 2,
    });
    assert.equal(same.token, one.token);
  });
});

Deno.test("locks: release() of a token that does not hold is a NotHolderError; await using releases", async () => {
  await withServer(async (_server, open) => {
    const client = open();
    let token: string;
    {
      await using lock = await client.locks.acquire("scoped");
      token = lock.token;
    }
    assert.deepEqual((await client.locks.status("scoped")).holders, []);
    await assert.rejects(
      client.locks.release("scoped", token),
      (error) => error instanceof NotHolderError && error.code === "notHolder",
    );
  });
});

Deno.test("locks: an unknown lease is a LeaseNotFoundError; bad names and options are refused before sending", async (t) => {
  await withServer(async (server, open) => {
    const client = open();
    await assert.rejects(
      client.locks.acquire("x", { lease: "0123456789abcdef" }),
      LeaseNotFoundError,
    );
    const before = server.requests.length;
    const cases: [string, () => Promise<unknown>, ErrorConstructor][] = [
      ["an empty name", () => client.locks.acquire(""), RangeError],
      [
        "a 257-byte name",
        () => client.locks.acquire("é".repeat(129)),
        RangeError,
      ],
      ["a control character", () => client.locks.acquire("a\nb"), TypeError],
      [
        "0 permits",
        () => client.locks.acquire("x", { permits: 0 }),
        RangeError,
      ],
      [
        "10,001 permits",
        () => client.locks.acquire("x", { permits: 10_001 }),
        RangeError,
      ],
      [
        "a negative timeout",
        () => client.locks.acquire("x", { timeoutMs: -1 }),
        RangeError,
      ],
      [
        "a bad lease id",
        () => client.locks.acquire("x", { lease: "zz" }),
        TypeError,
      ],
      ["a bad token", () => client.locks.release("x", "abc"), TypeError],
    ];
    for (const [what, call, type] of cases) {
      await t.step(what, async () => {
        await assert.rejects(call(), type);
      });
    }
    assert.equal(server.requests.length, before);
  });
});

Deno.test("locks: the grant's signal aborts when the client's own lease is lost, and the next acquire opens a new lease", async () => {
  await withServer(async (server, open) => {
    const client = open();
    const grant = await client.locks.acquire("owned");
    server.expire(grant.lease);
    await waitFor("the grant's signal", () => grant.signal.aborted, 10_000);
    assert.ok(grant.signal.reason instanceof LeaseLostError);
    // The expiry released the hold.
    assert.deepEqual((await client.locks.status("owned")).holders, []);
    const next = await client.locks.acquire("owned");
    assert.notEqual(next.lease, grant.lease);
    assert.equal(next.signal.aborted, false);
  });
});

Deno.test("locks: a grant on an open lease follows its signal; on a bare id it never aborts", async () => {
  await withServer(async (_server, open) => {
    const client = open();
    const lease = await client.leases.open({ ttlMs: 5000 });
    const grant = await client.locks.acquire("opened", { lease });
    assert.equal(grant.lease, lease.id);
    const bare = await client.leases.grant(5000);
    const other = await client.locks.acquire("bare", { lease: bare.id });
    await lease.close(); // revokes: the hold goes
    assert.equal(grant.signal.aborted, true);
    assert.equal(other.signal.aborted, false);
    assert.deepEqual((await client.locks.status("opened")).holders, []);
  });
});

Deno.test("locks.acquire(): an aborted signal stops the wait, cancels and rejects with its reason", async () => {
  await withServer(async (server, open) => {
    const [a, b] = [open(), open()];
    const held = await a.locks.acquire("abort");
    const controller = new AbortController();
    const waiting = b.locks.acquire("abort", { signal: controller.signal });
    await waitFor(
      "b queued",
      async () => (await a.locks.status("abort")).waiters.length === 1,
    );
    controller.abort(new Error("enough"));
    await assert.rejects(waiting, /enough/);
    assert.equal(server.paths("/v1/locks/cancel").length, 1);
    assert.deepEqual((await a.locks.status("abort")).waiters, []);
    await held.release();
  });
});

Deno.test("kv.atomic().checkFence(): a write with the holder's token applies; after the lock moved it fails", async () => {
  await withServer(async (_server, open) => {
    const [a, b] = [open(), open()];
    const first = await a.locks.acquire("reg");
    const ok = await a.kv.atomic().checkFence("reg", first.token).set(
      ["reg"],
      "a",
    )
      .commit();
    assert.equal(ok.ok, true);
    await first.release();
    const second = await b.locks.acquire("reg");
    // The stale holder writes with its old token: refused, nothing changed.
    const stale = await a.kv.atomic().checkFence("reg", first.token).set(
      ["reg"],
      "stale",
    ).commit();
    assert.deepEqual(stale, { ok: false });
    assert.equal((await a.kv.get(["reg"])).value, "a");
    const fresh = await b.kv.atomic().checkFence("reg", second.token).set(
      ["reg"],
      "b",
    ).commit();
    assert.equal(fresh.ok, true);
    assert.throws(() => a.kv.atomic().checkFence("reg", "nope"), TypeError);
  });
});
