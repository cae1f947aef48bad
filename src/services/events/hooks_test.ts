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

  events(command: EventsCommand | HookCommand): EventsResult {
    const index = ++this.index;
    return this.kv.apply(
      logIndex(index),
      encodeEnvelope({
        serviceId: SERVICE_IDS.events,
        payload: encodeEventsCommand(command),
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
  assert.equal(hook.open, null);
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
