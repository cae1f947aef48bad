/**
 * One real node process: writes through the client module survive a
 * graceful stop and a restart on the same folder.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";

const KEY_COUNT = 1_000;
/** Writes in flight at once. */
const CONCURRENCY = 16;

Deno.test("node process keeps 1,000 keys written through the client across SIGTERM and restart", async () => {
  await withProcessCluster({ count: 1 }, async (cluster) => {
    const url = cluster.node(0).url;
    const versionstamps = new Map<number, string>();
    {
      using client = connect(url, { token: await cluster.token() });
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (let i = next++; i < KEY_COUNT; i = next++) {
            const result = await client.kv.set(["item", i], `value ${i}`);
            versionstamps.set(i, result.versionstamp);
          }
        }),
      );
    }
    assert.equal(versionstamps.size, KEY_COUNT);

    assert.equal(await cluster.stop(0), 0, "graceful stop exits 0");
    await cluster.restart(0);
    await cluster.waitForLeader(10_000);

    using client = connect(url, { token: await cluster.token() });
    const seen = new Map<number, { value: unknown; versionstamp: string }>();
    for await (
      const entry of client.kv.list<string>({ prefix: ["item"] }, {
        batchSize: 500,
      })
    ) {
      seen.set(entry.key[1] as number, entry);
    }
    assert.equal(seen.size, KEY_COUNT, "every key is listed after the restart");
    for (let i = 0; i < KEY_COUNT; i++) {
      const entry = seen.get(i);
      assert.equal(entry?.value, `value ${i}`, `key ${i}`);
      assert.equal(entry?.versionstamp, versionstamps.get(i), `key ${i}`);
    }
    // A point read goes through the same restarted state machine.
    const last = await client.kv.get<string>(["item", KEY_COUNT - 1]);
    assert.equal(last.value, `value ${KEY_COUNT - 1}`);
  });
});
