/**
 * Issue 16 end to end: the client module (`mod.ts`) against three real node
 * processes, through a follower. Leases, a lock handed over FIFO with rising
 * tokens, a fenced write refused once its token stopped holding, an
 * election observed across a resign, and a kept-alive lease and its lock
 * surviving a kill -9 of the leader.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AcquireTimeoutError, connect, LeaseNotFoundError } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "coordination-e2e-token-0123456789";

Deno.test("client module against 3 node processes: leases, FIFO locks with fencing, elections, a leader kill -9", async () => {
  await withProcessCluster({
    count: 3,
    env: { ASPEN_TOKENS: TOKEN },
    token: TOKEN,
  }, async (cluster) => {
    const leader = await cluster.waitForLeader(60_000);
    const follower = (leader + 1) % 3;
    const other = (leader + 2) % 3;
    const client = connect(
      [cluster.node(follower).url, cluster.node(other).url],
      { token: TOKEN },
    );
    try {
      // Leases: granted with the TTL raised to 3 election timeouts at least.
      const a = await client.leases.grant(1_000);
      assert.ok(a.ttlMs >= 1_000);
      const ttl = await client.leases.timeToLive(a.id);
      assert.equal(ttl.id, a.id);
      assert.ok(ttl.remainingMs > 0 && ttl.remainingMs <= ttl.ttlMs);
      await assert.rejects(
        () => client.leases.timeToLive("00000000000000ff"),
        LeaseNotFoundError,
      );

      // A lock: the second lease waits, times out, then gets it FIFO with a
      // larger token once the first releases.
      const holder = await client.leases.open({ ttlMs: 10_000 });
      const waiter = await client.leases.open({ ttlMs: 10_000 });
      const first = await client.locks.acquire("e2e", { lease: holder.id });
      await assert.rejects(
        () =>
          client.locks.acquire("e2e", { lease: waiter.id, timeoutMs: 1_500 }),
        AcquireTimeoutError,
      );
      const status = await client.locks.status("e2e");
      assert.deepEqual(status.holders.map((h) => h.token), [first.token]);
      assert.equal(status.waiters.length, 0, "a timed-out waiter is cancelled");
      const pending = client.locks.acquire("e2e", {
        lease: waiter.id,
        timeoutMs: 20_000,
      });
      // Awaited below; handled here so an earlier failure is reported as it.
      pending.catch(() => {});
      await waitFor(
        "the second acquire to queue",
        async () => (await client.locks.status("e2e")).waiters.length === 1,
        { timeoutMs: 20_000, intervalMs: 50 },
      );
      // Fenced writes: the holder's token passes while it holds.
      const fenced = (token: string, value: number) =>
        client.kv.atomic().checkFence("e2e", token).set(["reg"], value)
          .commit();
      assert.equal((await fenced(first.token, 1)).ok, true);
      await first.release();
      const second = await pending;
      assert.ok(second.token > first.token, "tokens rise per name");
      // The released token no longer holds: its write is refused, nothing
      // changes; the new holder's passes.
      assert.equal((await fenced(first.token, 2)).ok, false);
      assert.equal((await client.kv.get(["reg"])).value, 1);
      assert.equal((await fenced(second.token, 3)).ok, true);

      // Elections: observe sees the leader, then the next one after a resign.
      const candidate = await client.leases.open({ ttlMs: 10_000 });
      const elected = await client.elections.campaign("e2e-elect", "one", {
        lease: candidate.id,
      });
      assert.equal((await client.elections.leader("e2e-elect"))?.value, "one");
      const observer = new AbortController();
      const seen: (string | null)[] = [];
      const observing = (async () => {
        for await (
          const event of client.elections.observe("e2e-elect", {
            signal: observer.signal,
          })
        ) {
          seen.push(event.leader?.value ?? null);
          if (seen.length === 2) break;
        }
      })();
      await waitFor("the first observed leader", () => seen.length >= 1, {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      await client.elections.resign("e2e-elect", elected.token);
      await waitFor("the resign observed", () => seen.length >= 2, {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      observer.abort();
      await observing.catch(() => {});
      assert.deepEqual(seen, ["one", null]);

      // A lease kept alive through a kill -9 of the leader survives, and so
      // does the lock it holds.
      await cluster.kill(leader);
      const next = await cluster.waitForLeader(60_000);
      assert.notEqual(next, leader);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      assert.equal(waiter.signal.aborted, false, "the kept lease was not lost");
      const after = await client.locks.status("e2e");
      assert.deepEqual(after.holders.map((h) => h.token), [second.token]);
      await second.release();
      await holder.close();
      await waiter.close();
      await candidate.close();
      await assert.rejects(
        () => client.leases.timeToLive(holder.id),
        LeaseNotFoundError,
        "close() revokes the lease",
      );
    } finally {
      client.close();
    }
  });
});
