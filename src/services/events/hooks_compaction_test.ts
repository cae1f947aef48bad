/**
 * Regression tests of hooks meeting compaction (found by the simulator's
 * `--services hooks`), and the planted bug `cursor-apart-from-finish`.
 */
import assert from "node:assert/strict";
import { encodeKvEntry } from "../entries.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { KvStateMachine, type KvStateMachineKnobs } from "../state_machine.ts";
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
} from "./api.ts";

const LEASE = "00000000000000a1";
const HOOK = "0000000000000001";

class Harness {
  readonly store = new MemoryStateStore();
  readonly kv: KvStateMachine;
  readonly hooks = new HookReads(this.store);
  index = 0;
  token = 0;

  constructor(knobs: KvStateMachineKnobs = {}) {
    this.kv = new KvStateMachine(this.store, knobs);
  }

  #apply(data: Uint8Array): unknown {
    return this.kv.apply(logIndex(++this.index), data);
  }

  set(key: (string | number)[]): string {
    this.#apply(encodeKvEntry({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "set",
          key: encodeKey(key),
          value: { encoding: "bytes", data: new Uint8Array([1]) },
        }],
        enqueues: [],
      },
    }));
    return `${this.index}.0`;
  }

  /** An entry that records no history (a lease grant). */
  quiet(id: string): void {
    this.#apply(encodeEnvelope({
      serviceId: SERVICE_IDS.leases,
      payload: encodeLeaseCommand({ type: "grant", id, ttlMs: 10_000 }),
    }));
  }

  events(command: EventsCommand | HookCommand): EventsResult {
    return this.#apply(encodeEnvelope({
      serviceId: SERVICE_IDS.events,
      payload: encodeEventsCommand(command),
    })) as EventsResult;
  }

  /** Creates the hook over `['orders']` from the next revision and claims it. */
  claimed(): void {
    this.events({
      type: "hookCreate",
      id: HOOK,
      name: "orders",
      selector: { kind: "prefix", prefix: encodeKey(["orders"]) },
      types: ["kv.*"],
      target: { kind: "webhook", url: "https://example.com/", headers: {} },
      secret: new Uint8Array(32),
      cursor: { r: this.index + 1, i: -1 },
      timeoutMs: 15_000,
      retryWindowMs: 86_400_000,
      retrySchedule: null,
      nowMs: 1_000,
    });
    this.quiet(LEASE);
    this.events({ type: "hookClaim", worker: "w1", lease: LEASE, max: 1 });
    this.token = this.hook().claim!.token;
  }

  begin(event: string, attempt = 1): EventsResult {
    return this.events({
      type: "hookBegin",
      id: HOOK,
      token: this.token,
      attempts: [{ event, attempt }],
      replay: false,
      nowMs: 2_000,
    });
  }

  finish(event: string, outcome: "ok" | "failed", attempt = 1): EventsResult {
    return this.events({
      type: "hookFinish",
      id: HOOK,
      token: this.token,
      results: [{
        event,
        attempt,
        replay: false,
        status: outcome === "ok" ? 200 : 500,
        latencyMs: 1,
        outcome,
        error: null,
        nextAttemptAtMs: outcome === "ok" ? null : 3_000,
        disable: null,
      }],
      cancel: [],
      nowMs: 2_001,
    });
  }

  hook(): HookRecord {
    return this.hooks.get(HOOK)!;
  }

  floor(): number {
    return Number(new EventsReads(this.store).window().floor);
  }
}

Deno.test("hookFinish ok of an attempt a compaction passed leaves the cursor at the floor (it moved back below it and the hook stalled)", () => {
  const h = new Harness();
  h.claimed();
  const first = h.set(["orders", 1]);
  h.set(["orders", 2]);
  h.begin(first);
  const below = h.index + 1;
  h.events({ type: "compact", belowRevision: below });
  assert.deepEqual(h.hook().cursor, { r: below, i: -1 });
  assert.equal(h.finish(first, "ok").ok, true);
  assert.deepEqual(h.hook().cursor, { r: below, i: -1 });
  assert.deepEqual(h.hook().open, []);
  const log = h.hooks.deliveries(h.hook(), { limit: 10 }).records;
  assert.deepEqual(log.map((r) => [r.eventId, r.outcome]), [[first, "ok"]]);
});

Deno.test("compact whose floor passes a hook's cursor over revisions without records moves the hook to the floor with hook.gap", () => {
  const h = new Harness();
  h.claimed();
  const cursor = h.hook().cursor;
  h.quiet("00000000000000b1");
  const below = h.index + 1;
  const result = h.events({ type: "compact", belowRevision: below });
  assert.equal(result.ok && result.deleted, 0, JSON.stringify(result));
  assert.equal(h.floor(), below);
  assert.ok(cursor.r < below, JSON.stringify(cursor));
  assert.deepEqual(h.hook().cursor, { r: below, i: -1 });
  const gaps = new EventsReads(h.store).page({ from: BigInt(below) }, {
    limit: 10,
    keep: (event) => event.type === "hook.gap",
  }).events;
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0]!.data?.hook, HOOK);
});

Deno.test("compact keeps the retry state of an event at or above the floor and drops one below it", () => {
  const h = new Harness();
  h.claimed();
  h.set(["other"]);
  const event = h.set(["orders", 1]);
  h.begin(event);
  h.finish(event, "failed");
  const retrying = h.hook().retrying;
  assert.equal(retrying?.event, event);
  // The floor moves to the retried event's revision: it is still there.
  h.events({ type: "compact", belowRevision: Number(event.split(".")[0]) });
  assert.deepEqual(h.hook().retrying, retrying);
  h.events({ type: "compact", belowRevision: h.index });
  assert.equal(h.hook().retrying, null);
});

Deno.test("planted bug cursor-apart-from-finish: an ok finish logs the delivery and leaves the cursor to the next begin", async (t) => {
  await t.step("without the knob the finish moves the cursor", () => {
    const h = new Harness();
    h.claimed();
    const event = h.set(["orders", 1]);
    h.begin(event);
    h.finish(event, "ok");
    assert.deepEqual(h.hook().cursor, { r: Number(event.split(".")[0]), i: 0 });
    assert.equal(h.hook().pendingCursor, undefined);
  });
  await t.step("with the knob the next begin moves it", () => {
    const h = new Harness({ cursorApartFromFinish: true });
    h.claimed();
    const before = h.hook().cursor;
    const event = h.set(["orders", 1]);
    const next = h.set(["orders", 2]);
    h.begin(event);
    h.finish(event, "ok");
    assert.deepEqual(h.hook().cursor, before);
    const moved = { r: Number(event.split(".")[0]), i: 0 };
    assert.deepEqual(h.hook().pendingCursor, moved);
    // A resent finish of the delivered attempt is now refused.
    const resent = h.finish(event, "ok");
    assert.equal(resent.ok, false);
    h.begin(next);
    assert.deepEqual(h.hook().cursor, moved);
    assert.equal(h.hook().pendingCursor, undefined);
  });
});
