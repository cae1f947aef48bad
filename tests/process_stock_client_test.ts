/**
 * Stock `Deno.openKv(url)` against three real node processes while the
 * leader is killed (kill -9) and later restarted: the program, opened on a
 * node that is not the leader, sees no wrong answer, and every write it saw
 * acknowledged is readable at the end (issue 7). The stock client retries
 * 5xx forever, so the child runs under a deadline and is killed after.
 *
 * A write forwarded to the leader as it dies is retried by the entry node
 * with its session until a new leader answers (20 s), so the program sees
 * no exception at all: the test asserts none (an outcome the node could not
 * settle would be a 409 the stock client throws).
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, type KvU64 } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { readReplica } from "./helpers/process_kv.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";

const CHILD = new URL("./helpers/process_stock_writer.ts", import.meta.url)
  .pathname;
/** Most writes of the child (it stops earlier when told). */
const WRITES_MAX = 5_000;
/** The child's whole run, after which it is killed. */
const CHILD_DEADLINE_MS = 60_000;
const ACKS_PER_PHASE = 40;

interface StockEvents {
  readonly acked: Map<number, string>;
  readonly errors: string[];
  readonly wrong: string[];
  /** Time of each acknowledgement, ms since the child started. */
  readonly ackTimes: number[];
  done: number | null;
  stderr: string[];
}

function startStockWriter(url: string, token: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env=DENO_KV_ACCESS_TOKEN",
      CHILD,
      url,
      String(WRITES_MAX),
    ],
    env: { DENO_KV_ACCESS_TOKEN: token, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const started = performance.now();
  const events: StockEvents = {
    acked: new Map(),
    errors: [],
    wrong: [],
    ackTimes: [],
    done: null,
    stderr: [],
  };
  const readers = Promise.all([
    lines(child.stdout, (line) => {
      const event = JSON.parse(line);
      if ("ack" in event) {
        events.acked.set(event.ack, event.versionstamp);
        events.ackTimes.push(performance.now() - started);
      } else if ("error" in event) {
        events.errors.push(`${event.error}: ${event.message}`);
      } else if ("wrong" in event) events.wrong.push(event.wrong);
      else if ("done" in event) events.done = event.done;
    }),
    lines(child.stderr, (line) => {
      events.stderr.push(line);
      if (events.stderr.length > 50) events.stderr.shift();
    }),
  ]);
  const deadline = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }, CHILD_DEADLINE_MS);
  return {
    events,
    /** Closes its stdin (it stops after the write in flight) and waits, bounded. */
    async finish(): Promise<Deno.CommandStatus> {
      await child.stdin.close().catch(() => {});
      try {
        return await child.status;
      } finally {
        clearTimeout(deadline);
        await readers;
      }
    },
    async kill(): Promise<void> {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await this.finish();
    },
  };
}

async function waitForAcks(
  events: StockEvents,
  count: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    () =>
      `${count} acknowledgements (the stock client had ${events.acked.size}); errors: ${
        events.errors.slice(0, 3).join(" | ")
      }; stderr: ${events.stderr.join("\n")}`,
    () => events.acked.size >= count,
    { timeoutMs, intervalMs: 20 },
  );
}

Deno.test("stock Deno.openKv(url) on a follower keeps its acknowledged writes and sees no wrong answer while the leader is killed and restarted", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const entry = (leader + 1) % 3;
    const writer = startStockWriter(
      `${cluster.node(entry).url}/kv`,
      await cluster.accessToken(entry),
    );
    let failoverMs: number;
    try {
      await waitForAcks(writer.events, ACKS_PER_PHASE, 20_000);
      const killedAt = Date.now();
      await cluster.kill(leader);
      const ackedAtKill = writer.events.acked.size;
      await cluster.waitForLeader(30_000);
      failoverMs = Date.now() - killedAt;
      await waitForAcks(writer.events, ackedAtKill + ACKS_PER_PHASE, 30_000);
      await cluster.restart(leader);
      const ackedAtRestart = writer.events.acked.size;
      await waitForAcks(writer.events, ackedAtRestart + ACKS_PER_PHASE, 30_000);
      const status = await writer.finish();
      assert.equal(status.code, 0, writer.events.stderr.join("\n"));
    } catch (error) {
      await writer.kill();
      throw error;
    }
    const { events } = writer;
    const gaps = events.ackTimes.slice(1).map((t, i) =>
      t - events.ackTimes[i]!
    );
    console.log(
      `stock client: ${events.acked.size} acknowledged, ${events.errors.length} errors, longest wait between acknowledgements ${
        Math.round(Math.max(...gaps))
      } ms; new leader agreed on ${failoverMs} ms after kill -9`,
    );
    assert.deepEqual(
      events.errors,
      [],
      "the stock client saw no error: the entry node settled every write",
    );
    assert.deepEqual(events.wrong, [], "the stock client saw no wrong answer");
    assert.notEqual(events.done, null, "the stock client finished its loop");

    // Every acknowledged write is readable, through Aspen's client…
    using client = connect(cluster.urls, {
      timeoutMs: 10_000,
      token: await cluster.token(),
    });
    for (const [n, versionstamp] of events.acked) {
      const got = await client.kv.get(["stock", n]);
      assert.equal(got.value, `value-${n}`, `key ${n}`);
      assert.equal(got.versionstamp, versionstamp, `key ${n}`);
    }
    // …every atomic applied whole and once: one count per key present…
    const present = await readReplica(
      cluster.node(entry).url,
      "stock",
      await cluster.token(),
    );
    const counter = await client.kv.get<KvU64>(["stock-count"]);
    assert.equal(counter.value?.value, BigInt(present.size));
    for (const [n, entryValue] of present) {
      assert.equal(entryValue.value, `value-${n}`);
    }
    // …and on the restarted node too.
    const commitIndex =
      (await cluster.status(await cluster.waitForLeader()))!.commitIndex;
    await cluster.waitForApplied(leader, commitIndex, 30_000);
    const restarted = await readReplica(
      cluster.node(leader).url,
      "stock",
      await cluster.token(),
    );
    for (const [n, versionstamp] of events.acked) {
      assert.equal(restarted.get(n)?.versionstamp, versionstamp, `key ${n}`);
    }
  });
});
