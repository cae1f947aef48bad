import assert from "node:assert/strict";
import { decode as decodeMsgpack, encode } from "@msgpack/msgpack";
import { toHex } from "../../base/bytes.ts";
import { makeVersionstamp } from "../../model/versionstamp.ts";
import { PUBSUB_LIMITS } from "../../protocol/http_api_pubsub.ts";
import { logIndex } from "../../raft/types.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import type { LeaderTaskContext } from "../../state/leader_task.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { ManualTime } from "../../../tests/helpers/manual_time.ts";
import { KvStateMachine } from "../state_machine.ts";
import { SERVICE_IDS } from "../table.ts";
import {
  encodePubsubCommand,
  keyPartition,
  murmur2,
  type PublishMessage,
  type PublishOutcome,
  PUBSUB_KEYSPACE,
  PUBSUB_SERVICE_LIMITS,
  type PubsubCommand,
  type PubsubKnobs,
  PubsubLeader,
  type PubsubResult,
  pubsubService,
  TopicReads,
  type TopicTuning,
} from "./api.ts";
import { topicCountKey } from "./records.ts";

const utf8 = new TextEncoder();
const T0 = 1_700_000_000_000;

class Harness {
  readonly store = new MemoryStateStore();
  readonly machine: KvStateMachine;
  readonly reads = new TopicReads(this.store);
  index = 0;

  constructor(knobs: PubsubKnobs = {}, tuning: TopicTuning = {}) {
    this.machine = new KvStateMachine(this.store, {}, {
      extra: [{
        id: SERVICE_IDS.pubsub,
        service: pubsubService(knobs, tuning),
      }],
    });
  }

  apply(command: PubsubCommand): PubsubResult {
    return this.applyPayload(encodePubsubCommand(command));
  }

  applyPayload(payload: Uint8Array): PubsubResult {
    return this.machine.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId: SERVICE_IDS.pubsub, payload }),
    ) as PubsubResult;
  }

  create(
    name: string,
    partitions = 1,
    retention: Partial<
      Extract<PubsubCommand, { type: "topicCreate" }>["retention"]
    > = {},
    dedupWindowMs = 120_000,
  ): PubsubResult {
    return this.apply({
      type: "topicCreate",
      name,
      partitions,
      retention: {
        maxMessages: null,
        maxBytes: null,
        maxAgeMs: null,
        ...retention,
      },
      dedupWindowMs,
      nowMs: T0,
    });
  }

  publish(
    topic: string,
    messages: Partial<PublishMessage>[],
    nowMs = T0,
    producerId: string | null = null,
  ): PubsubResult {
    return this.apply({
      type: "publish",
      topic,
      producerId,
      messages: messages.map((m) => message(m)),
      nowMs,
    });
  }

  records(result: PubsubResult): readonly PublishOutcome[] {
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.answer.type, "publish");
    return (result.answer as { records: readonly PublishOutcome[] }).records;
  }

  tick(nowMs: number): { released: number; trimmed: number; more: boolean } {
    const result = this.apply({ type: "tick", nowMs });
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.answer.type, "tick");
    return result.answer as {
      released: number;
      trimmed: number;
      more: boolean;
    };
  }

  /** Every row of the pub/sub keyspace, hex key → hex value. */
  dump(): Map<string, string> {
    const rows = this.store.scan({ ...PUBSUB_KEYSPACE, limit: 1_000_000 });
    return new Map(rows.map((row) => [toHex(row.key), toHex(row.value)]));
  }

  partitions(topic: string): { first: number; next: number; bytes: number }[] {
    const described = this.reads.describe(topic);
    assert.ok(described !== null, `topic ${topic} exists`);
    return described.partitions.map((p) => ({
      first: p.firstOffset,
      next: p.nextOffset,
      bytes: p.bytes,
    }));
  }
}

function message(m: Partial<PublishMessage>): PublishMessage {
  return {
    value: utf8.encode("v"),
    encoding: "bytes",
    key: null,
    headers: [],
    partition: null,
    sequence: null,
    deliverAtMs: null,
    ...m,
  };
}

function refused(result: PubsubResult, reason: string): void {
  assert.ok(!result.ok, JSON.stringify(result));
  assert.equal(result.reason, reason, result.message);
}

Deno.test("PUBSUB_SERVICE_LIMITS agree with the protocol's PUBSUB_LIMITS", () => {
  for (const [name, value] of Object.entries(PUBSUB_SERVICE_LIMITS)) {
    if (name === "tickItemsMax") continue; // The service's own bound.
    assert.ok(name in PUBSUB_LIMITS, `protocol has ${name}`);
    const wire = (PUBSUB_LIMITS as Record<string, unknown>)[name];
    if (value instanceof RegExp) {
      assert.equal((wire as RegExp).source, value.source, name);
    } else {
      assert.equal(wire, value, name);
    }
  }
});

Deno.test("murmur2() matches Kafka's test vectors", () => {
  const cases: [Uint8Array, number][] = [
    [utf8.encode("21"), -973932308],
    [utf8.encode("foobar"), -790332482],
    [utf8.encode("a-little-bit-long-string"), -985981536],
    [utf8.encode("a-little-bit-longer-string"), -1486304829],
    [
      utf8.encode("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
      -58897971,
    ],
    [new Uint8Array([0x61, 0x62, 0x63]), 479470107],
  ];
  for (const [bytes, expected] of cases) assert.equal(murmur2(bytes), expected);
});

Deno.test("publish puts keyed messages where Kafka's partitioner does", () => {
  const h = new Harness();
  h.create("t", 7);
  const keys = ["21", "foobar", "a-little-bit-long-string", "abc"];
  const vectors = [-973932308, -790332482, -985981536, 479470107];
  const records = h.records(h.publish("t", keys.map((key) => ({ key }))));
  for (const [i, record] of records.entries()) {
    const expected = (vectors[i]! & 0x7fffffff) % 7;
    assert.equal(keyPartition(keys[i]!, 7), expected);
    assert.ok("partition" in record);
    assert.equal(record.partition, expected, keys[i]);
  }
  // The same key keeps its partition, its offsets in publish order.
  const again = h.records(
    h.publish("t", [{ key: "foobar" }, { key: "foobar" }]),
  );
  const p = (-790332482 & 0x7fffffff) % 7;
  assert.deepEqual(again, [
    { partition: p, offset: 1, duplicate: false },
    { partition: p, offset: 2, duplicate: false },
  ]);
});

Deno.test("publish assigns contiguous offsets, round-robins unkeyed messages, honours an explicit partition", () => {
  const h = new Harness();
  h.create("t", 3);
  const first = h.records(
    h.publish("t", Array.from({ length: 6 }, () => ({}))),
  );
  assert.deepEqual(
    first.map((r) => "partition" in r ? [r.partition, r.offset] : null),
    [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]],
  );
  const explicit = h.records(
    h.publish("t", [{ partition: 2 }, { partition: 2, key: "k" }, {}]),
  );
  assert.deepEqual(
    explicit.map((r) => "partition" in r ? [r.partition, r.offset] : null),
    [[2, 2], [2, 3], [0, 2]],
  );
  assert.deepEqual(h.partitions("t").map((p) => [p.first, p.next]), [
    [0, 3],
    [0, 2],
    [0, 4],
  ]);
});

Deno.test("publish is all or nothing: one bad message changes nothing", () => {
  const h = new Harness();
  h.create("t", 2);
  h.publish("t", [{}]);
  const before = h.dump();
  refused(h.publish("t", [{}, {}, { partition: 2 }]), "invalid");
  refused(
    h.publish("t", [{}, { headers: [["aspen-x", "1"]] }]),
    "invalid",
  );
  refused(
    h.publish("t", [{}, { key: "x".repeat(1025) }]),
    "limitExceeded",
  );
  refused(h.publish("nope", [{}]), "topicNotFound");
  refused(h.publish("t", [{ sequence: 1 }], T0, "p".repeat(65)), "invalid");
  refused(h.publish("t", [{ sequence: 1 }, {}], T0, "p"), "invalid");
  refused(
    h.publish("t", [{ deliverAtMs: T0 + 30 * 86_400_000 + 1 }]),
    "invalid",
  );
  refused(
    h.publish("t", [{ value: new Uint8Array(256 * 1024 + 1) }]),
    "limitExceeded",
  );
  refused(
    h.publish(
      "t",
      Array.from({ length: 5 }, () => ({ value: new Uint8Array(250_000) })),
    ),
    "limitExceeded",
  );
  assert.deepEqual(h.dump(), before);
  assert.deepEqual(h.partitions("t").map((p) => p.next), [1, 0]);
});

Deno.test("a publish of more than 1,000 messages is refused whole", () => {
  const h = new Harness();
  h.create("t");
  const before = h.dump();
  refused(
    h.publish("t", Array.from({ length: 1_001 }, () => ({}))),
    "limitExceeded",
  );
  assert.deepEqual(h.dump(), before);
});

/** Runs the dedup scenario; returns whether dedup held (nothing appended twice). */
function dedupHolds(knobs: PubsubKnobs): boolean {
  const h = new Harness(knobs);
  h.create("t", 1, {}, 10_000);
  const seq = (n: number) => ({ sequence: n });
  const first = h.records(h.publish("t", [seq(0), seq(1), seq(2)], T0, "p"));
  const again = h.records(h.publish("t", [seq(1)], T0 + 5_000, "p"));
  const next = h.partitions("t")[0]!.next;
  return next === 3 &&
    JSON.stringify(again) ===
      JSON.stringify([{ ...first[1]!, duplicate: true }]);
}

Deno.test("publish with a producer answers a sequence inside the window as a duplicate, appending nothing", () => {
  assert.equal(dedupHolds({}), true);
  const h = new Harness();
  h.create("t", 1, {}, 10_000);
  h.records(h.publish("t", [{ sequence: 0 }, { sequence: 1 }], T0, "p"));
  const before = h.dump();
  // Partial duplicates: 1 seen, 2 new.
  const mixed = h.records(
    h.publish("t", [{ sequence: 1 }, { sequence: 2 }], T0 + 1, "p"),
  );
  assert.deepEqual(mixed, [
    { partition: 0, offset: 1, duplicate: true },
    { partition: 0, offset: 2, duplicate: false },
  ]);
  assert.notDeepEqual(h.dump(), before);
  assert.equal(h.partitions("t")[0]!.next, 3);
  // Another producer's sequences are its own.
  assert.deepEqual(h.records(h.publish("t", [{ sequence: 0 }], T0 + 2, "q")), [
    { partition: 0, offset: 3, duplicate: false },
  ]);
});

Deno.test("planted bug dedupAfterWindowAppend appends a duplicate (the dedup check catches it)", () => {
  assert.equal(dedupHolds({ dedupAfterWindowAppend: true }), false);
});

Deno.test("publish refuses a sequence at or below the highest once it left the window, changing nothing", () => {
  const h = new Harness();
  h.create("t", 1, {}, 10_000);
  h.records(h.publish("t", [{ sequence: 5 }, { sequence: 6 }], T0, "p"));
  const before = h.dump();
  const late = T0 + 10_000; // Exactly the window: no longer inside it.
  refused(h.publish("t", [{ sequence: 6 }], late, "p"), "sequenceTooOld");
  // A new sequence in the same batch does not save it: the whole publish is refused.
  refused(
    h.publish("t", [{ sequence: 7 }, { sequence: 3 }], late, "p"),
    "sequenceTooOld",
  );
  assert.deepEqual(h.dump(), before);
  // Never seen, but below the highest: too old too.
  refused(h.publish("t", [{ sequence: 4 }], T0 + 1, "p"), "sequenceTooOld");
  assert.deepEqual(
    h.records(h.publish("t", [{ sequence: 7 }], late, "p")),
    [{ partition: 0, offset: 2, duplicate: false }],
  );
});

Deno.test("a topic remembers at most producersPerTopicMax producers, forgetting the longest idle first", () => {
  const h = new Harness({}, { producersPerTopicMax: 2 });
  h.create("t", 1, {}, 100_000);
  h.publish("t", [{ sequence: 0 }], T0 + 1, "a");
  h.publish("t", [{ sequence: 0 }], T0 + 2, "b");
  h.publish("t", [{ sequence: 1 }], T0 + 3, "a"); // a seen again: b is the idlest.
  h.publish("t", [{ sequence: 0 }], T0 + 4, "c"); // evicts b
  assert.equal(
    h.records(h.publish("t", [{ sequence: 0 }], T0 + 5, "a"))[0]!
      .duplicate,
    true,
  );
  assert.equal(
    h.records(h.publish("t", [{ sequence: 0 }], T0 + 6, "c"))[0]!
      .duplicate,
    true,
  );
  // b was forgotten: its sequence 0 is new again (and evicts a, now the idlest).
  assert.deepEqual(h.records(h.publish("t", [{ sequence: 0 }], T0 + 7, "b")), [
    { partition: 0, offset: 4, duplicate: false },
  ]);
  const idle = h.store.scan({
    start: new Uint8Array([0xff, 0x70, 0x06]),
    end: new Uint8Array([0xff, 0x70, 0x07]),
    limit: 100,
  });
  assert.equal(idle.length, 2);
});

Deno.test("a delayed message is held until a tick at or after its time, released in due order", () => {
  const h = new Harness();
  h.create("t", 2);
  const result = h.publish("t", [
    { key: "k", deliverAtMs: T0 + 2_000, value: utf8.encode("late") },
    { key: "k", deliverAtMs: T0 + 1_500, value: utf8.encode("early") },
    { key: "k" },
  ]);
  const index = h.index;
  assert.deepEqual(h.records(result), [
    { scheduled: `${index}.0`, deliverAtMs: T0 + 2_000, duplicate: false },
    { scheduled: `${index}.1`, deliverAtMs: T0 + 1_500, duplicate: false },
    { partition: keyPartition("k", 2), offset: 0, duplicate: false },
  ]);
  assert.equal(h.reads.describe("t")!.scheduled, 2);
  assert.equal(h.reads.nextDueMs(), T0 + 1_500);
  const p = keyPartition("k", 2);
  assert.deepEqual(h.tick(T0 + 1_499), {
    type: "tick",
    released: 0,
    trimmed: 0,
    expired: 0,
    more: false,
  });
  assert.equal(h.partitions("t")[p]!.next, 1);
  assert.equal(h.tick(T0 + 1_500).released, 1);
  assert.equal(h.partitions("t")[p]!.next, 2);
  assert.equal(h.reads.nextDueMs(), T0 + 2_000);
  assert.equal(h.tick(T0 + 1_999).released, 0);
  assert.equal(h.tick(T0 + 5_000).released, 1);
  assert.equal(h.reads.describe("t")!.scheduled, 0);
  assert.equal(h.reads.nextDueMs(), null);
  // Offsets in visibility order: early then late, stamped with the tick's time.
  const rows = h.store.scan({
    start: new Uint8Array([0xff, 0x70, 0x03]),
    end: new Uint8Array([0xff, 0x70, 0x04]),
    limit: 10,
  });
  const values = rows.map((r) =>
    new TextDecoder().decode(
      decodeRecordValue(r.value),
    )
  );
  assert.deepEqual(values, ["v", "early", "late"]);
});

function decodeRecordValue(bytes: Uint8Array): Uint8Array {
  // Records are [key, value, encoding, headers, publishedAtMs, bytes].
  return (decodeMsgpack(bytes) as unknown[])[1] as Uint8Array;
}

Deno.test("release order is (deliverAtMs, id) across publishes", () => {
  const h = new Harness();
  h.create("t", 1);
  h.publish("t", [{ deliverAtMs: T0 + 100, value: utf8.encode("b") }]);
  h.publish("t", [{ deliverAtMs: T0 + 100, value: utf8.encode("c") }]);
  h.publish("t", [{ deliverAtMs: T0 + 50, value: utf8.encode("a") }]);
  assert.equal(h.tick(T0 + 100).released, 3);
  const rows = h.store.scan({
    start: new Uint8Array([0xff, 0x70, 0x03]),
    end: new Uint8Array([0xff, 0x70, 0x04]),
    limit: 10,
  });
  assert.deepEqual(
    rows.map((r) => new TextDecoder().decode(decodeRecordValue(r.value))),
    ["a", "b", "c"],
  );
});

Deno.test("retention trims by count and bytes at append, by age at a tick", () => {
  const h = new Harness();
  h.create("count", 1, { maxMessages: 3 });
  h.publish("count", Array.from({ length: 5 }, () => ({})));
  assert.deepEqual(h.partitions("count")[0], { first: 2, next: 5, bytes: 3 });

  h.create("bytes", 1, { maxBytes: 10 });
  h.publish(
    "bytes",
    Array.from({ length: 4 }, () => ({ value: utf8.encode("1234") })),
  );
  assert.deepEqual(h.partitions("bytes")[0], { first: 2, next: 4, bytes: 8 });

  h.create("age", 1, { maxAgeMs: 1_000 });
  h.publish("age", [{}, {}], T0);
  h.publish("age", [{}], T0 + 500);
  assert.equal(h.reads.nextDueMs(), T0 + 1_001);
  assert.equal(h.tick(T0 + 1_000).trimmed, 0);
  assert.equal(h.tick(T0 + 1_001).trimmed, 2);
  assert.deepEqual(h.partitions("age")[0], { first: 2, next: 3, bytes: 1 });
  assert.equal(h.reads.nextDueMs(), T0 + 1_501);
  assert.equal(h.tick(T0 + 1_501).trimmed, 1);
  assert.equal(h.reads.nextDueMs(), null);
});

Deno.test("topicCreate is idempotent for the same settings, topicExists for others, bounded by topicsMax", () => {
  const h = new Harness();
  const created = h.create("t", 2);
  assert.ok(created.ok && created.answer.type === "topicCreate");
  assert.equal(created.answer.created, true);
  const again = h.create("t", 2);
  assert.ok(again.ok && again.answer.type === "topicCreate");
  assert.equal(again.answer.created, false);
  refused(h.create("t", 3), "topicExists");
  refused(h.create("t", 2, { maxMessages: 5 }), "topicExists");
  refused(h.create("t", 2, {}, 5), "topicExists");
  refused(h.create("bad name"), "invalid");
  refused(h.create("t0", 257), "invalid");
  refused(h.create("t0", 1, {}, 7 * 86_400_000 + 1), "invalid");
  refused(h.create("t0", 1, { maxMessages: 0 }), "invalid");
  assert.deepEqual(h.reads.list().map((t) => t.name), ["t"]);
  // The cluster at its maximum of topics.
  h.store.apply({
    puts: [{
      key: topicCountKey(),
      value: encode(PUBSUB_SERVICE_LIMITS.topicsMax),
      encoding: "bytes",
      versionstamp: makeVersionstamp(logIndex(++h.index)),
      expireAtMs: null,
    }],
    deletes: [],
    appliedIndex: logIndex(h.index),
  });
  refused(h.create("u"), "limitExceeded");
  assert.equal(h.reads.topic("u"), null);
});

Deno.test("topicDelete of a small topic removes every row in its entry", () => {
  const h = new Harness();
  refused(
    h.apply({ type: "topicDelete", name: "t", force: false }),
    "topicNotFound",
  );
  h.create("t", 2, { maxAgeMs: 60_000 });
  h.publish("t", [{}, {}, { deliverAtMs: T0 + 10 }]);
  h.publish("t", [{ sequence: 1 }], T0, "p");
  const result = h.apply({ type: "topicDelete", name: "t", force: false });
  assert.ok(result.ok && result.answer.type === "topicDelete");
  assert.equal(result.answer.deleted, true);
  // Only the topic count (now 0) is left.
  assert.deepEqual([...h.dump().keys()], [toHex(topicCountKey())]);
  assert.equal(h.reads.nextDueMs(), null);
  h.create("t", 1);
  assert.deepEqual(h.records(h.publish("t", [{}])), [
    { partition: 0, offset: 0, duplicate: false },
  ]);
});

Deno.test("topicDelete of a large topic is bounded per entry: purged over ticks, the name refused meanwhile", () => {
  const h = new Harness({}, { purgeRowsMax: 10 });
  h.create("t", 1);
  h.create("other", 1);
  h.publish("t", Array.from({ length: 25 }, () => ({})));
  h.publish("other", [{}]);
  const before = h.store.scan({ ...PUBSUB_KEYSPACE, limit: 10_000 }).length;
  const result = h.apply({ type: "topicDelete", name: "t", force: false });
  assert.ok(result.ok, JSON.stringify(result));
  const after = h.store.scan({ ...PUBSUB_KEYSPACE, limit: 10_000 }).length;
  // At most 10 purged rows, plus the marker written.
  assert.ok(before - after <= 10, `${before} → ${after}`);
  assert.ok(after > 10);
  assert.equal(h.reads.topic("t"), null);
  assert.deepEqual(h.reads.list().map((t) => t.name), ["other"]);
  refused(h.publish("t", [{}]), "topicNotFound");
  refused(h.create("t", 1), "topicExists");
  refused(
    h.apply({ type: "topicDelete", name: "t", force: false }),
    "topicNotFound",
  );
  assert.equal(h.reads.nextDueMs(), 0);
  let ticks = 0;
  while (h.reads.nextDueMs() !== null && ticks < 10) {
    const tick = h.tick(T0 + ticks);
    ticks++;
    if (h.reads.nextDueMs() !== null) assert.equal(tick.more, true);
  }
  assert.equal(ticks, 2); // 26 rows at 10 per entry: delete, then two ticks.
  assert.equal(h.reads.nextDueMs(), null);
  assert.ok(h.create("t", 1).ok);
  assert.deepEqual(h.records(h.publish("t", [{}])), [
    { partition: 0, offset: 0, duplicate: false },
  ]);
  assert.deepEqual(h.partitions("other")[0], { first: 0, next: 1, bytes: 1 });
});

Deno.test("a tick answers the groups' part too", () => {
  const h = new Harness();
  const result = h.apply({ type: "tick", nowMs: T0 });
  assert.deepEqual(result, {
    ok: true,
    index: h.index,
    answer: { type: "tick", released: 0, trimmed: 0, expired: 0, more: false },
  });
});

/** A leader task context over a harness: proposals apply at once. */
function leaderContext(h: Harness, time: ManualTime, fail = () => false) {
  const listeners: (() => void)[] = [];
  const proposed: PubsubCommand[] = [];
  const abort = new AbortController();
  const applied = (command: PubsubCommand) => {
    const result = h.apply(command);
    for (const listener of listeners) listener();
    return result;
  };
  const context: LeaderTaskContext<PubsubCommand, PubsubResult> = {
    clock: time,
    scheduler: time,
    signal: abort.signal,
    propose: (command) => {
      proposed.push(command);
      if (fail()) return Promise.reject(new Error("Busy"));
      return Promise.resolve(applied(command));
    },
    onApplied: (listener) => void listeners.push(listener),
  };
  return { context, proposed, applied, abort };
}

Deno.test("PubsubLeader proposes a tick only when something is due, then releases it", async () => {
  const h = new Harness();
  const time = new ManualTime();
  const { context, proposed, applied, abort } = leaderContext(h, time);
  const leader = new PubsubLeader({ store: h.store });
  leader.start(context);
  assert.equal(proposed.length, 0);
  applied({
    type: "topicCreate",
    name: "t",
    partitions: 1,
    retention: { maxMessages: null, maxBytes: null, maxAgeMs: null },
    dedupWindowMs: 0,
    nowMs: time.wallMs(),
  });
  const dueAt = time.wallMs() + 1_000;
  applied({
    type: "publish",
    topic: "t",
    producerId: null,
    messages: [message({ deliverAtMs: dueAt })],
    nowMs: time.wallMs(),
  });
  assert.equal(proposed.length, 0);
  await time.advance(999);
  assert.equal(proposed.length, 0);
  assert.equal(h.partitions("t")[0]!.next, 0);
  await time.advance(1);
  assert.equal(proposed.length, 1);
  assert.deepEqual(proposed[0], { type: "tick", nowMs: dueAt });
  assert.equal(h.partitions("t")[0]!.next, 1);
  await time.advance(10_000);
  assert.equal(proposed.length, 1);
  leader.stop();
  abort.abort();
});

Deno.test("PubsubLeader ticks again at once while a tick answers more", async () => {
  const h = new Harness();
  const time = new ManualTime();
  const { context, proposed, applied, abort } = leaderContext(h, time);
  h.create("t", 1);
  const dueAt = time.wallMs() + 10;
  for (let i = 0; i < 2; i++) {
    applied({
      type: "publish",
      topic: "t",
      producerId: null,
      messages: Array.from(
        { length: 800 },
        () => message({ deliverAtMs: dueAt }),
      ),
      nowMs: time.wallMs(),
    });
  }
  const leader = new PubsubLeader({ store: h.store });
  leader.start(context);
  assert.equal(proposed.length, 0);
  await time.advance(10);
  // 1,600 due at 1,000 per tick: two ticks, the second without waiting.
  assert.equal(proposed.length, 2);
  assert.equal(h.partitions("t")[0]!.next, 1_600);
  assert.equal(h.reads.nextDueMs(), null);
  leader.stop();
  abort.abort();
});

Deno.test("PubsubLeader backs off after a failed proposal instead of retrying on every applied entry", async () => {
  const h = new Harness();
  const time = new ManualTime();
  let failing = true;
  const { context, proposed, applied, abort } = leaderContext(
    h,
    time,
    () => failing,
  );
  h.create("t", 1);
  applied({
    type: "publish",
    topic: "t",
    producerId: null,
    messages: [message({ deliverAtMs: time.wallMs() + 5 })],
    nowMs: time.wallMs(),
  });
  const leader = new PubsubLeader({ store: h.store, retryMs: 500 });
  leader.start(context);
  await time.advance(5);
  assert.equal(proposed.length, 1);
  // Entries applied meanwhile do not trigger another proposal.
  for (let i = 0; i < 5; i++) applied({ type: "tick", nowMs: 0 });
  await time.advance(100);
  assert.equal(proposed.length, 1);
  failing = false;
  await time.advance(400);
  assert.equal(proposed.length, 2);
  assert.equal(h.partitions("t")[0]!.next, 1);
  leader.stop();
  // Stopped: nothing proposed any more.
  applied({
    type: "publish",
    topic: "t",
    producerId: null,
    messages: [message({ deliverAtMs: time.wallMs() + 5 })],
    nowMs: time.wallMs(),
  });
  await time.advance(1_000);
  assert.equal(proposed.length, 2);
  abort.abort();
});

Deno.test("an age trim is bounded per tick and says more", () => {
  const h = new Harness();
  h.create("t", 2, { maxAgeMs: 1_000 });
  for (let i = 0; i < 2; i++) {
    h.publish("t", Array.from({ length: 600 }, () => ({})), T0);
  }
  const first = h.tick(T0 + 1_001);
  assert.equal(first.trimmed, PUBSUB_SERVICE_LIMITS.tickItemsMax);
  assert.equal(first.more, true);
  assert.equal(h.reads.nextDueMs(), T0 + 1_001);
  const second = h.tick(T0 + 1_001);
  assert.deepEqual([second.trimmed, second.more], [200, false]);
  assert.deepEqual(h.partitions("t").map((p) => [p.first, p.next]), [
    [600, 600],
    [600, 600],
  ]);
  assert.equal(h.reads.nextDueMs(), null);
});

Deno.test("PubsubLeader trims by age within ageRecheckMs of the due time, without a tick before", async () => {
  const h = new Harness();
  const time = new ManualTime();
  const { context, proposed, applied, abort } = leaderContext(h, time);
  applied({
    type: "topicCreate",
    name: "t",
    partitions: 1,
    retention: { maxMessages: null, maxBytes: null, maxAgeMs: 200 },
    dedupWindowMs: 0,
    nowMs: time.wallMs(),
  });
  const leader = new PubsubLeader({ store: h.store, ageRecheckMs: 1_000 });
  leader.start(context);
  // Published after the leader read the (empty) age due time.
  applied({
    type: "publish",
    topic: "t",
    producerId: null,
    messages: [message({})],
    nowMs: time.wallMs(),
  });
  await time.advance(200);
  assert.equal(proposed.length, 0);
  assert.equal(h.partitions("t")[0]!.first, 0);
  await time.advance(800);
  assert.equal(proposed.length, 1);
  assert.deepEqual(h.partitions("t")[0], { first: 1, next: 1, bytes: 0 });
  await time.advance(5_000);
  assert.equal(proposed.length, 1);
  leader.stop();
  abort.abort();
});
