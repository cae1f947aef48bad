import assert from "node:assert/strict";
import { encodeKey } from "../model/key_codec.ts";
import {
  type DeliveryRecord,
  type HistoryEvent,
  HOOK_OUTCOMES,
  type HookOutcome,
  type HookRecord,
} from "../services/events/api.ts";
import { checkHook, type HookEnd } from "./hooks_checker.ts";
import type { Arrival } from "./hooks_workers.ts";

const HOOK_ID = "0000000000000001";

/** A `kv.set` of `['sim', key]` at `(revision, index)`. */
function set(revision: number, index: number, key = "k0"): HistoryEvent {
  return {
    revision: BigInt(revision),
    index,
    type: "kv.set",
    key: encodeKey(["sim", key]),
    after: {
      value: new Uint8Array([revision]),
      encoding: "bytes",
      versionstamp: new Uint8Array(10).fill(revision),
    },
    before: null,
  };
}

/** The hook's `hook.gap` over revisions `from`–`to`, recorded at `revision`. */
function gap(revision: number, from: number, to: number): HistoryEvent {
  return {
    revision: BigInt(revision),
    index: 0,
    type: "hook.gap",
    data: { hook: HOOK_ID, name: "hook-1", fromRevision: from, toRevision: to },
  };
}

function hook(logFirst = 0): HookRecord {
  return {
    id: HOOK_ID,
    name: "hook-1",
    selector: { kind: "all" },
    types: ["kv.*"],
    target: { kind: "webhook", url: "http://127.0.0.1/sim", headers: {} },
    secrets: [new Uint8Array(32)],
    previousUntilMs: null,
    state: "active",
    disabledReason: null,
    cursor: { r: 9, i: 0 },
    timeoutMs: 1_000,
    retryWindowMs: 3_600_000,
    retrySchedule: null,
    createdAtMs: 0,
    claim: null,
    tokens: 1,
    retrying: null,
    open: [],
    replay: null,
    logNext: 0,
    logFirst,
    counts: Object.fromEntries(HOOK_OUTCOMES.map((o) => [o, 0])) as Record<
      HookOutcome,
      number
    >,
  };
}

function arrival(event: string, attempt: number, worker = "hw1"): Arrival {
  return { hook: HOOK_ID, event, attempt, worker, atMs: 0 };
}

function record(
  eventId: string,
  attempt: number,
  outcome: HookOutcome,
  worker = "hw1",
): DeliveryRecord {
  return {
    eventId,
    attempt,
    startedAtMs: 0,
    latencyMs: 0,
    status: outcome === "ok" ? 200 : null,
    outcome,
    error: null,
    nextAttemptAtMs: null,
    replay: false,
    worker,
  };
}

/** Events 2.0, 3.0 and 5.0; 2.0 failed once, then every attempt was ok. */
function clean(): HookEnd {
  return {
    hook: hook(),
    fromRevision: 1,
    events: [set(2, 0), set(3, 0), set(5, 0)],
    arrivals: [
      arrival("2.0", 1),
      arrival("2.0", 2),
      arrival("3.0", 1),
      arrival("5.0", 1),
    ],
    deliveries: [
      record("2.0", 1, "failed"),
      record("2.0", 2, "ok"),
      record("3.0", 1, "ok"),
      record("5.0", 1, "ok"),
    ],
    caughtUp: true,
  };
}

Deno.test("checkHook() passes a clean delivery log, an unknown record beside a finished one, and events a gap excuses", () => {
  assert.equal(checkHook(clean()), null);
  const unknown = clean();
  assert.equal(
    checkHook({
      ...unknown,
      arrivals: [arrival("2.0", 1, "hw2"), ...unknown.arrivals],
      deliveries: [record("2.0", 1, "unknown", "hw2"), ...unknown.deliveries],
    }),
    null,
  );
  const gapped = clean();
  assert.equal(
    checkHook({
      ...gapped,
      events: [set(1, 0), ...gapped.events, gap(6, 1, 1)],
      arrivals: [...gapped.arrivals, arrival("6.0", 1)],
      deliveries: [...gapped.deliveries, record("6.0", 1, "ok")],
    }),
    null,
  );
});

Deno.test("checkHook() finds each broken property", async (t) => {
  const cases: {
    name: string;
    change: (end: HookEnd) => HookEnd;
    problem: RegExp;
  }[] = [
    {
      name: "an event that never arrived",
      change: (end) => ({ ...end, events: [...end.events, set(7, 0)] }),
      problem: /event 7\.0 \(kv\.set\) never arrived/,
    },
    {
      name: "first arrivals out of order",
      change: (end) => ({
        ...end,
        arrivals: [
          end.arrivals[2]!,
          end.arrivals[0]!,
          end.arrivals[1]!,
          end
            .arrivals[3]!,
        ],
      }),
      problem: /event 2\.0 first arrived after event 3\.0/,
    },
    {
      name: "an arrival without a record",
      change: (end) => ({ ...end, deliveries: end.deliveries.slice(1) }),
      problem: /attempt 1 of event 2\.0 arrived .* has no delivery record/,
    },
    {
      name: "two finished records of one attempt",
      change: (end) => ({
        ...end,
        arrivals: [...end.arrivals, arrival("3.0", 1, "hw2")],
        deliveries: [...end.deliveries, record("3.0", 1, "ok", "hw2")],
      }),
      problem:
        /attempt 3\.0#1 has 2 finished delivery records \(ok by hw1, ok by hw2\)/,
    },
    {
      name: "a finished record that never arrived",
      change: (end) => ({
        ...end,
        deliveries: [...end.deliveries, record("5.0", 2, "failed")],
      }),
      problem: /attempt 5\.0#2 has a failed delivery record and never arrived/,
    },
    {
      name: "a cursor behind an ok delivery",
      change: (end) => ({
        ...end,
        hook: { ...hook(), cursor: { r: 5, i: -1 } },
      }),
      problem:
        /its cursor \{"r":5,"i":-1\} is behind event 5\.0, delivered ok by hw1/,
    },
    {
      name: "a trimmed log",
      change: (end) => ({ ...end, hook: hook(3) }),
      problem: /its delivery log was trimmed/,
    },
  ];
  for (const { name, change, problem } of cases) {
    await t.step(name, () => {
      const found = checkHook(change(clean()));
      assert.ok(found !== null, `${name}: no problem found`);
      assert.match(found, problem);
    });
  }
});

Deno.test("checkHook() does not demand every event when the workers did not catch up", () => {
  const end = clean();
  const behind = { ...end, events: [...end.events, set(7, 0)] };
  assert.match(checkHook(behind)!, /never arrived/);
  assert.equal(checkHook({ ...behind, caughtUp: false }), null);
});
