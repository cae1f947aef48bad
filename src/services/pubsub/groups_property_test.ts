import assert from "node:assert/strict";
import fc from "fast-check";
import type { AckAction, Delivery, PubsubAnswer } from "./commands.ts";
import type { PubsubKnobs } from "./groups.ts";
import { GroupsHarness, leaseId, options } from "./groups_harness_test.ts";

const T = "t";
const G = "g";
const PARTITIONS = 3;
const MEMBERS = ["m1", "m2", "m3", "m4"];

type Step =
  | { kind: "append"; partition: number }
  | { kind: "join"; member: number }
  | { kind: "leave"; member: number }
  | { kind: "endLease"; member: number }
  | { kind: "fetch"; member: number; batch: number }
  | { kind: "ack"; member: number; action: AckAction; pick: number }
  | { kind: "time"; advanceMs: number }
  | { kind: "tick" }
  | { kind: "trim"; partition: number; keep: number }
  | { kind: "pause"; forMs: number | null }
  | { kind: "resume" };

const member = fc.integer({ min: 0, max: MEMBERS.length - 1 });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      partition: fc.integer({ min: 0, max: PARTITIONS - 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("join" as const), member }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("leave" as const), member }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("endLease" as const), member }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("fetch" as const),
      member,
      batch: fc.integer({ min: 1, max: 4 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("ack" as const),
      member,
      action: fc.constantFrom<AckAction>(
        "ack",
        "ack",
        "nack",
        "inProgress",
        "terminate",
      ),
      pick: fc.nat(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("time" as const),
      advanceMs: fc.integer({ min: 0, max: 1_500 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("tick" as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("trim" as const),
      partition: fc.integer({ min: 0, max: PARTITIONS - 1 }),
      keep: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("pause" as const),
      forMs: fc.option(fc.integer({ min: 0, max: 3_000 })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("resume" as const) }) },
);

interface MemberView {
  lease: number;
  generation: number;
  held: Delivery[];
}

/**
 * Runs `steps` and checks, besides the harness's invariants after every
 * entry: a paused group delivers nothing; an accepted ack comes only from the owner of each partition it
 * names with a generation ≥ ownerSince; first deliveries follow offset
 * order per partition; after a drain every record was acked,
 * dead-lettered or (trimmed first) skipped, exactly once.
 */
function runScenario(steps: Step[], knobs: PubsubKnobs): void {
  const h = new GroupsHarness(knobs);
  h.createTopic(T, PARTITIONS);
  let nowMs = 0;
  let nextLease = 1;
  let appended = 0;
  let pausedUntil: number | null = null;
  const nextOffsets = Array.from({ length: PARTITIONS }, () => 0);
  const views = new Map<string, MemberView>();
  const firstDelivered = new Map<number, number>();
  const finished = new Map<string, string>();
  const groupOptions = options(T, G, {
    ackDeadlineMs: 1_000,
    maxDeliveries: 3,
  });
  const note = (messages: readonly Delivery[]) => {
    for (const m of messages) {
      if (m.delivery !== 1) continue;
      const last = firstDelivered.get(m.partition) ?? -1;
      assert.ok(m.offset > last, `first deliveries in order on ${m.partition}`);
      firstDelivered.set(m.partition, m.offset);
    }
  };
  const joinAs = (id: string) => {
    let view = views.get(id);
    if (view === undefined) {
      view = { lease: nextLease++, generation: 0, held: [] };
      h.grant(leaseId(view.lease));
      views.set(id, view);
    }
    const result = h.join(T, G, id, leaseId(view.lease), groupOptions, nowMs);
    assert.ok(result.ok);
    view.generation = (result.answer as { generation: number }).generation;
  };
  const ackAs = (
    id: string,
    view: MemberView,
    acks: Delivery[],
    action: AckAction,
  ) => {
    const before = h.reads.describe(T, G);
    const result = h.run({
      type: "ack",
      topic: T,
      group: G,
      memberId: id,
      generation: view.generation,
      acks: acks.map((m) => ({
        partition: m.partition,
        offset: m.offset,
        action,
        delayMs: action === "nack" ? 500 : 0,
      })),
      nowMs,
    });
    if (!result.ok) {
      assert.equal(result.reason, "staleGeneration");
      return;
    }
    assert.ok(before !== null);
    for (const m of acks) {
      const part: { owner: string | null; ownerSince: number } = before
        .partitions[m.partition]!;
      assert.equal(
        part.owner,
        id,
        `accepted ack from the owner of ${m.partition}`,
      );
      assert.ok(view.generation >= part.ownerSince, "accepted ack not fenced");
    }
    const results = (result.answer as Extract<PubsubAnswer, { type: "ack" }>)
      .results;
    results.forEach((r, i) => {
      if (!r.ok || action !== "ack") return;
      const key = `${r.partition}/${r.offset}`;
      assert.ok(!finished.has(key), `${key} finished once`);
      finished.set(key, "ack");
      void acks[i];
    });
    view.held = view.held.filter((m) => !acks.includes(m));
  };
  // The group exists before any record, so every record is the group's.
  joinAs("seed");
  h.ok({ type: "leave", topic: T, group: G, memberId: "seed", nowMs });
  for (const s of steps) {
    switch (s.kind) {
      case "append":
        nextOffsets[s.partition] =
          h.append(T, s.partition, `v${appended++}`, nowMs) + 1;
        break;
      case "pause": {
        const untilMs = s.forMs === null ? null : nowMs + s.forMs;
        h.ok({ type: "pause", topic: T, group: G, untilMs });
        pausedUntil = untilMs ?? Infinity;
        break;
      }
      case "resume":
        h.run({ type: "resume", topic: T, group: G });
        pausedUntil = null;
        break;
      case "trim":
        h.trim(T, s.partition, nextOffsets[s.partition]! - s.keep);
        break;
      case "join":
        joinAs(MEMBERS[s.member]!);
        break;
      case "leave":
        h.run({
          type: "leave",
          topic: T,
          group: G,
          memberId: MEMBERS[s.member]!,
          nowMs,
        });
        break;
      case "endLease": {
        const view = views.get(MEMBERS[s.member]!);
        if (view === undefined) break;
        h.endLeases(leaseId(view.lease));
        views.delete(MEMBERS[s.member]!);
        break;
      }
      case "fetch": {
        const id = MEMBERS[s.member]!;
        const view = views.get(id);
        if (view === undefined) break;
        const result = h.run({
          type: "fetch",
          topic: T,
          group: G,
          memberId: id,
          generation: view.generation,
          batch: s.batch,
          maxBytes: null,
          nowMs,
        });
        if (!result.ok) {
          // A fenced member learns the generation by joining again.
          assert.equal(result.reason, "staleGeneration");
          joinAs(id);
          break;
        }
        const messages =
          (result.answer as Extract<PubsubAnswer, { type: "fetch" }>)
            .messages;
        if (pausedUntil !== null && pausedUntil > nowMs) {
          assert.deepEqual(messages, [], "a paused group delivers nothing");
        }
        note(messages);
        view.held.push(...messages);
        break;
      }
      case "ack": {
        const id = MEMBERS[s.member]!;
        const view = views.get(id);
        if (view === undefined || view.held.length === 0) break;
        const chosen = view.held[s.pick % view.held.length]!;
        ackAs(id, view, [chosen], s.action);
        break;
      }
      case "time":
        nowMs += s.advanceMs;
        break;
      case "tick":
        h.ok({ type: "tick", nowMs });
        break;
    }
  }
  // Drain: everyone's lease ends; one member finishes every record.
  for (const view of views.values()) h.endLeases(leaseId(view.lease));
  views.clear();
  joinAs("drain");
  h.run({ type: "resume", topic: T, group: G });
  const drain = views.get("drain")!;
  for (let round = 0; round < 100; round++) {
    nowMs += 10_000;
    h.ok({ type: "tick", nowMs });
    const answer = h.ok({
      type: "fetch",
      topic: T,
      group: G,
      memberId: "drain",
      generation: drain.generation,
      batch: 1_000,
      maxBytes: null,
      nowMs,
    });
    if (answer.messages.length === 0) break;
    note(answer.messages);
    drain.held = [...answer.messages];
    ackAs("drain", drain, drain.held, "ack");
  }
  const described = h.reads.describe(T, G)!;
  for (const part of described.partitions) {
    assert.equal(part.lag, 0, `partition ${part.partition} drained`);
  }
  for (let offset = 0; offset < 100_000; offset++) {
    const dead = h.record(`${T}.dlq.${G}`, 0, offset);
    if (dead === null) break;
    const source = dead.headers.find(([name]) => name === "aspen-source")![1];
    const key = source.slice(T.length + 1);
    assert.ok(!finished.has(key), `${key} dead-lettered once, never acked`);
    finished.set(key, "dead");
  }
  const skipped = described.partitions.reduce((n, p) => n + p.skipped, 0);
  assert.equal(
    finished.size + skipped,
    appended,
    "every record acked, dead-lettered or skipped by a trim",
  );
}

const scenario = fc.array(step, { minLength: 5, maxLength: 80 });

Deno.test("GroupWriter keeps its invariants, fencing and order under random joins, leaves, lease ends, fetches, acks, ticks, trims and pauses", () => {
  fc.assert(fc.property(scenario, (steps) => runScenario(steps, {})), {
    numRuns: 300,
  });
});

Deno.test("GroupWriter's planted bug ackIgnoresGeneration is found by the random scenarios", () => {
  const found = fc.check(
    fc.property(
      scenario,
      (steps) => runScenario(steps, { ackIgnoresGeneration: true }),
    ),
    { numRuns: 500, seed: 18, endOnFailure: true },
  );
  assert.equal(found.failed, true);
});
