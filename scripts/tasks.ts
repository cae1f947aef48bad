/**
 * Generates the `tasks` of `deno.json` from `cli/permissions.ts`, the one
 * place Aspen's permissions are decided: `deno run --allow-read=. --allow-write=deno.json
 * scripts/tasks.ts --write` rewrites them, `--check` (the default) exits 1
 * when `deno.json` differs (also checked by `tests/front_door_test.ts`).
 *
 * @module
 */
import {
  CACHED_ENTRY_POINTS,
  LAUNCHER_FLAGS,
  TEST_FLAGS,
  TEST_TMP,
} from "../cli/permissions.ts";

/** Every task of `deno.json`, in order. */
export function tasks(): Record<string, string> {
  const cache = `deno install --quiet --entrypoint ${
    CACHED_ENTRY_POINTS.join(" ")
  }`;
  const gate = "deno fmt --check && deno lint && deno check --unstable-net";
  return {
    start: `deno run --quiet ${LAUNCHER_FLAGS} cli/launch.ts node start`,
    test: `${cache} && ${gate} && TMPDIR=${TEST_TMP} deno test ${TEST_FLAGS}`,
    sim: "deno run --allow-read=fixtures src/sim/main.ts",
    lincheck: "deno run --allow-read src/sim/lincheck_main.ts",
    "import-rule": "deno run --allow-read --allow-env scripts/import_rule.ts",
    bench:
      "deno bench --allow-read --allow-write --allow-env --unstable-kv bench/",
    aspen: `deno run --quiet ${LAUNCHER_FLAGS} cli/launch.ts`,
    "bench:transport":
      "deno run --unstable-net --allow-net=127.0.0.1 --allow-read bench/transport_bench.ts",
    "bench:stall":
      "deno run --allow-read --allow-write --allow-env bench/fsync_stall.ts",
    "bench:compare":
      "deno run --unstable-kv --unstable-net --allow-run --allow-read --allow-write --allow-env --allow-sys --allow-net=127.0.0.1 bench/compare.ts",
    "bench:profile":
      "deno run --unstable-net --allow-run --allow-read --allow-write --allow-env --allow-net=127.0.0.1 bench/profile_leader.ts",
    "bench:breakdown":
      "deno run --unstable-net --allow-run --allow-read --allow-write --allow-env --allow-net=127.0.0.1 bench/breakdown.ts",
    "bench:sustained":
      "deno run --unstable-net --allow-run --allow-read --allow-write=bench,/tmp --allow-net=127.0.0.1 bench/sustained.ts",
    "bench:memory":
      "deno run --unstable-net --allow-run --allow-read --allow-write=bench/results,/tmp --allow-net=127.0.0.1 bench/memory.ts",
    "bench:pubsub":
      "deno run --unstable-net --allow-run --allow-read --allow-write --allow-env --allow-sys --allow-net=127.0.0.1 bench/pubsub_compare.ts",
    "test:readme":
      `TMPDIR=${TEST_TMP} deno run --unstable-net --allow-read=.,${TEST_TMP} --allow-write=${TEST_TMP} --allow-run --allow-net=127.0.0.1 tests/readme_smoke.ts`,
    "test:loaded":
      `${cache} && TMPDIR=${TEST_TMP} deno run ${LAUNCHER_FLAGS} --allow-write=${TEST_TMP} --allow-net=127.0.0.1 scripts/test_loaded.ts`,
  };
}

if (import.meta.main) {
  const path = new URL("../deno.json", import.meta.url);
  const text = await Deno.readTextFile(path);
  const config = JSON.parse(text) as { tasks?: Record<string, string> };
  const want = tasks();
  if (Deno.args.includes("--write")) {
    config.tasks = want;
    await Deno.writeTextFile(path, `${JSON.stringify(config, null, 2)}\n`);
  } else if (JSON.stringify(config.tasks) !== JSON.stringify(want)) {
    console.error(
      "deno.json's tasks differ from scripts/tasks.ts: run deno run --allow-read=. --allow-write=deno.json scripts/tasks.ts --write",
    );
    Deno.exit(1);
  }
}
