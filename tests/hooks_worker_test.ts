/**
 * Webhook delivery end to end (issue 17): real node processes, `aspen
 * worker start` as a real process (allowed 127.0.0.1/32), and a receiver
 * on 127.0.0.1 verifying every request with `standardwebhooks`. Every
 * matching event arrives, in `(revision, index)` order per hook; every
 * request received has its `(event, attempt)` in `hook deliveries` once;
 * 503 then 200 retries, 429 honours `Retry-After`, a receiver past the
 * attempt's timeout is retried, 410 disables (`gone`,
 * with `hook.disabled`), a rotation signs with both secrets, a replay
 * re-delivers with `aspen-replay`, a trigger reaches its hook only; and a
 * worker without the allowance refuses 127.0.0.1 (`blocked`, disabled
 * `targetBlocked`, nothing sent); a worker killed mid-attempt leaves it
 * `unknown` and another worker sends the next attempt number; two workers
 * across a kill -9 of the leader deliver every write; a hook overtaken by
 * compaction receives `hook.gap`, then the window's events.
 *
 * @module
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import type { AspenClient } from "../src/client/connect.ts";
import { hookWorkerCalls } from "../src/client/hooks.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { waitFor, waitForValue } from "./helpers/wait_for.ts";
import { Receiver, startWorker } from "./helpers/webhook_receiver.ts";
import type { HookDelivery } from "../src/client/hooks.ts";

const WAIT = { timeoutMs: 60_000, intervalMs: 50 };

/** Every delivery record of a hook (all pages). */
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

function order(id: string): [number, number] {
  const [r, i] = id.split(".").map(Number);
  return [r!, i!];
}

function nonDecreasing(ids: readonly string[]): boolean {
  for (let k = 1; k < ids.length; k++) {
    const [r0, i0] = order(ids[k - 1]!);
    const [r1, i1] = order(ids[k]!);
    if (r1 < r0 || (r1 === r0 && i1 < i0)) return false;
  }
  return true;
}

Deno.test("a webhook worker delivers every event in order, retries 503, 429 and a timeout, disables on 410, signs with both secrets after a rotation, replays and triggers", async () => {
  const receiver = new Receiver();
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  try {
    await withProcessCluster({ count: 3 }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const create = async (
        name: string,
        path: string,
        prefix: string,
        timeoutMs?: number,
      ) => {
        const created = await client.hooks.create({
          name,
          selector: { prefix: [prefix] },
          types: ["kv.set"],
          target: { webhook: { url: receiver.url(path) } },
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
        });
        assert.ok(created.secret?.startsWith("whsec_"));
        receiver.secrets(path, [created.secret!]);
        return created;
      };
      const all = await create("all", "/all", "stock");
      const flaky = await create("flaky", "/flaky", "flaky");
      const slow = await create("slow", "/slow", "slow");
      const gone = await create("gone", "/gone", "gone");
      const rotated = await create("rotated", "/rotated", "rotated");
      const slowest = await create("slowest", "/slowest", "slowest", 1_000);
      // The first request is answered only at the end: past its 1 s timeout.
      receiver.answer(
        "/slowest",
        async ({ seen }) => {
          if (seen === 1) await held;
          return { status: 200 };
        },
      );
      receiver.answer(
        "/flaky",
        ({ seen }) => ({ status: seen === 1 ? 503 : 200 }),
      );
      receiver.answer(
        "/slow",
        ({ seen }) =>
          seen === 1
            ? { status: 429, headers: { "retry-after": "1" } }
            : { status: 200 },
      );
      receiver.answer("/gone", () => ({ status: 410 }));

      const worker = startWorker(
        ["--name", "w-test", "--allow-targets", "127.0.0.1/32"],
        { ASPEN_URL: cluster.urls.join(","), ASPEN_ADMIN_TOKEN: admin },
      );
      try {
        const writes = 40;
        for (let n = 0; n < writes; n++) {
          await client.kv.set(["stock", n], `v${n}`);
        }
        await client.kv.set(["flaky", 1], "a");
        await client.kv.set(["flaky", 2], "b");
        await client.kv.set(["slow", 1], "a");
        await client.kv.set(["gone", 1], "a");
        await client.kv.set(["gone", 2], "b");
        await client.kv.set(["slowest", 1], "a");

        // Every stock write arrives, verified, in (revision, index) order.
        await waitFor(
          () => `${writes} stock events (got ${receiver.to("/all").length})`,
          () => receiver.to("/all").length >= writes,
          WAIT,
        );
        const history = await hookWorkerCalls(client.hooks).listEvents({
          selector: { prefix: ["stock"] },
          types: ["kv.set"],
          fromRevision: 0,
          limit: 1000,
        });
        const expected = history.events.map((e) => e.id);
        assert.equal(expected.length, writes);
        const arrived = receiver.to("/all").map((r) => eventOf(r.webhookId));
        assert.deepEqual([...new Set(arrived)].sort(), [...expected].sort());
        assert.ok(nonDecreasing(arrived), arrived.join(" "));
        for (const r of receiver.to("/all")) {
          assert.deepEqual(r.verified, [true]);
          assert.equal(r.body.id, eventOf(r.webhookId));
          assert.equal(r.body.type, "kv.set");
        }

        // 503 then 200: two attempts each, both recorded.
        await waitFor("flaky events delivered", async () => {
          const hook = await client.hooks.get("flaky");
          return hook.deliveries.ok === 2;
        }, WAIT);
        const flakyLog = await allDeliveries(client, flaky.id);
        assert.deepEqual(
          flakyLog.map((d) => `${d.attempt}:${d.outcome}:${d.status}`).sort(),
          ["1:failed:503", "1:failed:503", "2:ok:200", "2:ok:200"],
        );

        // 429 with Retry-After: 1 s: the retry is due at least 1 s later.
        await waitFor("slow event delivered", async () => {
          const hook = await client.hooks.get("slow");
          return hook.deliveries.ok === 1;
        }, WAIT);
        const slowLog = await allDeliveries(client, slow.id);
        const throttled = slowLog.find((d) => d.status === 429);
        assert.ok(throttled !== undefined);
        assert.ok(throttled.nextAttemptAtMs !== null);
        assert.ok(
          throttled.nextAttemptAtMs >= throttled.startedAtMs + 1000,
          JSON.stringify(throttled),
        );

        // 410 disables the hook (gone); the second event is not sent.
        const goneHook = await waitForValue("gone hook disabled", async () => {
          const hook = await client.hooks.get("gone");
          return hook.state === "disabled" ? hook : null;
        }, WAIT);
        assert.equal(goneHook.disabledReason, "gone");
        assert.equal(receiver.to("/gone").length, 1);
        const disabledEvents = await hookWorkerCalls(client.hooks).listEvents({
          types: ["hook.disabled"],
          fromRevision: 0,
          limit: 1000,
        });
        assert.ok(
          disabledEvents.events.some((e) =>
            e.data?.hook === gone.id && e.data?.reason === "gone"
          ),
        );

        // A receiver past the attempt's timeout: timeout, then a retry.
        await waitFor("slowest event delivered", async () => {
          const hook = await client.hooks.get("slowest");
          return hook.deliveries.ok === 1;
        }, WAIT);
        assert.deepEqual(
          (await allDeliveries(client, slowest.id)).map((d) =>
            `${d.attempt}:${d.outcome}:${d.status}`
          ).reverse(),
          ["1:timeout:null", "2:ok:200"],
        );
        assert.deepEqual(
          receiver.arrived.filter((r) => r.path === "/slowest").map((r) =>
            r.attempt
          ),
          [1, 2],
        );

        // Rotation: the worker picks the new secret up at its next claim
        // (within a second); from then on each request verifies with the
        // new and the old secret, and every one with the old.
        const rotation = await client.hooks.rotateSecret("rotated");
        receiver.secrets("/rotated", [rotation.secret!, rotated.secret!]);
        let n = 0;
        await waitFor("a request signed with both secrets", async () => {
          await client.kv.set(["rotated", n++], "a");
          await waitFor(
            "rotated event",
            () => receiver.to("/rotated").length >= n,
            WAIT,
          );
          return receiver.to("/rotated").some((r) =>
            r.verified.every((ok) => ok)
          );
        }, { ...WAIT, intervalMs: 200 });
        assert.ok(receiver.to("/rotated").every((r) => r.verified[1] === true));
        const both = receiver.to("/rotated").findIndex((r) =>
          r.verified[0] === true
        );
        assert.ok(
          receiver.to("/rotated").slice(both).every((r) =>
            r.verified[0] === true
          ),
        );

        // Replay: the stock events again, with aspen-replay, in order.
        const first = order(expected[0]!)[0];
        const last = order(expected[expected.length - 1]!)[0];
        await client.hooks.replay("all", first, last);
        await waitFor(
          () =>
            `replayed events (got ${
              receiver.to("/all").filter((r) => r.replay !== null).length
            })`,
          () =>
            receiver.to("/all").filter((r) => r.replay !== null).length >=
              writes,
          WAIT,
        );
        const replayed = receiver.to("/all").filter((r) => r.replay !== null)
          .map((r) => eventOf(r.webhookId));
        assert.deepEqual(replayed, expected);
        // The same range again, once the first replay is done (the worker
        // says so: a replay asked for before its replay-done would be
        // dropped by it): a new replay.
        await waitFor(
          "the first replay done",
          () =>
            worker.lines.some((l) =>
              l.includes(`(${all.id}) replay to revision ${last} done`)
            ),
          WAIT,
        );
        await client.hooks.replay("all", first, first);
        const again = expected.filter((id) => order(id)[0] === first);
        await waitFor(
          "the second replay",
          () =>
            receiver.to("/all").filter((r) => r.replay !== null).length >=
              writes + again.length,
          WAIT,
        );
        assert.deepEqual(
          receiver.to("/all").filter((r) => r.replay !== null).slice(writes)
            .map((r) => eventOf(r.webhookId)),
          again,
        );

        // Trigger: hook.test to that hook only.
        await client.hooks.trigger("flaky", { note: "hello" });
        await waitFor(
          "hook.test",
          () => receiver.to("/flaky").some((r) => r.body.type === "hook.test"),
          WAIT,
        );
        const test = receiver.to("/flaky").find((r) =>
          r.body.type === "hook.test"
        )!;
        assert.equal(
          (test.body.data as Record<string, unknown>).note,
          "hello",
        );
        assert.ok(
          !receiver.to("/all").some((r) => r.body.type === "hook.test"),
        );

        // Every request received has its (event, attempt) logged (once its
        // finish commits, just after the receiver answered): each delivery
        // once, and each replay request as many times as it was received
        // (the range was replayed twice).
        const hooks = [
          ["/all", all.id],
          ["/flaky", flaky.id],
          ["/slow", slow.id],
          ["/gone", gone.id],
          ["/rotated", rotated.id],
        ] as const;
        const counts = (keys: readonly string[]) => {
          const out = new Map<string, number>();
          for (const key of keys) out.set(key, (out.get(key) ?? 0) + 1);
          return [...out].sort();
        };
        for (const [path, id] of hooks) {
          const received = () =>
            receiver.to(path).map((r) =>
              `${eventOf(r.webhookId)}#${r.attempt}#${r.replay !== null}`
            );
          const logged = await waitForValue(
            `${path}: every request logged`,
            async () => {
              const log = (await allDeliveries(client, id)).map((d) =>
                `${d.eventId}#${d.attempt}#${d.replay}`
              );
              return received().every((key) => log.includes(key)) ? log : null;
            },
            WAIT,
          );
          const main = logged.filter((key) => key.endsWith("#false"));
          assert.equal(new Set(main).size, main.length, `${path}: twice`);
          assert.deepEqual(counts(logged), counts(received()), path);
        }
        const hook = await client.hooks.get("all");
        assert.equal(hook.worker, "w-test");
        assert.equal(hook.cursor, expected[expected.length - 1]);
      } finally {
        assert.equal(await worker.stop(), 0, worker.lines.join("\n"));
      }
      // One line per attempt, no secret in any line.
      const lines = worker.lines.filter((l) => l.includes(" delivery "));
      assert.ok(lines.length >= 40 + 4 + 2 + 1 + 2 + 1 + 40 + 1 + 1);
      for (const secret of [all.secret!, rotated.secret!]) {
        const key = secret.slice("whsec_".length);
        assert.ok(!worker.lines.some((l) => l.includes(key)));
      }
      // Stopped: the lease is revoked, so no worker holds the hooks.
      await waitFor("claims released", async () => {
        const hooks = await client.hooks.list();
        return hooks.every((h) => h.worker === null);
      }, WAIT);
    });
  } finally {
    release();
    await receiver.close();
  }
});

Deno.test("a webhook worker without an allowance refuses 127.0.0.1: blocked, disabled targetBlocked, nothing sent", async () => {
  const receiver = new Receiver();
  try {
    await withProcessCluster({ count: 1 }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const created = await client.hooks.create({
        name: "local",
        selector: { prefix: ["x"] },
        target: { webhook: { url: receiver.url("/local") } },
      });
      const worker = startWorker(["--name", "w-strict"], {
        ASPEN_URL: cluster.urls.join(","),
        ASPEN_ADMIN_TOKEN: admin,
      });
      try {
        await client.kv.set(["x", 1], "a");
        const hook = await waitForValue("hook disabled", async () => {
          const hook = await client.hooks.get("local");
          return hook.state === "disabled" ? hook : null;
        }, WAIT);
        assert.equal(hook.disabledReason, "targetBlocked");
        const log = await allDeliveries(client, created.id);
        assert.equal(log.length, 1);
        assert.equal(log[0]!.outcome, "blocked");
        assert.equal(log[0]!.status, null);
        assert.equal(receiver.received.length, 0);
      } finally {
        assert.equal(await worker.stop(), 0, worker.lines.join("\n"));
      }
      assert.ok(
        worker.lines.some((l) =>
          l.includes("outcome=blocked") && l.includes("disabled=targetBlocked")
        ),
        worker.lines.join("\n"),
      );
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("a worker killed mid-attempt: the attempt is logged unknown, another worker sends the next attempt, no (event, attempt) twice", async () => {
  const receiver = new Receiver();
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  try {
    await withProcessCluster({ count: 1 }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const created = await client.hooks.create({
        name: "crash",
        selector: { prefix: ["crash"] },
        types: ["kv.set"],
        target: { webhook: { url: receiver.url("/crash") } },
      });
      receiver.secrets("/crash", [created.secret!]);
      // The first request is never answered: its worker dies holding it.
      let requests = 0;
      receiver.answer("/crash", async () => {
        if (++requests === 1) await held;
        return { status: 200 };
      });
      const env = {
        ASPEN_URL: cluster.urls.join(","),
        ASPEN_ADMIN_TOKEN: admin,
      };
      const workers = new Map([
        [
          "w-a",
          startWorker(
            ["--name", "w-a", "--allow-targets", "127.0.0.1/32"],
            env,
          ),
        ],
        [
          "w-b",
          startWorker(
            ["--name", "w-b", "--allow-targets", "127.0.0.1/32"],
            env,
          ),
        ],
      ]);
      try {
        await client.kv.set(["crash", 1], "a");
        await waitFor(
          "the first request",
          () => receiver.arrived.length >= 1,
          WAIT,
        );
        const holder = (await client.hooks.get("crash")).worker!;
        const survivor = holder === "w-a" ? "w-b" : "w-a";
        await workers.get(holder)!.kill();
        await waitFor("the event delivered by the survivor", async () => {
          const hook = await client.hooks.get("crash");
          return hook.deliveries.ok === 1;
        }, WAIT);
        await client.kv.set(["crash", 2], "b");
        await waitFor("the second event", async () => {
          const hook = await client.hooks.get("crash");
          return hook.deliveries.ok === 2;
        }, WAIT);
        const log = (await allDeliveries(client, created.id)).reverse();
        const [first, second] = receiver.arrived.map((r) =>
          eventOf(r.webhookId)
        );
        assert.deepEqual(
          log.map((d) => `${d.eventId}#${d.attempt}:${d.outcome}:${d.worker}`),
          [
            `${first}#1:unknown:${holder}`,
            `${first}#2:ok:${survivor}`,
            `${
              receiver.arrived[2] === undefined
                ? second
                : eventOf(receiver.arrived[2].webhookId)
            }#1:ok:${survivor}`,
          ],
        );
        assert.deepEqual(
          receiver.arrived.map((r) => r.attempt),
          [1, 2, 1],
        );
        assert.ok(receiver.arrived.every((r) => r.verified[0] === true));
      } finally {
        release();
        for (const worker of workers.values()) await worker.stop();
      }
    });
  } finally {
    release();
    await receiver.close();
  }
});

Deno.test("two webhook workers across a kill -9 of the leader: every write arrives, in order per hook, each (event, attempt) logged once", async () => {
  const receiver = new Receiver();
  try {
    await withProcessCluster({ count: 3 }, async (cluster) => {
      const leader = await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const paths = ["/one", "/two", "/three"];
      const hooks = [];
      for (const [n, path] of paths.entries()) {
        const created = await client.hooks.create({
          name: `h${n}`,
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
        const writes = 150;
        for (let n = 0; n < writes; n++) {
          if (n === 50) await cluster.kill(leader);
          await client.kv.set(["stock", n], n);
        }
        const history = await waitForValue("the writes' events", async () => {
          const page = await hookWorkerCalls(client.hooks).listEvents({
            selector: { prefix: ["stock"] },
            types: ["kv.set"],
            fromRevision: 0,
            limit: 1000,
          });
          return page.events.length === writes ? page : null;
        }, WAIT);
        const expected = history.events.map((e) => e.id).sort();
        for (const { path, id } of hooks) {
          await waitFor(
            () =>
              `${path}: every event (got ${
                new Set(receiver.to(path).map((r) => r.webhookId)).size
              })`,
            () =>
              new Set(receiver.to(path).map((r) => r.webhookId)).size >=
                writes,
            { ...WAIT, timeoutMs: 120_000 },
          );
          const arrived = receiver.to(path).map((r) => eventOf(r.webhookId));
          assert.deepEqual([...new Set(arrived)].sort(), expected, path);
          // First arrivals in order (a retry may repeat an earlier one).
          const first = [...new Set(arrived)];
          assert.ok(nonDecreasing(first), `${path}: ${first.join(" ")}`);
          assert.ok(receiver.to(path).every((r) => r.verified[0] === true));
          const logged = await waitForValue(`${path}: logged`, async () => {
            const log = (await allDeliveries(client, id)).map((d) =>
              `${d.eventId}#${d.attempt}`
            );
            const all = receiver.to(path).every((r) =>
              log.includes(`${eventOf(r.webhookId)}#${r.attempt}`)
            );
            return all ? log : null;
          }, WAIT);
          assert.equal(new Set(logged).size, logged.length, `${path}: twice`);
        }
      } finally {
        for (const worker of workers) await worker.stop();
      }
    });
  } finally {
    await receiver.close();
  }
});

Deno.test("a hook overtaken by compaction receives hook.gap, then the events from the window's start", async () => {
  const receiver = new Receiver();
  try {
    await withProcessCluster({
      count: 1,
      config: {
        historyKeepMs: 0,
        historyKeepRevisions: 5,
        historyCompactIntervalMs: 200,
        historyBytesMax: 64 * 1024,
      },
    }, async (cluster) => {
      await cluster.waitForLeader();
      const token = await cluster.token();
      const admin = await cluster.adminToken();
      using client = connect(cluster.urls, { token });
      const created = await client.hooks.create({
        name: "behind",
        selector: { prefix: ["big"] },
        types: ["kv.set"],
        target: { webhook: { url: receiver.url("/behind") } },
      });
      receiver.secrets("/behind", [created.secret!]);
      // No worker yet: the byte cap compacts past the hook's cursor.
      const value = "x".repeat(4_096);
      for (let n = 0; n < 40; n++) await client.kv.set(["big", n], value);
      const moved = await waitForValue(
        "the cursor moved by compaction",
        async () => {
          const hook = await client.hooks.get("behind");
          return hook.fromRevision > created.fromRevision ? hook : null;
        },
        WAIT,
      );
      const worker = startWorker(
        ["--name", "w-gap", "--allow-targets", "127.0.0.1/32"],
        { ASPEN_URL: cluster.urls.join(","), ASPEN_ADMIN_TOKEN: admin },
      );
      try {
        await client.kv.set(["big", "last"], "y");
        await waitFor(
          "the last write",
          () =>
            receiver.to("/behind").some((r) =>
              JSON.stringify(r.body.key) === JSON.stringify(["big", "last"])
            ),
          WAIT,
        );
        const bodies = receiver.to("/behind").map((r) => r.body);
        const gaps = bodies.filter((b) => b.type === "hook.gap");
        assert.ok(gaps.length >= 1, JSON.stringify(bodies.map((b) => b.type)));
        const gap = gaps[0]!.data as Record<string, number | string>;
        assert.equal(gap.hook, created.id);
        // Under load several compactions may pass the cursor while the
        // writes run, and an early hook.gap event may itself be compacted
        // before the worker starts: the first one delivered starts at or
        // after the hook's original cursor, each gap spans its revisions forwards.
        assert.ok(
          (gap.fromRevision as number) >= created.fromRevision,
          JSON.stringify(gap),
        );
        for (const g of gaps) {
          const data = g.data as Record<string, number>;
          assert.ok(
            data.toRevision! >= data.fromRevision!,
            JSON.stringify(data),
          );
        }
        // Nothing from below the window is delivered.
        for (const body of bodies) {
          if (body.type === "kv.set") {
            assert.ok(
              (body.revision as number) >= moved.fromRevision,
              JSON.stringify(body).slice(0, 200),
            );
          }
        }
        const ids = bodies.map((b) => b.id as string);
        assert.ok(nonDecreasing([...new Set(ids)]), ids.join(" "));
      } finally {
        assert.equal(await worker.stop(), 0, worker.lines.join("\n"));
      }
    });
  } finally {
    await receiver.close();
  }
});
