/**
 * The atomic step (issue 18) through the client module against real node
 * processes: `kv.atomic().set(…).publish(…).ack(message).commit()` commits
 * a KV write, a publish and a consumer's ack in one entry; an ack of a
 * message already finished refuses the whole operation
 * (`MessageFinishedError`) and changes nothing; with the leader killed
 * mid-stream the consume-transform-produce loop still yields exactly one
 * output per input.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect, MessageFinishedError } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";

Deno.test("kv.atomic() sets a key, publishes and acks in one entry; a finished message's ack refuses it all", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const client = connect(cluster.urls, { token: await cluster.token() });
    try {
      await client.pubsub.createTopic("in");
      await client.pubsub.createTopic("out");
      await client.pubsub.publishBatch("in", [{ value: 1 }, { value: 2 }]);
      const consumer = await client.pubsub.consumer("in", "transform");
      const [first, second] = await consumer.fetch(2, 5_000);
      assert.ok(first !== undefined && second !== undefined);
      const ok = await client.kv.atomic()
        .set(["seen", first.offset], first.value)
        .publish("out", (first.value as number) * 10, {
          headers: { from: `in/${first.partition}/${first.offset}` },
        })
        .ack(first)
        .commit();
      assert.equal(ok.ok, true);
      assert.equal((await client.kv.get(["seen", first.offset])).value, 1);
      // The same step again: its ack finds the message finished, so the
      // set and the publish do not apply either.
      await assert.rejects(
        client.kv.atomic()
          .set(["seen", first.offset], "twice")
          .publish("out", "twice")
          .ack(first)
          .commit(),
        MessageFinishedError,
      );
      assert.equal((await client.kv.get(["seen", first.offset])).value, 1);
      const out = await client.pubsub.describeTopic("out");
      assert.equal(out.partitions[0]!.nextOffset, 1);
      const group = await client.pubsub.groups.describe("in", "transform");
      assert.equal(group.partitions[0]!.cursor, 1);
      assert.equal(group.partitions[0]!.pending, 1);
      await second.ack();
      await consumer.close();
    } finally {
      client.close();
    }
  });
});

Deno.test("consume-transform-produce through kv.atomic() across a leader kill yields one output per input", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    await cluster.waitForLeader();
    const client = connect(cluster.urls, {
      token: await cluster.token(),
      timeoutMs: 20_000,
    });
    const inputs = 60;
    try {
      await client.pubsub.createTopic("src", { partitions: 2 });
      await client.pubsub.createTopic("dst");
      await client.pubsub.publishBatch(
        "src",
        Array.from({ length: inputs }, (_, i) => ({ value: i, key: `k${i}` })),
      );
      const consumer = await client.pubsub.consumer("src", "t", {
        ackDeadlineMs: 5_000,
      });
      let killed = false;
      let processed = 0;
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const group = await client.pubsub.groups.describe("src", "t");
        if (group.partitions.every((p) => p.lag === 0)) break;
        let batch;
        try {
          batch = await consumer.fetch(5, 1_000);
        } catch {
          continue; // a fetch in a failover: ask again
        }
        for (const message of batch) {
          if (!killed && processed === inputs / 3) {
            killed = true;
            await cluster.kill(await cluster.waitForLeader());
          }
          try {
            await client.kv.atomic()
              .set(["out", message.value as number], true)
              .publish("dst", message.value, {
                headers: { from: `${message.partition}/${message.offset}` },
              })
              .ack(message)
              .commit();
            processed++;
          } catch (error) {
            // Finished already (a retried step that had applied) or fenced
            // or timed out: the message comes back or is done; never twice.
            if (!(error instanceof MessageFinishedError)) continue;
          }
        }
      }
      assert.ok(killed, "the leader was killed mid-run");
      const dst = await client.pubsub.describeTopic("dst");
      assert.equal(dst.partitions[0]!.nextOffset, inputs);
      // Every input has exactly one output record.
      const reader = await client.pubsub.consumer("dst", "check");
      const seen = new Map<number, number>();
      const until = Date.now() + 60_000;
      while (
        [...seen.values()].reduce((a, b) => a + b, 0) < inputs &&
        Date.now() < until
      ) {
        for (const message of await reader.fetch(100, 1_000)) {
          const value = message.value as number;
          seen.set(value, (seen.get(value) ?? 0) + 1);
          await message.ack();
        }
      }
      assert.equal(seen.size, inputs);
      assert.ok([...seen.values()].every((n) => n === 1));
      await reader.close();
      await consumer.close();
    } finally {
      client.close();
    }
  });
});
