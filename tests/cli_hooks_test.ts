/**
 * `aspen hook …` and `aspen worker start` (issue 17): bad input exits 2
 * with one line before anything is sent; the cluster's refusals exit 1
 * (a name taken, no such hook) or 2 (`invalid`); `--json` has the
 * documented shapes; `hook get` shows state, cursor, lag and `no worker`;
 * `worker start` is granted the network and its variables only.
 *
 * @module
 */
import assert from "node:assert/strict";
import { grantFlags, grantsFor } from "../cli/permissions.ts";
import { aspen, type CliResult, deadUrl } from "./helpers/cli_run.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";

const SRC = new URL("../src", import.meta.url).pathname;

function assertOneLine(label: string, result: CliResult, code: number) {
  const detail = `${label}: exit ${result.code}, stderr '${
    result.stderr.slice(0, 400)
  }'`;
  assert.equal(result.code, code, detail);
  assert.match(result.stderr, /^aspen: [^\n]+\n$/, detail);
}

Deno.test("grantsFor() gives worker start the network and its variables, no files, no run", () => {
  const grants = grantsFor({
    args: [
      "worker",
      "start",
      "--allow-targets",
      "10.0.0.0/8",
      "--data-dir",
      "/x",
    ],
    env: () => undefined,
    srcDir: SRC,
  });
  assert.deepEqual(grants.read, []);
  assert.deepEqual(grants.write, []);
  assert.equal(grants.run, false);
  assert.equal(grants.net, true);
  assert.deepEqual([...grants.env].sort(), [
    "ASPEN_ADMIN_TOKEN",
    "ASPEN_HOOK_ALLOW_TARGETS",
    "ASPEN_TOKEN",
    "ASPEN_URL",
  ]);
  const flags = grantFlags(grants);
  assert.ok(flags.includes("--allow-net"));
  assert.ok(!flags.some((f) => /^--allow-(read|write|run)/.test(f)));
});

Deno.test("hook and worker commands: bad input exits 2 with one line, nothing sent", async () => {
  const dead = deadUrl();
  const base = ["--url", dead, "--token", "t"];
  const create = [...base, "hook", "create", "--name", "h"];
  const cases: [string, string[], RegExp][] = [
    ["no target", create, /exactly one of --webhook/],
    [
      "two targets",
      [...create, "--webhook", "https://e.com/h", "--queue", "q"],
      /exactly one of --webhook/,
    ],
    ["ftp URL", [...create, "--webhook", "ftp://e.com/h"], /http or https/],
    [
      "userinfo in URL",
      [...create, "--webhook", "https://u:p@e.com/h"],
      /user name or password/,
    ],
    [
      "bad name",
      [...base, "hook", "create", "--name", "Bad Name", "--queue", "q"],
      /Invalid hook name/,
    ],
    [
      "secret without webhook",
      [...create, "--queue", "q", "--secret", "whsec_abc"],
      /go with --webhook/,
    ],
    [
      "bad secret",
      [...create, "--webhook", "https://e.com/h", "--secret", "nope"],
      /whsec_/,
    ],
    [
      "header without =",
      [...create, "--webhook", "https://e.com/h", "--header", "x-team"],
      /NAME=VALUE/,
    ],
    [
      "reserved header",
      [...create, "--webhook", "https://e.com/h", "--header", "webhook-id=1"],
      /owns it/,
    ],
    [
      "prefix and start",
      [
        ...create,
        "--queue",
        "q",
        "--prefix",
        "a",
        "--start",
        "a",
        "--end",
        "b",
      ],
      /--prefix or --start/,
    ],
    [
      "start without end",
      [...create, "--queue", "q", "--start", "a"],
      /go together/,
    ],
    [
      "attempt timeout out of range",
      [...create, "--webhook", "https://e.com/h", "--timeout", "10"],
      /timeoutMs/,
    ],
    [
      "retry schedule not numbers",
      [...create, "--webhook", "https://e.com/h", "--retry-schedule", "5,x"],
      /retry step/,
    ],
    [
      "bad type pattern",
      [...create, "--queue", "q", "--types", "KV SET"],
      /type pattern/,
    ],
    [
      "deliveries bad outcome",
      [...base, "hook", "deliveries", "h", "--outcome", "meh"],
      /Invalid outcome/,
    ],
    [
      "deliveries limit 0",
      [...base, "hook", "deliveries", "h", "--limit", "0"],
      /Invalid limit/,
    ],
    [
      "replay backwards",
      [
        ...base,
        "hook",
        "replay",
        "h",
        "--from-revision",
        "9",
        "--to-revision",
        "3",
      ],
      /below --from-revision/,
    ],
    [
      "trigger data not an object",
      [...base, "hook", "trigger", "h", "--data", "[1]"],
      /JSON object/,
    ],
    [
      "trigger data not JSON",
      [...base, "hook", "trigger", "h", "--data", "{"],
      /not valid JSON/,
    ],
    [
      "worker allow-targets not a CIDR",
      [...base, "worker", "start", "--allow-targets", "10.0.0.1"],
      /not a CIDR/,
    ],
    [
      "worker name with a space",
      [...base, "worker", "start", "--name", "a b"],
      /Invalid worker name/,
    ],
  ];
  for (const [label, args, message] of cases) {
    const result = await aspen(args);
    assertOneLine(label, result, 2);
    assert.match(result.stderr, message, `${label}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /[Cc]annot reach/, label);
  }
});

Deno.test("hook commands against a node: --json shapes, get shows no worker, refusals exit 1 or 2", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const base = ["--url", cluster.urls[0]!, "--token", token];
    const run = (...args: string[]) => aspen([...base, ...args]);

    const created = await run(
      "--json",
      "hook",
      "create",
      "--name",
      "orders",
      "--prefix",
      '["orders"]',
      "--types",
      "kv.set,kv.delete",
      "--webhook",
      "https://example.com/hooks/orders",
      "--header",
      "x-team=shop",
      "--timeout",
      "5000",
      "--retry-schedule",
      "1000,60000",
    );
    assert.equal(created.code, 0, created.stderr);
    const body = JSON.parse(created.stdout);
    assert.deepEqual(Object.keys(body).sort(), [
      "cursor",
      "id",
      "name",
      "secret",
    ]);
    assert.equal(body.name, "orders");
    assert.match(body.secret, /^whsec_/);
    assert.match(body.id, /^[0-9a-f]{16}$/);

    const taken = await run(
      "hook",
      "create",
      "--name",
      "orders",
      "--queue",
      "q",
    );
    assertOneLine("name taken", taken, 1);

    const get = await run("hook", "get", "orders");
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^state\s+active$/m);
    assert.match(get.stdout, /^worker\s+no worker$/m);
    assert.match(get.stdout, /^cursor\s+from revision \d+$/m);
    assert.match(get.stdout, /^lag\s+\d+ revisions$/m);
    assert.match(get.stdout, /^selector\s+prefix \["orders"\]$/m);
    assert.ok(!get.stdout.includes(body.secret), "get shows no secret");
    assert.ok(!get.stdout.includes("shop"), "get shows no header value");

    const json = JSON.parse(
      (await run("--json", "hook", "get", body.id)).stdout,
    );
    assert.equal(json.timeoutMs, 5000);
    assert.deepEqual(json.retrySchedule, [1000, 60000]);
    assert.equal(json.worker, null);

    const disabled = await run("hook", "disable", "orders");
    assert.equal(disabled.code, 0, disabled.stderr);
    assert.match(disabled.stdout, /^state\s+disabled \(disabled\)$/m);
    const enabled = await run("hook", "enable", "orders");
    assert.match(enabled.stdout, /^state\s+active$/m);

    const listed = await run("hook", "list");
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^ID\s+NAME\s+STATE/);
    assert.match(listed.stdout, /orders\s+active/);

    const deliveries = await run("--json", "hook", "deliveries", "orders");
    assert.equal(deliveries.code, 0, deliveries.stderr);
    assert.deepEqual(JSON.parse(deliveries.stdout), {
      deliveries: [],
      cursor: null,
    });

    const rotated = await run("--json", "hook", "rotate-secret", "orders");
    assert.equal(rotated.code, 0, rotated.stderr);
    const secret = JSON.parse(rotated.stdout).secret;
    assert.match(secret, /^whsec_/);
    assert.notEqual(secret, body.secret);

    assertOneLine("unknown hook", await run("hook", "get", "nope"), 1);
    assertOneLine(
      "trigger unknown hook",
      await run("hook", "trigger", "nope"),
      1,
    );
    const queue = await run(
      "hook",
      "create",
      "--name",
      "q1",
      "--queue",
      "jobs",
    );
    assert.equal(queue.code, 0, queue.stderr);
    assertOneLine(
      "rotate a queue hook's secret",
      await run("hook", "rotate-secret", "q1"),
      2,
    );
    assertOneLine(
      "job target unsupported",
      await run("hook", "create", "--name", "j1", "--job", "email"),
      2,
    );
    const triggered = await run(
      "hook",
      "trigger",
      "orders",
      "--data",
      '{"a":1}',
    );
    assert.equal(triggered.code, 0, triggered.stderr);
    const replay = await run(
      "hook",
      "replay",
      "orders",
      "--from-revision",
      "1",
      "--to-revision",
      "2",
    );
    assert.equal(replay.code, 0, replay.stderr);

    assert.equal((await run("hook", "delete", "orders")).code, 0);
    assertOneLine("deleted hook", await run("hook", "get", "orders"), 1);
  });
});
