/**
 * A shell worker process for tests: opens a {@linkcode ShellRunner} on the
 * state folder given as its first argument, prints its predecessor cleanup
 * as one JSON line, runs `sh -c 'sleep 300 & sleep 300'`, prints
 * `{"running": <pgid>}` once the group is recorded, and waits for the job
 * (a test kills it with SIGKILL to orphan the group).
 *
 * ```sh
 * deno run --allow-all tests/helpers/shell_runner_process.ts STATE_DIR
 * ```
 *
 * @module
 */
import { groupsFolder } from "../../src/workers/shell/groups.ts";
import { ShellRunner } from "../../src/workers/shell/run.ts";

const stateDir = Deno.args[0];
if (stateDir === undefined) throw new TypeError("Expected a state folder");
const runner = await ShellRunner.open({
  allowCommands: ["/bin/sh"],
  stateDir,
});
console.log(JSON.stringify({ cleanup: runner.cleanup }));
const running = runner.run(
  { argv: ["/bin/sh", "-c", "sleep 300 & sleep 300"] },
  { jobId: "orphan-1", attempt: 1 },
);
// Bounded: 3,000 looks 10 ms apart (30 s) for the record to appear.
for (let tries = 0; tries < 3_000; tries++) {
  const names: string[] = [];
  for await (const entry of Deno.readDir(groupsFolder(stateDir))) {
    if (entry.name.endsWith(".json")) names.push(entry.name);
  }
  const first = names[0];
  if (first !== undefined) {
    console.log(JSON.stringify({ running: Number(first.slice(0, -5)) }));
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
}
await running;
runner.close();
