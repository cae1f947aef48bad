/**
 * CI runs what the README says (`deno task test:readme`, from `.ci/run`).
 * The commands come from README.md itself (its `<!-- readme-smoke: … -->`
 * blocks), run in a fresh clone with stdin closed, each in its own process
 * group, stopped by group id:
 *
 * 1. `task start`, until `/health` answers;
 * 2. the README's `Deno.openKv` program, with the token from
 *    `data/access.token` as the README's command line reads it;
 * 3. `task aspen dev cluster --nodes 3`, then the README's CLI block (write and
 *    read with the printed ticket); kill one node (SIGKILL), the CLI block
 *    again; stop the cluster;
 * 4. the same dev cluster command on the same folder, and the CLI block again.
 *
 * The only liberty taken: `task start` gets `ASPEN_HTTP_PORT`/`ASPEN_QUIC_PORT`
 * set to free ports (and the program's `127.0.0.1:8080` follows), so runs on a
 * shared machine do not collide. Exit 0 when every step passed, 1 otherwise.
 *
 * @module
 */
import {
  block,
  commandLine,
  type ReadmeBlock,
  readmeBlocks,
} from "./helpers/readme_blocks.ts";
import {
  freshClone,
  healthy,
  PERMISSION_PROBLEM,
  runIn,
  type Started,
  startIn,
} from "./helpers/fresh_clone.ts";
import { freeTcpPorts, freeUdpPorts } from "../src/node/provision.ts";
import { waitFor } from "./helpers/wait_for.ts";

/** How long a cluster may take to come up on a loaded machine. */
const UP_MS = 240_000;

class SmokeFailure extends Error {
  override readonly name = "SmokeFailure";
}

function log(message: string): void {
  console.log(`readme smoke: ${message}`);
}

function tail(text: string, lines = 40): string {
  return text.split("\n").slice(-lines).join("\n");
}

function noPermissionProblem(what: string, output: string): void {
  if (PERMISSION_PROBLEM.test(output)) {
    throw new SmokeFailure(
      `${what} hit a permission problem:\n${tail(output)}`,
    );
  }
}

/** Runs the README's CLI block with bash until it exits 0 (a leader may still be elected). */
async function cliBlock(
  clone: string,
  cli: ReadmeBlock,
  ticket: string,
  expect: RegExp,
): Promise<string> {
  let last = "";
  await waitFor("the README's CLI block succeeds", async () => {
    const result = await runIn(
      clone,
      "bash",
      ["-euo", "pipefail", "-c", cli.body],
      { TICKET: ticket },
      120_000,
    );
    last = result.output;
    noPermissionProblem("the CLI block", result.output);
    return result.code === 0 && expect.test(result.output);
  }, { timeoutMs: UP_MS, intervalMs: 250, retryErrors: true }).catch(
    (error) => {
      if (error instanceof SmokeFailure) throw error;
      throw new SmokeFailure(`${(error as Error).message}\n${tail(last)}`);
    },
  );
  return last;
}

/** The dev cluster's ticket and node URLs, once every node answers /health. */
async function devClusterUp(dev: Started): Promise<string> {
  let ticket = "";
  await waitFor(
    "the dev cluster prints its ticket and its nodes answer",
    async () => {
      if (dev.exited) {
        throw new SmokeFailure(`dev cluster exited:\n${tail(dev.output)}`);
      }
      noPermissionProblem("dev cluster", dev.output);
      const found = dev.output.match(/^\s*ticket\s+(\S+)/m);
      const urls = [
        // The summary's node lines: "  n1  http://127.0.0.1:PORT   kv connect …".
        ...dev.output.matchAll(/^\s*n\d+\s+(https?:\/\/127\.0\.0\.1:\d+)\s/gm),
      ].map((m) => m[1]!);
      if (found === null || urls.length < 3) return false;
      ticket = found[1]!;
      for (const url of urls) if (!(await healthy(url))) return false;
      return true;
    },
    { timeoutMs: UP_MS, intervalMs: 250, retryErrors: true },
  ).catch((error) => {
    if (error instanceof SmokeFailure) throw error;
    throw new SmokeFailure(`${(error as Error).message}\n${tail(dev.output)}`);
  });
  return ticket;
}

/** Pids in process group `pgid` whose command line starts node `name`'s folder (from `ps`). */
async function nodePids(pgid: number, name: string): Promise<number[]> {
  const out = await new Deno.Command("ps", {
    args: ["-eo", "pid=,pgid=,args="],
    stdout: "piped",
    stderr: "null",
  }).output();
  const pids: number[] = [];
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const [pid, group, ...args] = line.trim().split(/\s+/);
    if (Number(group) !== pgid) continue;
    const dir = args[args.indexOf("--data-dir") + 1] ?? "";
    if (args.includes("start") && dir.endsWith(`/${name}`)) {
      pids.push(Number(pid));
    }
  }
  return pids;
}

async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
  const began = performance.now();
  const result = await run();
  log(`${name}: ok (${Math.round((performance.now() - began) / 1000)} s)`);
  return result;
}

async function main(): Promise<number> {
  const readme = await Deno.readTextFile(
    new URL("../README.md", import.meta.url),
  );
  const blocks = readmeBlocks(readme);
  const startLine = commandLine(block(blocks, "start"), /task start$/);
  const app = block(blocks, "app");
  const devLine = commandLine(block(blocks, "dev-cluster"), /dev cluster/);
  const cli = block(blocks, "cli");
  const appCommand = app.body.split("\n")[0]!.replace(/^\/\/\s*/, "");

  const clone = await freshClone("aspen-readme-smoke-");
  const running: Started[] = [];
  let restartOk = false;
  try {
    const [httpPort] = freeTcpPorts("127.0.0.1", 1);
    const [quicPort] = freeUdpPorts("127.0.0.1", 1);
    const node = await step(`'${startLine}' answers /health`, async () => {
      const started = startIn(clone, "bash", ["-c", startLine], {
        ASPEN_HTTP_PORT: String(httpPort),
        ASPEN_QUIC_PORT: String(quicPort),
      });
      running.push(started);
      await waitFor("task start answers /health", async () => {
        if (started.exited) {
          throw new SmokeFailure(`task start exited:\n${tail(started.output)}`);
        }
        return await healthy(`http://127.0.0.1:${httpPort}`);
      }, { timeoutMs: UP_MS, intervalMs: 250, retryErrors: true }).catch(
        (error) => {
          if (error instanceof SmokeFailure) throw error;
          throw new SmokeFailure(
            `${(error as Error).message}\n${tail(started.output)}`,
          );
        },
      );
      noPermissionProblem("task start", started.output);
      return started;
    });

    await step("the README's Deno.openKv program", async () => {
      await Deno.writeTextFile(
        `${clone}/app.ts`,
        app.body.replaceAll("127.0.0.1:8080", `127.0.0.1:${httpPort}`),
      );
      const result = await runIn(clone, "bash", ["-c", appCommand]);
      noPermissionProblem("the app", result.output);
      if (result.code !== 0 || !/name: "Ada"/.test(result.output)) {
        throw new SmokeFailure(
          `'${appCommand}' exited ${result.code}:\n${tail(result.output)}`,
        );
      }
    });
    await node.stop();
    noPermissionProblem("task start", node.output);

    const dev = startIn(clone, "bash", ["-c", devLine]);
    running.push(dev);
    const ticket = await step(`'${devLine}' is up`, () => devClusterUp(dev));
    await step(
      "the CLI block writes and reads",
      () => cliBlock(clone, cli, ticket, /hello/),
    );
    await step("one node killed (SIGKILL), the CLI block again", async () => {
      const pids = await nodePids(dev.pid, "n1");
      if (pids.length === 0) {
        throw new SmokeFailure(`no process of node n1 in the dev cluster`);
      }
      for (const pid of pids) Deno.kill(pid, "SIGKILL");
      await cliBlock(clone, cli, ticket, /hello/);
    });
    await step("the dev cluster stops", async () => {
      await dev.stop();
      noPermissionProblem("dev cluster", dev.output);
    });

    try {
      await step(
        "the dev cluster restarted on the same folder takes writes",
        async () => {
          const again = startIn(clone, "bash", ["-c", devLine]);
          running.push(again);
          const ticket2 = await devClusterUp(again);
          await cliBlock(clone, cli, ticket2, /hello/);
          await again.stop();
        },
      );
      restartOk = true;
    } catch (error) {
      log(`restart: FAILED: ${(error as Error).message}`);
    }
  } catch (error) {
    log(`FAILED: ${(error as Error).message}`);
    return 1;
  } finally {
    for (const started of running) await started.stop();
    await Deno.remove(clone.replace(/\/aspen$/, ""), { recursive: true })
      .catch(() => {});
  }
  if (!restartOk) return 1;
  log("passed");
  return 0;
}

if (import.meta.main) Deno.exit(await main());
