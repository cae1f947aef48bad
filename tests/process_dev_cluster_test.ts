/**
 * `aspen dev cluster` as real processes: start, stop (SIGINT), start again
 * on the same folder, write and read; a different `--nodes` on that folder
 * is refused; a node started on another port than its cluster file records
 * is refused unless `--re-announce`.
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { readClusterFile } from "../src/node/data_dir.ts";
import { DEV_STATUS_FILE } from "../cli/commands/dev.ts";

const CLI = new URL("../cli/aspen.ts", import.meta.url).pathname;
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const OUTPUT_CHARS_MAX = 2_000_000;

interface DevRun {
  readonly child: Deno.ChildProcess;
  readonly ticket: string;
  readonly token: string;
  output(): string;
}

/** Starts `aspen dev cluster` and waits for its summary (bounded). */
async function startDev(root: string): Promise<DevRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      CLI,
      "dev",
      "cluster",
      "--data-dir",
      root,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const append = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const bytes of stream) {
      if (text.length < OUTPUT_CHARS_MAX) {
        text += decoder.decode(bytes, { stream: true });
      }
    }
  };
  void append(child.stdout);
  void append(child.stderr);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const ticket = /^ {2}ticket (aspen\S+)$/m.exec(text)?.[1];
    const token = /^ {2}token {2}(\S+)$/m.exec(text)?.[1];
    if (ticket !== undefined && token !== undefined) {
      return { child, ticket, token, output: () => text };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGKILL");
  await child.status;
  throw new Error(`No dev cluster summary within 120 s:\n${text.slice(-4000)}`);
}

async function stopDev(run: DevRun): Promise<void> {
  run.child.kill("SIGINT");
  const timer = setTimeout(() => {
    try {
      run.child.kill("SIGKILL");
    } catch {
      // Gone.
    }
  }, STOP_TIMEOUT_MS);
  const status = await run.child.status;
  clearTimeout(timer);
  assert.equal(status.code, 0, run.output().slice(-4000));
}

async function writeAndRead(run: DevRun, key: string, value: string) {
  const client = connect(run.ticket, { token: run.token, timeoutMs: 20_000 });
  try {
    await client.kv.set(["dev", key], value);
    assert.equal((await client.kv.get(["dev", key])).value, value);
  } finally {
    client.close();
  }
}

async function runCli(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", CLI, ...args],
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test({
  name:
    "dev cluster: restarted on the same folder it keeps each node's address, elects, and serves old and new keys; --nodes 5 on it is refused",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-dev-" });
  let run: DevRun | null = null;
  try {
    run = await startDev(root);
    await writeAndRead(run, "first", "one");
    const before = await Promise.all(
      [1, 2, 3].map((i) => readClusterFile(`${root}/n${i}`)),
    );
    // `dev status` repeats the summary from the file the cluster writes.
    const status = await runCli("dev", "status", "--data-dir", root);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /n3 +http:\/\/127\.0\.0\.1:\d+ .*reachable/);
    assert.ok(status.stdout.includes(run.ticket));
    await stopDev(run);
    run = null;

    run = await startDev(root);
    assert.match(run.output(), /on its recorded ports/);
    assert.doesNotMatch(run.output(), /UnknownIssuer/);
    await writeAndRead(run, "second", "two");
    const client = connect(run.ticket, { token: run.token });
    try {
      assert.equal((await client.kv.get(["dev", "first"])).value, "one");
    } finally {
      client.close();
    }
    // Every folder still records three distinct URLs, the same as before.
    for (let i = 1; i <= 3; i++) {
      const file = (await readClusterFile(`${root}/n${i}`))!;
      const urls = file.members.map((m) => m.httpUrl);
      assert.equal(new Set(urls).size, 3, JSON.stringify(urls));
      assert.deepEqual(
        [...urls].sort(),
        before[i - 1]!.members.map((m) => m.httpUrl).sort(),
      );
    }
    // A node that exits is reported (name, code), and the other two still serve.
    const pids = (JSON.parse(
      await Deno.readTextFile(`${root}/${DEV_STATUS_FILE}`),
    ) as { nodes: { name: string; pid: number }[] }).nodes;
    Deno.kill(pids.find((n) => n.name === "n3")!.pid, "SIGKILL");
    const deadline = Date.now() + 30_000;
    while (
      Date.now() < deadline && !/node n3 .* exited with code/.test(run.output())
    ) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.match(
      run.output(),
      /aspen: node n3 \(http:\S+\) exited with code \d+ \(signal SIGKILL\)/,
    );
    await writeAndRead(run, "third", "three");
    const after = await runCli("dev", "status", "--data-dir", root);
    assert.match(after.stdout, /n3 +http:\/\/127\.0\.0\.1:\d+ .*unreachable/);
    await stopDev(run);
    run = null;
    await assert.rejects(Deno.stat(`${root}/${DEV_STATUS_FILE}`));

    const five = await runCli(
      "dev",
      "cluster",
      "--nodes",
      "5",
      "--data-dir",
      root,
    );
    assert.equal(five.code, 2, five.stderr);
    assert.match(five.stderr, /holds one of 3 nodes: run it again with/);
    assert.doesNotMatch(five.stdout, /dev cluster of 5/);
    assert.equal(
      (await readClusterFile(`${root}/n1`))!.members.length,
      3,
    );

    // A node given another port than the one its cluster knows is refused.
    const n1 = (await readClusterFile(`${root}/n1`))!;
    const recorded = Number(new URL(n1.members.at(-1)!.httpUrl).port);
    const moved = await runCli(
      "node",
      "start",
      "--data-dir",
      `${root}/n1`,
      "--http-port",
      String(recorded === 65000 ? 65001 : 65000),
    );
    assert.equal(moved.code, 2, moved.stderr);
    assert.match(
      moved.stderr,
      /configured address differs from the one its cluster knows: HTTP port 6500\d \(recorded \d+\).*--re-announce/,
    );
  } finally {
    if (run !== null) {
      // Stop the nodes the dev cluster started too (their pids are in its status file).
      const file = await Deno.readTextFile(`${root}/${DEV_STATUS_FILE}`)
        .catch(() => null);
      run.child.kill("SIGKILL");
      await run.child.status;
      const nodes = file === null
        ? []
        : (JSON.parse(file) as { nodes: { pid: number | null }[] }).nodes;
      for (const node of nodes) {
        try {
          if (node.pid !== null) Deno.kill(node.pid, "SIGKILL");
        } catch {
          // Gone.
        }
      }
    }
    await Deno.remove(root, { recursive: true });
  }
});
