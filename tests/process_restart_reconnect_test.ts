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

Deno.test("3 node processes: a restarted follower's peers drop their dead connections to it at once", async () => {
  // The QUIC idle timeout is raised (10 s → 30 s) so that the survivors'
  // connections to the killed follower are still open (dead) when it comes
  // back on a loaded machine: the test is about dropping them at the new
  // connection, not about the idle timeout closing them first. Not longer:
  // with 120 s a restarted node once stayed unheard by the leader until the
  // idle timeout (a link reset missed after a failed probe; see the issue-16
  // closing note), and the election wait below is 60 s.
  const config = { quicIdleTimeoutMs: 30_000 };
  await withProcessCluster({ count: 3, config }, async (cluster) => {
    const elections: number[] = [];
    for (let trial = 0; trial < 3; trial++) {
      const leader = await cluster.waitForLeader(60_000);
      const follower = (leader + 1) % 3;
      const other = (leader + 2) % 3;
      const followerId = (await cluster.status(follower))!.nodeId;
      // `peerReconnected` lines about the follower, counted over each
      // survivor's whole output from now on.
      const reconnects = [leader, other].map((i) =>
        cluster.countLines(
          i,
          (line) =>
            line.includes('"code":"peerReconnected"') &&
            line.includes(followerId),
        )
      );
      await cluster.kill(follower);
      const killedAt = Date.now();
      await cluster.restart(follower);
      const restartMs = Date.now() - killedAt;
      // Both survivors log the restarted peer's reconnection.
      await waitFor(
        `trial ${trial}: nodes ${leader} and ${other} to notice node ${follower}'s restart (it took ${restartMs} ms)`,
        () => reconnects.every((count) => count() > 0),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      await cluster.kill(leader);
      const leaderKilledAt = Date.now();
      const next = await cluster.waitForLeader(60_000);
      elections.push(Date.now() - leaderKilledAt);
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
