/**
 * The real `aspen` CLI (a subprocess) against the fake coordination
 * server: `lease`, `lock`, `elect`, and the lease and fence flags of `kv`,
 * with their outputs, exit codes (refusal 2; unknown lease, token not
 * holding, timeout 1) and `-- CMD` runs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type AspenClient, connect } from "../mod.ts";
import { aspen, type CliResult } from "./helpers/cli_run.ts";
import { renameShadowedOptions } from "../cli/commands/lock.ts";
import { grantsFor } from "../cli/permissions.ts";
import {
  type FakeCoordinationServer,
  startFakeCoordinationServer,
} from "./helpers/fake_coordination_server.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "test-token";
const SH = "/usr/bin/sh";
const SLEEP = "/usr/bin/sleep";
const RUN = ["--allow-run"];

async function withServer(
  fn: (
    server: FakeCoordinationServer,
    run: (args: string[], permissions?: string[]) => Promise<CliResult>,
    client: AspenClient,
  ) => Promise<void>,
): Promise<void> {
  const server = startFakeCoordinationServer({ token: TOKEN });
  const client = connect(server.url, { token: TOKEN });
  const env = { ASPEN_URL: server.url, ASPEN_TOKEN: TOKEN };
  try {
    await fn(
      server,
      (args, permissions) => aspen(args, env, permissions),
      client,
    );
  } finally {
    await client[Symbol.asyncDispose]();
    await server.close();
  }
}

function ok(result: CliResult): CliResult {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return result;
}

function refused(result: CliResult, code: number, stderr: RegExp): void {
  const detail = `exit ${result.code}, stderr '${result.stderr}'`;
  assert.equal(result.code, code, detail);
  assert.match(result.stderr, stderr, detail);
  assert.match(result.stderr, /^aspen: [^\n]+\n$/, `one line: ${detail}`);
}

Deno.test("aspen lease: grant, ttl --keys, keepalive --once, list, revoke; an unknown id exits 1 'lease ID not found'", async () => {
  await withServer(async (server, run) => {
    const grant = JSON.parse(
      ok(
        await run([
          "lease",
          "grant",
          "5000",
          "--id",
          "00000000000000a1",
          "--json",
        ]),
      ).stdout,
    );
    assert.deepEqual(grant, { id: "00000000000000a1", ttlMs: 5000 });
    assert.match(
      ok(await run(["lease", "grant", "5000"])).stdout,
      /^lease [0-9a-f]{16} granted: ttl 5000 ms\n$/,
    );
    ok(await run(["kv", "set", "leased", "v", "--lease", grant.id]));
    const ttl = JSON.parse(
      ok(await run(["lease", "ttl", grant.id, "--keys", "--json"])).stdout,
    );
    assert.equal(ttl.ttlMs, 5000);
    assert.deepEqual(ttl.keys, [["leased"]]);
    const table = ok(await run(["lease", "ttl", grant.id, "--keys"])).stdout;
    assert.match(
      table,
      /^LEASE\s+TTL_MS\s+REMAINING_MS\n00000000000000a1\s+5000\s+\d+\nKEYS\n\["leased"\]\n$/,
    );
    const kept = JSON.parse(
      ok(await run(["lease", "keepalive", grant.id, "--once", "--json"]))
        .stdout,
    );
    assert.deepEqual(kept, { id: grant.id, ttlMs: 5000, remainingMs: 5000 });
    const listed = JSON.parse(
      ok(await run(["lease", "list", "--json"])).stdout,
    );
    assert.equal(listed.leases.length, 2);
    assert.equal(listed.cursor, null);
    assert.match(
      ok(await run(["lease", "list"])).stdout,
      /^LEASE\s+TTL_MS\s+REVISION\s+KEYS\n/,
    );
    assert.deepEqual(
      JSON.parse(ok(await run(["lease", "revoke", grant.id, "--json"])).stdout),
      { keysDeleted: 1 },
    );
    assert.equal(server.hasLease(grant.id), false);
    for (
      const args of [
        ["lease", "revoke", grant.id],
        ["lease", "ttl", grant.id],
        ["lease", "keepalive", grant.id, "--once"],
        ["lease", "keepalive", grant.id],
        ["kv", "set", "k", "v", "--lease", grant.id],
        ["kv", "atomic", "--set", "k=v", "--lease", grant.id],
      ]
    ) {
      refused(
        await run(args),
        1,
        new RegExp(`^aspen: lease ${grant.id} not found\n$`),
      );
    }
    // Bad input: exit 2, nothing sent.
    const before = server.requests.length;
    refused(await run(["lease", "grant", "abc"]), 2, /Invalid TTL 'abc'/);
    refused(await run(["lease", "revoke", "XYZ"]), 2, /Invalid lease id 'XYZ'/);
    refused(
      await run(["lease", "grant", "500"]),
      2,
      /'ttlMs' must be 1000 to 604800000/,
    );
    assert.equal(server.requests.length, before);
  });
});

Deno.test("aspen lease keepalive: keeps the lease alive every TTL/3 until SIGINT, then exits 0", async () => {
  await withServer(async (server, _run, client) => {
    const lease = await client.leases.grant(1500);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
        "--allow-read",
        new URL("../cli/aspen.ts", import.meta.url).pathname,
        "lease",
        "keepalive",
        lease.id,
        "--json",
      ],
      env: { NO_COLOR: "1", ASPEN_URL: server.url, ASPEN_TOKEN: TOKEN },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      const started = performance.now();
      // Three TTLs: without keep-alives the lease would have expired.
      await waitFor("3 TTLs", () => performance.now() - started > 4500, {
        timeoutMs: 20_000,
        intervalMs: 100,
      });
      assert.equal(server.hasLease(lease.id), true);
      assert.ok(server.paths("/v1/leases/keepalive").length >= 6);
    } finally {
      child.kill("SIGINT");
    }
    const output = await child.output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
    assert.ok(lines.length >= 6);
    assert.deepEqual(Object.keys(JSON.parse(lines[0]!)), [
      "id",
      "ttlMs",
      "remainingMs",
    ]);
  });
});

Deno.test("aspen lock: acquire prints the grant, status, timeout exits 1, release, notHolder 1, permits mismatch 2", async () => {
  await withServer(async (server, run) => {
    const grant = JSON.parse(
      ok(await run(["lock", "acquire", "job", "--ttl", "30000", "--json"]))
        .stdout,
    );
    assert.deepEqual(Object.keys(grant), [
      "name",
      "token",
      "lease",
      "revision",
    ]);
    assert.match(grant.token, /^[0-9a-f]{20}$/);
    // Nobody keeps the lease alive: the CLI exited, the grant stays.
    assert.equal(server.hasLease(grant.lease), true);
    const status = JSON.parse(
      ok(await run(["lock", "status", "job", "--json"])).stdout,
    );
    assert.deepEqual(status.holders.map((h: { token: string }) => h.token), [
      grant.token,
    ]);
    assert.match(
      ok(await run(["lock", "status", "job"])).stdout,
      new RegExp(
        `^lock job: 1 permits\\nROLE\\s+TOKEN\\s+LEASE\\s+REVISION\\nholder\\s+${grant.token}\\s+${grant.lease}`,
      ),
    );
    const started = performance.now();
    refused(
      await run(["lock", "acquire", "job", "--timeout", "300"]),
      1,
      /^aspen: lock job not acquired within 300 ms\n$/,
    );
    assert.ok(performance.now() - started >= 300);
    // It left the queue, and the lease granted for it was revoked.
    const after = JSON.parse(
      ok(await run(["lock", "status", "job", "--json"])).stdout,
    );
    assert.deepEqual(after.waiters, []);
    refused(
      await run(["lock", "acquire", "job", "--permits", "3"]),
      2,
      /permits/,
    );
    assert.match(
      ok(await run(["lock", "release", "job", "--token", grant.token])).stdout,
      /^lock job released\n$/,
    );
    refused(
      await run(["lock", "release", "job", "--token", grant.token]),
      1,
      /does not hold/,
    );
    assert.equal(
      ok(await run(["lock", "status", "job"])).stdout,
      "lock job: free\n",
    );
    const withLease = JSON.parse(
      ok(
        await run([
          "lock",
          "acquire",
          "job2",
          "--lease",
          grant.lease,
          "--json",
        ]),
      ).stdout,
    );
    assert.equal(withLease.lease, grant.lease);
    refused(
      await run(["lock", "acquire", "job3", "--lease", "0123456789abcdef"]),
      1,
      /^aspen: lease 0123456789abcdef not found\n$/,
    );
    // Bad input: exit 2.
    refused(await run(["lock", "acquire", ""]), 2, /Invalid name/);
    refused(
      await run(["lock", "acquire", "x", "--permits", "0"]),
      2,
      /Invalid permits/,
    );
    refused(
      await run(["lock", "acquire", "x", "--lease", "nope"]),
      2,
      /Invalid lease id/,
    );
    refused(
      await run([
        "lock",
        "acquire",
        "x",
        "--lease",
        grant.lease,
        "--ttl",
        "5000",
      ]),
      2,
      /cannot be used with/,
    );
    refused(
      await run(["lock", "release", "x", "--token", "abc"]),
      2,
      /Invalid token/,
    );
  });
});

Deno.test("aspen lock acquire -- CMD: runs CMD with the lock's environment, releases after, exits with CMD's code", async () => {
  await withServer(async (server, run, client) => {
    const result = await run([
      "lock",
      "acquire",
      "deploy",
      "--ttl",
      "5000",
      "--",
      SH,
      "-c",
      'echo "$ASPEN_LOCK_NAME $ASPEN_LOCK_TOKEN $ASPEN_LEASE_ID"; exit 7',
    ], RUN);
    assert.equal(result.code, 7, result.stderr);
    const [name, token, lease] = result.stdout.trim().split(" ");
    assert.equal(name, "deploy");
    assert.match(token!, /^[0-9a-f]{20}$/);
    assert.match(lease!, /^[0-9a-f]{16}$/);
    // Released, and the lease it granted revoked.
    assert.deepEqual((await client.locks.status("deploy")).holders, []);
    assert.equal(server.hasLease(lease!), false);
    assert.ok(server.paths("/v1/locks/release").length === 1);
    // A CMD that does not exist: exit 2, nothing left held.
    refused(
      await run(["lock", "acquire", "deploy", "--", "/nonexistent/cmd"], RUN),
      2,
      /Cannot run '\/nonexistent\/cmd'/,
    );
    assert.deepEqual((await client.locks.status("deploy")).holders, []);
  });
});

Deno.test("aspen lock acquire -- CMD: a lost lease sends CMD SIGTERM and exits 1", async () => {
  await withServer(async (server, run, client) => {
    const running = run([
      "lock",
      "acquire",
      "lost",
      "--ttl",
      "1500",
      "--",
      SH,
      "-c",
      `echo started; exec ${SLEEP} 60`,
    ], RUN);
    const holder = await waitFor(
      "the grant",
      async () => (await client.locks.status("lost")).holders.length === 1,
      20_000,
    ).then(async () => (await client.locks.status("lost")).holders[0]!);
    // Kept alive while CMD runs: still held after a TTL.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.equal(server.hasLease(holder.lease), true);
    server.expire(holder.lease);
    const result = await running;
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, "started\n");
    assert.match(
      result.stderr,
      new RegExp(
        `^aspen: lease ${holder.lease} lost: sent SIGTERM to '${SH}'\n$`,
      ),
    );
  });
});

Deno.test("aspen kv: --lease, --check-lease and --check-fence (a write fenced by a token that moved exits 1)", async () => {
  await withServer(async (server, run, client) => {
    const lease = await client.leases.grant(30_000);
    ok(
      await run([
        "kv",
        "atomic",
        "--set",
        "a=1",
        "--set-json",
        "b=2",
        "--lease",
        lease.id,
        "--check-lease",
        lease.id,
      ]),
    );
    const atomic = server.requests.filter((r) => r.path === "/v1/kv/atomic").at(
      -1,
    )!.body as {
      checks: unknown[];
      mutations: { lease?: string }[];
    };
    assert.deepEqual(atomic.checks, [{ lease: lease.id }]);
    assert.deepEqual(atomic.mutations.map((m) => m.lease), [
      lease.id,
      lease.id,
    ]);
    const first = await client.locks.acquire("reg", { lease: lease.id });
    ok(
      await run([
        "kv",
        "atomic",
        "--check-fence",
        `reg=${first.token}`,
        "--set",
        "reg=a",
      ]),
    );
    await first.release();
    const other = await client.leases.grant(30_000);
    await client.locks.acquire("reg", { lease: other.id });
    const stale = await run([
      "kv",
      "atomic",
      "--check-fence",
      `reg=${first.token}`,
      "--set",
      "reg=stale",
    ]);
    refused(stale, 1, /^aspen: check failed: nothing changed\n$/);
    assert.equal((await client.kv.get(["reg"])).value, "a");
    await client.leases.revoke(lease.id);
    refused(
      await run(["kv", "atomic", "--check-lease", lease.id, "--set", "c=1"]),
      1,
      /check failed/,
    );
    refused(
      await run(["kv", "atomic", "--check-fence", "reg", "--set", "c=1"]),
      2,
      /expected NAME=TOKEN/,
    );
    refused(
      await run(["kv", "atomic", "--check-lease", "x", "--set", "c=1"]),
      2,
      /Invalid lease id/,
    );
  });
});

Deno.test("aspen elect: campaign, leader, proclaim, observe --count across a resign, campaign -- CMD", async () => {
  await withServer(async (_server, run, client) => {
    const first = JSON.parse(
      ok(await run(["elect", "campaign", "chief", "node-a", "--json"])).stdout,
    );
    assert.equal(first.value, "node-a");
    assert.match(
      ok(await run(["elect", "leader", "chief"])).stdout,
      new RegExp(
        `^VALUE\\s+TOKEN\\s+LEASE\\s+REVISION\\nnode-a\\s+${first.token}`,
      ),
    );
    // Observe: the current leader, a proclaim, a resign (no leader).
    const observing = run([
      "elect",
      "observe",
      "chief",
      "--count",
      "3",
      "--json",
    ]);
    await waitFor(
      "the observer",
      () => _server.observeConnections.length === 1,
      20_000,
    );
    ok(
      await run([
        "elect",
        "proclaim",
        "chief",
        "node-a2",
        "--token",
        first.token,
      ]),
    );
    ok(await run(["elect", "resign", "chief", "--token", first.token]));
    const observed = ok(await observing).stdout.trim().split("\n").map((line) =>
      JSON.parse(line)
    );
    assert.deepEqual(observed.map((o) => o.leader?.value ?? null), [
      "node-a",
      "node-a2",
      null,
    ]);
    assert.equal(
      ok(await run(["elect", "leader", "chief"])).stdout,
      "chief: no leader\n",
    );
    refused(
      await run(["elect", "resign", "chief", "--token", first.token]),
      1,
      /does not hold/,
    );
    refused(
      await run(["elect", "proclaim", "chief", "v", "--token", first.token]),
      1,
      /does not hold/,
    );
    const result = await run([
      "elect",
      "campaign",
      "chief",
      "node-b",
      "--ttl",
      "5000",
      "--",
      SH,
      "-c",
      'echo "$ASPEN_LOCK_NAME $ASPEN_LOCK_TOKEN"; exit 3',
    ], RUN);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stdout, /^chief [0-9a-f]{20}\n$/);
    assert.equal(await client.elections.leader("chief"), null);
    const held = await client.elections.campaign("chief", "c");
    refused(
      await run(["elect", "campaign", "chief", "d", "--timeout", "200"]),
      1,
      /^aspen: lock chief not acquired within 200 ms\n$/,
    );
    await held.resign();
  });
});

Deno.test("aspen: --token and --timeout before the command stay global (bearer token, request deadline); after it they are the command's", async () => {
  const server = startFakeCoordinationServer({ token: TOKEN });
  const client = connect(server.url, { token: TOKEN });
  try {
    const held = await client.locks.acquire("shadow");
    // No ASPEN_TOKEN: the bearer token comes from the first --token.
    const env = { ASPEN_URL: server.url };
    const released = await aspen([
      "--token",
      TOKEN,
      "--timeout",
      "5000",
      "lock",
      "release",
      "shadow",
      "--token",
      held.token,
    ], env);
    assert.equal(released.code, 0, released.stderr);
    const timedOut = await aspen([
      "--token",
      TOKEN,
      "--timeout",
      "5000",
      "elect",
      "campaign",
      "shadowed",
      "v",
      "--timeout",
      "0",
    ], env);
    assert.equal(timedOut.code, 0, timedOut.stderr); // nobody leads: elected at once
    refused(
      await aspen(["lock", "release", "shadow"], {
        ...env,
        ASPEN_TOKEN: TOKEN,
      }),
      2,
      /required option '--token <token>' not specified/,
    );
  } finally {
    await client[Symbol.asyncDispose]();
    await server.close();
  }
});

Deno.test("renameShadowedOptions() renames only the command's --token/--timeout, never before the command or after --", () => {
  const table: [string[], string[]][] = [
    [["lock", "release", "n", "--token", "t"], [
      "lock",
      "release",
      "n",
      "--holder-token",
      "t",
    ]],
    [["--token", "b", "elect", "resign", "n", "--token=t"], [
      "--token",
      "b",
      "elect",
      "resign",
      "n",
      "--holder-token=t",
    ]],
    [[
      "--timeout",
      "9",
      "lock",
      "acquire",
      "n",
      "--timeout",
      "5",
      "--",
      "x",
      "--timeout",
    ], [
      "--timeout",
      "9",
      "lock",
      "acquire",
      "n",
      "--wait-timeout",
      "5",
      "--",
      "x",
      "--timeout",
    ]],
    [["kv", "get", "a", "--token", "t", "--timeout", "5"], [
      "kv",
      "get",
      "a",
      "--token",
      "t",
      "--timeout",
      "5",
    ]],
  ];
  for (const [input, expected] of table) {
    assert.deepEqual(renameShadowedOptions(input), expected);
  }
});

Deno.test("grantsFor(): only lock acquire and elect campaign with -- CMD get --allow-run", () => {
  const run = (args: string[]) =>
    grantsFor({ args, env: () => undefined, srcDir: "/src" }).run;
  assert.equal(run(["lock", "acquire", "a", "--", "make"]), true);
  assert.equal(run(["elect", "campaign", "a", "v", "--", "make"]), true);
  assert.equal(run(["lock", "acquire", "a"]), false);
  assert.equal(run(["elect", "campaign", "a", "v"]), false);
  assert.equal(run(["kv", "get", "--", "a"]), false);
});
