/**
 * `client.events` and `aspen events` against real node processes (issue
 * 17): two rounds of stock `Deno.openKv` writes followed by `aspen events
 * watch --json` arrive once each and in order, with the writers'
 * versionstamps, across a kill -9 of the node the watch was reading from
 * between the rounds; the client's
 * `leader.changed` watch survives a kill -9 of the leader it reads from and
 * sees the new term; `list` paged by its cursor holds what the watch held;
 * a start below a compacted window ends the client's watch and list with
 * `CompactedError` and the CLI with exit 1.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type AspenEvent, CompactedError, connect } from "../mod.ts";
import { aspen, CLI } from "./helpers/cli_run.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { stockWriter } from "./helpers/stock_writer.ts";

const WRITES = 200;

/** `aspen args…` as a child whose stdout is read line by line as it comes. */
function spawnAspen(args: string[], env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-env=ASPEN_URL,ASPEN_TOKEN,ASPEN_ADMIN_TOKEN",
      "--allow-read",
      CLI,
      ...args,
    ],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).spawn();
  const printed: string[] = [];
  const stdout = lines(child.stdout, (line) => printed.push(line));
  const stderr = new Response(child.stderr).text();
  return {
    printed,
    async done(): Promise<{ code: number; stderr: string }> {
      const status = await child.status;
      await stdout;
      return { code: status.code, stderr: await stderr };
    },
  };
}

Deno.test("aspen events watch --json over 3 processes: stock writes once each, in order, across a kill -9 of the watched node; client leader.changed across a kill -9 of the leader; list agrees", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const token = await cluster.token();
    const watched = (leader + 1) % 3;
    const spare = (leader + 2) % 3;
    using client = connect(
      [cluster.node(leader).url, cluster.node(spare).url],
      { token, timeoutMs: 10_000 },
    );
    const from = (await client.events.status()).headRevision + 1;
    // The client follows leader changes, reading from the leader first.
    const leaders: AspenEvent[] = [];
    const stopLeaders = new AbortController();
    const following = (async () => {
      for await (
        const frame of client.events.watch({}, {
          types: ["leader.changed"],
          fromRevision: 0,
          signal: stopLeaders.signal,
        })
      ) {
        if (frame.kind === "event") leaders.push(frame.event);
      }
    })();
    await waitFor("the first leader.changed", () => leaders.length >= 1, {
      timeoutMs: 30_000,
    });
    const announced = leaders.at(-1)!;

    // A first round of writes, then the CLI reads from a follower first:
    // it replays them, then the node it reads from is killed before the
    // second round.
    const first = stockWriter(`${cluster.node(leader).url}/kv`, token, WRITES);
    await first.done();
    const watch = spawnAspen([
      "events",
      "watch",
      '["stock"]',
      "--from-revision",
      String(from),
      "--count",
      String(2 * WRITES),
      "--json",
    ], {
      ASPEN_URL: [watched, spare, leader].map((i) => cluster.node(i).url)
        .join(","),
      ASPEN_TOKEN: token,
    });
    await waitFor(
      () => `60 lines from the CLI, got ${watch.printed.length}`,
      () => watch.printed.length >= 60,
      { timeoutMs: 60_000 },
    );
    await cluster.kill(watched);
    const second = stockWriter(
      `${cluster.node(leader).url}/kv`,
      token,
      WRITES,
    );
    await second.done();
    const result = await watch.done();
    assert.equal(result.code, 0, result.stderr);
    for (const writer of [first, second]) {
      assert.deepEqual(writer.problems, []);
      assert.equal(writer.acked.size, WRITES);
    }
    const events = watch.printed.map((line) => JSON.parse(line));
    assert.equal(events.length, 2 * WRITES);
    for (const [i, event] of events.entries()) {
      // One writer at a time, in order: event i is write i % WRITES of
      // the first round, then of the second (over the first's value).
      const n = i % WRITES;
      const round = i < WRITES ? first : second;
      assert.equal(event.type, "kv.set");
      assert.deepEqual(event.key, ["stock", n]);
      assert.deepEqual(event.value, { encoding: "v8", value: `value-${n}` });
      assert.equal(event.versionstamp, round.acked.get(n));
      assert.equal(
        event.prevVersionstamp,
        i < WRITES ? null : first.acked.get(n),
      );
      assert.equal(event.id, `${event.revision}.${event.index}`);
      if (i > 0) {
        const before = events[i - 1]!;
        assert.ok(
          before.revision < event.revision ||
            (before.revision === event.revision && before.index < event.index),
          `order at ${i}`,
        );
      }
    }

    // The list, paged by its cursor, holds the same events.
    const listed: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 100; page++) {
      const answer = await client.events.list({
        selector: { prefix: ["stock"] },
        limit: 9,
        ...(after === undefined ? { fromRevision: from } : { after }),
      });
      listed.push(...answer.events.map((e) => e.id));
      after = answer.cursor;
      if (after === undefined) break;
    }
    assert.deepEqual(listed, events.map((e) => e.id));

    // The killed follower back (a quorum without the leader), then kill -9
    // the leader the client's watch reads from: it resumes on the spare
    // node and sees the new leader's announcement.
    await cluster.restart(watched);
    await cluster.kill(leader);
    const term = announced.data!.term as number;
    await waitFor(
      () => `a leader.changed after term ${term}: ${JSON.stringify(leaders)}`,
      () => leaders.some((e) => (e.data!.term as number) > term),
      { timeoutMs: 60_000 },
    );
    const changed = leaders.find((e) => (e.data!.term as number) > term)!;
    assert.equal(changed.data!.previous, announced.data!.leader);
    assert.notEqual(changed.data!.leader, announced.data!.leader);
    const ids = leaders.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `no duplicate: ${ids}`);
    stopLeaders.abort();
    await following;
  });
});

Deno.test("events below a compacted window: the client's watch and list throw CompactedError, the CLI exits 1 'compacted at N'", async () => {
  await withProcessCluster({
    count: 1,
    config: {
      historyKeepMs: 0,
      historyKeepRevisions: 5,
      historyCompactIntervalMs: 200,
    },
  }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const url = cluster.node(0).url;
    const writer = stockWriter(`${url}/kv`, token, 40);
    await writer.done();
    assert.equal(writer.acked.size, 40);
    using client = connect(url, { token });
    await waitFor(
      "the window to be compacted past revision 10",
      async () => (await client.events.status()).compactRevision > 10,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const { compactRevision } = await client.events.status();
    const watching = (async () => {
      for await (const _ of client.events.watch({}, { fromRevision: 1 })) {
        // Nothing arrives: the start is below the window.
      }
    })();
    await assert.rejects(
      watching,
      (error) =>
        error instanceof CompactedError && error.fromRevision === 1 &&
        error.compactRevision >= compactRevision,
    );
    await assert.rejects(
      client.events.list({ fromRevision: 1 }),
      (error) => error instanceof CompactedError && error.status === 410,
    );
    const env = { ASPEN_URL: url, ASPEN_TOKEN: token };
    for (const command of ["watch", "list"]) {
      const refused = await aspen(
        ["events", command, "--from-revision", "1"],
        env,
      );
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(
        refused.stderr,
        /^aspen: Events compacted at \d+: revision 1 is no longer held\n$/,
      );
    }
    const status = JSON.parse(
      (await aspen(["events", "status", "--json"], env)).stdout,
    );
    assert.ok(status.compactRevision >= compactRevision);
    assert.ok(status.headRevision >= status.compactRevision);
    assert.equal(status.streams, 0);
  });
});
