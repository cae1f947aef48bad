/**
 * `client.events` against the fake events server
 * (`tests/helpers/fake_events_server.ts`): decoding, resuming a dropped
 * watch with `Last-Event-ID` on the next node with no gap and no duplicate,
 * `CompactedError` from a 410 and from a `compacted` frame, selectors and
 * options refused before anything is sent, list and status.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AspenClient,
  type AspenEvent,
  AuthError,
  CompactedError,
  connect,
  type EventsWatchFrame,
  KvU64,
} from "../../mod.ts";
import {
  type FakeEventsServer,
  startFakeEventsServer,
} from "../../tests/helpers/fake_events_server.ts";
import { deadUrl } from "../../tests/helpers/cli_run.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";
import type { EventsWatchOptions } from "./events.ts";

const TOKEN = "events-token";

async function withServer(
  fn: (
    server: FakeEventsServer,
    open: (urls?: readonly string[], token?: string) => AspenClient,
  ) => Promise<void>,
  listeners = 1,
): Promise<void> {
  const server = startFakeEventsServer({ token: TOKEN, listeners });
  const clients: AspenClient[] = [];
  const open = (urls: readonly string[] = server.urls, token = TOKEN) => {
    const client = connect([...urls], { token, timeoutMs: 4000 });
    clients.push(client);
    return client;
  };
  try {
    await fn(server, open);
  } finally {
    for (const client of clients) client.close();
    await server.close();
  }
}

/** Collects a watch's frames in the background until it ends. */
function collect(
  client: AspenClient,
  selector: Parameters<AspenClient["events"]["watch"]>[0],
  options: EventsWatchOptions,
): {
  frames: EventsWatchFrame[];
  events: () => AspenEvent[];
  done: Promise<unknown>;
} {
  const frames: EventsWatchFrame[] = [];
  const done = (async () => {
    for await (const frame of client.events.watch(selector, options)) {
      frames.push(frame);
    }
  })().then(() => null, (error) => error);
  const events = () =>
    frames.flatMap((frame) => frame.kind === "event" ? [frame.event] : []);
  return { frames, events, done };
}

Deno.test("events.watch() yields decoded events in order after a synced mark", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["other"], "skipped");
    const stop = new AbortController();
    const { frames, events, done } = collect(client, { prefix: ["orders"] }, {
      signal: stop.signal,
    });
    await waitFor("the synced mark", () => frames.length === 1);
    assert.equal(frames[0]!.kind, "synced");
    server.set(["orders", 1], "first");
    server.set(["orders", 2], new Uint8Array([1, 2]));
    server.set(["orders", 3n], new KvU64(7n));
    server.set(["elsewhere"], "skipped too");
    server.delete(["orders", 1]);
    await waitFor(
      () => `4 events, got ${frames.length}`,
      () => events().length === 4,
    );
    const seen = events();
    assert.deepEqual(seen.map((e) => e.type), [
      "kv.set",
      "kv.set",
      "kv.set",
      "kv.delete",
    ]);
    assert.deepEqual(seen[0]!.key, ["orders", 1]);
    assert.equal(seen[0]!.value, "first");
    assert.match(seen[0]!.versionstamp!, /^[0-9a-f]{20}$/);
    assert.deepEqual(seen[1]!.value, new Uint8Array([1, 2]));
    assert.ok(seen[2]!.value instanceof KvU64);
    assert.equal((seen[2]!.value as KvU64).value, 7n);
    assert.deepEqual(seen[2]!.key, ["orders", 3n]);
    assert.equal(seen[3]!.value, null);
    assert.equal(seen[3]!.cause, "write");
    assert.deepEqual(
      seen.map((e) => e.id),
      seen.map((e) => `${e.revision}.${e.index}`),
    );
    const query = server.watches[0]!.query;
    assert.deepEqual(JSON.parse(query.get("prefix")!), ["orders"]);
    assert.equal(query.get("fromRevision"), null);
    stop.abort();
    assert.equal(await done, null);
  });
});

Deno.test("events.watch() resumes a dropped stream on the next node with Last-Event-ID: no gap, no duplicate", async () => {
  await withServer(async (server, open) => {
    const client = open();
    for (let i = 0; i < 3; i++) server.set(["k", i], `v${i}`);
    const from = server.history()[0]!.revision;
    const stop = new AbortController();
    const { events, done } = collect(client, {}, {
      fromRevision: from,
      signal: stop.signal,
    });
    await waitFor("the replay", () => events().length === 3);
    server.drop();
    // Written while no stream is open, then after the reconnect.
    for (let i = 3; i < 6; i++) server.set(["k", i], `v${i}`);
    await waitFor("the reconnect", () => server.watches.length === 2);
    for (let i = 6; i < 8; i++) server.set(["k", i], `v${i}`);
    await waitFor(
      () => `8 events, got ${events().length}`,
      () => events().length === 8,
    );
    assert.deepEqual(
      events().map((e) => e.id),
      server.history().map((e) => e.id),
    );
    const [first, second] = server.watches;
    assert.equal(first!.lastEventId, null);
    assert.equal(first!.query.get("fromRevision"), String(from));
    assert.equal(second!.lastEventId, events()[2]!.id);
    assert.notEqual(second!.url, first!.url);
    stop.abort();
    assert.equal(await done, null);
  }, 2);
});

Deno.test("events.watch() never yields an event twice when a resumed node replays from earlier", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.replayOverlap = 2;
    const stop = new AbortController();
    const { events, frames, done } = collect(client, {}, {
      signal: stop.signal,
    });
    await waitFor("the synced mark", () => frames.length === 1);
    for (let i = 0; i < 4; i++) server.set(["k", i], i);
    await waitFor("4 events", () => events().length === 4);
    server.drop();
    await waitFor("the reconnect", () => server.watches.length === 2);
    server.set(["k", 4], 4);
    await waitFor("5 events", () => events().length === 5);
    server.set(["k", 5], 5);
    await waitFor("6 events", () => events().length === 6);
    assert.deepEqual(
      events().map((e) => e.id),
      server.history().map((e) => e.id),
    );
    stop.abort();
    await done;
  }, 2);
});

Deno.test("events.watch() re-reads an event cut in the middle of its frame", async () => {
  await withServer(async (server, open) => {
    const client = open();
    const stop = new AbortController();
    const { events, frames, done } = collect(client, {}, {
      signal: stop.signal,
    });
    await waitFor("the synced mark", () => frames.length === 1);
    server.set(["a"], 1);
    await waitFor("1 event", () => events().length === 1);
    server.drop(true);
    server.set(["b"], 2); // half sent, then the stream is cut
    await waitFor("the reconnect", () => server.watches.length === 2);
    server.set(["c"], 3);
    await waitFor("3 events", () => events().length === 3);
    assert.deepEqual(events().map((e) => e.key), [["a"], ["b"], ["c"]]);
    assert.equal(server.watches[1]!.lastEventId, events()[0]!.id);
    stop.abort();
    await done;
  });
});

Deno.test("events.watch() before any event resumes from the revision after the newest mark", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["before"], 0);
    const stop = new AbortController();
    const { events, frames, done } = collect(client, {}, {
      signal: stop.signal,
    });
    await waitFor("the synced mark", () => frames.length === 1);
    const synced = frames[0]!;
    assert.equal(synced.kind, "synced");
    server.drop();
    server.set(["while-away"], 1);
    await waitFor("the reconnect", () => server.watches.length === 2);
    await waitFor("1 event", () => events().length === 1);
    assert.deepEqual(events()[0]!.key, ["while-away"]);
    assert.equal(server.watches[1]!.lastEventId, null);
    assert.equal(
      server.watches[1]!.query.get("fromRevision"),
      String((synced as { revision: number }).revision + 1),
    );
    stop.abort();
    await done;
  });
});

Deno.test("events.watch() skips a node that is down and one that is busy", async () => {
  await withServer(async (server, open) => {
    const client = open([deadUrl(), ...server.urls]);
    server.refuseWatches(1, "tooManyStreams");
    server.set(["x"], 1);
    const stop = new AbortController();
    const { events, done } = collect(client, {}, {
      fromRevision: server.history()[0]!.revision,
      signal: stop.signal,
    });
    await waitFor("the event", () => events().length === 1);
    assert.deepEqual(server.watches.map((w) => w.status), [429, 200]);
    stop.abort();
    await done;
  });
});

Deno.test("events.watch() throws CompactedError for a start below the window (410)", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["x"], 1);
    server.compact(50);
    const { done } = collect(client, {}, { fromRevision: 10 });
    const error = await done;
    assert.ok(error instanceof CompactedError, String(error));
    assert.equal(error.fromRevision, 10);
    assert.equal(error.compactRevision, 50);
    assert.equal(error.status, 410);
    assert.match(error.message, /compacted at 50/);
    assert.equal(server.watches.length, 1);
  });
});

Deno.test("events.watch() throws CompactedError when a resume falls below the window", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["x"], 1);
    const first = server.history()[0]!;
    const { events, done } = collect(client, {}, {
      fromRevision: first.revision,
    });
    await waitFor("the event", () => events().length === 1);
    server.compact(first.revision + 10);
    server.drop();
    const error = await done;
    assert.ok(error instanceof CompactedError, String(error));
    assert.equal(error.fromRevision, first.revision);
    assert.equal(error.compactRevision, first.revision + 10);
    assert.equal(server.watches[1]!.lastEventId, first.id);
  });
});

Deno.test("events.watch() throws CompactedError on a compacted frame and does not reconnect", async () => {
  await withServer(async (server, open) => {
    const client = open();
    const { frames, done } = collect(client, {}, {});
    await waitFor("the synced mark", () => frames.length === 1);
    server.compact(120);
    server.overtake();
    const error = await done;
    assert.ok(error instanceof CompactedError, String(error));
    assert.equal(error.compactRevision, 120);
    assert.equal(error.fromRevision, 101);
    assert.equal(server.watches.length, 1);
  });
});

Deno.test("events.watch() ends with AuthError for a wrong token", async () => {
  await withServer(async (server, open) => {
    const client = open(server.urls, "wrong");
    const { done } = collect(client, {}, {});
    assert.ok((await done) instanceof AuthError);
  });
});

Deno.test("events.watch() ends when the client closes", async () => {
  await withServer(async (_server, open) => {
    const client = open();
    const { frames, done } = collect(client, {}, {});
    await waitFor("the synced mark", () => frames.length === 1);
    client.close();
    assert.equal(await done, null);
  });
});

Deno.test("events.watch() and list() refuse bad selectors and options before sending", async (t) => {
  await withServer(async (server, open) => {
    const client = open();
    const cases: {
      name: string;
      selector?: unknown;
      options?: EventsWatchOptions;
      error: typeof TypeError | typeof RangeError;
      /** An option of watch only (list has no progress marks). */
      watchOnly?: boolean;
    }[] = [
      {
        name: "prefix and start",
        selector: { prefix: ["a"], start: ["b"] },
        error: TypeError,
      },
      {
        name: "start without end",
        selector: { start: ["a"] },
        error: TypeError,
      },
      { name: "prefix not a key", selector: { prefix: "a" }, error: TypeError },
      {
        name: "start after end",
        selector: { start: ["b"], end: ["a"] },
        error: RangeError,
      },
      {
        name: "start equal to end",
        selector: { start: ["a"], end: ["a"] },
        error: RangeError,
      },
      {
        name: "a key part that is no Deno KV part",
        selector: { prefix: [{}] },
        error: TypeError,
      },
      { name: "no types", options: { types: [] }, error: RangeError },
      {
        name: "17 types",
        options: { types: Array(17).fill("kv.set") },
        error: RangeError,
      },
      { name: "a bad type", options: { types: ["KV.*"] }, error: TypeError },
      {
        name: "a negative revision",
        options: { fromRevision: -1 },
        error: RangeError,
      },
      {
        name: "progressMs 99",
        options: { progressMs: 99 },
        error: RangeError,
        watchOnly: true,
      },
      {
        name: "progressMs 600,001",
        options: { progressMs: 600_001 },
        error: RangeError,
        watchOnly: true,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        const selector = (c.selector ?? {}) as Record<string, never>;
        assert.throws(
          () => client.events.watch(selector, c.options),
          c.error,
        );
        if (c.watchOnly) return;
        await assert.rejects(
          client.events.list({ selector, ...c.options }),
          c.error,
        );
      });
    }
    await assert.rejects(
      client.events.list({ limit: 1001 }),
      RangeError,
    );
    await assert.rejects(
      client.events.list({ fromRevision: 5, toRevision: 4 }),
      RangeError,
    );
    assert.equal(server.watches.length, 0);
    assert.equal(server.lists.length, 0);
  });
});

Deno.test("events.list() sends the wire selector and decodes a page; 410 is CompactedError", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["r", "a"], "A");
    server.set(["r", "b"], "B");
    server.set(["r", "c"], "C");
    server.fact("leader.changed", { term: 2, leader: "n1", previous: null });
    const first = server.history()[0]!.revision;
    const page = await client.events.list({
      selector: { start: ["r", "a"], end: ["r", "c"] },
      types: ["*"],
      fromRevision: first,
      limit: 10,
    });
    assert.deepEqual(server.lists[0], {
      selector: { start: ["r", "a"], end: ["r", "c"] },
      types: ["*"],
      fromRevision: first,
      limit: 10,
    });
    assert.deepEqual(page.events.map((e) => e.value ?? e.data), [
      "A",
      "B",
      { term: 2, leader: "n1", previous: null },
    ]);
    assert.equal(page.headRevision, first + 3);
    assert.equal(page.nextRevision, first + 4);
    assert.equal(page.cursor, undefined);
    // Paged by the cursor, one event a page.
    const paged: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 10; i++) {
      const one = await client.events.list({
        selector: { prefix: ["r"] },
        limit: 1,
        ...(after === undefined ? { fromRevision: first } : { after }),
      });
      paged.push(...one.events.map((e) => e.id));
      after = one.cursor;
      if (after === undefined) break;
    }
    assert.deepEqual(paged, server.history().slice(0, 3).map((e) => e.id));
    assert.equal(server.lists[2]!.after, paged[0]);
    await assert.rejects(client.events.list({ after: "1-2" }), TypeError);
    server.compact(first + 1);
    await assert.rejects(
      client.events.list({ fromRevision: first }),
      (error) =>
        error instanceof CompactedError && error.fromRevision === first &&
        error.compactRevision === first + 1,
    );
  });
});

Deno.test("events.status() answers the window", async () => {
  await withServer(async (server, open) => {
    const client = open();
    server.set(["a"], 1);
    server.compact(7);
    const status = await client.events.status();
    assert.equal(status.compactRevision, 7);
    assert.equal(status.headRevision, server.history()[0]!.revision);
    assert.equal(status.events, 1);
    assert.equal(status.streams, 0);
  });
});
