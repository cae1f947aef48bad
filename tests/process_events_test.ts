/**
 * The events history over real node processes (issue 17): stock
 * `Deno.openKv` writes watched under a prefix arrive once each, in
 * `(revision, index)` order, with the versionstamps the writer was given,
 * across a watch dropped on one node and resumed with `Last-Event-ID` on
 * another; `leader.changed` follows a kill -9 of the leader; list pages
 * (with their cursor) hold what the watch held; a start below a compacted
 * window is refused with 410 `compacted`, and bad watch input with 400.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ProcessCluster,
  withProcessCluster,
} from "./helpers/process_cluster.ts";
import { type SseFrame, SseReader } from "./helpers/sse_reader.ts";
import { stockWriter } from "./helpers/stock_writer.ts";
import { waitFor } from "./helpers/wait_for.ts";
import type {
  EventsListResponse,
  EventsStatusResponse,
  WireEvent,
} from "../src/protocol/http_api_events.ts";

const WRITES = 300;

async function watch(
  url: string,
  token: string,
  query: Record<string, string>,
  lastEventId?: string,
): Promise<Response> {
  const search = new URLSearchParams(query).toString();
  return await fetch(`${url}/v1/events/watch?${search}`, {
    headers: {
      authorization: `Bearer ${token}`,
      ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
    },
  });
}

async function post<T>(
  url: string,
  token: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: T }> {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as T };
}

async function eventsStatus(
  cluster: ProcessCluster,
  index: number,
  token: string,
): Promise<EventsStatusResponse> {
  const response = await fetch(`${cluster.node(index).url}/v1/events/status`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(response.status, 200);
  return await response.json() as EventsStatusResponse;
}

function order(a: WireEvent, b: WireEvent): number {
  return a.revision - b.revision || a.index - b.index;
}

function stockIndex(event: WireEvent): number {
  const key = event.key as unknown[];
  assert.equal(key.length, 2);
  assert.equal(key[0], "stock");
  return key[1] as number;
}

Deno.test("events watch over 3 processes: stock writes arrive once each and in order across a resume on another node; leader.changed after kill -9; list pages agree", async () => {
  await withProcessCluster({ count: 3 }, async (cluster) => {
    const first = await cluster.waitForLeader();
    const token = await cluster.token();
    // Watch on the two followers (the leader is killed at the end, and the
    // leader-changes stream must outlive it); write through the leader.
    const a = (first + 1) % 3;
    const b = (first + 2) % 3;
    const from = (await eventsStatus(cluster, a, token)).headRevision + 1;
    // A watch of leader changes from the start of the history.
    const leaders = new SseReader(
      await watch(cluster.node(a).url, token, {
        types: "leader.changed",
        fromRevision: "0",
      }),
    );
    assert.equal(leaders.response.status, 200);
    const initial = await leaders.until((f) => f.event === "leader.changed");
    const announced = initial.at(-1)!.data as WireEvent;
    assert.ok(announced.data !== undefined);

    const writer = stockWriter(`${cluster.node(first).url}/kv`, token, WRITES);
    const query = {
      prefix: JSON.stringify(["stock"]),
      fromRevision: String(from),
    };
    const events: WireEvent[] = [];
    const take = (frames: SseFrame[]) => {
      for (const frame of frames) {
        if (frame.id === undefined) continue;
        const event = frame.data as WireEvent;
        assert.equal(frame.id, event.id);
        assert.equal(frame.event, event.type);
        events.push(event);
      }
    };
    // The first watch, on one follower, is dropped after 100 events.
    const one = new SseReader(await watch(cluster.node(a).url, token, query));
    assert.equal(one.response.status, 200);
    const firstFrames: SseFrame[] = [];
    while (firstFrames.filter((f) => f.id !== undefined).length < 100) {
      const frame = await one.next(30_000);
      assert.ok(frame !== null, "the first watch ended early");
      firstFrames.push(frame);
    }
    await one.close();
    take(firstFrames);
    // Resumed on the other follower, strictly after the last event seen.
    const two = new SseReader(
      await watch(cluster.node(b).url, token, query, events.at(-1)!.id),
    );
    assert.equal(two.response.status, 200);
    while (events.length < WRITES) {
      const frame = await two.next(60_000);
      assert.ok(frame !== null, "the resumed watch ended early");
      take([frame]);
    }
    await writer.done();
    await two.close();
    assert.deepEqual(writer.wrong, []);
    assert.equal(writer.acked.size, WRITES);
    // Once each, in order, with the writer's versionstamps.
    for (let i = 1; i < events.length; i++) {
      assert.ok(order(events[i - 1]!, events[i]!) < 0, `order at ${i}`);
    }
    const seen = new Set<number>();
    for (const event of events) {
      assert.equal(event.type, "kv.set");
      const n = stockIndex(event);
      assert.ok(!seen.has(n), `event of ${n} twice`);
      seen.add(n);
      assert.equal(event.versionstamp, writer.acked.get(n));
      assert.equal(
        BigInt(`0x${event.versionstamp!.slice(0, 16)}`),
        BigInt(event.revision),
      );
      assert.equal(event.prevVersionstamp, null);
    }
    assert.equal(seen.size, WRITES);

    // The list, paged by its cursor with a small limit, holds the same.
    const listed: WireEvent[] = [];
    let request: Record<string, unknown> = {
      selector: { prefix: ["stock"] },
      fromRevision: from,
      limit: 7,
    };
    for (let page = 0; page < 200; page++) {
      const answer = await post<EventsListResponse>(
        cluster.node(page % 3).url,
        token,
        "/v1/events/list",
        request,
      );
      assert.equal(answer.status, 200);
      listed.push(...answer.body.events);
      if (answer.body.cursor === undefined) break;
      request = { ...request, after: answer.body.cursor };
      delete request.fromRevision;
    }
    assert.deepEqual(listed.map((e) => e.id), events.map((e) => e.id));

    // kill -9 the leader: a new leader announces itself with a new term.
    await cluster.kill(first);
    const term = (announced.data as { term: number }).term;
    const after = await leaders.until(
      (f) =>
        f.event === "leader.changed" &&
        (f.data as WireEvent).data!.term as number > term,
      30_000,
    );
    const changed = after.at(-1)!.data as WireEvent;
    assert.equal(changed.data!.previous, announced.data!.leader);
    assert.notEqual(changed.data!.leader, announced.data!.leader);
    await leaders.close();
  });
});

Deno.test("events: a start below a compacted window gets 410 compacted; bad watch and list input gets 400 and changes nothing", async () => {
  await withProcessCluster({
    count: 1,
    config: {
      historyKeepMs: 0,
      historyKeepRevisions: 5,
      historyCompactIntervalMs: 200,
    },
  }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const url = cluster.node(0).url;
    const writer = stockWriter(`${url}/kv`, token, 40);
    await writer.done();
    assert.equal(writer.acked.size, 40);
    await waitFor(
      "the window to be compacted past revision 10",
      async () => (await eventsStatus(cluster, 0, token)).compactRevision > 10,
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const status = await eventsStatus(cluster, 0, token);
    const refused = await watch(url, token, { fromRevision: "1" });
    assert.equal(refused.status, 410);
    const body = await refused.json();
    assert.equal(body.error.code, "compacted");
    assert.ok(body.error.details.compactRevision >= status.compactRevision);
    const listRefused = await post<{ error: { code: string } }>(
      url,
      token,
      "/v1/events/list",
      { fromRevision: 1 },
    );
    assert.equal(listRefused.status, 410);
    assert.equal(listRefused.body.error.code, "compacted");
    // Bad input: a typed 400 with a message.
    const badQueries: Record<string, string>[] = [
      { prefix: "not json" },
      { prefix: JSON.stringify(["a"]), start: JSON.stringify(["a"]) },
      { start: JSON.stringify(["a"]) },
      { types: "KV.SET" },
      {
        types: Array.from({ length: 17 }, (_, i) => `t.a${"b".repeat(i)}`)
          .join(","),
      },
      { fromRevision: "-1" },
      { progressMs: "5" },
      { prevValue: "yes" },
      { unknown: "1" },
    ];
    for (const query of badQueries) {
      const response = await watch(url, token, query);
      assert.equal(response.status, 400, JSON.stringify(query));
      const error = (await response.json()).error;
      assert.ok(typeof error.message === "string" && error.message.length > 0);
    }
    const badId = await watch(url, token, {}, "12-x");
    assert.equal(badId.status, 400);
    await badId.body?.cancel();
    for (
      const body of [
        { limit: 0 },
        { limit: 1001 },
        { selector: { prefix: 3 } },
        { after: "x" },
        { nope: 1 },
      ]
    ) {
      const answer = await post<{ error: { code: string } }>(
        url,
        token,
        "/v1/events/list",
        body,
      );
      assert.equal(answer.status, 400, JSON.stringify(body));
    }
    // Unauthenticated: refused.
    const anonymous = await fetch(`${url}/v1/events/status`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    // From the window's start the watch serves and says when it is synced.
    const fromStart = new SseReader(
      await watch(url, token, {
        fromRevision: String(
          (await eventsStatus(cluster, 0, token)).compactRevision,
        ),
      }),
    );
    assert.equal(fromStart.response.status, 200);
    const frames = await fromStart.until((f) => f.event === "synced", 10_000);
    assert.ok(frames.length >= 1);
    await fromStart.close();
  });
});

Deno.test("events: snapshot.taken, node.unhealthy and node.healthy around a SIGSTOP, member.removed, leader.changed after transfer-leader", async () => {
  await withProcessCluster({
    count: 3,
    config: { snapshotEntries: 20 },
  }, async (cluster) => {
    const leader = await cluster.waitForLeader();
    const token = await cluster.token();
    const admin = await cluster.adminToken();
    const follower = (leader + 1) % 3;
    const other = (leader + 2) % 3;
    const facts = new SseReader(
      await watch(cluster.node(other).url, token, {
        types: "member.*,snapshot.*,node.*,leader.changed",
        fromRevision: "0",
      }),
    );
    assert.equal(facts.response.status, 200);
    const seen: WireEvent[] = [];
    const until = async (
      what: string,
      test: (event: WireEvent) => boolean,
      timeoutMs = 30_000,
    ): Promise<WireEvent> => {
      const found = seen.find(test);
      if (found !== undefined) return found;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = deadline - Date.now();
        assert.ok(left > 0, `no ${what} in time; saw ${JSON.stringify(seen)}`);
        const frame = await facts.next(left);
        assert.ok(frame !== null, `the stream ended before ${what}`);
        if (frame.id === undefined) continue;
        const event = frame.data as WireEvent;
        seen.push(event);
        if (test(event)) return event;
      }
    };
    const status = await cluster.status(leader);
    // Writes past snapshotEntries: some node records a snapshot.
    const writer = stockWriter(`${cluster.node(leader).url}/kv`, token, 60);
    await writer.done();
    const snapshot = await until(
      "snapshot.taken",
      (e) => e.type === "snapshot.taken",
    );
    assert.ok((snapshot.data!.index as number) > 0);
    // A follower paused past 3 election timeouts is reported, then recovers.
    const paused = (await cluster.status(follower))!.nodeId;
    cluster.signal(follower, "SIGSTOP");
    try {
      const unhealthy = await until(
        "node.unhealthy",
        (e) => e.type === "node.unhealthy" && e.data!.node === paused,
      );
      assert.equal(unhealthy.data!.reason, "unreachable");
    } finally {
      cluster.signal(follower, "SIGCONT");
    }
    await until(
      "node.healthy",
      (e) => e.type === "node.healthy" && e.data!.node === paused,
    );
    // A membership change: removing the follower records member.removed.
    const post = (path: string, body: unknown) =>
      fetch(`${cluster.node(leader).url}${path}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${admin}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
    const removed = await post("/v1/cluster/remove", { nodeId: paused });
    assert.equal(removed.status, 200, await removed.text());
    const gone = await until(
      "member.removed",
      (e) => e.type === "member.removed" && e.data!.node === paused,
    );
    assert.equal(gone.data!.role, "voter");
    // transfer-leader: the target announces itself with a higher term.
    const target = (await cluster.status(other))!.nodeId;
    const moved = await post("/v1/cluster/transfer-leader", {
      nodeId: target,
    });
    assert.equal(moved.status, 200, await moved.text());
    const changed = await until(
      "leader.changed to the transfer's target",
      (e) => e.type === "leader.changed" && e.data!.leader === target,
    );
    assert.ok((changed.data!.term as number) > status!.term);
    await facts.close();
  });
});
