/**
 * The `/v1/locks/...` routes on a real 3-node cluster (in one process):
 * acquire (granted, queued, waiting for a release, timing out with the
 * waiter kept, a lease ending while waiting), cancel, release and status,
 * from a follower and the leader, and every kind of bad input (4xx, the
 * locks rows unchanged on every node).
 */
import assert from "node:assert/strict";
import { call } from "./helpers/http_request.ts";
import {
  type LocksCluster,
  startLocksCluster,
} from "./helpers/locks_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

const A = "000000000000000a";
const B = "000000000000000b";
const C = "000000000000000c";

async function withCluster(
  fn: (cluster: LocksCluster) => Promise<void>,
): Promise<void> {
  const cluster = await startLocksCluster();
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

Deno.test("POST /v1/locks/acquire grants, queues FIFO, and answers the same grant again", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B, C]) await cluster.grantLease(lease);
    const follower = cluster.follower().app;
    const leader = cluster.leader()!.app;
    const first = await call(follower, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.granted, true);
    assert.match(first.body.token, /^[0-9a-f]{20}$/);
    assert.equal(first.body.lease, A);
    assert.equal(first.body.name, "m");
    assert.equal(typeof first.body.revision, "number");
    const second = await call(leader, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: B,
    });
    assert.deepEqual(second.body, { granted: false, name: "m", position: 0 });
    const third = await call(follower, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: C,
      permits: 1,
    });
    assert.deepEqual(third.body, { granted: false, name: "m", position: 1 });
    const again = await call(leader, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    assert.deepEqual(again.body, first.body);
    const status = await call(follower, "POST", "/v1/locks/status", {
      name: "m",
    });
    assert.deepEqual(status.body, {
      name: "m",
      permits: 1,
      holders: [{
        token: first.body.token,
        lease: A,
        revision: first.body.revision,
      }],
      waiters: [
        { lease: B, revision: status.body.waiters[0].revision },
        { lease: C, revision: status.body.waiters[1].revision },
      ],
    });
    assert.ok(
      status.body.waiters[0]!.revision < status.body.waiters[1]!.revision,
    );
    const none = await call(
      follower,
      "POST",
      "/v1/locks/status?consistency=eventual",
      {
        name: "never",
      },
    );
    assert.deepEqual(none.body, {
      name: "never",
      permits: 0,
      holders: [],
      waiters: [],
    });
  });
});

Deno.test("POST /v1/locks/acquire waits for a release and is granted in the releasing entry", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B]) await cluster.grantLease(lease);
    const follower = cluster.follower().app;
    const first = await call(follower, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    const waiting = call(follower, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: B,
      waitMs: 10_000,
    });
    // Release once B is queued (status shows it).
    await waitFor("B in the queue", () => {
      const rows = cluster.follower().state.kv.store.scan({
        start: new Uint8Array([0xff, 0x6d, 0x77]),
        end: new Uint8Array([0xff, 0x6d, 0x78]),
        limit: 10,
      });
      return rows.length === 1;
    }, 5000);
    const released = await call(
      cluster.leader()!.app,
      "POST",
      "/v1/locks/release",
      {
        name: "m",
        token: first.body.token,
      },
    );
    assert.deepEqual(released.body, { released: true });
    const granted = await waiting;
    assert.equal(granted.status, 200);
    assert.equal(granted.body.granted, true);
    assert.equal(granted.body.lease, B);
    assert.ok(granted.body.token > first.body.token);
    const status = await call(follower, "POST", "/v1/locks/status", {
      name: "m",
    });
    assert.equal(status.body.holders[0].revision, granted.body.revision);
    const stale = await call(follower, "POST", "/v1/locks/release", {
      name: "m",
      token: first.body.token,
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, "notHolder");
  });
});

Deno.test("POST /v1/locks/acquire answers its position after waitMs and the waiter stays queued; cancel removes it or returns a won grant", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B, C]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    const first = await call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    const started = performance.now();
    const timedOut = await call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: B,
      waitMs: 300,
    });
    assert.ok(performance.now() - started >= 250);
    assert.deepEqual(timedOut.body, { granted: false, name: "m", position: 0 });
    await call(app, "POST", "/v1/locks/acquire", { name: "m", lease: C });
    const status = await call(app, "POST", "/v1/locks/status", { name: "m" });
    assert.deepEqual(
      status.body.waiters.map((w: { lease: string }) => w.lease),
      [B, C],
    );
    const cancelled = await call(app, "POST", "/v1/locks/cancel", {
      name: "m",
      lease: B,
    });
    assert.deepEqual(cancelled.body, { removed: "waiter" });
    await call(app, "POST", "/v1/locks/release", {
      name: "m",
      token: first.body.token,
    });
    // C won the race before its cancel: the cancel returns the grant.
    const won = await call(app, "POST", "/v1/locks/cancel", {
      name: "m",
      lease: C,
    });
    assert.deepEqual(won.body, { removed: "grant" });
    const nothing = await call(app, "POST", "/v1/locks/cancel", {
      name: "m",
      lease: C,
    });
    assert.deepEqual(nothing.body, { removed: null });
    const empty = await call(app, "POST", "/v1/locks/status", { name: "m" });
    assert.deepEqual(empty.body, {
      name: "m",
      permits: 0,
      holders: [],
      waiters: [],
    });
  });
});

Deno.test("POST /v1/locks/acquire: a semaphore admits its permits; a lease ending while waiting answers leaseNotFound", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B, C]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    for (const lease of [A, B]) {
      const got = await call(app, "POST", "/v1/locks/acquire", {
        name: "s",
        lease,
        permits: 2,
      });
      assert.equal(got.body.granted, true);
    }
    const mismatch = await call(app, "POST", "/v1/locks/acquire", {
      name: "s",
      lease: C,
      permits: 3,
    });
    assert.equal(mismatch.status, 409);
    assert.equal(mismatch.body.error.code, "permitsMismatch");
    const waiting = call(app, "POST", "/v1/locks/acquire", {
      name: "s",
      lease: C,
      permits: 2,
      waitMs: 10_000,
    });
    await waitFor("C queued", () =>
      cluster.follower().state.kv.store.scan({
        start: new Uint8Array([0xff, 0x6d, 0x77]),
        end: new Uint8Array([0xff, 0x6d, 0x78]),
        limit: 10,
      }).length === 1, 5000);
    const started = performance.now();
    await cluster.endLeases(C);
    const gone = await waiting;
    assert.ok(
      performance.now() - started < 5000,
      "woken by the change, not the timeout",
    );
    assert.equal(gone.status, 404, JSON.stringify(gone.body));
    assert.equal(gone.body.error.code, "leaseNotFound");
    // The holders' leases end: their holds go in that entry.
    await cluster.endLeases(A);
    const status = await call(app, "POST", "/v1/locks/status", { name: "s" });
    assert.deepEqual(
      status.body.holders.map((h: { lease: string }) => h.lease),
      [B],
    );
  });
});

Deno.test("the locks routes refuse bad input with a typed 4xx and change nothing", async () => {
  await withCluster(async (cluster) => {
    await cluster.grantLease(A);
    const app = cluster.follower().app;
    const held = await call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    assert.equal(held.body.granted, true);
    const cases: [string, string, unknown, number, string][] = [
      ["no name", "/v1/locks/acquire", { lease: A }, 400, "badRequest"],
      [
        "an empty name",
        "/v1/locks/acquire",
        { name: "", lease: A },
        400,
        "invalid",
      ],
      [
        "a control character",
        "/v1/locks/acquire",
        { name: "a\u0001", lease: A },
        400,
        "invalid",
      ],
      [
        "a 257-byte name",
        "/v1/locks/acquire",
        { name: "x".repeat(257), lease: A },
        400,
        "invalid",
      ],
      [
        "a name not a string",
        "/v1/locks/acquire",
        { name: 7, lease: A },
        400,
        "invalid",
      ],
      [
        "a bad lease",
        "/v1/locks/acquire",
        { name: "m", lease: "xyz" },
        400,
        "invalid",
      ],
      [
        "permits 0",
        "/v1/locks/acquire",
        { name: "n", lease: A, permits: 0 },
        400,
        "invalid",
      ],
      [
        "permits 10,001",
        "/v1/locks/acquire",
        { name: "n", lease: A, permits: 10_001 },
        400,
        "invalid",
      ],
      [
        "waitMs 60,001",
        "/v1/locks/acquire",
        { name: "n", lease: A, waitMs: 60_001 },
        400,
        "badRequest",
      ],
      [
        "waitMs -1",
        "/v1/locks/acquire",
        { name: "n", lease: A, waitMs: -1 },
        400,
        "badRequest",
      ],
      [
        "an unknown field",
        "/v1/locks/acquire",
        { name: "n", lease: A, ttl: 1 },
        400,
        "badRequest",
      ],
      ["not an object", "/v1/locks/acquire", [1], 400, "badRequest"],
      [
        "an unknown lease",
        "/v1/locks/acquire",
        { name: "n", lease: "00000000000000ff" },
        404,
        "leaseNotFound",
      ],
      [
        "another permits",
        "/v1/locks/acquire",
        { name: "m", lease: A, permits: 2 },
        200,
        "",
      ],
      [
        "a bad token",
        "/v1/locks/release",
        { name: "m", token: "nope" },
        400,
        "invalid",
      ],
      ["no token", "/v1/locks/release", { name: "m" }, 400, "badRequest"],
      [
        "a token that does not hold",
        "/v1/locks/release",
        { name: "m", token: "0".repeat(20) },
        409,
        "notHolder",
      ],
      [
        "cancel without lease",
        "/v1/locks/cancel",
        { name: "m" },
        400,
        "badRequest",
      ],
      ["status without name", "/v1/locks/status", {}, 400, "badRequest"],
    ];
    for (const [what, path, body, status, code] of cases) {
      const before = cluster.locksRows(cluster.follower());
      const answer = await call(app, "POST", path, body);
      if (status === 200) {
        // A lease that holds answers its grant, whatever permits it names.
        assert.equal(answer.body.granted, true, what);
        continue;
      }
      assert.equal(
        answer.status,
        status,
        `${what}: ${JSON.stringify(answer.body)}`,
      );
      assert.equal(answer.body.error.code, code, what);
      assert.equal(cluster.locksRows(cluster.follower()), before, what);
    }
    const final = cluster.locksRows(cluster.follower());
    await waitFor(
      "every node at the same locks state",
      () => cluster.nodes.every((n) => cluster.locksRows(n) === final),
      5000,
    );
    const unauthorized = await call(app, "POST", "/v1/locks/status", {
      name: "m",
    }, { token: null });
    assert.equal(unauthorized.status, 401);
  });
});

Deno.test("a waiting acquire is granted even when the change feed dropped the entries it waited through", async () => {
  const cluster = await startLocksCluster({ feedEntriesMax: 2 });
  try {
    for (const lease of [A, B, C]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    const first = await call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    const waiting = call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: B,
      waitMs: 10_000,
    });
    // Entries with changes on other names push the window past the waiter's cursor.
    for (let i = 0; i < 6; i++) {
      await call(app, "POST", "/v1/locks/acquire", {
        name: `other${i}`,
        lease: C,
      });
    }
    await call(app, "POST", "/v1/locks/release", {
      name: "m",
      token: first.body.token,
    });
    const granted = await waiting;
    assert.equal(granted.body.granted, true, JSON.stringify(granted.body));
    assert.equal(granted.body.lease, B);
  } finally {
    await cluster.stop();
  }
});
