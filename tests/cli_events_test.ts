/**
 * The real `aspen events` CLI (a subprocess) against the fake events server
 * (`tests/helpers/fake_events_server.ts`): watch lines (human and `--json`)
 * across a dropped stream, SIGTERM and SIGINT ending a watch with exit 0,
 * list and status, `compacted at N` with exit 1, and bad input with exit 2
 * before anything is sent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { aspen, CLI, type CliResult } from "./helpers/cli_run.ts";
import {
  type FakeEventsServer,
  startFakeEventsServer,
} from "./helpers/fake_events_server.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "events-token";

async function withServer(
  fn: (
    server: FakeEventsServer,
    run: (args: string[]) => Promise<CliResult>,
    env: Record<string, string>,
  ) => Promise<void>,
  listeners = 1,
): Promise<void> {
  const server = startFakeEventsServer({ token: TOKEN, listeners });
  const env = { ASPEN_URL: server.urls.join(","), ASPEN_TOKEN: TOKEN };
  try {
    await fn(server, (args) => aspen(args, env), env);
  } finally {
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

/** `aspen args…` as a child process whose output is read as it comes. */
function spawn(args: string[], env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
      "--allow-read",
      CLI,
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return child;
}

Deno.test("aspen events watch --json: one line per event, across a dropped stream, until --count", async () => {
  await withServer(async (server, run) => {
    server.set(["orders", 1], "a");
    server.set(["other"], "skipped");
    const from = server.history()[0]!.revision;
    const watching = run([
      "events",
      "watch",
      "--prefix",
      '["orders"]',
      "--from-revision",
      String(from),
      "--count",
      "3",
      "--json",
    ]);
    await waitFor("the watch", () => server.streams() === 1, 30_000);
    server.drop();
    server.set(["orders", 2], { n: 2 });
    server.delete(["orders", 1]);
    const result = ok(await watching);
    const lines = result.stdout.trim().split("\n").map((line) =>
      JSON.parse(line)
    );
    assert.deepEqual(lines.map((l) => [l.type, l.key, l.value]), [
      ["kv.set", ["orders", 1], { encoding: "v8", value: "a" }],
      ["kv.set", ["orders", 2], { encoding: "v8", value: { n: 2 } }],
      ["kv.delete", ["orders", 1], null],
    ]);
    assert.deepEqual(
      lines.map((l) => l.id),
      lines.map((l) => `${l.revision}.${l.index}`),
    );
    assert.equal(server.watches[1]!.lastEventId, lines[0].id);
  });
});

Deno.test("aspen events watch: human lines 'R.I TYPE KEY VALUE'; SIGTERM and SIGINT end it with exit 0", async () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    await withServer(async (server, _run, env) => {
      const child = spawn(["events", "watch", "--types", "*"], env);
      const printed: string[] = [];
      const reading = lines(child.stdout, (line) => printed.push(line));
      const stderr = new Response(child.stderr).text();
      try {
        await waitFor("the watch", () => server.streams() === 1, 30_000);
        server.set(["greeting"], "hello");
        server.fact("leader.changed", { term: 3, leader: "n2" });
        await waitFor(
          () => `2 lines, printed ${printed}`,
          () => printed.length === 2,
        );
      } finally {
        child.kill(signal);
      }
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, `${signal}: ${await stderr}`);
      assert.equal(await stderr, "");
      const [set, leader] = server.history();
      assert.deepEqual(printed, [
        `${set!.id}\tkv.set\t["greeting"]\thello`,
        `${leader!.id}\tleader.changed\t{"term":3,"leader":"n2"}`,
      ]);
    });
  }
});

Deno.test("aspen events list and status: lines, --json page, the table", async () => {
  await withServer(async (server, run) => {
    server.set(["r", "a"], "A");
    server.set(["r", "b"], "B");
    server.set(["r", "c"], "C");
    const [a, b, c] = server.history();
    const listed = ok(
      await run([
        "events",
        "list",
        "--start",
        '["r","a"]',
        "--end",
        '["r","c"]',
        "--from-revision",
        String(a!.revision),
      ]),
    );
    assert.equal(
      listed.stdout,
      `${a!.id}\tkv.set\t["r","a"]\tA\n${b!.id}\tkv.set\t["r","b"]\tB\n`,
    );
    const page = JSON.parse(
      ok(await run(["events", "list", "r", "--limit", "2", "--json"])).stdout,
    );
    assert.deepEqual(page.events.map((e: { key: unknown }) => e.key), [
      ["r", "a"],
      ["r", "b"],
    ]);
    assert.equal(page.cursor, b!.id);
    const more = ok(await run(["events", "list", "r", "--limit", "2"]));
    assert.equal(more.stderr, `more events: continue with --after ${b!.id}\n`);
    const rest = ok(
      await run(["events", "list", "r", "--after", b!.id, "--limit", "2"]),
    );
    assert.equal(rest.stdout, `${c!.id}\tkv.set\t["r","c"]\tC\n`);
    assert.equal(rest.stderr, "");
    assert.deepEqual(server.lists[0]!.selector, {
      start: ["r", "a"],
      end: ["r", "c"],
    });
    assert.deepEqual(server.lists[1]!.selector, { prefix: ["r"] });
    assert.equal(server.lists[3]!.after, b!.id);
    server.compact(5);
    const table = ok(await run(["events", "status"])).stdout.split("\n");
    assert.match(
      table[0]!,
      /^COMPACT-REVISION +HEAD-REVISION +EVENTS +BYTES +BYTES-MAX +STREAMS$/,
    );
    assert.match(
      table[1]!,
      new RegExp(
        `^5 +${server.history()[2]!.revision} +3 +\\d+ +134217728 +0$`,
      ),
    );
    const status = JSON.parse(
      ok(await run(["events", "status", "--json"])).stdout,
    );
    assert.equal(status.compactRevision, 5);
    assert.equal(status.events, 3);
  });
});

Deno.test("aspen events watch|list: a start below the window exits 1 'compacted at N'", async () => {
  await withServer(async (server, run) => {
    server.set(["a"], 1);
    server.compact(50);
    for (const command of ["watch", "list"]) {
      refused(
        await run(["events", command, "--from-revision", "3"]),
        1,
        /^aspen: Events compacted at 50: revision 3 is no longer held\n$/,
      );
    }
  });
});

Deno.test("aspen events: bad input exits 2 with one line, before anything is sent", async () => {
  await withServer(async (server, run) => {
    const cases: [string[], RegExp][] = [
      [["watch", "a", "--prefix", "b"], /not both/],
      [["watch", "a", "--start", "b", "--end", "c"], /not both/],
      [["watch", "--start", "b"], /give both --start and --end/],
      [["watch", "--start", "b", "--end", "a"], /'start' must sort before/],
      [["watch", "[1,"], /Invalid key/],
      [["watch", "--types", "KV"], /Invalid type pattern 'KV'/],
      [["watch", "--types", "a,,b"], /Invalid --types/],
      [["watch", "--types", Array(17).fill("kv.set").join(",")], /1 to 16/],
      [["watch", "--from-revision", "-1"], /Invalid revision '-1'/],
      [["watch", "--progress-ms", "99"], /Invalid progress-ms '99'/],
      [["watch", "--progress-ms", "600001"], /600000/],
      [["watch", "--count", "0"], /Invalid count '0'/],
      [["list", "--limit", "1001"], /limit: must be 1 to 1000/],
      [["list", "--limit", "x"], /Invalid limit 'x'/],
      [["list", "--from-revision", "5", "--to-revision", "4"], /toRevision/],
      [["list", "--after", "12-x"], /Invalid after/],
    ];
    const results = await Promise.all(
      cases.map(([args]) => run(["events", ...args])),
    );
    for (const [i, [args, stderr]] of cases.entries()) {
      refused(results[i]!, 2, stderr);
      assert.equal(results[i]!.stdout, "", args.join(" "));
    }
    assert.equal(server.watches.length, 0);
    assert.equal(server.lists.length, 0);
  });
});
