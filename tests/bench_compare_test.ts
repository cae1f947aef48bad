/**
 * The comparison benchmark's shape, never its timings: `--quick` against the
 * cheap targets as a real subprocess prints one table and writes a JSON
 * result; bad options are refused; the table's ratios name their reference.
 */
import assert from "node:assert/strict";
import { parseCompareOptions } from "../bench/compare.ts";
import {
  type CompareResult,
  formatTable,
  TABLE_COLUMNS,
  type TargetResult,
} from "../bench/_report.ts";
import type { CellMeasurement } from "../bench/_load.ts";

const compareScript = new URL("../bench/compare.ts", import.meta.url).pathname;
// In the order the comparison runs them.
const CHEAP_TARGETS = ["null-http", "aspen-1", "denokv-local"] as const;

function cell(workload: "put" | "get", throughput: number): CellMeasurement {
  return {
    workload,
    clients: 16,
    elapsedMs: 2000,
    operations: throughput * 2,
    errors: 0,
    conflicts: 0,
    throughputPerSecond: throughput,
    latencyMs: { p50: 1, p99: 2, max: 3, mean: 1 },
    firstError: null,
  };
}

Deno.test("parseCompareOptions() reads --quick and refuses bad values", async (t) => {
  await t.step("quick means put and get, 16 clients, 2 s", () => {
    const options = parseCompareOptions([
      "--quick",
      "--targets",
      "aspen-1,null-http",
    ]);
    assert.deepEqual(options.workloads, ["put", "get"]);
    assert.deepEqual(options.clients, [16]);
    assert.equal(options.durationMs, 2000);
    assert.deepEqual(options.targets, ["null-http", "aspen-1"]);
    assert.equal(options.failover, false);
  });
  for (
    const args of [
      ["--clients", "0"],
      ["--duration=0"],
      ["--targets", "redis"],
      ["--workloads", "scan"],
      ["--value-size", "x"],
    ]
  ) {
    await t.step(`refuses ${args.join(" ")}`, () => {
      assert.throws(() => parseCompareOptions(args), RangeError);
    });
  }
});

Deno.test("formatTable() compares each target with the Aspen of its size", () => {
  const targets: TargetResult[] = [
    ["aspen-1", 100],
    ["aspen-3", 50],
    ["etcd-3", 25],
    ["null-http", 400],
  ].map(([target, ops]) => ({
    target: target as TargetResult["target"],
    status: "ran",
    reason: null,
    driver: "test",
    startMs: 1,
    cells: [cell("put", ops as number)],
  }));
  const lines = formatTable(targets).split("\n");
  assert.ok(TABLE_COLUMNS.every((c) => lines[0]!.includes(c)));
  assert.equal(lines.length, 2 + 4);
  assert.match(lines.find((l) => l.includes("etcd-3"))!, /0\.50x \(aspen-3\)/);
  assert.match(
    lines.find((l) => l.includes("null-http"))!,
    /4\.00x \(aspen-1\)/,
  );
});

Deno.test({
  name:
    "bench/compare.ts --quick runs the cheap targets and writes the table and JSON",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "bench-compare-test-" });
    try {
      const output = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--unstable-kv",
          "--unstable-net",
          "--allow-run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-sys",
          "--allow-net=127.0.0.1",
          compareScript,
          "--quick",
          "--duration",
          "1",
          "--targets",
          CHEAP_TARGETS.join(","),
          "--out",
          out,
          "--work-dir",
          out,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(180_000),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);

      const header = stdout.split("\n").find((l) => l.startsWith("| workload"));
      assert.ok(header !== undefined, stdout);
      for (const column of TABLE_COLUMNS) assert.ok(header.includes(column));
      for (const target of CHEAP_TARGETS) {
        for (const workload of ["put", "get"]) {
          const row = new RegExp(
            `^\\| ${workload} +\\| 16 +\\| ${target} +\\| \\d+ `,
            "m",
          );
          assert.match(stdout, row);
        }
        assert.match(stdout, new RegExp(`^ran +${target}: `, "m"));
      }

      const files = [...Deno.readDirSync(out)].filter((e) =>
        e.name.endsWith(".json")
      );
      assert.equal(files.length, 1);
      const result = JSON.parse(
        await Deno.readTextFile(`${out}/${files[0]!.name}`),
      ) as CompareResult;
      assert.equal(result.formatVersion, 1);
      assert.equal(typeof result.machine.nproc, "number");
      assert.deepEqual(result.targets.map((t) => t.target), [...CHEAP_TARGETS]);
      for (const target of result.targets) {
        assert.equal(target.status, "ran");
        assert.deepEqual(target.cells.map((c) => c.workload), ["put", "get"]);
        for (const c of target.cells) {
          assert.equal(c.clients, 16);
          assert.ok(c.operations > 0);
          for (const q of ["p50", "p99", "max"] as const) {
            assert.equal(typeof c.latencyMs[q], "number");
          }
        }
      }
      // Only the result file is left: every data folder was removed.
      assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), [
        files[0]!.name,
      ]);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
