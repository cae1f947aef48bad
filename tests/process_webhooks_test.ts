/**
 * Batched webhook delivery over real processes (issue 17): 3 node
 * processes, 2 `aspen worker start` processes, a receiver verifying each
 * request with `standardwebhooks`, 2,000 stock `Deno.openKv` writes (two
 * writers of 1,000, each to a node that is not the leader), the leader
 * killed -9 twice (restarted in between) and a worker killed -9 once. Per
 * hook: every written event arrives at least once; the first arrivals are
 * in `(revision, index)` order (a repeat after a lost answer or a dead
 * worker may re-send earlier events); every request received has its
 * `(event, attempt)` in `hook deliveries`, and no `(event, attempt)` is
 * logged twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import type { AspenClient } from "../src/client/connect.ts";
import { hookWorkerCalls } from "../src/client/hooks.ts";
import type { HookDelivery } from "../src/client/hooks.ts";
import {
  type ProcessCluster,
  withProcessCluster,
} from "./helpers/process_cluster.ts";
import { stockWriter } from "./helpers/stock_writer.ts";
import { waitFor, waitForValue } from "./helpers/wait_for.ts";
import { Receiver, startWorker } from "./helpers/webhook_receiver.ts";

const WAIT = { timeoutMs: 60_000, intervalMs: 50 };
const WRITES_EACH = 1_000;
/** Acknowledged writes of each writer. */
const acked: number[] = [];

async function allDeliveries(
  client: AspenClient,
  hook: string,
): Promise<HookDelivery[]> {
  const out: HookDelivery[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const answer = await client.hooks.deliveries(hook, {
      limit: 1000,
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...answer.deliveries);
    if (answer.cursor === null) break;
    cursor = answer.cursor;
  }
  return out;
}

/** `"R.I"` of a webhook id `<cluster>.<R>.<I>`. */
function eventOf(webhookId: string): string {
  return webhookId.split(".").slice(-2).join(".");
}

function before(a: string, b: string): boolean {
  const [ra, ia] = a.split(".").map(Number);
  const [rb, ib] = b.split(".").map(Number);
  return ra! < rb! || (ra === rb && ia! < ib!);
}

/** Writes `count` stock writes through a node that is not the leader, killing the leader -9 after `killAfter` acknowledged. */
async function writeAcrossLeaderKill(
  cluster: ProcessCluster,
  token: string,
  count: number,
  killAfter: number,
): Promise<number> {
  const leader = await cluster.waitForLeader();
  const entry = (leader + 1) % 3;
  const writer = stockWriter(`${cluster.node(entry).url}/kv`, token, count);
  try {
    await waitFor(
      `${killAfter} acknowledged writes`,
      () => writer.acked.size >= killAfter,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    await cluster.kill(leader);
  } finally {
    await writer.done();
  }
  assert.deepEqual(writer.wrong, []);
  acked.push(writer.acked.size);
  return leader;
}

Deno.test("batched webhook delivery: 2,000 stock writes, the leader killed -9 twice and a worker once; every event arrives, first arrivals in order, each request logged once", async () => {
  const receiver = new Receiver();
  try {
    await withProcessCluster({ count: 3 }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const hooks: { path: string; id: string }[] = [];
      for (const path of ["/a", "/b"]) {
        const created = await client.hooks.create({
          name: `batch${path.slice(1)}`,
          selector: { prefix: ["stock"] },
          types: ["kv.set"],
          target: { webhook: { url: receiver.url(path) } },
        });
        receiver.secrets(path, [created.secret!]);
        hooks.push({ path, id: created.id });
      }
      const env = {
        ASPEN_URL: cluster.urls.join(","),
        ASPEN_ADMIN_TOKEN: admin,
      };
      const workers = ["w-1", "w-2"].map((name) =>
        startWorker(["--name", name, "--allow-targets", "127.0.0.1/32"], env)
      );
      try {
        const first = await writeAcrossLeaderKill(
          cluster,
          token,
          WRITES_EACH,
          300,
        );
        await cluster.restart(first);
        // A worker holding a hook dies -9 mid-delivery: its lease ends,
        // its open batch closes as unknown, the other worker takes over.
        const holder = await waitForValue("a hook's worker", async () => {
          const hook = await client.hooks.get(hooks[0]!.id);
          return hook.worker;
        }, WAIT);
        const victim = holder === "w-2" ? 1 : 0;
        const received = receiver.received.length;
        const second = writeAcrossLeaderKill(
          cluster,
          token,
          WRITES_EACH,
          300,
        );
        await waitFor(
          "deliveries of the second writes",
          () => receiver.received.length > received + 50,
          WAIT,
        );
        await workers[victim]!.kill();
        await second;
        const history = await waitForValue("the writes' events", async () => {
          const events: string[] = [];
          let after: string | undefined;
          for (let page = 0; page < 10; page++) {
            const answer = await hookWorkerCalls(client.hooks).listEvents({
              selector: { prefix: ["stock"] },
              types: ["kv.set"],
              ...(after === undefined ? { fromRevision: 0 } : { after }),
              limit: 1000,
            });
            events.push(...answer.events.map((e) => e.id));
            if (answer.cursor === undefined) break;
            after = answer.cursor;
          }
          // At least every acknowledged write (one that threw may have landed).
          const ackedAll = acked.reduce((a, b) => a + b, 0);
          return events.length >= ackedAll ? events : null;
        }, WAIT);
        const expected = [...new Set(history)].sort();
        for (const { path, id } of hooks) {
          const distinct = () =>
            new Set(receiver.to(path).map((r) => eventOf(r.webhookId)));
          await waitFor(
            () =>
              `${path}: every event (${distinct().size}/${expected.length})`,
            () => {
              const arrived = distinct();
              return expected.every((e) => arrived.has(e));
            },
            { ...WAIT, timeoutMs: 90_000 },
          );
          const requests = receiver.to(path);
          assert.ok(requests.every((r) => r.verified[0] === true), path);
          // First arrivals in order.
          const firsts = [
            ...new Set(requests.map((r) => eventOf(r.webhookId))),
          ];
          for (let k = 1; k < firsts.length; k++) {
            assert.ok(
              before(firsts[k - 1]!, firsts[k]!),
              `${path}: ${firsts[k - 1]} arrived before ${firsts[k]}`,
            );
          }
          const logged = await waitForValue(`${path}: logged`, async () => {
            const log = (await allDeliveries(client, id)).map((d) =>
              `${d.eventId}#${d.attempt}`
            );
            const set = new Set(log);
            const all = requests.every((r) =>
              set.has(`${eventOf(r.webhookId)}#${r.attempt}`)
            );
            return all ? log : null;
          }, WAIT);
          const twice = logged.filter((x, k) => logged.indexOf(x) !== k);
          assert.deepEqual(twice, [], `${path}: logged twice`);
          // Each request received once per (event, attempt).
          const sent = requests.map((r) =>
            `${eventOf(r.webhookId)}#${r.attempt}`
          );
          assert.equal(new Set(sent).size, sent.length, `${path}: sent twice`);
        }
      } finally {
        for (const worker of workers) await worker.stop();
      }
    });
  } finally {
    await receiver.close();
  }
});
