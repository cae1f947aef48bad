/**
 * The `kvconnect-3` load generator: a child process that opens a stock
 * `Deno.openKv(url)` (KV Connect, token from `DENO_KV_ACCESS_TOKEN`) and runs
 * the same cells as the parent would, printing one JSON line when ready
 * (`{"ready": true}`), one per cell (`{"cell": …}`) and `{"done": true}`.
 *
 * Run with `--unstable-kv --allow-net=127.0.0.1 --allow-env`; the single
 * argument is a JSON {@linkcode RunnerSpec}.
 *
 * @module
 */
import { DenoKvDriver } from "./_drivers.ts";
import {
  describeError,
  KeySpace,
  prepareKeys,
  runCell,
  type Workload,
} from "./_load.ts";

/** What the parent asks the runner to do. */
export interface RunnerSpec {
  readonly url: string;
  readonly workloads: readonly Workload[];
  readonly clients: readonly number[];
  readonly durationMs: number;
  readonly valueBytes: number;
  readonly prepareTimeoutMs: number;
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0] ?? "null") as RunnerSpec | null;
  if (spec === null || typeof spec.url !== "string") {
    console.error("bench/_kvconnect_runner: expected a JSON spec argument");
    Deno.exit(2);
  }
  try {
    const kv = await Deno.openKv(spec.url);
    const driver = new DenoKvDriver(kv);
    const keys = new KeySpace();
    const value = crypto.getRandomValues(new Uint8Array(spec.valueBytes));
    if (spec.workloads.some((w) => w !== "put")) {
      await prepareKeys(driver, keys, value, spec.prepareTimeoutMs);
    }
    console.log(JSON.stringify({ ready: true }));
    for (const workload of spec.workloads) {
      for (const clients of spec.clients) {
        const cell = await runCell(driver, {
          workload,
          clients,
          durationMs: spec.durationMs,
          value,
          keys,
        });
        console.log(JSON.stringify({ cell }));
        console.error(
          `[kvconnect-3] ${workload} x${clients}: ${
            cell.throughputPerSecond.toFixed(0)
          } ops/s, ${cell.errors} errors`,
        );
      }
    }
    console.log(JSON.stringify({ done: true }));
    await driver.close();
  } catch (error) {
    console.log(JSON.stringify({ ready: false, error: describeError(error) }));
    Deno.exit(1);
  }
  Deno.exit(0);
}
