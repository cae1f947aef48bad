/**
 * `aspen topic …`, `aspen group …` and `aspen consume` (issue 18): bad
 * input exits 2 with one line before anything is sent; the cluster's
 * pub/sub refusals exit 2 and `staleGeneration` 1; `--lines` publishes in
 * order with sequences N + i; `consume --json` prints one object a line and
 * acks each message. Against a fake pub/sub server and against a real node
 * process.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, StaleGenerationError, TopicExistsError } from "../mod.ts";
import { describeFailure, EXIT } from "../cli/commands/_context.ts";
import { grantsFor } from "../cli/permissions.ts";
import { pubsubRefusals } from "../cli/commands/topic.ts";
import { aspen, CLI, type CliResult, deadUrl } from "./helpers/cli_run.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { startFakePubsubServer } from "./helpers/fake_pubsub_server.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";

const TOKEN = "test-token";

function assertOneLine(label: string, result: CliResult, code: number) {
  const detail = `${label}: exit ${result.code}, stderr '${
    result.stderr.slice(0, 400)
  }'`;
  assert.equal(result.code, code, detail);
  assert.match(result.stderr, /^aspen: [^\n]+\n$/, detail);
}

function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.trim().split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
}

Deno.test("topic, group and consume: bad input exits 2 with one line, nothing sent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-cli-pubsub-" });
  try {
    const badLines = `${dir}/bad.jsonl`;
    await Deno.writeTextFile(badLines, '{"value": 1}\nnot json\n');
    const noValue = `${dir}/novalue.jsonl`;
    await Deno.writeTextFile(noValue, '{"key": "k"}\n');
    const base = ["--url", deadUrl(), "--token", "t"];
    const cases: [string, string[], RegExp][] = [
      ["bad topic name", ["topic", "create", "a b"], /Invalid topic name/],
      [
        "partitions x",
        ["topic", "create", "t", "--partitions", "x"],
        /Invalid --partitions 'x'/,
      ],
      [
        "no value",
        ["topic", "publish", "t"],
        /give a VALUE or --lines/,
      ],
      [
        "value and lines",
        ["topic", "publish", "t", "v", "--lines", badLines],
        /give a VALUE or --lines/,
      ],
      [
        "producer without sequence",
        ["topic", "publish", "t", "v", "--producer", "p"],
        /--producer and --sequence go together/,
      ],
      [
        "bad header",
        ["topic", "publish", "t", "v", "--header", "novalue"],
        /Invalid --header 'novalue'/,
      ],
      [
        "reserved header",
        ["topic", "publish", "t", "v", "--header", "aspen-x=1"],
        /reserved/,
      ],
      [
        "a line that is not JSON",
        ["topic", "publish", "t", "--lines", badLines],
        /Invalid line 2: not valid JSON/,
      ],
      [
        "a line without value",
        ["topic", "publish", "t", "--lines", noValue],
        /Invalid line 1: expected/,
      ],
      [
        "missing lines file",
        ["topic", "publish", "t", "--lines", `${dir}/absent`],
        /No such file|not found/i,
      ],
      [
        "describe without topic",
        ["group", "describe", "g"],
        /required option '--topic <topic>'/,
      ],
      [
        "reset to nowhere",
        ["group", "reset", "g", "--topic", "t", "--to", "middle"],
        /Invalid --to 'middle'/,
      ],
      [
        "reset to a bad time",
        ["group", "reset", "g", "--topic", "t", "--to", "time:yesterday"],
        /Invalid --to time 'yesterday'/,
      ],
      [
        "consume without group",
        ["consume", "t"],
        /required option '--group <group>'/,
      ],
      [
        "consume --start",
        ["consume", "t", "--group", "g", "--start", "sometime"],
        /Invalid --start 'sometime'/,
      ],
      [
        "consume --batch 2000",
        ["consume", "t", "--group", "g", "--batch", "2000"],
        /Invalid --batch '2000'/,
      ],
      [
        "consume --ttl 10",
        ["consume", "t", "--group", "g", "--ttl", "10"],
        /Invalid --ttl '10'/,
      ],
      [
        "consume --member",
        ["consume", "t", "--group", "g", "--member", "a/b"],
        /Invalid --member 'a\/b'/,
      ],
    ];
    for (const [label, args, pattern] of cases) {
      const result = await aspen([...base, ...args]);
      assertOneLine(label, result, EXIT.usage);
      assert.match(result.stderr, pattern, `${label}: ${result.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("grantsFor() lets topic publish read its --lines file, and nothing for stdin", () => {
  const grants = (args: string[]) =>
    grantsFor({ args, env: () => undefined, srcDir: "/src" });
  assert.deepEqual(
    grants(["topic", "publish", "t", "--lines", "in.jsonl"]).read,
    ["in.jsonl"],
  );
  assert.deepEqual(
    grants(["topic", "publish", "t", "--lines=/data/x.jsonl"]).read,
    ["/data/x.jsonl"],
  );
  assert.deepEqual(grants(["topic", "publish", "t", "--lines", "-"]).read, []);
  assert.deepEqual(grants(["consume", "t", "--group", "g"]).read, []);
  assert.deepEqual(grants(["topic", "publish", "t", "--lines", "f"]).write, []);
});

Deno.test("pubsubRefusals(): pub/sub refusals exit 2, staleGeneration 1", async () => {
  const refused = await pubsubRefusals(() =>
    Promise.reject(new TopicExistsError("topicExists", "Topic 't' exists"))
  ).catch((error) => error);
  assert.equal(describeFailure(refused).code, EXIT.usage);
  assert.equal(describeFailure(refused).message, "Topic 't' exists");
  const fenced = await pubsubRefusals(() =>
    Promise.reject(new StaleGenerationError("staleGeneration", "Fenced"))
  ).catch((error) => error);
  assert.equal(describeFailure(fenced).code, EXIT.failed);
});

Deno.test("topic, consume and group against a fake server: refusals exit 2, --lines with sequences, consume --json acks each", async () => {
  const server = startFakePubsubServer({ token: TOKEN });
  const dir = await Deno.makeTempDir({ prefix: "aspen-cli-pubsub-" });
  const base = ["--url", server.url, "--token", TOKEN];
  try {
    const created = await aspen([
      ...base,
      "topic",
      "create",
      "t",
      "--partitions",
      "2",
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.stdout, "topic t created: 2 partitions\n");
    assertOneLine(
      "other settings",
      await aspen([...base, "topic", "create", "t", "--partitions", "3"]),
      EXIT.usage,
    );
    assertOneLine(
      "absent topic",
      await aspen([...base, "topic", "publish", "absent", "v"]),
      EXIT.usage,
    );
    const one = await aspen([
      ...base,
      "topic",
      "publish",
      "t",
      "hello",
      "--partition",
      "1",
      "--header",
      "a=b",
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(one.stdout, "partition 1 offset 0\n");
    const lines = `${dir}/in.jsonl`;
    await Deno.writeTextFile(
      lines,
      [
        '{"value": {"n": 1}, "key": "k1"}',
        "",
        '{"value": "two", "headers": {"h": "v"}}',
        '{"value": [3]}',
      ].join("\n"),
    );
    const many = await aspen([
      ...base,
      "--json",
      "topic",
      "publish",
      "t",
      "--lines",
      lines,
      "--producer",
      "loader",
      "--sequence",
      "10",
    ]);
    assert.equal(many.code, 0, many.stderr);
    assert.equal(JSON.parse(many.stdout).records.length, 3);
    const publish = server.requests.filter((r) =>
      r.path === "/v1/topics/publish" && r.body.producerId === "loader"
    );
    assert.equal(publish.length, 1);
    const sent = publish[0]!.body.messages as Record<string, unknown>[];
    assert.deepEqual(sent.map((m) => m.sequence), [10, 11, 12]);
    assert.deepEqual(sent.map((m) => m.key), ["k1", undefined, undefined]);
    assert.deepEqual(sent[1]!.headers, { h: "v" });

    const consumed = await aspen([
      ...base,
      "--json",
      "consume",
      "t",
      "--group",
      "g",
      "--count",
      "4",
    ]);
    assert.equal(consumed.code, 0, consumed.stderr);
    const printed = jsonLines(consumed.stdout);
    assert.equal(printed.length, 4);
    const values = printed.map((m) => m.value).sort((a, b) =>
      JSON.stringify(a) < JSON.stringify(b) ? -1 : 1
    );
    assert.deepEqual(
      values,
      [
        { encoding: "v8", value: "hello" },
        { encoding: "v8", value: "two" },
        { encoding: "v8", value: [3] },
        { encoding: "v8", value: { n: 1 } },
      ].sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1),
    );
    for (const message of printed) {
      assert.deepEqual(Object.keys(message).sort(), [
        "delivery",
        "headers",
        "key",
        "offset",
        "partition",
        "topic",
        "value",
      ]);
      assert.equal(message.topic, "t");
      assert.equal(message.delivery, 1);
    }
    assert.equal(server.acked("t", "g").length, 4);
    // It left the group and revoked its lease.
    assert.deepEqual(server.leases(), []);

    const described = await aspen([
      ...base,
      "--json",
      "group",
      "describe",
      "g",
      "--topic",
      "t",
    ]);
    assert.equal(described.code, 0, described.stderr);
    const group = JSON.parse(described.stdout);
    assert.equal(group.members.length, 0);
    assert.equal(
      group.partitions.reduce((n: number, p: { lag: number }) => n + p.lag, 0),
      0,
    );
    const listed = await aspen([...base, "group", "list", "--topic", "t"]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^TOPIC\s+GROUP\s+GENERATION\s+MEMBERS/);
    assert.match(listed.stdout, /\nt\s+g\s+\d+\s+0\s+no\n$/);

    // A member present: a reset is refused (exit 2) unless --force.
    using client = connect(server.url, { token: TOKEN });
    const member = await client.pubsub.consumer("t", "g");
    const reset = ["group", "reset", "g", "--topic", "t", "--to", "earliest"];
    assertOneLine(
      "reset with a member",
      await aspen([...base, ...reset]),
      EXIT.usage,
    );
    const forced = await aspen([...base, "--json", ...reset, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(
      JSON.parse(forced.stdout).partitions.map((p: { cursor: number }) =>
        p.cursor
      ),
      [0, 0],
    );
    await member.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("aspen consume: prints and acks as messages come; SIGTERM and SIGINT end it with exit 0, leaving the group and revoking its lease", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const server = startFakePubsubServer({ token: TOKEN });
    try {
      using client = connect(server.url, { token: TOKEN });
      await client.pubsub.createTopic("t");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net=127.0.0.1",
          "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
          "--allow-read",
          CLI,
          "--url",
          server.url,
          "--token",
          TOKEN,
          "consume",
          "t",
          "--group",
          "g",
        ],
        env: { NO_COLOR: "1" },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const printed: string[] = [];
      const reading = lines(child.stdout, (line) => printed.push(line));
      const stderr = new Response(child.stderr).text();
      try {
        await waitFor(
          "the member",
          () => server.requests.some((r) => r.path === "/v1/groups/join"),
          30_000,
        );
        await client.pubsub.publish("t", "hello", { key: "k" });
        await waitFor(
          () => `a line, printed ${printed}`,
          () => printed.length === 1,
          30_000,
        );
        await waitFor("its ack", () => server.acked("t", "g").length === 1);
      } finally {
        child.kill(signal);
      }
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, `${signal}: ${await stderr}`);
      assert.equal(await stderr, "");
      assert.deepEqual(printed, ["0:0\tdelivery 1\tk\thello"]);
      assert.ok(server.requests.some((r) => r.path === "/v1/groups/leave"));
      assert.deepEqual(server.leases(), []);
    } finally {
      await server.close();
    }
  }
});

Deno.test("aspen topic, consume and group against a real node", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const base = ["--url", cluster.urls[0]!, "--token", token];
    const run = async (args: string[]) => {
      const result = await aspen([...base, ...args]);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
      return result.stdout;
    };
    assert.equal(
      await run(["topic", "create", "jobs", "--partitions", "3"]),
      "topic jobs created: 3 partitions\n",
    );
    assert.match(
      await run(["topic", "create", "jobs", "--partitions", "3"]),
      /exists with these settings/,
    );
    assertOneLine(
      "other settings",
      await aspen([...base, "topic", "create", "jobs", "--partitions", "2"]),
      EXIT.usage,
    );
    assert.match(
      await run(["topic", "list"]),
      /\njobs\s+3\s+120000\s+unbounded\n/,
    );
    for (let i = 0; i < 5; i++) {
      assert.match(
        await run([
          "topic",
          "publish",
          "jobs",
          `job-${i}`,
          "--key",
          "same",
          "--producer",
          "cli",
          "--sequence",
          String(i),
        ]),
        /^partition \d offset \d+\n$/,
      );
    }
    // A retried sequence is a duplicate: nothing appended.
    assert.match(
      await run([
        "topic",
        "publish",
        "jobs",
        "job-4",
        "--producer",
        "cli",
        "--sequence",
        "4",
      ]),
      /\(duplicate\)/,
    );
    assert.match(
      await run(["topic", "publish", "jobs", "later", "--delay", "600000"]),
      /^scheduled \S+ for \d{4}-\d\d-\d\dT[0-9:.]+Z\n$/,
    );
    const shown = await run(["topic", "describe", "jobs"]);
    assert.match(shown, /^topic jobs\nretention: unbounded\n/);
    assert.match(shown, /\nscheduled: 1\n/);
    assert.match(shown, /\nPARTITION\s+FIRST\s+NEXT\s+BYTES\n/);
    const topic = JSON.parse(
      await run(["--json", "topic", "describe", "jobs"]),
    );
    assert.equal(
      topic.partitions.reduce(
        (n: number, p: { nextOffset: number }) => n + p.nextOffset,
        0,
      ),
      5,
    );
    const consumed = jsonLines(
      await run([
        "--json",
        "consume",
        "jobs",
        "--group",
        "workers",
        "--count",
        "5",
      ]),
    );
    // One key, one partition, in publish order.
    assert.deepEqual(
      consumed.map((m) => (m.value as { value: string }).value),
      ["job-0", "job-1", "job-2", "job-3", "job-4"],
    );
    assert.equal(new Set(consumed.map((m) => m.partition)).size, 1);
    const group = JSON.parse(
      await run(["--json", "group", "describe", "workers", "--topic", "jobs"]),
    );
    assert.equal(group.members.length, 0);
    assert.equal(
      group.partitions.reduce((n: number, p: { lag: number }) => n + p.lag, 0),
      0,
    );
    const table = await run([
      "group",
      "describe",
      "workers",
      "--topic",
      "jobs",
    ]);
    assert.match(table, /^group workers of topic jobs\ngeneration: \d+\n/);
    assert.match(
      table,
      /\nPARTITION\s+OWNER\s+CURSOR\s+NEXT\s+LAG\s+PENDING\s+REDELIVERED\s+SKIPPED\n/,
    );
    assert.match(
      await run([
        "group",
        "reset",
        "workers",
        "--topic",
        "jobs",
        "--to",
        "earliest",
      ]),
      /reset: generation \d+/,
    );
    const again = jsonLines(
      await run([
        "--json",
        "consume",
        "jobs",
        "--group",
        "workers",
        "--count",
        "5",
        "--nack",
      ]),
    );
    assert.equal(again.length, 5);
    const late = jsonLines(
      await run([
        "--json",
        "consume",
        "jobs",
        "--group",
        "late",
        "--start",
        "offset:3",
        "--count",
        "2",
      ]),
    );
    assert.deepEqual(
      late.map((m) => [m.offset, (m.value as { value: string }).value]),
      [[3, "job-3"], [4, "job-4"]],
    );
    assertOneLine(
      "delete with groups",
      await aspen([...base, "topic", "delete", "jobs"]),
      EXIT.usage,
    );
    assert.match(
      await run(["topic", "delete", "jobs", "--force"]),
      /topic jobs deleted/,
    );
    assertOneLine(
      "describe deleted",
      await aspen([...base, "topic", "describe", "jobs"]),
      EXIT.usage,
    );
  });
});
