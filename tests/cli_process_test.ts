/**
 * The operator commands against three real node processes: members in the
 * leader's view with a health column (a killed node shows as unreachable),
 * `cluster health` and `cluster endpoints` (exit 3 once a node is down),
 * node ids by their short prefix, `--ticket` for the backup and the join
 * ticket, and 404s that name the right URL.
 *
 * @module
 */
import assert from "node:assert/strict";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { aspen } from "./helpers/cli_run.ts";
import { connect } from "../mod.ts";
import { waitForValue } from "./helpers/wait_for.ts";

const TOKEN = "cli-process-token-0123456789";
const ADMIN_TOKEN = "cli-process-admin-token-0123456789";
const POLL_MS = 200;

interface Member {
  id: string;
  name: string | null;
  match: number | null;
  reachable: boolean | null;
  lastContactMs: number | null;
}

Deno.test("aspen against 3 node processes: leader's view with names and health, health/endpoints, short ids, --ticket, helpful 404s", async () => {
  await withProcessCluster({
    count: 3,
    env: { ASPEN_TOKENS: TOKEN, ASPEN_ADMIN_TOKENS: ADMIN_TOKEN },
    token: TOKEN,
    // Every node announces its name; the provisioned addresses had none.
    config: { name: "rack-a" },
  }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const [follower, other] = [0, 1, 2].filter((i) => i !== leader) as [
      number,
      number,
    ];
    const env = {
      ASPEN_URL: cluster.node(follower).url,
      ASPEN_TOKEN: TOKEN,
      ASPEN_ADMIN_TOKEN: ADMIN_TOKEN,
    };

    // Asked of a follower, members are the leader's view: match and health known.
    const members = await waitForValue("every member reachable", async () => {
      const result = await aspen(["--json", "cluster", "members"], env);
      assert.equal(result.code, 0, result.stderr);
      const list = JSON.parse(result.stdout).members as Member[];
      return list.length === 3 &&
          list.every((m) =>
            m.match !== null && m.reachable === true && m.name === "rack-a"
          )
        ? list
        : null;
    }, { timeoutMs: 30_000, intervalMs: POLL_MS, retryErrors: true });
    // The table, once every member is reachable in one answer (the machine may be loaded).
    const table = await waitForValue(
      "a table with every member ok",
      async () => {
        const result = await aspen(["cluster", "members"], env);
        const ok = result.stdout.match(/ ok \(last contact [\d.]+m?s ago\) /g);
        return ok?.length === 2 ? result.stdout : null;
      },
      { timeoutMs: 30_000, intervalMs: POLL_MS, retryErrors: true },
    );
    assert.match(table, /^ID +NAME +ROLE +LEADER +MATCH +LAG +HEALTH +URL\n/);
    assert.equal(table.match(/ rack-a /g)?.length, 3);
    assert.equal(table.match(/ ok \(leader\) /g)?.length, 1);

    const health = await waitForValue("every node healthy", async () => {
      const result = await aspen(["cluster", "health"], env);
      return result.code === 0 ? result : null;
    }, { timeoutMs: 30_000, intervalMs: POLL_MS, retryErrors: true });
    assert.equal(health.stdout.match(/ true /g)?.length, 3, health.stdout);
    const endpoints = await aspen(["--json", "cluster", "endpoints"], env);
    assert.equal(endpoints.code, 0, endpoints.stderr);
    const rows = JSON.parse(endpoints.stdout) as {
      id: string;
      role: string;
    }[];
    assert.deepEqual(
      rows.map((r) => r.id).sort(),
      members.map((m) => m.id).sort(),
    );
    assert.equal(rows.filter((r) => r.role === "leader").length, 1);

    // The short id the logs print names the node.
    const status = (await cluster.status(other))!;
    const shortId = status.nodeId.slice(0, 10);
    // A transfer is best effort (the target must win its election in time on
    // a loaded machine): each accepted call is retried, a bounded number of times.
    const transferTo = async (
      target: number,
      transfer: () => Promise<void>,
    ) => {
      for (let attempt = 0; attempt < 5; attempt++) {
        await transfer();
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          if ((await cluster.status(target))?.role === "leader") return;
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        }
      }
    };
    await transferTo(other, async () => {
      const moved = await aspen(["cluster", "transfer-leader", shortId], env);
      assert.equal(moved.code, 0, moved.stderr);
      assert.equal(moved.stdout, `leadership moved to ${status.nodeId}\n`);
    });
    assert.equal(await cluster.waitForLeader(), other);
    // The HTTP API takes the short id too (the client module sends it as given).
    const leaderId = (await cluster.status(leader))!.nodeId;
    const api = connect(cluster.node(follower).url, { token: ADMIN_TOKEN });
    try {
      await transferTo(
        leader,
        () => api.cluster.transferLeader(leaderId.slice(0, 10)),
      );
    } finally {
      api.close();
    }
    assert.equal(await cluster.waitForLeader(), leader);
    const short = await aspen([
      "cluster",
      "transfer-leader",
      shortId.slice(0, 3),
    ], env);
    assert.equal(short.code, 2);
    assert.match(short.stderr, /too short: give at least 6 characters/);

    // --ticket is honoured by the backup and the join ticket.
    const ticket = (await aspen(["cluster", "ticket"], env)).stdout.trim();
    const dir = await Deno.makeTempDir({ prefix: "aspen-cli-process-" });
    try {
      const saved = await aspen(
        [
          "--ticket",
          ticket,
          "--admin-token",
          ADMIN_TOKEN,
          "snapshot",
          "save",
          `${dir}/b`,
        ],
        {},
        [`--allow-write=${dir}`],
      );
      assert.equal(saved.code, 0, saved.stderr);
      assert.ok((await Deno.stat(`${dir}/b`)).size > 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const join = await aspen([
      "--ticket",
      ticket,
      "--admin-token",
      ADMIN_TOKEN,
      "cluster",
      "join-ticket",
    ]);
    assert.equal(join.code, 0, join.stderr);
    assert.match(join.stdout, /^aspen[a-z2-7]+\n$/);

    // A wrong URL is answered with the right one.
    const url = cluster.node(follower).url;
    const viaKv = await aspen(["kv", "get", "a", "--url", `${url}/kv`], {
      ASPEN_TOKEN: TOKEN,
    });
    assert.equal(viaKv.code, 2, viaKv.stderr);
    assert.match(
      viaKv.stderr,
      new RegExp(`the HTTP API .* is at ${url}, without '/kv'`),
    );
    const root = await fetch(`${url}/`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: "{}",
    });
    assert.equal(root.status, 404);
    const body = await root.json();
    assert.match(
      body.error.message,
      new RegExp(`Deno.openKv use the KV Connect URL ${url}/kv`),
    );

    // A killed node: unreachable in members, unhealthy in health and endpoints.
    const killedId = (await cluster.status(follower))!.nodeId;
    await cluster.kill(follower);
    const env2 = {
      ASPEN_URL: cluster.node(other).url,
      ASPEN_TOKEN: TOKEN,
      ASPEN_ADMIN_TOKEN: ADMIN_TOKEN,
    };
    const down = await waitForValue("the killed node unreachable", async () => {
      const result = await aspen(["--json", "cluster", "members"], env2);
      const list = JSON.parse(result.stdout).members as Member[];
      const unreachable = list.filter((m) => m.reachable === false);
      return unreachable.length === 1 ? unreachable[0]! : null;
    }, { timeoutMs: 30_000, intervalMs: POLL_MS, retryErrors: true });
    assert.equal(down.id, killedId);
    assert.ok(down.lastContactMs === null || down.lastContactMs > 0);
    const downTable = await aspen(["cluster", "members"], env2);
    assert.match(
      downTable.stdout,
      /UNREACHABLE \(last contact [\d.]+m?s ago\)/,
    );
    // Exactly the killed node unhealthy (once the survivors agree on a leader).
    const sick = await waitForValue("one node unhealthy", async () => {
      const result = await aspen(["cluster", "health"], env2);
      return result.stderr === "aspen: 1 of 3 endpoints unhealthy\n"
        ? result
        : null;
    }, { timeoutMs: 30_000, intervalMs: POLL_MS, retryErrors: true });
    assert.equal(sick.code, 3, sick.stdout);
    assert.match(sick.stdout, new RegExp(`${killedId} +false `));
    const partial = await aspen(["cluster", "endpoints"], env2);
    assert.equal(partial.code, 3, partial.stdout);
    assert.equal(partial.stderr, "aspen: 1 of 3 endpoints did not answer\n");
  });
});
