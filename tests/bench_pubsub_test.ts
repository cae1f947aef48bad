/**
 * The pub/sub comparison's shape, never its timings: options are read and
 * refused; the table puts each Aspen row beside JetStream's with the ratio
 * and the aim; a tiny `--quick --json` run as a real subprocess measures
 * every row of aspen-1 and aspen-3 (and of JetStream when `nats-server` is
 * installed, else skips it saying why); a missing `nats-server` is a skip,
 * not a failure.
 */
import assert from "node:assert/strict";
import { parsePubsubOptions } from "../bench/pubsub_compare.ts";
import { findNatsServer } from "../bench/_pubsub_jetstream.ts";
import { PUBSUB_ROWS, type PubsubMeasurement } from "../bench/_pubsub_load.ts";
import {
  formatPubsubTable,
  PUBSUB_TABLE_COLUMNS,
  type PubsubCompareResult,
  type PubsubTargetResult,
  ratioToJetStream,
} from "../bench/_pubsub_report.ts";

const script = new URL("../bench/pubsub_compare.ts", import.meta.url).pathname;
const MESSAGES = 200;

function measurement(
  row: PubsubMeasurement["row"],
  rate: number,
): PubsubMeasurement {
  return {
    row,
    messages: 1000,
    calls: 10,
    elapsedMs: 1000,
    messagesPerSecond: rate,
    latencyMs: { p50: 1, p99: 2 },
    errors: 0,
    firstError: null,
  };
}

async function runBench(
  args: readonly string[],
  workDir: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-net=127.0.0.1",
      script,
      "--work-dir",
      workDir,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(240_000),
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("parsePubsubOptions() reads --quick and refuses bad values", async (t) => {
  await t.step("the defaults are issue 18's sizes", () => {
    const options = parsePubsubOptions([]);
    assert.equal(options.messages, 20_000);
    assert.equal(options.publishers, 16);
    assert.equal(options.batch, 100);
    assert.equal(options.valueBytes, 1024);
    assert.equal(options.partitions, 1);
    assert.equal(options.format, "msgpack");
    assert.deepEqual(options.targets, ["jetstream", "aspen-1", "aspen-3"]);
  });
  await t.step("quick means fewer messages; targets run in fixed order", () => {
    const options = parsePubsubOptions([
      "--quick",
      "--targets",
      "aspen-3,jetstream",
    ]);
    assert.equal(options.messages, 2_000);
    assert.deepEqual(options.targets, ["jetstream", "aspen-3"]);
  });
  for (
    const args of [
      ["--messages", "0"],
      ["--publishers", "x"],
      ["--batch", "1001"],
      ["--partitions", "257"],
      ["--targets", "kafka"],
      ["--aspen-body", "xml"],
      ["--batch", "1000", "--value-size", "2000"],
    ]
  ) {
    await t.step(`refuses ${args.join(" ")}`, () => {
      assert.throws(() => parsePubsubOptions(args), RangeError);
    });
  }
});

Deno.test("formatPubsubTable() puts each Aspen row beside JetStream's", () => {
  const targets: PubsubTargetResult[] = [
    ["jetstream", 1000],
    ["aspen-1", 300],
    ["aspen-3", 100],
  ].map(([target, rate]) => ({
    target: target as PubsubTargetResult["target"],
    status: "ran",
    reason: null,
    version: null,
    calls: null,
    rows: PUBSUB_ROWS.map((row) => measurement(row, rate as number)),
  }));
  assert.equal(ratioToJetStream(targets, "aspen-1", "publish"), 0.3);
  const lines = formatPubsubTable(targets).split("\n");
  assert.ok(PUBSUB_TABLE_COLUMNS.every((c) => lines[0]!.includes(c)));
  assert.equal(lines.length, 2 + 3 * 3);
  const line = (row: string, target: string) =>
    lines.find((l) => l.startsWith(`| ${row} | ${target} |`))!;
  // 0.30x meets the per-message aim (0.25x), misses the others (1x, 0.5x).
  assert.match(line("publish", "aspen-1"), /0\.30x \| >= 0\.25x: met/);
  assert.match(line("publish-batch", "aspen-1"), /0\.30x \| >= 1\.00x: missed/);
  assert.match(line("consume", "aspen-1"), /0\.30x \| >= 0\.50x: missed/);
  assert.match(line("consume", "aspen-3"), /0\.10x \| {2}\|$/);
  assert.match(line("publish", "jetstream"), /\| 1000 \| 1\.00 \| 2\.00 \|/);
});

Deno.test("formatPubsubTable() shows no ratio without JetStream", () => {
  const targets: PubsubTargetResult[] = [{
    target: "jetstream",
    status: "skipped",
    reason: "nats-server is not installed",
    version: null,
    calls: null,
    rows: [],
  }, {
    target: "aspen-1",
    status: "ran",
    reason: null,
    version: null,
    calls: null,
    rows: PUBSUB_ROWS.map((row) => measurement(row, 500)),
  }];
  assert.equal(ratioToJetStream(targets, "aspen-1", "publish"), null);
  const lines = formatPubsubTable(targets).split("\n");
  assert.equal(lines.length, 2 + 3);
  assert.match(lines[2]!, /\| - \| >= 0\.25x: not measured \|$/);
});

Deno.test({
  name:
    "bench/pubsub_compare.ts --quick --json measures every row of every available target",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const workDir = await Deno.makeTempDir({ prefix: "bench-pubsub-test-" });
    try {
      const run = await runBench([
        "--quick",
        "--json",
        "--messages",
        String(MESSAGES),
      ], workDir);
      assert.equal(
        run.code,
        0,
        `stdout:\n${run.stdout}\nstderr:\n${run.stderr}`,
      );
      const result = JSON.parse(run.stdout) as PubsubCompareResult;
      assert.equal(result.formatVersion, 1);
      assert.match(result.notes.join("\n"), /does not fsync each message/);
      assert.deepEqual(
        result.targets.map((t) => t.target),
        ["jetstream", "aspen-1", "aspen-3"],
      );
      const nats = await findNatsServer();
      for (const target of result.targets) {
        if (target.target === "jetstream" && !nats.ok) {
          assert.equal(target.status, "skipped");
          assert.match(target.reason ?? "", /nats-server/);
          continue;
        }
        assert.equal(target.status, "ran", JSON.stringify(target));
        assert.deepEqual(target.rows.map((r) => r.row), [...PUBSUB_ROWS]);
        for (const row of target.rows) {
          assert.equal(row.messages, MESSAGES);
          assert.equal(row.errors, 0);
          assert.ok(row.messagesPerSecond > 0);
          assert.ok(row.calls > 0);
          assert.ok(row.latencyMs.p50 > 0);
          assert.ok(typeof target.calls?.[row.row] === "string");
        }
      }
      // The table prints a line per measured (row, target).
      const table = formatPubsubTable(result.targets);
      const ran = result.targets.filter((t) => t.status === "ran").length;
      assert.equal(table.split("\n").length, 2 + 3 * ran);
      // Every data folder was removed.
      assert.deepEqual([...Deno.readDirSync(workDir)], []);
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "bench/pubsub_compare.ts skips JetStream, saying why, when nats-server is missing",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const workDir = await Deno.makeTempDir({ prefix: "bench-pubsub-test-" });
    try {
      const run = await runBench([
        "--quick",
        "--targets",
        "jetstream",
        "--nats-server",
        `${workDir}/no-such-nats-server`,
      ], workDir);
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        /^skipped jetstream: nats-server is not installed/m,
      );
      assert.match(run.stdout, /^\| row \| target \|/m);
      assert.match(run.stdout, /^note: JetStream does not fsync each message/m);
    } finally {
      await Deno.remove(workDir, { recursive: true });
    }
  },
});
