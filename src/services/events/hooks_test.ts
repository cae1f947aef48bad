import assert from "node:assert/strict";
import { encodeKvEntry } from "../entries.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { KvStateMachine } from "../state_machine.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { logIndex } from "../../raft/types.ts";
import { SERVICE_IDS } from "../table.ts";
import { encodeLeaseCommand } from "../leases/api.ts";
import {
  encodeEventsCommand,
  type EventsCommand,
  EventsReads,
  type EventsResult,
  type HookCommand,
  HookReads,
  type HookRecord,
  pinnedRevision,
} from "./api.ts";
import { deserializeV8 } from "../../model/v8_codec.ts";
import { QueueReads } from "../queues/api.ts";

const LEASE = "00000000000000a1";
const OTHER = "00000000000000b2";
const HOOK = "0000000000000001";

/** The single-attempt begin or finish (entries written before batches). */
type SingleStep = {
  readonly type: "hookBegin" | "hookFinish";
  readonly event: string;
  readonly attempt: number;
  readonly [field: string]: unknown;
};

class Harness {
  readonly store = new MemoryStateStore();
  readonly kv = new KvStateMachine(this.store);
  readonly hooks = new HookReads(this.store);
  index = 0;

  set(key: (string | number)[], text: string): number {
    const index = ++this.index;
    this.kv.apply(
      logIndex(index),
      encodeKvEntry({
        type: "atomic",
        operation: {
          checks: [],
          mutations: [{
            type: "set",
            key: encodeKey(key),
            value: { encoding: "bytes", data: new TextEncoder().encode(text) },
          }],
          enqueues: [],
        },
      }),
    );
    return index;
  }

  /** A command; a begin or finish may have the single-attempt form of older entries. */
  events(command: EventsCommand | HookCommand | SingleStep): EventsResult {
    const index = ++this.index;
    return this.kv.apply(
      logIndex(index),
      encodeEnvelope({
        serviceId: SERVICE_IDS.events,
        payload: encodeEventsCommand(command as EventsCommand),
      }),
    ) as unknown as EventsResult;
  }

  lease(command: Parameters<typeof encodeLeaseCommand>[0]): void {
    const index = ++this.index;
    this.kv.apply(
      logIndex(index),
      encodeEnvelope({
        serviceId: SERVICE_IDS.leases,
        payload: encodeLeaseCommand(command),
      }),
    );
  }

  create(
    overrides: Partial<Extract<HookCommand, { type: "hookCreate" }>> = {},
  ): EventsResult {
    return this.events({
      type: "hookCreate",
      id: HOOK,
      name: "orders",
      selector: { kind: "prefix", prefix: encodeKey(["orders"]) },
      types: ["kv.*"],
      target: { kind: "webhook", url: "https://example.com/", headers: {} },
      secret: new Uint8Array(32).fill(7),
      cursor: { r: this.index + 1, i: -1 },
      timeoutMs: 15_000,
      retryWindowMs: 86_400_000,
      retrySchedule: null,
      nowMs: 1_000,
      ...overrides,
    });
  }

  hook(): HookRecord {
    return this.hooks.get(HOOK)!;
  }
}

function refused(result: EventsResult, reason: string): void {
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal((result as { reason: string }).reason, reason);
}

Deno.test("hookCreate: unique names, 409 hookExists, nothing changed by a refusal", () => {
  const h = new Harness();
  assert.equal(h.create().ok, true);
  refused(h.create(), "hookExists");
  refused(h.create({ id: "0000000000000002" }), "hookExists");
  assert.equal(h.hooks.all().length, 1);
  assert.equal(h.hooks.find("orders")!.id, HOOK);
});

Deno.test("claim needs a live lease; begin/finish are fenced by the token; a repeated finish applies once; ok moves the cursor in the same entry", () => {
  const h = new Harness();
  h.create();
  const write = h.set(["orders", 1], "a");
  refused(
    h.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 10 }),
    "claimLost",
  );
  h.lease({ type: "grant", id: LEASE, ttlMs: 10_000 });
  const claim = h.events({
    type: "hookClaim",
    worker: "w1",
    lease: LEASE,
    max: 10,
  });
  assert.deepEqual((claim as unknown as { hooks: string[] }).hooks, [HOOK]);
  const token = h.hook().claim!.token;
  const event = `${write}.0`;
  refused(
    h.events({
      type: "hookBegin",
      id: HOOK,
      token: token + 1,
      event,
      attempt: 1,
      replay: false,
      nowMs: 2_000,
    }),
    "claimLost",
  );
  assert.equal(
    h.events({
      type: "hookBegin",
      id: HOOK,
      token,
      event,
      attempt: 1,
      replay: false,
      nowMs: 2_000,
    }).ok,
    true,
  );
  const finish = {
    type: "hookFinish" as const,
    id: HOOK,
    token,
    event,
    attempt: 1,
    replay: false,
    status: 200,
    latencyMs: 30,
    outcome: "ok" as const,
    error: null,
    nextAttemptAtMs: null,
    disable: null,
    nowMs: 2_030,
  };
  assert.equal(h.events(finish).ok, true);
  assert.deepEqual(h.hook().cursor, { r: write, i: 0 });
  assert.equal(h.events(finish).ok, true, "a repeated finish answers ok");
  const log = h.hooks.deliveries(h.hook(), { limit: 10 }).records;
  assert.equal(log.length, 1, "and is recorded once");
  assert.equal(log[0]!.outcome, "ok");
  assert.equal(h.hook().counts.ok, 1);
  assert.equal(h.hook().latency!.count, 1);
});

Deno.test("a failure records the retry; the window pins compaction at the cursor; a lease end closes an open attempt as unknown and frees the claim", () => {
  const h = new Harness();
  h.create();
  const first = h.set(["orders", 1], "a");
  h.lease({ type: "grant", id: LEASE, ttlMs: 10_000 });
  h.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 10 });
  const token = h.hook().claim!.token;
  const event = `${first}.0`;
  h.events({
    type: "hookBegin",
    id: HOOK,
    token,
    event,
    attempt: 1,
    replay: false,
    nowMs: 2_000,
  });
  h.events({
    type: "hookFinish",
    id: HOOK,
    token,
    event,
    attempt: 1,
    replay: false,
    status: 503,
    latencyMs: 5,
    outcome: "failed",
    error: "503",
    nextAttemptAtMs: 7_000,
    disable: null,
    nowMs: 2_005,
  });
  assert.deepEqual(h.hook().retrying, {
    event,
    attempt: 1,
    firstFailureAtMs: 2_000,
    nextAttemptAtMs: 7_000,
  });
  assert.equal(
    pinnedRevision(h.store),
    BigInt(first - 1 < 0 ? 0 : h.hook().cursor.r),
  );
  h.events({
    type: "hookBegin",
    id: HOOK,
    token,
    event,
    attempt: 2,
    replay: false,
    nowMs: 7_000,
  });
  h.lease({ type: "revoke", id: LEASE });
  const hook = h.hook();
  assert.equal(hook.claim, null);
  assert.deepEqual(hook.open, []);
  const log = h.hooks.deliveries(hook, { limit: 10 }).records;
  assert.deepEqual(log.map((r) => [r.attempt, r.outcome]), [[2, "unknown"], [
    1,
    "failed",
  ]]);
  // Another worker claims it with a higher token.
  h.lease({ type: "grant", id: OTHER, ttlMs: 10_000 });
  h.events({ type: "hookClaim", worker: "w2", lease: OTHER, max: 10 });
  assert.ok(h.hook().claim!.token > token);
  assert.equal(h.hook().claim!.worker, "w2");
});

Deno.test("a disable from the worker records hook.disabled; enable resumes at the same cursor", () => {
  const h = new Harness();
  h.create();
  const write = h.set(["orders", 1], "a");
  h.lease({ type: "grant", id: LEASE, ttlMs: 10_000 });
  h.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 10 });
  const token = h.hook().claim!.token;
  const event = `${write}.0`;
  h.events({
    type: "hookBegin",
    id: HOOK,
    token,
    event,
    attempt: 1,
    replay: false,
    nowMs: 2_000,
  });
  h.events({
    type: "hookFinish",
    id: HOOK,
    token,
    event,
    attempt: 1,
    replay: false,
    status: 410,
    latencyMs: 5,
    outcome: "gone",
    error: "410",
    nextAttemptAtMs: null,
    disable: "gone",
    nowMs: 2_005,
  });
  const disabled = h.hook();
  assert.equal(disabled.state, "disabled");
  assert.equal(disabled.disabledReason, "gone");
  const reads = new EventsReads(h.store);
  const facts = reads.page({ from: 0n }, { limit: 100 }).events.filter((e) =>
    e.type === "hook.disabled"
  );
  assert.deepEqual(facts.map((e) => e.data), [{
    hook: HOOK,
    name: "orders",
    reason: "gone",
  }]);
  h.events({ type: "hookSetState", id: HOOK, enabled: true });
  assert.equal(h.hook().state, "active");
  assert.deepEqual(h.hook().cursor, disabled.cursor);
});

Deno.test("compaction past an active hook's cursor gives it hook.gap and moves it to the floor", () => {
  const h = new Harness();
  h.create({ cursor: { r: 1, i: -1 } });
  for (let i = 0; i < 10; i++) h.set(["orders", i], "x");
  h.events({ type: "compact", belowRevision: 6 });
  const hook = h.hook();
  assert.deepEqual(hook.cursor, { r: 6, i: -1 });
  const gaps = new EventsReads(h.store).page({ from: 6n }, {
    limit: 100,
    keep: (e) => e.type === "hook.gap",
  }).events;
  assert.equal(gaps.length, 1);
  assert.deepEqual(gaps[0]!.data, {
    hook: HOOK,
    name: "orders",
    fromRevision: 1,
    toRevision: 5,
  });
});

Deno.test("a queue hook's advance enqueues the matching events once and moves the cursor in that entry", () => {
  const h = new Harness();
  h.create({ target: { kind: "queue", queue: "hooked" } });
  const writes = [
    h.set(["orders", 1], "a"),
    h.set(["other", 1], "b"),
    h.set(["orders", 2], "c"),
  ];
  const result = h.events({
    type: "hookAdvance",
    id: HOOK,
    toRevision: writes[2]!,
    nowMs: 5_000,
  });
  assert.equal((result as unknown as { enqueued: number }).enqueued, 2);
  const again = h.events({
    type: "hookAdvance",
    id: HOOK,
    toRevision: writes[2]!,
    nowMs: 5_000,
  });
  assert.equal(
    (again as unknown as { enqueued: number }).enqueued,
    0,
    "nothing twice",
  );
  const queued = new QueueReads(h.store).peek("hooked", 10);
  const payloads = queued.map((m) =>
    deserializeV8(m.payload) as Record<string, unknown>
  );
  assert.deepEqual(payloads.map((p) => [p.key, p.type]), [
    [["orders", 1], "kv.set"],
    [["orders", 2], "kv.set"],
  ]);
});

Deno.test("trigger records hook.test for that hook only; delete removes the record, the name and the log", () => {
  const h = new Harness();
  h.create();
  h.events({ type: "hookTrigger", id: HOOK, data: { hello: 1 } });
  const tests = new EventsReads(h.store).page({ from: 0n }, {
    limit: 100,
    keep: (e) => e.type === "hook.test",
  }).events;
  assert.deepEqual(tests.map((e) => e.data), [{
    hello: 1,
    hook: HOOK,
    name: "orders",
  }]);
  assert.equal(h.events({ type: "hookDelete", id: HOOK }).ok, true);
  assert.equal(h.hooks.find("orders"), null);
  refused(h.events({ type: "hookDelete", id: HOOK }), "hookNotFound");
});

Deno.test("replay-done drops only the replay it names: one asked for meanwhile is kept", () => {
  const h = new Harness();
  h.create({ cursor: { r: 1, i: -1 } });
  h.set(["orders", 1], "a");
  h.lease({ type: "grant", id: LEASE, ttlMs: 10_000 });
  h.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 10 });
  const token = h.hook().claim!.token;
  h.events({ type: "hookReplay", id: HOOK, fromRevision: 1, toRevision: 2 });
  assert.equal(h.hook().replay!.seq, 1);
  h.events({ type: "hookReplay", id: HOOK, fromRevision: 1, toRevision: 3 });
  assert.equal(h.hook().replay!.seq, 2);
  h.events({ type: "hookReplayDone", id: HOOK, token, seq: 1 });
  assert.equal(h.hook().replay?.toRevision, 3, "the newer replay stays");
  h.events({ type: "hookReplayDone", id: HOOK, token, seq: 2 });
  assert.equal(h.hook().replay, null);
});

/** A batch test's hook: claimed, with `writes` matching events. */
function claimedWith(writes: number): {
  h: Harness;
  token: number;
  events: string[];
} {
  const h = new Harness();
  h.create();
  const events: string[] = [];
  for (let n = 0; n < writes; n++) {
    events.push(`${h.set(["orders", n], "a")}.0`);
  }
  h.lease({ type: "grant", id: LEASE, ttlMs: 10_000 });
  h.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 10 });
  return { h, token: h.hook().claim!.token, events };
}

function result(
  event: string,
  outcome: "ok" | "failed",
  extra: { nextAttemptAtMs?: number } = {},
) {
  return {
    event,
    attempt: 1,
    replay: false,
    status: outcome === "ok" ? 200 : 503,
    latencyMs: 10,
    outcome,
    error: outcome === "ok" ? null : "503",
    nextAttemptAtMs: extra.nextAttemptAtMs ?? null,
    disable: null,
  };
}

Deno.test("a batch: begin opens every attempt; a finish with oks, one failure and a cancel moves the cursor to the last leading ok, retries the failure, records the unsent nowhere; repeated, it applies once", () => {
  const { h, token, events } = claimedWith(5);
  const attempts = events.map((event) => ({ event, attempt: 1 }));
  const begin = {
    type: "hookBegin" as const,
    id: HOOK,
    token,
    attempts,
    replay: false,
    nowMs: 2_000,
  };
  assert.equal(h.events(begin).ok, true);
  assert.deepEqual(
    h.hook().open.map((o) => [o.event, o.attempt, o.startedAtMs]),
    events.map((e) => [e, 1, 2_000]),
  );
  assert.equal(h.events(begin).ok, true, "a repeated begin answers ok");
  assert.equal(h.hooks.deliveries(h.hook(), { limit: 10 }).records.length, 0);
  const finish = {
    type: "hookFinish" as const,
    id: HOOK,
    token,
    results: [
      result(events[0]!, "ok"),
      result(events[1]!, "ok"),
      result(events[2]!, "failed", { nextAttemptAtMs: 9_000 }),
    ],
    cancel: [{ event: events[3]!, attempt: 1 }, {
      event: events[4]!,
      attempt: 1,
    }],
    nowMs: 2_100,
  };
  assert.equal(h.events(finish).ok, true);
  const hook = h.hook();
  const [r1] = events[1]!.split(".").map(Number);
  assert.deepEqual(hook.cursor, { r: r1, i: 0 });
  assert.deepEqual(hook.open, []);
  assert.deepEqual(hook.retrying, {
    event: events[2],
    attempt: 1,
    firstFailureAtMs: 2_000,
    nextAttemptAtMs: 9_000,
  });
  const log = () =>
    h.hooks.deliveries(h.hook(), { limit: 10 }).records.map((r) =>
      `${r.eventId}#${r.attempt}:${r.outcome}`
    ).reverse();
  assert.deepEqual(log(), [
    `${events[0]}#1:ok`,
    `${events[1]}#1:ok`,
    `${events[2]}#1:failed`,
  ]);
  assert.equal(h.events(finish).ok, true, "a repeated finish answers ok");
  assert.equal(log().length, 3, "and applies once");
  assert.deepEqual(h.hook().cursor, { r: r1, i: 0 });
  assert.deepEqual(h.hook().counts.ok, 2);
  // The retry of the failed event, then the cancelled ones begun again.
  assert.equal(
    h.events({
      ...begin,
      attempts: [{ event: events[2]!, attempt: 2 }, {
        event: events[3]!,
        attempt: 1,
      }],
    }).ok,
    true,
  );
  assert.equal(
    h.events({
      ...finish,
      results: [{ ...result(events[2]!, "ok"), attempt: 2 }, {
        ...result(events[3]!, "ok"),
      }],
      cancel: [],
    }).ok,
    true,
  );
  const [r3] = events[3]!.split(".").map(Number);
  assert.deepEqual(h.hook().cursor, { r: r3, i: 0 });
  assert.equal(h.hook().retrying, null);
  assert.deepEqual(log().slice(3), [
    `${events[2]}#2:ok`,
    `${events[3]}#1:ok`,
  ]);
});

Deno.test("a batch is refused whole: events not increasing, at or before the cursor, a result after a failure, a result never begun; more than 100 attempts", () => {
  const { h, token, events } = claimedWith(3);
  const begin = (attempts: { event: string; attempt: number }[]) =>
    h.events({
      type: "hookBegin",
      id: HOOK,
      token,
      attempts,
      replay: false,
      nowMs: 2_000,
    });
  refused(
    begin([{ event: events[1]!, attempt: 1 }, {
      event: events[0]!,
      attempt: 1,
    }]),
    "invalid",
  );
  refused(
    begin([{ event: events[0]!, attempt: 1 }, {
      event: events[0]!,
      attempt: 2,
    }]),
    "invalid",
  );
  refused(
    begin(
      Array.from(
        { length: 101 },
        (_, n) => ({ event: `1000.${n}`, attempt: 1 }),
      ),
    ),
    "invalid",
  );
  assert.deepEqual(h.hook().open, []);
  assert.equal(begin(events.map((event) => ({ event, attempt: 1 }))).ok, true);
  const finish = (results: ReturnType<typeof result>[]) =>
    h.events({
      type: "hookFinish",
      id: HOOK,
      token,
      results,
      cancel: [],
      nowMs: 2_100,
    });
  refused(
    finish([result(events[0]!, "failed"), result(events[1]!, "ok")]),
    "invalid",
  );
  refused(finish([result("999.0", "ok")]), "invalid");
  assert.equal(h.hook().open.length, 3, "nothing changed by a refusal");
  assert.equal(h.hooks.deliveries(h.hook(), { limit: 10 }).records.length, 0);
  assert.equal(finish(events.map((e) => result(e, "ok"))).ok, true);
  // Begun again at or before the cursor: compaction (or a stale page) passed it.
  refused(begin([{ event: events[2]!, attempt: 2 }]), "compacted");
});

Deno.test("a lease end closes every open attempt of a batch as unknown, once each", () => {
  const { h, token, events } = claimedWith(3);
  h.events({
    type: "hookBegin",
    id: HOOK,
    token,
    attempts: events.map((event) => ({ event, attempt: 1 })),
    replay: false,
    nowMs: 2_000,
  });
  h.lease({ type: "revoke", id: LEASE });
  const hook = h.hook();
  assert.equal(hook.claim, null);
  assert.deepEqual(hook.open, []);
  const log = h.hooks.deliveries(hook, { limit: 10 }).records.reverse();
  assert.deepEqual(
    log.map((r) => [r.eventId, r.attempt, r.outcome]),
    events.map((e) => [e, 1, "unknown"]),
  );
  assert.equal(hook.counts.unknown, 3);
  // A finish of the closed batch is refused (claim lost), recording nothing.
  refused(
    h.events({
      type: "hookFinish",
      id: HOOK,
      token,
      results: [result(events[0]!, "ok")],
      cancel: [],
      nowMs: 2_100,
    }),
    "claimLost",
  );
  assert.equal(h.hooks.deliveries(h.hook(), { limit: 10 }).records.length, 3);
});
