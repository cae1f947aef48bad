/**
 * The `/v1/elections/...` routes on a real 3-node cluster (in one
 * process): campaign (elected, queued, waiting), proclaim, leader, resign,
 * and the SSE observe stream across a resign and a lease end, resumed with
 * `Last-Event-ID`, bounded per node and closed cleanly when the reader goes.
 */
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { call } from "./helpers/http_request.ts";
import {
  type LocksCluster,
  startLocksCluster,
  TEST_TOKEN,
} from "./helpers/locks_cluster.ts";
import { waitFor } from "./helpers/wait_for.ts";

const A = "000000000000000a";
const B = "000000000000000b";

async function withCluster(
  fn: (cluster: LocksCluster) => Promise<void>,
  options: { observeStreamsMax?: number; feedEntriesMax?: number } = {},
): Promise<void> {
  const cluster = await startLocksCluster(options);
  try {
    await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

interface SseEvent {
  readonly id: string;
  readonly data: {
    leader:
      | { value: string; token: string; lease: string; revision: number }
      | null;
    revision: number;
  };
}

/** An observe stream read event by event. */
class Observer {
  readonly response: Response;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  #buffer = "";

  constructor(response: Response) {
    this.response = response;
    this.#reader = response.body!.getReader();
  }

  /** The next event (keep-alive comments skipped), within `timeoutMs`. */
  async next(timeoutMs = 5000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.#buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        if (block.startsWith(":")) continue;
        const lines = Object.fromEntries(
          block.split("\n").map((line) => {
            const colon = line.indexOf(": ");
            return [line.slice(0, colon), line.slice(colon + 2)];
          }),
        );
        return { id: lines.id!, data: JSON.parse(lines.data!) };
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("No observe event in time");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const step = await Promise.race([
        this.#reader.read(),
        new Promise<"late">((resolve) => {
          timer = setTimeout(() => resolve("late"), left);
        }),
      ]);
      clearTimeout(timer);
      if (step === "late") throw new Error("No observe event in time");
      if (step.done) throw new Error("The observe stream ended");
      this.#buffer += this.#decoder.decode(step.value, { stream: true });
    }
  }

  async close(): Promise<void> {
    await this.#reader.cancel();
  }
}

async function observe(
  app: Hono,
  name: string,
  lastEventId?: string,
): Promise<Response> {
  return await app.request(
    `/v1/elections/observe?name=${encodeURIComponent(name)}`,
    {
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
      },
    },
  );
}

Deno.test("campaign, proclaim, leader and resign elect in FIFO order with values", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    const none = await call(app, "POST", "/v1/elections/leader", { name: "e" });
    assert.deepEqual(none.body, { leader: null });
    const first = await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "a1",
      lease: A,
    });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.elected, true);
    assert.equal(first.body.value, "a1");
    assert.equal(first.body.lease, A);
    const queued = await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "b1",
      lease: B,
    });
    assert.deepEqual(queued.body, { elected: false, name: "e", position: 0 });
    const proclaimed = await call(app, "POST", "/v1/elections/proclaim", {
      name: "e",
      token: first.body.token,
      value: "a2",
    });
    assert.equal(proclaimed.body.leader.value, "a2");
    assert.ok(proclaimed.body.leader.revision > first.body.revision);
    const leader = await call(
      cluster.leader()!.app,
      "POST",
      "/v1/elections/leader",
      { name: "e" },
    );
    assert.deepEqual(leader.body, proclaimed.body);
    const again = await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "ignored",
      lease: A,
    });
    assert.equal(again.body.token, first.body.token);
    assert.equal(again.body.value, "a2");
    const waiting = call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "b1",
      lease: B,
      waitMs: 10_000,
    });
    const resigned = await call(app, "POST", "/v1/elections/resign", {
      name: "e",
      token: first.body.token,
    });
    assert.deepEqual(resigned.body, { resigned: true });
    const elected = await waiting;
    assert.equal(elected.body.elected, true);
    assert.equal(elected.body.value, "b1");
    assert.ok(elected.body.token > first.body.token);
    const stale = await call(app, "POST", "/v1/elections/proclaim", {
      name: "e",
      token: first.body.token,
      value: "x",
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, "notHolder");
    const staleResign = await call(app, "POST", "/v1/elections/resign", {
      name: "e",
      token: first.body.token,
    });
    assert.equal(staleResign.body.error.code, "notHolder");
    // A lock and an election cannot share a name.
    const lock = await call(app, "POST", "/v1/locks/acquire", {
      name: "e",
      lease: A,
    });
    assert.equal(lock.status, 400);
    assert.equal(lock.body.error.code, "invalid");
  });
});

Deno.test("GET /v1/elections/observe streams the leader, then each change in revision order, across a resign", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    const response = await observe(app, "e");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const stream = new Observer(response);
    const initial = await stream.next();
    assert.equal(initial.data.leader, null);
    assert.equal(initial.id, String(initial.data.revision));
    const a = await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "a1",
      lease: A,
    });
    await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "b1",
      lease: B,
    });
    await call(app, "POST", "/v1/elections/proclaim", {
      name: "e",
      token: a.body.token,
      value: "a2",
    });
    await call(app, "POST", "/v1/elections/resign", {
      name: "e",
      token: a.body.token,
    });
    await cluster.endLeases(B);
    const events = [];
    for (let i = 0; i < 4; i++) events.push(await stream.next());
    assert.deepEqual(events.map((e) => e.data.leader?.value ?? null), [
      "a1",
      "a2",
      "b1",
      null,
    ]);
    const revisions = events.map((e) => e.data.revision);
    assert.deepEqual([...revisions].sort((x, y) => x - y), revisions);
    assert.ok(revisions[0]! > initial.data.revision);
    assert.deepEqual(events.map((e) => e.id), revisions.map(String));
    assert.equal(events[0]!.data.leader!.token, a.body.token);
    await stream.close();
    await waitFor(
      "the observer released",
      () => cluster.follower().locks.observersOpen === 0,
      5000,
    );

    // Resumed after the first change: only the later ones.
    const resumed = new Observer(
      await observe(cluster.leader()!.app, "e", events[0]!.id),
    );
    const later = [
      await resumed.next(),
      await resumed.next(),
      await resumed.next(),
    ];
    assert.deepEqual(later.map((e) => e.data.leader?.value ?? null), [
      "a2",
      "b1",
      null,
    ]);
    await resumed.close();
    // From the start of the feed: every change again.
    const replayed = new Observer(await observe(app, "e", "0"));
    assert.equal((await replayed.next()).data.leader?.value, "a1");
    await replayed.close();
  });
});

Deno.test("GET /v1/elections/observe restarts from the current leader when the feed no longer holds Last-Event-ID", async () => {
  await withCluster(async (cluster) => {
    for (const lease of [A, B]) await cluster.grantLease(lease);
    const app = cluster.follower().app;
    const a = await call(app, "POST", "/v1/elections/campaign", {
      name: "e",
      value: "a1",
      lease: A,
    });
    for (let i = 0; i < 5; i++) {
      await call(app, "POST", "/v1/elections/proclaim", {
        name: "e",
        token: a.body.token,
        value: `a${i + 2}`,
      });
    }
    const restarted = new Observer(
      await observe(app, "e", String(a.body.revision)),
    );
    const current = await restarted.next();
    assert.equal(current.data.leader?.value, "a6");
    assert.equal(current.data.revision, Number(current.id));
    await call(app, "POST", "/v1/elections/resign", {
      name: "e",
      token: a.body.token,
    });
    const resigned = await restarted.next();
    assert.equal(resigned.data.leader, null);
    assert.ok(resigned.data.revision > current.data.revision);
    await restarted.close();
  }, { feedEntriesMax: 2 });
});

Deno.test("the elections routes refuse bad input and too many observe streams", async () => {
  await withCluster(async (cluster) => {
    await cluster.grantLease(A);
    const app = cluster.follower().app;
    const cases: [string, string, unknown, number, string][] = [
      [
        "no value",
        "/v1/elections/campaign",
        { name: "e", lease: A },
        400,
        "badRequest",
      ],
      [
        "a value not a string",
        "/v1/elections/campaign",
        { name: "e", lease: A, value: 1 },
        400,
        "invalid",
      ],
      [
        "a value over 64 KiB",
        "/v1/elections/campaign",
        { name: "e", lease: A, value: "v".repeat(65_537) },
        400,
        "limitExceeded",
      ],
      [
        "permits",
        "/v1/elections/campaign",
        { name: "e", lease: A, value: "v", permits: 2 },
        400,
        "badRequest",
      ],
      [
        "a bad name",
        "/v1/elections/campaign",
        { name: "", lease: A, value: "v" },
        400,
        "invalid",
      ],
      [
        "an unknown lease",
        "/v1/elections/campaign",
        { name: "e", lease: "00000000000000ff", value: "v" },
        404,
        "leaseNotFound",
      ],
      [
        "waitMs too long",
        "/v1/elections/campaign",
        { name: "e", lease: A, value: "v", waitMs: 60_001 },
        400,
        "badRequest",
      ],
      [
        "proclaim not holding",
        "/v1/elections/proclaim",
        { name: "e", token: "0".repeat(20), value: "v" },
        409,
        "notHolder",
      ],
      [
        "proclaim a bad token",
        "/v1/elections/proclaim",
        { name: "e", token: "x", value: "v" },
        400,
        "invalid",
      ],
      [
        "resign not holding",
        "/v1/elections/resign",
        { name: "e", token: "0".repeat(20) },
        409,
        "notHolder",
      ],
      ["leader without name", "/v1/elections/leader", {}, 400, "badRequest"],
    ];
    for (const [what, path, body, status, code] of cases) {
      const before = cluster.locksRows(cluster.follower());
      const answer = await call(app, "POST", path, body);
      assert.equal(
        answer.status,
        status,
        `${what}: ${JSON.stringify(answer.body)}`,
      );
      assert.equal(answer.body.error.code, code, what);
      assert.equal(cluster.locksRows(cluster.follower()), before, what);
    }
    const noName = await observe(app, "");
    assert.equal(noName.status, 400);
    assert.equal((await noName.json()).error.code, "invalid");
    const badId = await observe(app, "e", "yesterday");
    assert.equal(badId.status, 400);
    assert.equal((await badId.json()).error.code, "badRequest");
    const unauthorized = await app.request("/v1/elections/observe?name=e");
    assert.equal(unauthorized.status, 401);
    await unauthorized.body?.cancel();

    const one = new Observer(await observe(app, "e"));
    await one.next();
    const refused = await observe(app, "e");
    assert.equal(refused.status, 503);
    assert.equal((await refused.json()).error.code, "unavailable");
    await one.close();
    await waitFor(
      "the slot back",
      () => cluster.follower().locks.observersOpen === 0,
      5000,
    );
    // A reader gone before reading anything frees its slot too.
    const unread = await observe(app, "e");
    assert.equal(unread.status, 200);
    await unread.body!.cancel();
    await waitFor(
      "the unread slot back",
      () => cluster.follower().locks.observersOpen === 0,
      5000,
    );
    const two = new Observer(await observe(app, "e"));
    await two.next();
    await two.close();
  }, { observeStreamsMax: 1 });
});
