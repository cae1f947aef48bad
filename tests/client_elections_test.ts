import assert from "node:assert/strict";
import {
  AcquireTimeoutError,
  type AspenClient,
  connect,
  type ElectionObservation,
  NotHolderError,
} from "../mod.ts";
import {
  type FakeCoordinationServer,
  startFakeCoordinationServer,
} from "./helpers/fake_coordination_server.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "test-token";

async function withServer(
  fn: (
    server: FakeCoordinationServer,
    open: (urls?: string[]) => AspenClient,
  ) => Promise<void>,
  listeners = 1,
): Promise<void> {
  const server = startFakeCoordinationServer({ token: TOKEN, listeners });
  const clients: AspenClient[] = [];
  const open = (urls: string[] = server.urls) => {
    const client = connect(urls, { token: TOKEN, timeoutMs: 4000 });
    clients.push(client);
    return client;
  };
  try {
    await fn(server, open);
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
    await server.close();
  }
}

/** Collects observations in the background until `count` arrived or the signal aborts. */
function collect(
  client: AspenClient,
  name: string,
  signal: AbortSignal,
): { seen: ElectionObservation[]; done: Promise<void> } {
  const seen: ElectionObservation[] = [];
  const done = (async () => {
    for await (
      const observation of client.elections.observe(name, { signal })
    ) {
      seen.push(observation);
    }
  })();
  return { seen, done };
}

Deno.test("elections: campaign elects, the next waits; proclaim, leader and resign hand over in order", async () => {
  await withServer(async (_server, open) => {
    const [a, b] = [open(), open()];
    assert.equal(await a.elections.leader("chief"), null);
    const first = await a.elections.campaign("chief", "node-a");
    assert.equal(first.value, "node-a");
    assert.match(first.token, /^[0-9a-f]{20}$/);
    const waiting = b.elections.campaign("chief", "node-b");
    await waitFor(
      "b queued",
      async () => (await a.locks.status("chief")).waiters.length === 1,
    );
    const proclaimed = await a.elections.proclaim(
      "chief",
      first.token,
      "node-a2",
    );
    assert.equal(proclaimed.value, "node-a2");
    assert.equal(proclaimed.token, first.token);
    assert.deepEqual(await b.elections.leader("chief"), proclaimed);
    await first.resign();
    const second = await waiting;
    assert.equal(second.value, "node-b");
    assert.ok(second.token > first.token);
    assert.equal((await a.elections.leader("chief"))?.value, "node-b");
    await assert.rejects(
      a.elections.proclaim("chief", first.token, "stale"),
      (error) => error instanceof NotHolderError && error.status === 409,
    );
    await assert.rejects(
      a.elections.resign("chief", first.token),
      NotHolderError,
    );
  });
});

Deno.test("elections.campaign() times out with AcquireTimeoutError and leaves the queue", async () => {
  await withServer(async (_server, open) => {
    const [a, b] = [open(), open()];
    const leader = await a.elections.campaign("slow", "a");
    await assert.rejects(
      b.elections.campaign("slow", "b", { timeoutMs: 200 }),
      (error) =>
        error instanceof AcquireTimeoutError &&
        error.message === "lock slow not acquired within 200 ms",
    );
    assert.deepEqual((await a.locks.status("slow")).waiters, []);
    await leader.resign();
    assert.equal(await a.elections.leader("slow"), null);
  });
});

Deno.test("elections: values over 64 KiB and bad names are refused before sending", async () => {
  await withServer(async (server, open) => {
    const client = open();
    await assert.rejects(
      client.elections.campaign("v", "x".repeat(64 * 1024 + 1)),
      RangeError,
    );
    await assert.rejects(client.elections.leader(""), RangeError);
    await assert.rejects(
      client.elections.proclaim("v", "bad", "x"),
      TypeError,
    );
    assert.throws(() => client.elections.observe("a\u0000b"), TypeError);
    assert.deepEqual(server.paths("/v1/elections"), []);
  });
});

Deno.test("elections.observe() yields the current leader, then each change in revision order", async () => {
  await withServer(async (_server, open) => {
    const [a, b, watcher] = [open(), open(), open()];
    const first = await a.elections.campaign("watched", "a");
    const controller = new AbortController();
    const { seen, done } = collect(watcher, "watched", controller.signal);
    await waitFor("the current leader", () => seen.length === 1);
    assert.equal(seen[0]!.leader?.value, "a");
    const next = b.elections.campaign("watched", "b");
    await a.elections.proclaim("watched", first.token, "a2");
    await first.resign();
    const second = await next;
    await second.resign();
    await waitFor(
      () => `4 changes, seen ${JSON.stringify(seen)}`,
      () => seen.length === 4,
    );
    assert.deepEqual(seen.map((o) => o.leader?.value ?? null), [
      "a",
      "a2",
      "b",
      null,
    ]);
    const revisions = seen.map((o) => o.revision);
    assert.deepEqual(revisions, [...revisions].sort((x, y) => x - y));
    assert.equal(new Set(revisions).size, revisions.length);
    controller.abort();
    await done;
  });
});

Deno.test("elections.observe() resumes a dropped stream on the next node with Last-Event-ID, without repeats", async () => {
  await withServer(async (server, open) => {
    const [a, watcher] = [open(), open()];
    const first = await a.elections.campaign("resumed", "a");
    const controller = new AbortController();
    const { seen, done } = collect(watcher, "resumed", controller.signal);
    await waitFor("the current leader", () => seen.length === 1);
    server.dropObservers();
    // A change while no stream is open, then one after it reconnected.
    await a.elections.proclaim("resumed", first.token, "a2");
    await waitFor(
      "the reconnect",
      () => server.observeConnections.length === 2,
      10_000,
    );
    await a.elections.proclaim("resumed", first.token, "a3");
    await waitFor(
      () => `3 observations, seen ${JSON.stringify(seen)}`,
      () => seen.length === 3,
    );
    assert.deepEqual(seen.map((o) => o.leader?.value), ["a", "a2", "a3"]);
    const [firstConnection, second] = server.observeConnections;
    assert.equal(firstConnection!.lastEventId, null);
    assert.equal(second!.lastEventId, String(seen[0]!.revision));
    // The next node.
    assert.notEqual(second!.url, firstConnection!.url);
    controller.abort();
    await done;
    await first.resign();
  }, 2);
});

Deno.test("elections.observe() ends when the client closes", async () => {
  await withServer(async (_server, open) => {
    const watcher = open();
    const { seen, done } = collect(
      watcher,
      "closing",
      new AbortController().signal,
    );
    await waitFor("the first observation", () => seen.length === 1);
    assert.equal(seen[0]!.leader, null);
    watcher.close();
    await done;
  });
});
