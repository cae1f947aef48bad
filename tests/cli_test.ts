import assert from "node:assert/strict";
import { connect, type KvU64 } from "../mod.ts";
import { aspen, CLI } from "./helpers/cli_run.ts";
import {
  startTestCluster,
  TEST_TOKEN,
  type TestCluster,
} from "./helpers/http_cluster.ts";

async function withCluster(
  fn: (cluster: TestCluster, env: Record<string, string>) => Promise<void>,
) {
  const cluster = await startTestCluster({ serve: true });
  try {
    await fn(cluster, {
      ASPEN_URL: cluster.follower().url!,
      ASPEN_TOKEN: TEST_TOKEN,
    });
  } finally {
    await cluster.stop();
  }
}

Deno.test("aspen kv set/get/delete/list/atomic against a 3-node cluster", async (t) => {
  await withCluster(async (cluster, env) => {
    const client = connect(cluster.leader()!.url!, { token: TEST_TOKEN });
    await t.step("set and get, human and --json", async () => {
      const set = await aspen(["kv", "set", '["users", 1]', "alice"], env);
      assert.equal(set.code, 0, set.stderr);
      assert.match(set.stdout, /^versionstamp [0-9a-f]{20}\n$/);
      const get = await aspen(["kv", "get", '["users", 1]'], env);
      assert.equal(get.code, 0, get.stderr);
      assert.match(
        get.stdout,
        /^KEY\s+VERSIONSTAMP\s+VALUE\n\["users",1\]\s+[0-9a-f]{20}\s+alice\n$/,
      );
      const json = await aspen(["--json", "kv", "get", '["users", 1]'], env);
      const parsed = JSON.parse(json.stdout);
      assert.deepEqual(parsed.key, ["users", 1]);
      assert.deepEqual(parsed.value, { encoding: "v8", value: "alice" });
      assert.equal((await client.kv.get(["users", 1])).value, "alice");
      await aspen(["kv", "set", "--bytes", "raw", "hi"], env);
      assert.deepEqual(
        (await client.kv.get(["raw"])).value,
        new TextEncoder().encode("hi"),
      );
      await aspen(["kv", "set", "--json-value", "doc", '{"n": [1, 2]}'], env);
      assert.deepEqual((await client.kv.get(["doc"])).value, { n: [1, 2] });
      const doc = await aspen(["kv", "get", "doc"], env);
      assert.match(doc.stdout, /\{"n":\[1,2\]\}/);
      await client.kv.delete(["raw"]);
      await client.kv.delete(["doc"]);
    });
    await t.step("u64, list and delete", async () => {
      assert.equal(
        (await aspen(["kv", "set", "--u64", "counter", "41"], env)).code,
        0,
      );
      assert.equal((await client.kv.get<KvU64>(["counter"])).value?.value, 41n);
      const list = await aspen(["--json", "kv", "list"], env);
      const keys = JSON.parse(list.stdout).entries.map((e: { key: unknown }) =>
        e.key
      );
      assert.deepEqual(keys, [["counter"], ["users", 1]]);
      const paged = await aspen(["kv", "list", "--limit", "1"], env);
      assert.match(paged.stderr, /continue with --cursor \S+/);
      const deleted = await aspen(["kv", "delete", '["users", 1]'], env);
      assert.equal(deleted.code, 0);
      assert.equal((await client.kv.get(["users", 1])).value, null);
    });
    await t.step(
      "atomic keeps the order of its steps and exits 1 on a failed check",
      async () => {
        const ok = await aspen([
          "kv",
          "atomic",
          "--check",
          "fresh=null",
          "--set",
          '["fresh"]=a=b',
          "--sum",
          "counter=1",
          "--max",
          "high=9",
        ], env);
        assert.equal(ok.code, 0, ok.stderr);
        const [fresh, counter, high] = await client.kv.getMany<
          [Uint8Array, KvU64, KvU64]
        >([
          ["fresh"],
          ["counter"],
          ["high"],
        ]);
        assert.equal(fresh.value, "a=b");
        assert.equal(counter.value?.value, 42n);
        assert.equal(high.value?.value, 9n);
        const failed = await aspen([
          "kv",
          "atomic",
          "--check",
          "fresh=null",
          "--delete",
          "counter",
        ], env);
        assert.equal(failed.code, 1);
        assert.equal(failed.stderr, "aspen: check failed: nothing changed\n");
        assert.equal(
          (await client.kv.get<KvU64>(["counter"])).value?.value,
          42n,
        );
      },
    );
    client.close();
  });
});

Deno.test("aspen refuses bad input with exit 2 and one readable line, changing nothing", async () => {
  await withCluster(async (cluster, env) => {
    const cases: [string[], RegExp][] = [
      [["kv", "get", "[1,"], /^aspen: Invalid key '\[1,': not valid JSON/],
      [
        ["kv", "set", '[{"type":"date","value":1}]', "x"],
        /^aspen: Invalid key part 'key\[0\]': unknown type 'date'/,
      ],
      [["kv", "set", "--u64", "n", "-5"], /^aspen: Invalid u64 '-5'/],
      [
        ["kv", "set", "big", "x".repeat(70_000)],
        /^aspen: Value too large \(max 65536 bytes\)\n$/,
      ],
      [
        ["kv", "set", "[]", "x"],
        /^aspen: Invalid 'key': key cannot be empty\n$/,
      ],
      [
        ["kv", "atomic", "--check", "k=zz", "--delete", "k"],
        /versionstamp must be 20 hex characters/,
      ],
      [["kv", "atomic"], /^aspen: Nothing to commit/],
      [["kv", "frobnicate"], /unknown command 'frobnicate'/],
      [["kv", "get"], /missing required argument 'key'/],
      [["completions", "powershell"], /^aspen: Unknown shell 'powershell'/],
    ];
    for (const [args, message] of cases) {
      const result = await aspen(args, env);
      const label = args.join(" ").slice(0, 60);
      assert.equal(result.code, 2, `${label}: ${result.stderr.slice(0, 300)}`);
      assert.match(
        result.stderr,
        message,
        `${label}: ${result.stderr.slice(0, 300)}`,
      );
      assert.equal(result.stdout, "");
    }
    const client = connect(cluster.leader()!.url!, { token: TEST_TOKEN });
    assert.deepEqual(await Array.fromAsync(client.kv.list({ prefix: [] })), []);
    client.close();
  });
});

Deno.test("aspen exits 4 on a wrong token and 3 when no node answers", async () => {
  await withCluster(async (_cluster, env) => {
    const auth = await aspen(["kv", "get", "a"], {
      ...env,
      ASPEN_TOKEN: "wrong",
    });
    assert.equal(auth.code, 4);
    assert.equal(auth.stderr, "aspen: Invalid bearer token\n");
    const missing = await aspen(["kv", "get", "a", "--url", env.ASPEN_URL!]);
    assert.equal(missing.code, 4);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const dead = `http://127.0.0.1:${listener.addr.port}`;
    listener.close();
    const down = await aspen(["kv", "get", "a", "--url", dead, "--token", "t"]);
    assert.equal(down.code, 3);
    assert.match(
      down.stderr,
      /^aspen: Cannot reach http:\/\/127\.0\.0\.1:\d+: /,
    );
    const noUrl = await aspen(["kv", "get", "a"]);
    assert.equal(noUrl.code, 2);
  });
});

Deno.test("aspen cluster status/members/ticket/transfer-leader and admin refusals", async () => {
  await withCluster(async (cluster, env) => {
    const leader = cluster.leader()!;
    const status = await aspen(["cluster", "status"], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`leader\\s+${leader.id}`));
    assert.match(
      status.stdout,
      /ID\s+NAME\s+ROLE\s+LEADER\s+MATCH\s+LAG\s+HEALTH\s+URL/,
    );
    const members = await aspen(["--json", "cluster", "members"], env);
    assert.deepEqual(
      JSON.parse(members.stdout).members.map((m: { id: string }) => m.id),
      ["n1", "n2", "n3"],
    );
    const ticket = await aspen(["cluster", "ticket"], env);
    assert.match(ticket.stdout, /^aspen[a-z2-7]+\n$/);
    const viaTicket = await aspen([
      "--ticket",
      ticket.stdout.trim(),
      "--token",
      TEST_TOKEN,
      "cluster",
      "members",
    ]);
    assert.equal(viaTicket.code, 0, viaTicket.stderr);
    const target = cluster.nodes.find((n) => n !== leader)!;
    const moved = await aspen(["cluster", "transfer-leader", target.id], env);
    assert.equal(moved.code, 0, moved.stderr);
    assert.equal(moved.stdout, `leadership moved to ${target.id}\n`);
    assert.equal(cluster.leader()?.id, target.id);
    const unknown = await aspen(["cluster", "remove", "n9"], env);
    assert.equal(unknown.code, 1);
    assert.equal(
      unknown.stderr,
      "aspen: Unknown node 'n9': no member's id starts with it (members: n1, n2, n3)\n",
    );
  });
});

Deno.test("aspen completions prints bash, zsh and fish scripts", async () => {
  const bash = await aspen(["completions", "bash"]);
  assert.equal(bash.code, 0);
  assert.match(bash.stdout, /complete -F _aspen aspen/);
  assert.match(bash.stdout, /"kv"\) words="get set delete list atomic/);
  const zsh = await aspen(["completions", "zsh"]);
  assert.match(zsh.stdout, /bashcompinit/);
  const fish = await aspen(["completions", "fish"]);
  assert.match(
    fish.stdout,
    /complete -c aspen -f -n "__fish_seen_subcommand_from cluster" -a transfer-leader/,
  );
});

Deno.test("aspen kv watch prints each change as it happens", async () => {
  await withCluster(async (cluster, env) => {
    const client = connect(cluster.leader()!.url!, { token: TEST_TOKEN });
    await client.kv.set(["a"], "one");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
        "--allow-read",
        CLI,
        "kv",
        "watch",
        "a",
        '["b", 2]',
        "--count",
        "3",
      ],
      env: { NO_COLOR: "1", ...env },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let buffered = "";
    const nextLine = async (): Promise<string> => {
      while (!buffered.includes("\n")) {
        const { done, value } = await lines.read();
        if (done) throw new Error(`stdout ended: '${buffered}'`);
        buffered += value;
      }
      const i = buffered.indexOf("\n");
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      return line;
    };
    try {
      // The first update shows every key, the absent one too.
      assert.match(await nextLine(), /^\["a"\]\t[0-9a-f]{20}\tone$/);
      assert.match(await nextLine(), /^\["b",2\]\t-\t\(absent\)$/);
      // Then one line per change, printed while the command still runs.
      const set = await client.kv.set(["b", 2], "two");
      assert.equal(await nextLine(), `["b",2]\t${set.versionstamp}\ttwo`);
      await client.kv.delete(["a"]);
      assert.equal(await nextLine(), '["a"]\t-\t(absent)');
      const status = await child.status;
      assert.equal(status.code, 0, "exits after --count updates");
    } finally {
      lines.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel();
      client.close();
    }
  });
});

Deno.test("admin commands need the admin token: the data token exits 4, --admin-token or ASPEN_ADMIN_TOKEN works", async () => {
  const admin = "admin-token-0123456789";
  const cluster = await startTestCluster({ serve: true, adminTokens: [admin] });
  try {
    const env = { ASPEN_URL: cluster.follower().url!, ASPEN_TOKEN: TEST_TOKEN };
    const target = cluster.nodes.find((n) => n !== cluster.leader())!;
    const refused = await aspen(["cluster", "transfer-leader", target.id], env);
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(refused.stderr, /admin token/);
    // Data commands still take the data token.
    const members = await aspen(["cluster", "members"], env);
    assert.equal(members.code, 0, members.stderr);
    const viaFlag = await aspen([
      "--admin-token",
      admin,
      "cluster",
      "transfer-leader",
      target.id,
    ], env);
    assert.equal(viaFlag.code, 0, viaFlag.stderr);
    assert.equal(cluster.leader()?.id, target.id);
    const back = cluster.nodes.find((n) => n !== cluster.leader())!;
    const viaEnv = await aspen(["cluster", "transfer-leader", back.id], {
      ...env,
      ASPEN_ADMIN_TOKEN: admin,
    });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(cluster.leader()?.id, back.id);
  } finally {
    await cluster.stop();
  }
});
