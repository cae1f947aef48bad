/**
 * Issue 12 item 0, tested the way it failed: stock `Deno.openKv` clients,
 * each pinned to one of three real node processes, put and get a few shared
 * registers while their entry nodes are killed (kill -9) mid-write and
 * restarted. The stock client resends a pending write to the restarted node
 * with the same bytes and no request id; before the fix the node gave the
 * resend a fresh session and it applied a second time (a stale value came
 * back over later writes). Checked: the history is linearizable (the
 * checker of `src/sim/lincheck.ts`), and no put applied twice (each put sums
 * 1 into its client's counter and sets a mark of its own: counter = marks).
 *
 * The seed (printed; `ASPEN_STOCK_RESEND_SEED` replays it) picks the
 * clients' operations and the nemesis' targets and pauses;
 * `ASPEN_STOCK_RESEND_ROUNDS` sets how many seeds run one after another
 * (default 1, about 40 s; each on a fresh cluster). On the old code (resends
 * not recognised) seeds 109798682 and 5551 fail with a put applied twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type KvU64 } from "../mod.ts";
import { checkOperations, kvModel } from "../src/sim/lincheck.ts";
import type { KvInput, KvOutput, Operation } from "../src/sim/lincheck.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { seededRandom } from "./helpers/process_history.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";

const CHILD = new URL("./helpers/process_stock_history.ts", import.meta.url)
  .pathname;
const NODES = 3;
const CLIENTS_PER_NODE = 2;
const KEYS = 3;
const KILLS = 3;
/** A child's whole run, after which it is killed. */
const CHILD_DEADLINE_MS = 90_000;
const CHECK_TIMEOUT_MS = 20_000;

type Op = Operation<KvInput, KvOutput>;

interface Child {
  readonly name: string;
  readonly history: Op[];
  returns: number;
  unknown: number;
  readonly stderr: string[];
  finish(): Promise<void>;
}

function startChild(
  url: string,
  token: string,
  name: string,
  clientId: number,
  seed: number,
): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env=DENO_KV_ACCESS_TOKEN",
      CHILD,
      url,
      name,
      String(seed),
      String(KEYS),
    ],
    env: { DENO_KV_ACCESS_TOKEN: token, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const calls = new Map<number, { input: KvInput; call: number }>();
  const child: Child = {
    name,
    history: [],
    returns: 0,
    unknown: 0,
    stderr: [],
    finish: async () => {
      await process.stdin.close().catch(() => {});
      const timer = setTimeout(() => kill(), 20_000);
      try {
        await process.status;
      } finally {
        clearTimeout(timer);
        clearTimeout(deadline);
        await readers;
        // Calls never answered: unknown outcome (a get had no effect).
        for (const { input, call } of calls.values()) {
          if (input.op === "get") continue;
          child.history.push({
            clientId,
            input,
            output: undefined,
            call,
            return: Infinity,
          });
        }
      }
    },
  };
  const kill = () => {
    try {
      process.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  };
  const deadline = setTimeout(kill, CHILD_DEADLINE_MS);
  const onLine = (line: string) => {
    const event = JSON.parse(line);
    if ("call" in event) {
      const input: KvInput = event.op === "put"
        ? { op: "put", key: event.key, value: event.value }
        : { op: "get", key: event.key };
      calls.set(event.call, { input, call: event.t });
    } else if ("ret" in event) {
      const started = calls.get(event.ret);
      if (started === undefined) return;
      calls.delete(event.ret);
      child.returns++;
      child.history.push({
        clientId,
        input: started.input,
        output: started.input.op === "get"
          ? { value: event.value ?? null }
          : { ok: event.ok === true },
        call: started.call,
        return: event.t,
      });
    } else if ("unknown" in event) child.unknown++;
  };
  const readers = Promise.all([
    lines(process.stdout, onLine),
    lines(process.stderr, (line) => {
      child.stderr.push(line);
      if (child.stderr.length > 20) child.stderr.shift();
    }),
  ]);
  return child;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitForReturns(
  children: readonly Child[],
  count: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    () =>
      `stock clients to get ${count} answers each: ${
        children.map((c) => `${c.name}=${c.returns}`).join(" ")
      }; stderr: ${children.flatMap((c) => c.stderr).join("\n")}`,
    () => children.every((c) => c.returns >= count),
    { timeoutMs, intervalMs: 50 },
  );
}

async function runSeed(seed: number): Promise<void> {
  console.log(`stock resend seed ${seed} (ASPEN_STOCK_RESEND_SEED=${seed})`);
  const random = seededRandom(seed);
  await withProcessCluster({ count: NODES }, async (cluster) => {
    await cluster.waitForLeader();
    const children: Child[] = [];
    for (let node = 0; node < NODES; node++) {
      const token = await cluster.accessToken(node);
      for (let i = 0; i < CLIENTS_PER_NODE; i++) {
        const id = children.length;
        children.push(
          startChild(
            `${cluster.node(node).url}/kv`,
            token,
            `c${id}`,
            id,
            seed + id,
          ),
        );
      }
    }
    const faults: string[] = [];
    try {
      await waitForReturns(children, 5, 30_000);
      for (let k = 0; k < KILLS; k++) {
        // Every client loops without pause, so writes are in flight on the
        // entry node when it dies.
        const target = Math.floor(random() * NODES);
        const downMs = 200 + Math.floor(random() * 1000);
        await cluster.kill(target);
        await sleep(downMs);
        await cluster.restart(target);
        faults.push(`kill -9 n${target}, down ${downMs} ms`);
        const before = children.map((c) => c.returns);
        await cluster.waitForLeader(30_000);
        // Every client, the killed node's included, is answered again.
        const deadline = Date.now() + 30_000;
        while (children.some((c, i) => c.returns < before[i]! + 3)) {
          if (Date.now() > deadline) {
            throw new Error(
              `after ${faults.join("; ")}: clients stalled: ${
                children.map((c) => `${c.name}=${c.returns}`).join(" ")
              }`,
            );
          }
          await sleep(50);
        }
      }
    } finally {
      await Promise.all(children.map((c) => c.finish()));
    }
    console.log(
      `faults: ${faults.join("; ")}; answers ${
        children.map((c) => c.returns).join("/")
      }, unknown ${children.map((c) => c.unknown).join("/")}`,
    );

    using client = connect(cluster.urls, {
      timeoutMs: 10_000,
      token: await cluster.token(),
    });
    const history = children.flatMap((c) => c.history);
    for (const key of Array.from({ length: KEYS }, (_, i) => `r${i}`)) {
      const call = performance.timeOrigin + performance.now();
      const entry = await client.kv.get<string>(["reg", key]);
      history.push({
        clientId: children.length,
        input: { op: "get", key },
        output: { value: entry.value },
        call,
        return: performance.timeOrigin + performance.now(),
      });
    }
    // No put applied twice: each client's counter equals its marks.
    for (const child of children) {
      const counter = await client.kv.get<KvU64>(["count", child.name]);
      let marks = 0;
      for await (const _ of client.kv.list({ prefix: ["mark", child.name] })) {
        marks++;
      }
      assert.equal(
        counter.value?.value ?? 0n,
        BigInt(marks),
        `seed ${seed}, ${
          faults.join("; ")
        }: client ${child.name}'s puts applied ${counter.value?.value} times for ${marks} distinct puts`,
      );
    }
    const result = checkOperations(kvModel, history, {
      timeoutMs: CHECK_TIMEOUT_MS,
    });
    console.log(`lincheck: ${result.verdict} for ${history.length} operations`);
    assert.equal(
      result.verdict,
      "linearizable",
      `seed ${seed}, ${faults.join("; ")}\n${
        JSON.stringify(result.detail, null, 2)
      }`,
    );
  });
}

Deno.test("stock Deno.openKv clients pinned to nodes killed mid-write: every put applies once and the history is linearizable", async () => {
  const seedText = Deno.env.get("ASPEN_STOCK_RESEND_SEED");
  const rounds = Number(Deno.env.get("ASPEN_STOCK_RESEND_ROUNDS") ?? "1");
  const first = seedText === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(seedText);
  for (let round = 0; round < rounds; round++) {
    await runSeed((first + round * 7919) >>> 0);
  }
});
