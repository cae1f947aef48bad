/**
 * Three real node processes: writes through a follower survive a kill -9 of
 * the leader, and a restarted node catches up, once through the log and
 * once through a snapshot after the leader compacted its log. Failover time
 * is printed as information, never asserted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import {
  describeOutcomes,
  metric,
  readReplica,
  replicaProblems,
  startWriters,
} from "./helpers/process_kv.ts";

const ACKED_BEFORE_KILL = 100;
const ACKED_AFTER_FAILOVER = 100;

Deno.test("3 node processes: writes through a follower survive kill -9 of the leader; the restarted node catches up via the log", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const follower = (leader + 1) % 3;
    const writers = startWriters({
      urls: [cluster.node(follower).url],
      prefix: "failover",
      concurrency: 4,
      writesMax: 3_000,
      token: await cluster.token(),
    });
    let newLeader: number;
    try {
      await writers.waitForAcked(ACKED_BEFORE_KILL, 20_000);
      const killedAt = Date.now();
      await cluster.kill(leader);
      newLeader = await cluster.waitForLeader(30_000);
      const failoverMs = Date.now() - killedAt;
      const ackedAtNewLeader = writers.acked();
      await writers.waitForAcked(
        ackedAtNewLeader + ACKED_AFTER_FAILOVER,
        30_000,
      );
      console.log(
        `failover: new leader agreed on ${failoverMs} ms after kill -9 (polled every 100 ms)`,
      );
    } finally {
      await writers.stop();
    }
    assert.notEqual(newLeader, leader);
    console.log(`writes: ${describeOutcomes(writers.outcomes)}`);

    const commitIndex = (await cluster.status(newLeader))!.commitIndex;
    for (const survivor of [0, 1, 2].filter((i) => i !== leader)) {
      await cluster.waitForApplied(survivor, commitIndex, 10_000);
      const replica = await readReplica(
        cluster.node(survivor).url,
        "failover",
        await cluster.token(),
      );
      assert.deepEqual(
        replicaProblems("failover", writers.outcomes, replica),
        [],
        `survivor ${survivor}`,
      );
    }

    await cluster.restart(leader);
    const target = (await cluster.status(newLeader))!.commitIndex;
    const caughtUp = await cluster.waitForApplied(leader, target, 30_000);
    const replica = await readReplica(
      cluster.node(leader).url,
      "failover",
      await cluster.token(),
    );
    assert.deepEqual(
      replicaProblems("failover", writers.outcomes, replica),
      [],
      "restarted node",
    );
    // No snapshot came from the leader (nothing was compacted below the
    // default 10,000 entries): the log brought it up to date. (Its
    // snapshotIndex is not 0: a restart describes the durable state as one.)
    assert.ok(caughtUp.appliedIndex >= target);
    assert.equal(
      await metric(
        cluster.node(leader).url,
        "aspen_raft_snapshots_installed_total",
        await cluster.token(),
      ),
      0,
    );
  });
});

Deno.test("3 node processes: a follower stopped while the leader compacts its log catches up via a snapshot", async () => {
  const snapshotEntries = 50;
  await withProcessCluster(
    { count: 3, config: { snapshotEntries } },
    async (cluster) => {
      const leader = await cluster.waitForLeader();
      const stopped = (leader + 1) % 3;
      const other = (leader + 2) % 3;
      using client = connect([cluster.node(leader).url], {
        timeoutMs: 8_000,
        token: await cluster.token(),
      });
      await client.kv.set(["snap", 0], "snap-0");
      const before = await cluster.waitForApplied(
        stopped,
        (await cluster.status(leader))!.commitIndex,
        10_000,
      );
      assert.equal(await cluster.stop(stopped), 0, "graceful stop exits 0");

      const writes = 6 * snapshotEntries;
      const versionstamps = new Map<number, string>();
      for (let n = 1; n <= writes; n++) {
        versionstamps.set(
          n,
          (await client.kv.set(["snap", n], `snap-${n}`)).versionstamp,
        );
      }
      const leaderStatus = (await cluster.status(leader))!;
      assert.ok(
        leaderStatus.snapshotIndex > before.appliedIndex,
        `the leader compacted past the stopped follower: snapshot ${leaderStatus.snapshotIndex}, follower applied ${before.appliedIndex}`,
      );

      await cluster.restart(stopped);
      const caughtUp = await cluster.waitForApplied(
        stopped,
        leaderStatus.commitIndex,
        30_000,
      );
      assert.ok(caughtUp.snapshotIndex > before.appliedIndex);
      const installed = await metric(
        cluster.node(stopped).url,
        "aspen_raft_snapshots_installed_total",
        await cluster.token(),
      );
      assert.ok(
        installed !== null && installed >= 1,
        `the restarted follower installed a snapshot: ${installed}`,
      );
      for (const index of [stopped, other]) {
        const replica = await readReplica(
          cluster.node(index).url,
          "snap",
          await cluster.token(),
        );
        assert.equal(replica.size, writes + 1, `node ${index}`);
        for (const [n, versionstamp] of versionstamps) {
          assert.equal(replica.get(n)?.versionstamp, versionstamp, `${n}`);
          assert.equal(replica.get(n)?.value, `snap-${n}`);
        }
      }
      // And it serves strong reads as a full member again.
      using direct = connect([cluster.node(stopped).url], {
        token: await cluster.token(),
      });
      assert.equal(
        (await direct.kv.get(["snap", writes])).value,
        `snap-${writes}`,
      );
    },
  );
});
