import assert from "node:assert/strict";
import { assignment } from "./assignment.ts";
import type {
  AckAction,
  Delivery,
  GroupOptions,
  PubsubAnswer,
} from "./commands.ts";
import type { PubsubKnobs } from "./groups.ts";
import {
  GroupsHarness,
  leaseId,
  options,
  type TestResult,
} from "./groups_harness_test.ts";

const T = "orders";
const G = "g";

function setup(partitions = 4, knobs: PubsubKnobs = {}): GroupsHarness {
  const h = new GroupsHarness(knobs);
  h.createTopic(T, partitions);
  for (let n = 1; n <= 8; n++) h.grant(leaseId(n));
  return h;
}

function join(
  h: GroupsHarness,
  member: string,
  lease = 1,
  groupOptions: GroupOptions | null = null,
  group = G,
): Extract<PubsubAnswer, { type: "join" }> {
  const result = h.join(T, group, member, leaseId(lease), groupOptions);
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return result.answer as Extract<PubsubAnswer, { type: "join" }>;
}

function fetchRun(
  h: GroupsHarness,
  member: string,
  generation: number,
  nowMs = 0,
  batch = 100,
  maxBytes: number | null = null,
  group = G,
): TestResult {
  return h.run({
    type: "fetch",
    topic: T,
    group,
    memberId: member,
    generation,
    batch,
    maxBytes,
    nowMs,
  });
}

function fetch(
  h: GroupsHarness,
  member: string,
  generation: number,
  nowMs = 0,
  batch = 100,
  maxBytes: number | null = null,
): Delivery[] {
  const result = fetchRun(h, member, generation, nowMs, batch, maxBytes);
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return [
    ...(result.answer as Extract<PubsubAnswer, { type: "fetch" }>)
      .messages,
  ];
}

type AckSpec = [number, number, AckAction?, number?];

function ackRun(
  h: GroupsHarness,
  member: string,
  generation: number,
  acks: AckSpec[],
  nowMs = 0,
): TestResult {
  return h.run({
    type: "ack",
    topic: T,
    group: G,
    memberId: member,
    generation,
    acks: acks.map(([partition, offset, action, delayMs]) => ({
      partition,
      offset,
      action: action ?? "ack",
      delayMs: delayMs ?? 0,
    })),
    nowMs,
  });
}

function ack(
  h: GroupsHarness,
  member: string,
  generation: number,
  acks: AckSpec[],
  nowMs = 0,
): boolean[] {
  const result = ackRun(h, member, generation, acks, nowMs);
  if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
  return (result.answer as Extract<PubsubAnswer, { type: "ack" }>).results
    .map((r) => r.ok);
}

function tick(h: GroupsHarness, nowMs: number): { expired: number } {
  return h.ok({ type: "tick", nowMs });
}

function describe(h: GroupsHarness, group = G) {
  const described = h.reads.describe(T, group);
  assert.ok(described !== null);
  return described;
}

const offsetsOf = (messages: Delivery[]) =>
  messages.map((m) => [m.partition, m.offset, m.delivery]);

Deno.test("GroupWriter.join() creates the group and joins, leaves and lease ends move only the partitions they must", () => {
  const h = setup(16);
  const steps: [string, (h: GroupsHarness) => void, string[]][] = [
    ["a joins", (h) => void join(h, "a", 1), ["a"]],
    ["b joins", (h) => void join(h, "b", 2), ["a", "b"]],
    ["c joins", (h) => void join(h, "c", 3), ["a", "b", "c"]],
    ["d joins", (h) => void join(h, "d", 4), ["a", "b", "c", "d"]],
    ["b leaves", (h) => {
      h.ok({ type: "leave", topic: T, group: G, memberId: "b", nowMs: 0 });
    }, ["a", "c", "d"]],
    ["c's lease ends", (h) => h.endLeases(leaseId(3)), ["a", "d"]],
  ];
  let before = h.reads.describe(T, G);
  for (const [name, step, members] of steps) {
    step(h);
    const after = describe(h);
    assert.deepEqual(after.members.map((m) => m.id), members, name);
    assert.equal(after.generation, (before?.generation ?? 0) + 1, name);
    const owners = assignment(G, 16, members);
    let moved = 0;
    for (const part of after.partitions) {
      assert.equal(part.owner, owners[part.partition], `${name}: owner`);
      const old = before?.partitions[part.partition];
      if (old === undefined || old.owner !== part.owner) {
        moved++;
        assert.equal(part.ownerSince, after.generation, `${name}: moved`);
      } else {
        assert.equal(part.ownerSince, old.ownerSince, `${name}: unmoved`);
      }
    }
    // Exactly the newcomer's partitions, or the leaver's, moved.
    const movedSet = after.partitions.filter((part) =>
      before?.partitions[part.partition]?.owner !== part.owner
    ).map((part) => part.partition);
    const previous = new Set(before?.members.map((m) => m.id) ?? []);
    const changed = [
      ...members.filter((m) => !previous.has(m)),
      ...[...previous].filter((m) => !members.includes(m)),
    ];
    assert.equal(changed.length, 1, name);
    const expected = after.partitions.filter((part) =>
      part.owner === changed[0] ||
      before?.partitions[part.partition]?.owner === changed[0]
    ).map((part) => part.partition);
    assert.deepEqual(movedSet, expected, `${name}: moved`);
    assert.equal(moved, movedSet.length);
    before = after;
  }
});

Deno.test("GroupWriter.join() answers a rejoin on the same lease as is, and a rejoin on a new lease moves its partitions to it", () => {
  const h = setup(8);
  const first = join(h, "a", 1);
  assert.deepEqual(first.partitions, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(first.generation, 1);
  join(h, "b", 2);
  const dump = h.dump();
  const again = join(h, "a", 1);
  assert.equal(again.generation, 2);
  assert.deepEqual(
    h.dump(),
    dump,
    "a rejoin on the same lease changes nothing",
  );
  const moved = join(h, "a", 3);
  assert.equal(moved.generation, 3);
  assert.deepEqual(moved.partitions, again.partitions);
  for (const part of describe(h).partitions) {
    assert.equal(
      part.ownerSince === 3,
      part.owner === "a",
      `p${part.partition}`,
    );
  }
  // The old lease no longer holds the member; the new one does.
  h.endLeases(leaseId(1));
  assert.deepEqual(describe(h).members.map((m) => m.id), ["a", "b"]);
  h.endLeases(leaseId(3));
  assert.deepEqual(describe(h).members.map((m) => m.id), ["b"]);
});

Deno.test("GroupWriter.leasesEnded() removes a lease's members from every group in one entry", () => {
  const h = setup(2);
  join(h, "a", 1, null, "g1");
  join(h, "a", 1, null, "g2");
  join(h, "b", 2, null, "g2");
  h.endLeases(leaseId(1));
  assert.deepEqual(describe(h, "g1").members, []);
  assert.equal(describe(h, "g1").generation, 2);
  assert.deepEqual(describe(h, "g2").members.map((m) => m.id), ["b"]);
  assert.deepEqual(describe(h, "g1").partitions.map((p) => p.owner), [
    null,
    null,
  ]);
});

Deno.test("GroupWriter.join() refuses a dead lease, a missing topic and other options", () => {
  const h = setup(2);
  const dead = h.join(T, G, "a", leaseId(99), null);
  assert.equal(!dead.ok && dead.reason, "leaseNotFound");
  const missing = h.run({
    type: "join",
    topic: "nope",
    group: G,
    memberId: "a",
    lease: leaseId(1),
    options: null,
    nowMs: 0,
  });
  assert.equal(!missing.ok && missing.reason, "topicNotFound");
  join(h, "a", 1, options(T, G, { maxDeliveries: 3 }));
  const dump = h.dump();
  const other = h.join(T, G, "b", leaseId(2), options(T, G));
  assert.equal(!other.ok && other.reason, "groupConfigMismatch");
  assert.deepEqual(h.dump(), dump);
  // The same options, or none, are fine.
  join(h, "b", 2, options(T, G, { maxDeliveries: 3 }));
  join(h, "c", 3);
  assert.equal(describe(h).options.maxDeliveries, 3);
  assert.equal(describe(h).options.deadLetterTopic, "orders.dlq.g");
});

/** a owns everything, delivers one record per partition, then b joins. */
function rebalanced(knobs: PubsubKnobs = {}) {
  const h = setup(8, knobs);
  join(h, "a", 1);
  for (let p = 0; p < 8; p++) h.append(T, p, `m${p}`);
  const delivered = fetch(h, "a", 1);
  assert.equal(delivered.length, 8);
  const b = join(h, "b", 2);
  assert.equal(b.generation, 2);
  assert.ok(b.partitions.length > 0 && b.partitions.length < 8);
  const kept = [0, 1, 2, 3, 4, 5, 6, 7].filter((p) =>
    !b.partitions.includes(p)
  );
  return { h, moved: b.partitions, kept };
}

/** The fenced ack of the rebalance scenario: a acks a moved partition. */
function fencedAck(knobs: PubsubKnobs): { result: TestResult; same: boolean } {
  const { h, moved, kept } = rebalanced(knobs);
  const dump = h.dump();
  const result = ackRun(h, "a", 1, [[kept[0]!, 0], [moved[0]!, 0]]);
  return {
    result,
    same: JSON.stringify([...h.dump()]) === JSON.stringify([...dump]),
  };
}

Deno.test("GroupWriter.ack() refuses a member acking a moved partition with staleGeneration and details, changing nothing", () => {
  const { result, same } = fencedAck({});
  assert.equal(result.ok, false);
  assert.ok(!result.ok);
  assert.equal(result.reason, "staleGeneration");
  const details = result.details as {
    generation: number;
    assignment: Record<string, string>;
  };
  assert.equal(details.generation, 2);
  assert.deepEqual(
    Object.values(details.assignment).sort(),
    assignment(G, 8, ["a", "b"]).map(String).sort(),
  );
  assert.ok(same, "nothing changed, not even the unmoved ack of the call");
});

Deno.test("GroupWriter.ack() with the planted bug ackIgnoresGeneration accepts the fenced ack (the fencing test fails)", () => {
  const { result, same } = fencedAck({ ackIgnoresGeneration: true });
  assert.equal(result.ok, true);
  assert.equal(same, false);
});

Deno.test("GroupWriter.fetch() fences non-members, stale and future generations, and unmoved partitions keep working", () => {
  const { h, moved, kept } = rebalanced();
  const dump = h.dump();
  for (
    const [member, generation] of [["x", 2], ["b", 1], ["a", 3]] as const
  ) {
    const result = fetchRun(h, member, generation);
    assert.ok(!result.ok, `${member}@${generation}`);
    assert.equal(result.reason, "staleGeneration");
    assert.equal((result.details as { generation: number }).generation, 2);
  }
  assert.deepEqual(h.dump(), dump);
  // a keeps its unmoved partitions with generation 1: acks accepted.
  assert.deepEqual(ack(h, "a", 1, [[kept[0]!, 0]]), [true]);
  // b gets the moved partitions' deliveries again at once, counts kept.
  const redelivered = fetch(h, "b", 2);
  assert.deepEqual(
    redelivered.map((m) => m.partition).sort(),
    [...moved].sort(),
  );
  assert.ok(redelivered.every((m) => m.offset === 0 && m.delivery === 2));
  assert.deepEqual(
    ack(h, "b", 2, moved.map((p) => [p, 0])),
    moved.map(() => true),
  );
  // a's other in-flight ones are still its own (pending), not redelivered.
  assert.deepEqual(fetch(h, "a", 1), []);
  assert.deepEqual(
    ack(h, "a", 2, kept.slice(1).map((p) => [p, 0])),
    kept.slice(1).map(() => true),
  );
  for (const part of describe(h).partitions) {
    assert.equal(part.cursor, 1);
    assert.equal(part.pending, 0);
  }
});

Deno.test("GroupWriter.fetch() delivers first deliveries in offset order, round-robin over partitions, within batch and maxBytes", () => {
  const h = setup(3);
  const { generation } = join(h, "a", 1);
  for (let i = 0; i < 4; i++) {
    for (let p = 0; p < 3; p++) h.append(T, p, `p${p}-${i}`);
  }
  const first = fetch(h, "a", generation, 0, 3);
  assert.deepEqual(first.map((m) => m.partition).sort(), [0, 1, 2]);
  assert.ok(first.every((m) => m.offset === 0 && m.delivery === 1));
  const rest = fetch(h, "a", generation, 0, 100);
  assert.equal(rest.length, 9);
  for (let p = 0; p < 3; p++) {
    assert.deepEqual(
      rest.filter((m) => m.partition === p).map((m) => m.offset),
      [1, 2, 3],
    );
  }
  assert.equal(
    new TextDecoder().decode(rest.find((m) => m.partition === 2)!.value),
    "p2-1",
  );
  assert.ok(rest.every((m) => m.deadlineMs === 30_000));
  // maxBytes: each value is 5 bytes; messages are added until that many
  // value bytes are taken, so at least one always comes.
  const h2 = setup(1);
  join(h2, "a", 1);
  for (let i = 0; i < 6; i++) h2.append(T, 0, `v${i}xyz`);
  assert.deepEqual(fetch(h2, "a", 1, 0, 100, 10).map((m) => m.offset), [0, 1]);
  assert.deepEqual(fetch(h2, "a", 1, 0, 100, 11).map((m) => m.offset), [
    2,
    3,
    4,
  ]);
  assert.deepEqual(fetch(h2, "a", 1, 0, 100, 1).map((m) => m.offset), [5]);
});

Deno.test("GroupWriter.fetch() with maxAckPending 1 delivers strictly in order, redelivering an unfinished offset first", () => {
  const h = setup(1);
  join(h, "a", 1, options(T, G, { maxAckPending: 1 }));
  for (let i = 0; i < 3; i++) h.append(T, 0, `m${i}`);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1)), [[0, 0, 1]]);
  const dump = h.dump();
  assert.deepEqual(fetch(h, "a", 1), []);
  assert.deepEqual(h.dump(), dump, "an empty fetch writes nothing");
  assert.equal(h.reads.hasDeliverable(T, G, "a", 0), false);
  assert.deepEqual(ack(h, "a", 1, [[0, 0, "nack"]]), [true]);
  assert.equal(h.reads.hasDeliverable(T, G, "a", 0), true);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1)), [[0, 0, 2]]);
  assert.deepEqual(ack(h, "a", 1, [[0, 0]]), [true]);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1)), [[0, 1, 1]]);
  // With maxAckPending 2, two at a time.
  const h2 = setup(1);
  join(h2, "a", 1, options(T, G, { maxAckPending: 2 }));
  for (let i = 0; i < 5; i++) h2.append(T, 0, `m${i}`);
  assert.deepEqual(fetch(h2, "a", 1).map((m) => m.offset), [0, 1]);
  ack(h2, "a", 1, [[0, 1]]);
  assert.deepEqual(fetch(h2, "a", 1).map((m) => m.offset), [2]);
});

Deno.test("GroupWriter.tick() fails an expired delivery, which is redelivered; a fetch fails due ones itself", () => {
  const h = setup(1);
  join(h, "a", 1, options(T, G, { ackDeadlineMs: 1_000 }));
  h.append(T, 0, "m0");
  h.append(T, 0, "m1");
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 0, 1)), [[0, 0, 1]]);
  assert.equal(h.reads.nextDueMs(), 1_000);
  assert.equal(tick(h, 999).expired, 0);
  assert.equal(tick(h, 1_000).expired, 1);
  assert.equal(h.reads.nextDueMs(), null);
  // The redelivery comes before the new offset 1.
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 1_001, 1)), [[0, 0, 2]]);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 1_001, 1)), [[0, 1, 1]]);
  // Without a tick: a fetch at the deadline fails it first.
  assert.equal(h.reads.hasDeliverable(T, G, "a", 2_000), false);
  assert.equal(h.reads.hasDeliverable(T, G, "a", 2_001), true);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 2_001)), [[0, 0, 3], [0, 1, 2]]);
  assert.equal(describe(h).partitions[0]!.redelivered, 3);
});

Deno.test("GroupWriter sends a message past maxDeliveries to the dead-letter topic with its headers", () => {
  const h = setup(1);
  join(h, "a", 1, options(T, G, { ackDeadlineMs: 1_000, maxDeliveries: 2 }));
  h.append(T, 0, "poison", 5, "k1", [["trace", "x"]]);
  h.append(T, 0, "fine", 6);
  fetch(h, "a", 1, 0, 1);
  tick(h, 1_000);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 1_000, 1)), [[0, 0, 2]]);
  assert.equal(tick(h, 2_000).expired, 1);
  const dead = h.record("orders.dlq.g", 0, 0);
  assert.ok(dead !== null);
  assert.equal(new TextDecoder().decode(dead.value), "poison");
  assert.equal(dead.key, "k1");
  assert.deepEqual(dead.headers, [
    ["trace", "x"],
    ["aspen-dlq-reason", "maxDeliveries"],
    ["aspen-source", "orders/0/0"],
    ["aspen-deliveries", "2"],
  ]);
  const d = describe(h);
  assert.equal(d.deadLettered, 1);
  assert.equal(d.partitions[0]!.cursor, 1);
  assert.equal(d.partitions[0]!.pending, 0);
  // A nack at the last delivery dead-letters at once.
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 3_000)), [[0, 1, 1]]);
  ack(h, "a", 1, [[0, 1, "nack"]], 3_000);
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 3_000)), [[0, 1, 2]]);
  ack(h, "a", 1, [[0, 1, "nack"]], 3_000);
  assert.equal(describe(h).deadLettered, 2);
  assert.equal(describe(h).partitions[0]!.cursor, 2);
  assert.equal(
    h.record("orders.dlq.g", 0, 1)?.headers[0]?.[1],
    "maxDeliveries",
  );
});

Deno.test("GroupWriter.ack() terminate dead-letters now, to the configured topic's partition mod its partitions", () => {
  const h = setup(6);
  h.createTopic("dead", 4);
  join(h, "a", 1, options(T, G, { deadLetterTopic: "dead" }));
  h.append(T, 5, "bad");
  assert.deepEqual(offsetsOf(fetch(h, "a", 1)), [[5, 0, 1]]);
  assert.deepEqual(ack(h, "a", 1, [[5, 0, "terminate"]], 77), [true]);
  const dead = h.record("dead", 1, 0);
  assert.ok(dead !== null);
  assert.deepEqual(dead.headers, [
    ["aspen-dlq-reason", "terminated"],
    ["aspen-source", "orders/5/0"],
    ["aspen-deliveries", "1"],
  ]);
  assert.equal(dead.publishedAtMs, 77);
  assert.deepEqual(ack(h, "a", 1, [[5, 0, "ack"]]), [false], "finished");
});

Deno.test("GroupWriter.ack() nack with a delay holds the message until then", () => {
  const h = setup(1);
  join(h, "a", 1);
  h.append(T, 0, "m");
  fetch(h, "a", 1, 100);
  ack(h, "a", 1, [[0, 0, "nack", 5_000]], 100);
  assert.deepEqual(fetch(h, "a", 1, 200), []);
  assert.equal(h.reads.hasDeliverable(T, G, "a", 200), false);
  assert.equal(h.reads.nextDueMs(), 5_100);
  assert.equal(h.reads.hasDeliverable(T, G, "a", 5_100), true);
  assert.equal(tick(h, 5_100).expired, 0, "a nack's end is no failure");
  assert.deepEqual(offsetsOf(fetch(h, "a", 1, 5_100)), [[0, 0, 2]]);
});

Deno.test("GroupWriter.ack() inProgress extends the deadline", () => {
  const h = setup(1);
  join(h, "a", 1);
  h.append(T, 0, "m");
  assert.equal(fetch(h, "a", 1, 0)[0]!.deadlineMs, 30_000);
  assert.deepEqual(ack(h, "a", 1, [[0, 0, "inProgress"]], 20_000), [true]);
  assert.equal(h.reads.nextDueMs(), 50_000);
  assert.equal(tick(h, 30_000).expired, 0);
  assert.deepEqual(fetch(h, "a", 1, 30_000), []);
  assert.equal(tick(h, 50_000).expired, 1);
  assert.deepEqual(ack(h, "a", 1, [[0, 0, "inProgress"]], 50_000), [false]);
  assert.deepEqual(ack(h, "a", 1, [[0, 9, "inProgress"]], 50_000), [false]);
});

Deno.test("GroupWriter keeps the cursor at the lowest unfinished offset", () => {
  const h = setup(1);
  join(h, "a", 1);
  for (let i = 0; i < 5; i++) h.append(T, 0, `m${i}`);
  const cursor = () => describe(h).partitions[0]!;
  assert.equal(cursor().lag, 5);
  fetch(h, "a", 1);
  assert.deepEqual(ack(h, "a", 1, [[0, 1], [0, 2]]), [true, true]);
  assert.equal(cursor().cursor, 0);
  ack(h, "a", 1, [[0, 0]]);
  assert.equal(cursor().cursor, 3);
  ack(h, "a", 1, [[0, 4]]);
  assert.equal(cursor().cursor, 3);
  assert.equal(cursor().lag, 2);
  assert.deepEqual(ack(h, "a", 1, [[0, 3], [0, 3], [0, 7]]), [
    true,
    false,
    false,
  ]);
  assert.equal(cursor().cursor, 5);
  assert.equal(cursor().lag, 0);
});

Deno.test("GroupWriter.pause() stops deliveries (acks still apply) until resume or untilMs", () => {
  const h = setup(1);
  join(h, "a", 1);
  h.append(T, 0, "m0");
  h.append(T, 0, "m1");
  fetch(h, "a", 1, 0, 1);
  assert.deepEqual(h.ok({ type: "pause", topic: T, group: G, untilMs: null }), {
    type: "pause",
    paused: true,
    pausedUntilMs: null,
  });
  assert.deepEqual(fetch(h, "a", 1), []);
  assert.equal(h.reads.hasDeliverable(T, G, "a", 0), false);
  assert.deepEqual(ack(h, "a", 1, [[0, 0]]), [true]);
  h.run({ type: "resume", topic: T, group: G });
  assert.deepEqual(fetch(h, "a", 1).map((m) => m.offset), [1]);
  h.append(T, 0, "m2");
  h.ok({ type: "pause", topic: T, group: G, untilMs: 5_000 });
  assert.equal(h.reads.nextDueMs(), 5_000);
  assert.deepEqual(fetch(h, "a", 1, 4_999), []);
  assert.equal(describe(h).paused, true);
  tick(h, 5_000);
  assert.equal(describe(h).paused, false);
  assert.equal(describe(h).pausedUntilMs, null);
  assert.deepEqual(fetch(h, "a", 1, 5_000).map((m) => m.offset), [2]);
  // A later pause replaces an earlier one's end.
  h.ok({ type: "pause", topic: T, group: G, untilMs: 9_000 });
  h.ok({ type: "pause", topic: T, group: G, untilMs: null });
  tick(h, 9_000);
  assert.equal(describe(h).paused, true);
});

Deno.test("GroupWriter.reset() needs an empty group unless forced, which bumps the generation and fences", () => {
  const h = setup(2);
  join(h, "a", 1);
  for (let i = 0; i < 4; i++) {
    h.append(T, 0, `m${i}`, i * 100);
    h.append(T, 1, `n${i}`, i * 100);
  }
  fetch(h, "a", 1);
  const reset = (to: Parameters<GroupsHarness["run"]>[0] & { type: "reset" }) =>
    h.run(to);
  const refused = reset({
    type: "reset",
    topic: T,
    group: G,
    to: { kind: "earliest" },
    partition: null,
    force: false,
    nowMs: 0,
  });
  assert.equal(!refused.ok && refused.reason, "groupNotEmpty");
  const forced = h.ok({
    type: "reset",
    topic: T,
    group: G,
    to: { kind: "offset", offset: 2 },
    partition: 1,
    force: true,
    nowMs: 0,
  });
  assert.deepEqual(forced, {
    type: "reset",
    generation: 2,
    partitions: [{ partition: 1, cursor: 2 }],
  });
  const d = describe(h);
  assert.equal(d.partitions[1]!.pending, 0);
  assert.equal(d.partitions[0]!.pending, 4, "partition 0 untouched");
  const stale = ackRun(h, "a", 1, [[1, 2]]);
  assert.equal(!stale.ok && stale.reason, "staleGeneration");
  assert.deepEqual(ack(h, "a", 1, [[0, 0]]), [true], "p0 keeps ownerSince 1");
  assert.deepEqual(fetch(h, "a", 2).map((m) => [m.partition, m.offset]), [
    [1, 2],
    [1, 3],
  ]);
  h.ok({ type: "leave", topic: T, group: G, memberId: "a", nowMs: 0 });
  for (
    const [to, cursors] of [
      [{ kind: "earliest" }, [0, 0]],
      [{ kind: "latest" }, [4, 4]],
      [{ kind: "time", timeMs: 150 }, [2, 2]],
      [{ kind: "offset", offset: 99 }, [4, 4]],
    ] as const
  ) {
    const answer = h.ok({
      type: "reset",
      topic: T,
      group: G,
      to,
      partition: null,
      force: false,
      nowMs: 0,
    });
    assert.equal(answer.generation, 3, "unforced keeps the generation");
    assert.deepEqual(answer.partitions.map((p) => p.cursor), cursors, to.kind);
  }
  const bad = reset({
    type: "reset",
    topic: T,
    group: G,
    to: { kind: "earliest" },
    partition: 2,
    force: false,
    nowMs: 0,
  });
  assert.equal(!bad.ok && bad.reason, "invalid");
});

Deno.test("GroupWriter.join() starts a new group at all, new, given offsets or a time", () => {
  const h = setup(2);
  for (let i = 0; i < 3; i++) {
    h.append(T, 0, `m${i}`, (i + 1) * 100);
    h.append(T, 1, `n${i}`, (i + 1) * 100);
  }
  const cases: [string, GroupOptions["start"], number[]][] = [
    ["all", { kind: "all" }, [0, 0]],
    ["new", { kind: "new" }, [3, 3]],
    ["offsets", { kind: "offsets", offsets: { "0": 1, "1": 99 } }, [1, 3]],
    ["time", { kind: "time", timeMs: 200 }, [1, 1]],
    ["late", { kind: "time", timeMs: 1_000 }, [3, 3]],
  ];
  for (const [group, start, cursors] of cases) {
    join(h, "a", 1, options(T, group, { start }), group);
    assert.deepEqual(
      describe(h, group).partitions.map((p) => p.cursor),
      cursors,
      group,
    );
  }
  assert.deepEqual(describe(h, "offsets").options.start, {
    offsets: { "0": 1, "1": 99 },
  });
  // The same offsets in another order are the same options.
  join(
    h,
    "b",
    2,
    options(T, "offsets", {
      start: { kind: "offsets", offsets: { "1": 99, "0": 1 } },
    }),
    "offsets",
  );
});

Deno.test("GroupWriter.fetch() jumps over trimmed records, counting them skipped", () => {
  const h = setup(1);
  join(h, "a", 1);
  for (let i = 0; i < 5; i++) h.append(T, 0, `m${i}`);
  h.trim(T, 0, 3);
  const jumped = fetchRun(h, "a", 1);
  const jumpedIndex = h.index;
  assert.ok(jumped.ok);
  assert.deepEqual(jumped.gaps, [
    { topic: T, group: G, partition: 0, fromOffset: 0, toOffset: 3 },
  ]);
  assert.deepEqual(
    (jumped.answer as Extract<PubsubAnswer, { type: "fetch" }>).messages.map((
      m,
    ) => m.offset),
    [3, 4],
  );
  assert.equal(describe(h).partitions[0]!.skipped, 3);
  // An unfinished delivery whose record is trimmed is skipped too.
  for (let i = 5; i < 8; i++) h.append(T, 0, `m${i}`);
  fetch(h, "a", 1);
  ack(h, "a", 1, [[0, 3, "nack"], [0, 4], [0, 6], [0, 7]]);
  h.trim(T, 0, 6);
  const dropped = fetchRun(h, "a", 1);
  assert.ok(dropped.ok);
  assert.deepEqual(dropped.gaps, [
    { topic: T, group: G, partition: 0, fromOffset: 3, toOffset: 4 },
  ]);
  assert.deepEqual(
    (dropped.answer as Extract<PubsubAnswer, { type: "fetch" }>).messages,
    [],
  );
  const p = describe(h).partitions[0]!;
  assert.equal(p.skipped, 4);
  // Each gap is a `topic.gap` history event of the entry that skipped it.
  assert.deepEqual(
    h.events("topic.gap").map((e) => [e.revision, e.data]),
    [
      [BigInt(jumpedIndex), { ...jumped.gaps![0]! }],
      [BigInt(h.index), { ...dropped.gaps![0]! }],
    ],
  );
  assert.equal(p.cursor, 5, "offset 5 is still pending");
  ack(h, "a", 1, [[0, 5]]);
  assert.equal(describe(h).partitions[0]!.cursor, 8);
});

Deno.test("GroupWriter refuses unknown groups and enforces member and group limits", () => {
  const h = setup(1);
  for (
    const command of [
      { type: "leave", topic: T, group: "x", memberId: "a", nowMs: 0 },
      { type: "pause", topic: T, group: "x", untilMs: null },
      { type: "resume", topic: T, group: "x" },
    ] as const
  ) {
    const result = h.run(command);
    assert.equal(!result.ok && result.reason, "groupNotFound", command.type);
  }
  const missing = fetchRun(h, "a", 1, 0, 1, null, "x");
  assert.equal(!missing.ok && missing.reason, "groupNotFound");
  join(h, "a", 1);
  const leftNot = h.ok({
    type: "leave",
    topic: T,
    group: G,
    memberId: "zz",
    nowMs: 0,
  });
  assert.deepEqual(leftNot, { type: "leave", generation: 1, left: false });
  h.check = false;
  for (let i = 1; i < 1_000; i++) join(h, `m${i}`, 1);
  const tooMany = h.join(T, G, "one-more", leaseId(1), null);
  assert.equal(!tooMany.ok && tooMany.reason, "limitExceeded");
  for (let i = 1; i < 1_000; i++) join(h, "a", 1, null, `g${i}`);
  const tooManyGroups = h.join(T, "g-extra", "a", leaseId(1), null);
  assert.equal(!tooManyGroups.ok && tooManyGroups.reason, "limitExceeded");
  h.check = true;
  h.endLeases(leaseId(1));
  assert.equal(h.reads.list(T).length, 1_000);
  assert.ok(h.reads.list(T).every((g) => g.members === 0));
});

Deno.test("GroupWriter.topicDeleted() deletes every row of the topic's groups", () => {
  const h = setup(2);
  h.createTopic("other", 1);
  join(h, "a", 1);
  join(h, "b", 2, null, "g2");
  h.run({
    type: "join",
    topic: "other",
    group: "z",
    memberId: "m",
    lease: leaseId(1),
    options: null,
    nowMs: 0,
  });
  h.append(T, 0, "m");
  h.append(T, 1, "m");
  fetch(h, "a", 1);
  ack(h, "a", 1, [[1, 0, "nack"]]);
  h.ok({ type: "pause", topic: T, group: G, untilMs: 10 });
  assert.deepEqual(h.dropGroups(T), [true, false]);
  // The invariant check ran: no deadline, in-flight or member-lease row is left over.
  assert.deepEqual(h.reads.list().map((g) => g.group), ["z"]);
  assert.equal(h.reads.nextDueMs(), null);
  h.endLeases(leaseId(1));
  assert.deepEqual(h.reads.describe("other", "z")?.members, []);
});

Deno.test("GroupReads lists and describes groups", () => {
  const h = setup(2);
  assert.equal(h.reads.describe(T, G), null);
  assert.deepEqual(h.reads.list(), []);
  assert.equal(h.reads.nextDueMs(), null);
  join(h, "a", 1, null, "b-group");
  join(h, "a", 1, null, "a-group");
  h.createTopic("other", 1);
  h.run({
    type: "join",
    topic: "other",
    group: "z",
    memberId: "m",
    lease: leaseId(2),
    options: null,
    nowMs: 0,
  });
  assert.deepEqual(h.reads.list().map((g) => `${g.topic}/${g.group}`), [
    "orders/a-group",
    "orders/b-group",
    "other/z",
  ]);
  assert.deepEqual(h.reads.namesOf(T), ["a-group", "b-group"]);
  const d = describe(h, "a-group");
  assert.deepEqual(d.members, [{
    id: "a",
    lease: leaseId(1),
    partitions: [0, 1],
  }]);
  assert.deepEqual(d.options, {
    start: "all",
    ackDeadlineMs: 30_000,
    maxDeliveries: 5,
    maxAckPending: 1_000,
    deadLetterTopic: "orders.dlq.a-group",
  });
  assert.equal(h.reads.hasDeliverable(T, "a-group", "a", 0), false);
  h.append(T, 1, "m");
  assert.equal(h.reads.hasDeliverable(T, "a-group", "a", 0), true);
  assert.equal(h.reads.hasDeliverable(T, "a-group", "nobody", 0), false);
});

Deno.test("GroupWriter.ackAtomic() refuses the whole entry when a message is finished", () => {
  const h = setup(1);
  join(h, "a", 1);
  h.append(T, 0, "m0");
  h.append(T, 0, "m1");
  fetch(h, "a", 1);
  const command = (offsets: number[]) => ({
    type: "ack" as const,
    topic: T,
    group: G,
    memberId: "a",
    generation: 1,
    acks: offsets.map((offset) => ({
      partition: 0,
      offset,
      action: "ack" as const,
      delayMs: 0,
    })),
    nowMs: 0,
  });
  assert.ok(h.ackAtomic(command([0])).ok);
  const dump = h.dump();
  const refused = h.ackAtomic(command([1, 0]));
  assert.ok(!refused.ok);
  assert.equal(refused.reason, "messageFinished");
  assert.deepEqual(refused.details, { partition: 0, offset: 0 });
  assert.deepEqual(h.dump(), dump, "offset 1 is not acked either");
  assert.equal(describe(h).partitions[0]!.pending, 1);
  const fenced = h.ackAtomic({ ...command([1]), memberId: "x" });
  assert.equal(!fenced.ok && fenced.reason, "staleGeneration");
});
