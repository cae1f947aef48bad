/**
 * Issue 12 item 7: three real node processes; a follower is killed -9 and
 * restarted, then the leader is killed -9, three times over (so each node's
 * links have a history of restarts). Each time, both other nodes notice the
 * restarted follower's new connection and drop their dead ones (logged
 * `peerReconnected`) instead of sending into them until the QUIC idle
 * timeout; the election time after the leader's kill is printed, never
 * asserted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

/** `peerReconnected` lines node `index` logged about `peerId`. */
function reconnects(logs: string, index: number, peerId: string): number {
  const sections = logs.split(/^--- node (\d+) /m);
  let count = 0;
  for (let i = 1; i < sections.length; i += 2) {
    if (Number(sections[i]) !== index) continue;
    for (const line of sections[i + 1]!.split("\n")) {
      if (
        line.includes('"code":"peerReconnected"') && line.includes(peerId)
      ) count++;
    }
  }
  return count;
}

Deno.test("3 node processes: a restarted follower's peers drop their dead connections to it at once", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const elections: number[] = [];
    for (let trial = 0; trial < 3; trial++) {
      const leader = await cluster.waitForLeader(60_000);
      const follower = (leader + 1) % 3;
      const other = (leader + 2) % 3;
      const followerId = (await cluster.status(follower))!.nodeId;
      const before = [leader, other].map((i) =>
        reconnects(cluster.logs(), i, followerId)
      );
      await cluster.kill(follower);
      await cluster.restart(follower);
      // Both survivors log the restarted peer's reconnection.
      await waitFor(
        `trial ${trial}: nodes ${leader} and ${other} to notice node ${follower}'s restart`,
        () =>
          [leader, other].every((i, k) =>
            reconnects(cluster.logs(), i, followerId) > before[k]!
          ),
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      await cluster.kill(leader);
      const killedAt = Date.now();
      const next = await cluster.waitForLeader(60_000);
      elections.push(Date.now() - killedAt);
      assert.notEqual(next, leader);
      await cluster.restart(leader);
    }
    console.log(
      `elections after a follower restart and a leader kill -9: ${
        elections.join(", ")
      } ms (polled every 100 ms)`,
    );
  });
});
