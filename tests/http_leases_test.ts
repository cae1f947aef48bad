/**
 * The `/v1/leases/...` routes on a real 3-node cluster (in one process,
 * each node's app served on 127.0.0.1 so a follower can forward keep-alives
 * and ttl to the leader): grant (TTL raised, given and random ids),
 * keepalive and ttl from the leader and a follower (forwarded once), revoke,
 * list by cursor, expiry without keep-alives, and bad input (4xx, the
 * leases rows unchanged on every node).
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { call } from "./helpers/http_request.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { TEST_TOKEN } from "./helpers/http_cluster.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { ChangeFeed } from "../src/state/change_feed.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import type { ClusterStatus, NodeApi } from "../src/node/node_api.ts";
import { RaftKvBackend } from "../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { nodeId } from "../src/raft/types.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { createHttpApp } from "../src/frontends/http/app.ts";
import { FORWARDED_HEADER } from "../src/frontends/http/leases.ts";
import { NodeLocks } from "../src/node/node_locks.ts";

const DATABASE_ID = "00000000-0000-4000-8000-000000000000";
const A = "000000000000000a";
const B = "000000000000000b";

interface LeaseNode {
  readonly id: string;
  readonly runner: RaftRunner;
  readonly state: KvReplicatedState;
  readonly backend: RaftKvBackend;
  readonly locks: NodeLocks;
  readonly app: Hono;
  url: string;
  server: Deno.HttpServer | null;
}

class LeaseCluster {
  readonly network = new InMemoryNetwork();
  readonly nodes: LeaseNode[] = [];

  leader(): LeaseNode {
    const leader = this.nodes.find((n) => n.runner.status().role === "leader");
    assert.ok(leader !== undefined, "a leader");
    return leader;
  }

  follower(): LeaseNode {
    const leader = this.leader();
    return this.nodes.find((n) => n !== leader)!;
  }

  /** The leases rows (`ff 6c`) of every node, to check a refusal changed nothing. */
  rows(): string {
    return JSON.stringify(this.nodes.map((node) =>
      node.state.kv.store.scan({
        start: new Uint8Array([0xff, 0x6c]),
        end: new Uint8Array([0xff, 0x6d]),
        limit: 100_000,
      }).map((r) => [[...r.key], [...r.value]])
    ));
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      node.backend.stopServices();
      await node.server?.shutdown();
    }
    await Promise.all(this.nodes.map((n) => n.runner.stop()));
  }
}

function nodeApi(
  cluster: LeaseCluster,
  node: Omit<LeaseNode, "app" | "url" | "server">,
): NodeApi {
  const unsupported = () => Promise.reject(new Error("Not served here"));
  return {
    backend: node.backend,
    leases: node.backend.leases,
    locks: node.locks,
    status: () => {
      const leaderId = node.runner.status().leader;
      const leader = cluster.nodes.find((n) => n.id === leaderId);
      return {
        leaderHttpUrl: leader === undefined || leader.id === node.id
          ? null
          : leader.url,
      } as unknown as ClusterStatus;
    },
    health: () => ({ ok: true, reason: null }),
    metrics: () => "",
    clientTicket: () => "",
    addLearner: unsupported,
    promote: unsupported,
    remove: unsupported,
    transferLeader: unsupported,
  } as NodeApi;
}

async function startCluster(): Promise<LeaseCluster> {
  const cluster = new LeaseCluster();
  const ids = ["n1", "n2", "n3"].map(nodeId);
  for (const id of ids) {
    const feed = new ChangeFeed();
    const state = new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore(), {}, { changes: feed }),
    );
    const runner = new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: cluster.network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 2000,
    });
    const backend = new RaftKvBackend(runner, state, DATABASE_ID, {
      changes: feed,
      electionTimeoutMs: 200,
      leaseIntervalMs: 20,
    });
    const locks = new NodeLocks({
      propose: (data) => runner.propose(data),
      readIndex: () => runner.readIndex(),
      store: state.kv.store,
      feed,
    });
    const parts = { id, runner, state, backend, locks };
    const app = createHttpApp({
      node: nodeApi(cluster, parts),
      tokens: [TEST_TOKEN],
      logError: () => {},
    });
    const node: LeaseNode = { ...parts, app, url: "", server: null };
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    node.server = server;
    node.url = `http://127.0.0.1:${server.addr.port}`;
    cluster.nodes.push(node);
  }
  for (const node of cluster.nodes) {
    node.runner.start();
    node.backend.startServices();
  }
  try {
    await waitFor("an agreed leader and a started keeper", () => {
      const leader = cluster.nodes.find((n) =>
        n.runner.status().role === "leader"
      );
      return leader !== undefined && leader.backend.leaseKeeper.started &&
        cluster.nodes.every((n) =>
          n.runner.status().leader === leader.runner.status().leader
        );
    }, 5000);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

async function withCluster(
  fn: (cluster: LeaseCluster) => Promise<void>,
): Promise<void> {
  const cluster = await startCluster();
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

Deno.test("POST /v1/leases/grant: given and random ids, TTL raised to three election timeouts, same TTL again is idempotent", async () => {
  await withCluster(async (cluster) => {
    const follower = cluster.follower().app;
    const given = await call(follower, "POST", "/v1/leases/grant", {
      ttlMs: 5000,
      id: A,
    });
    assert.equal(given.status, 200, JSON.stringify(given.body));
    assert.deepEqual(given.body, { id: A, ttlMs: 5000 });
    const random = await call(follower, "POST", "/v1/leases/grant", {
      ttlMs: 1000,
    });
    assert.equal(random.status, 200);
    assert.match(random.body.id, /^[0-9a-f]{16}$/);
    // 3 × 200 ms is below the minimum: the asked TTL stands.
    assert.equal(random.body.ttlMs, 1000);
    const again = await call(follower, "POST", "/v1/leases/grant", {
      ttlMs: 5000,
      id: A,
    });
    assert.deepEqual(again.body, { id: A, ttlMs: 5000 });
    const before = cluster.rows();
    const clash = await call(follower, "POST", "/v1/leases/grant", {
      ttlMs: 6000,
      id: A,
    });
    assert.equal(clash.status, 400, JSON.stringify(clash.body));
    assert.equal(clash.body.error.details.reason, "leaseExists");
    assert.equal(cluster.rows(), before);
  });
});

Deno.test("POST /v1/leases/* bad input is a 4xx and changes nothing", async () => {
  await withCluster(async (cluster) => {
    const app = cluster.follower().app;
    await call(app, "POST", "/v1/leases/grant", { ttlMs: 5000, id: A });
    await waitFor("replicated", () => {
      const rows = JSON.parse(cluster.rows()) as unknown[][];
      return rows.every((r) => r.length === rows[0]!.length);
    }, 5000);
    const before = cluster.rows();
    const cases: [string, unknown, number][] = [
      ["/v1/leases/grant", {}, 400],
      ["/v1/leases/grant", { ttlMs: 999 }, 400],
      ["/v1/leases/grant", { ttlMs: 604_800_001 }, 400],
      ["/v1/leases/grant", { ttlMs: "5000" }, 400],
      ["/v1/leases/grant", { ttlMs: 5000, id: "XYZ" }, 400],
      ["/v1/leases/grant", { ttlMs: 5000, extra: 1 }, 400],
      ["/v1/leases/keepalive", { ids: [] }, 400],
      ["/v1/leases/keepalive", { ids: ["nothex"] }, 400],
      ["/v1/leases/keepalive", { ids: Array(1001).fill(A) }, 400],
      ["/v1/leases/keepalive", {}, 400],
      ["/v1/leases/revoke", {}, 400],
      ["/v1/leases/revoke", { id: B }, 404],
      ["/v1/leases/ttl", { id: B }, 404],
      ["/v1/leases/ttl", { id: A, keys: "yes" }, 400],
      ["/v1/leases/list", { limit: 0 }, 400],
      ["/v1/leases/list", { limit: 1001 }, 400],
      ["/v1/leases/list", { cursor: "zz" }, 400],
    ];
    for (const [path, body, status] of cases) {
      const answer = await call(app, "POST", path, body);
      assert.equal(
        answer.status,
        status,
        `${path} ${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`,
      );
      assert.equal(typeof answer.body.error.code, "string");
    }
    const unauthorized = await call(app, "POST", "/v1/leases/grant", {
      ttlMs: 5000,
    }, { token: null });
    assert.equal(unauthorized.status, 401);
    assert.equal(cluster.rows(), before);
  });
});

Deno.test("POST /v1/leases/keepalive and ttl: answered by the leader, forwarded once from a follower", async () => {
  await withCluster(async (cluster) => {
    const leader = cluster.leader().app;
    const follower = cluster.follower().app;
    await call(follower, "POST", "/v1/leases/grant", { ttlMs: 5000, id: A });
    const kept = await call(leader, "POST", "/v1/leases/keepalive", {
      ids: [A, B],
    });
    assert.equal(kept.status, 200, JSON.stringify(kept.body));
    assert.deepEqual(kept.body, {
      leases: [
        { id: A, ttlMs: 5000, remainingMs: 5000 },
        { id: B, error: "leaseNotFound" },
      ],
    });
    const forwarded = await call(follower, "POST", "/v1/leases/keepalive", {
      ids: [A],
    });
    assert.equal(forwarded.status, 200, JSON.stringify(forwarded.body));
    assert.deepEqual(forwarded.body, {
      leases: [{ id: A, ttlMs: 5000, remainingMs: 5000 }],
    });
    const ttl = await call(follower, "POST", "/v1/leases/ttl", {
      id: A,
      keys: true,
    });
    assert.equal(ttl.status, 200, JSON.stringify(ttl.body));
    assert.equal(ttl.body.id, A);
    assert.equal(ttl.body.ttlMs, 5000);
    assert.ok(ttl.body.remainingMs > 0 && ttl.body.remainingMs <= 5000);
    assert.deepEqual(ttl.body.keys, []);
    const twice = await call(follower, "POST", "/v1/leases/keepalive", {
      ids: [A],
    }, { headers: { [FORWARDED_HEADER]: "1" } });
    assert.equal(twice.status, 421, JSON.stringify(twice.body));
    assert.equal(twice.body.error.code, "notLeader");
  });
});

Deno.test("POST /v1/leases/revoke and list: revoke answers keysDeleted, list pages by cursor", async () => {
  await withCluster(async (cluster) => {
    const app = cluster.follower().app;
    const ids = [3, 1, 2].map((n) => n.toString(16).padStart(16, "0"));
    for (const id of ids) {
      await call(app, "POST", "/v1/leases/grant", { ttlMs: 60_000, id });
    }
    const first = await call(app, "POST", "/v1/leases/list", { limit: 2 });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.leases.map((l: { id: string }) => l.id), [
      ids[1],
      ids[2],
    ]);
    assert.equal(first.body.leases[0].ttlMs, 60_000);
    assert.equal(first.body.leases[0].keyCount, 0);
    assert.equal(typeof first.body.leases[0].revision, "number");
    const second = await call(app, "POST", "/v1/leases/list", {
      limit: 2,
      cursor: first.body.cursor,
    });
    assert.deepEqual(second.body.leases.map((l: { id: string }) => l.id), [
      ids[0],
    ]);
    assert.equal(second.body.cursor, null);
    const revoked = await call(app, "POST", "/v1/leases/revoke", {
      id: ids[0],
    });
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.deepEqual(revoked.body, { keysDeleted: 0 });
    const gone = await call(app, "POST", "/v1/leases/revoke", { id: ids[0] });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, "leaseNotFound");
    const all = await call(app, "POST", "/v1/leases/list", {});
    assert.equal(all.body.leases.length, 2);
  });
});

Deno.test("a lease without keep-alives expires on the leader's clock; kept alive it stays", async () => {
  await withCluster(async (cluster) => {
    const app = cluster.follower().app;
    await call(app, "POST", "/v1/leases/grant", { ttlMs: 1000, id: A });
    await call(app, "POST", "/v1/leases/grant", { ttlMs: 1000, id: B });
    const started = Date.now();
    let keptAlive = 0;
    await waitFor("lease A expired", async () => {
      const kept = await call(app, "POST", "/v1/leases/keepalive", {
        ids: [B],
      });
      assert.equal(kept.status, 200, JSON.stringify(kept.body));
      assert.equal(kept.body.leases[0].remainingMs, 1000, "B stays alive");
      keptAlive++;
      const ttl = await call(app, "POST", "/v1/leases/ttl", { id: A });
      return ttl.status === 404;
    }, 10_000);
    assert.ok(Date.now() - started >= 900, "not before its TTL");
    assert.ok(keptAlive > 1);
    const b = await call(app, "POST", "/v1/leases/ttl", { id: B });
    assert.equal(b.status, 200);
    await waitFor(
      "every node applied the expiry",
      () => cluster.nodes.every((n) => n.backend.leases.leaseCount() === 1),
      5000,
    );
  });
});

const bytes = (text: string) => ({ encoding: "bytes", data: btoa(text) });

Deno.test("POST /v1/kv/atomic and set with a lease: attached keys go with the lease; an unknown lease is 404 leaseNotFound, nothing applied", async () => {
  await withCluster(async (cluster) => {
    const app = cluster.follower().app;
    await call(app, "POST", "/v1/leases/grant", { ttlMs: 60_000, id: A });
    const set = await call(app, "POST", "/v1/kv/set", {
      key: ["a"],
      value: bytes("1"),
      lease: A,
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const atomic = await call(app, "POST", "/v1/kv/atomic", {
      mutations: [{ type: "set", key: ["b"], value: bytes("2"), lease: A }],
    });
    assert.equal(atomic.status, 200, JSON.stringify(atomic.body));
    const ttl = await call(app, "POST", "/v1/leases/ttl", {
      id: A,
      keys: true,
    });
    assert.deepEqual(ttl.body.keys, [["a"], ["b"]]);
    const before = cluster.rows();
    const unknown = await call(app, "POST", "/v1/kv/atomic", {
      mutations: [
        { type: "set", key: ["c"], value: bytes("3") },
        { type: "set", key: ["d"], value: bytes("4"), lease: B },
      ],
    });
    assert.equal(unknown.status, 404, JSON.stringify(unknown.body));
    assert.equal(unknown.body.error.code, "leaseNotFound");
    const c = await call(app, "POST", "/v1/kv/get", { key: ["c"] });
    assert.equal(c.body.entry.value, null, "nothing applied");
    assert.equal(cluster.rows(), before);
    const badLease = await call(app, "POST", "/v1/kv/set", {
      key: ["e"],
      value: bytes("5"),
      lease: "nothex",
    });
    assert.equal(badLease.status, 400);
    const revoked = await call(app, "POST", "/v1/leases/revoke", { id: A });
    assert.deepEqual(revoked.body, { keysDeleted: 2 });
    for (const node of cluster.nodes) {
      await waitFor(
        "keys gone on every node",
        () => node.state.kv.store.get(new Uint8Array([2, 0x61, 0])) === null,
        5000,
      );
    }
    const a = await call(app, "POST", "/v1/kv/get", { key: ["a"] });
    assert.equal(a.body.entry.value, null);
  });
});

Deno.test("POST /v1/kv/atomic lease and fence checks fail like a versionstamp check, at their positions", async () => {
  await withCluster(async (cluster) => {
    const app = cluster.follower().app;
    await call(app, "POST", "/v1/leases/grant", { ttlMs: 60_000, id: A });
    const lock = await call(app, "POST", "/v1/locks/acquire", {
      name: "m",
      lease: A,
    });
    assert.equal(lock.status, 200, JSON.stringify(lock.body));
    const token = lock.body.token;
    const checks = [
      { lease: A },
      { key: ["x"], versionstamp: null },
      { fence: { name: "m", token } },
    ];
    const ok = await call(app, "POST", "/v1/kv/atomic", {
      checks,
      mutations: [{ type: "set", key: ["reg"], value: bytes("1") }],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    await call(app, "POST", "/v1/leases/revoke", { id: A });
    const stale = await call(app, "POST", "/v1/kv/atomic", {
      checks,
      mutations: [{ type: "set", key: ["reg"], value: bytes("2") }],
    });
    assert.equal(stale.status, 409, JSON.stringify(stale.body));
    assert.equal(stale.body.error.code, "checkFailed");
    assert.deepEqual(stale.body.error.details.failedChecks, [0, 2]);
    const reg = await call(app, "POST", "/v1/kv/get", { key: ["reg"] });
    assert.equal(reg.body.entry.value.data, btoa("1"));
    const bad = await call(app, "POST", "/v1/kv/atomic", {
      checks: [{ fence: { name: "m", token: "xyz" } }],
      mutations: [],
    });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
  });
});
