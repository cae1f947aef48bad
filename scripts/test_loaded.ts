/**
 * `deno task test:loaded`: the test suite on a loaded machine, as a shared CI
 * runner is. Beside `deno test` (same flags as `task test`) it runs a 3-node
 * dev cluster (its own temp folder) under a steady write load through
 * `mod.ts`, and two CPU-bound loops. Arguments are passed to `deno test`
 * (e.g. `--filter process_` or test files). Exit code: the test run's.
 *
 * Every load is bounded: the loops and the writer stop when the tests end
 * (and after at most one hour); every process is stopped by its group id.
 *
 * @module
 */
import { TEST_FLAGS } from "../cli/permissions.ts";
import { connect } from "../mod.ts";
import {
  healthy,
  REPO_ROOT,
  type Started,
  startIn,
} from "../tests/helpers/fresh_clone.ts";
import { waitFor } from "../tests/helpers/wait_for.ts";

const DENO = Deno.execPath();
const MAX_LOAD_MS = 3_600_000;
const CPU_LOOPS = 2;

function log(message: string): void {
  console.log(`test:loaded: ${message}`);
}

/** A CPU-bound loop in its own process, for at most `MAX_LOAD_MS`. */
function cpuLoop(): Started {
  const code = `const end = Date.now() + ${MAX_LOAD_MS};
let x = 0;
while (Date.now() < end) { for (let i = 0; i < 1e6; i++) x = (x * 31 + i) | 0; }
console.log(x);`;
  return startIn(REPO_ROOT, DENO, ["eval", code]);
}

/** Writes to the cluster until `stop` is aborted; returns how many succeeded. */
async function writeLoad(
  urls: string[],
  token: string | undefined,
  stop: AbortSignal,
): Promise<{ ok: number; failed: number }> {
  using client = connect(urls, { token });
  let ok = 0;
  let failed = 0;
  const end = performance.now() + MAX_LOAD_MS;
  for (let i = 0; !stop.aborted && performance.now() < end; i++) {
    try {
      await client.kv.set(["load", i % 1000], new Uint8Array(256));
      ok++;
    } catch {
      failed++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { ok, failed };
}

async function main(): Promise<number> {
  const dataDir = await Deno.makeTempDir({ prefix: "aspen-test-loaded-" });
  const loads: Started[] = [];
  const stop = new AbortController();
  let writer: Promise<{ ok: number; failed: number }> | undefined;
  try {
    const cluster = startIn(REPO_ROOT, DENO, [
      "task",
      "aspen",
      "dev",
      "cluster",
      "--nodes",
      "3",
      "--data-dir",
      dataDir,
    ]);
    loads.push(cluster);
    let urls: string[] = [];
    await waitFor("the load cluster is up", async () => {
      if (cluster.exited) {
        throw new Error(`dev cluster exited:\n${cluster.output}`);
      }
      urls = [
        ...cluster.output.matchAll(
          // The summary's node lines: "  n1  http://127.0.0.1:PORT   kv connect …".
          /^\s*n\d+\s+(https?:\/\/127\.0\.0\.1:\d+)\s/gm,
        ),
      ].map((m) => m[1]!);
      if (urls.length < 3) return false;
      for (const url of urls) if (!(await healthy(url))) return false;
      return true;
    }, { timeoutMs: 240_000, intervalMs: 250, retryErrors: true });
    const token = await Deno.readTextFile(`${dataDir}/n1/access.token`)
      .then((t) => t.trim(), () => undefined);
    writer = writeLoad(urls, token, stop.signal);
    for (let i = 0; i < CPU_LOOPS; i++) loads.push(cpuLoop());
    log(
      `load: 3-node cluster under writes (${
        urls.join(" ")
      }), ${CPU_LOOPS} CPU loops`,
    );

    const tests = new Deno.Command(DENO, {
      args: ["test", ...TEST_FLAGS.split(" "), ...Deno.args],
      cwd: REPO_ROOT,
      env: { TMPDIR: "/tmp" },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = await tests.status;
    stop.abort();
    const written = await writer;
    log(
      `load writes during the run: ${written.ok} ok, ${written.failed} failed`,
    );
    return status.code;
  } finally {
    stop.abort();
    await writer?.catch(() => {});
    for (const load of loads) await load.stop();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await main());
