/**
 * A property test of the topics half: random creates, publishes (keyed,
 * unkeyed, explicit, delayed, with producers), ticks and deletes, applied
 * through a real state host; after every step the topic rows agree with
 * everything they count and index.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decode } from "@msgpack/msgpack";
import { toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { KvStateMachine } from "../state_machine.ts";
import { SERVICE_IDS } from "../table.ts";
import {
  encodePubsubCommand,
  PUBSUB_KEYSPACE,
  type PubsubCommand,
  type PubsubResult,
  pubsubService,
} from "./api.ts";
import {
  prefixRange,
  pubsubKey,
  readName,
  readU16,
  readU64,
  TAG,
} from "./keys.ts";
import { decodeRecord, decodeTopic, readPartition } from "./records.ts";
import {
  decodeCount,
  producerCountKey,
  scheduledCountKey,
} from "./topic_rows.ts";

const T0 = 1_700_000_000_000;
const NAMES = ["a", "b"];

type Step =
  | {
    kind: "create";
    name: number;
    partitions: number;
    maxMessages: number | null;
    maxAgeMs: number | null;
  }
  | {
    kind: "publish";
    name: number;
    producer: number | null;
    messages: {
      key: number | null;
      partition: number | null;
      delayMs: number | null;
      sequence: number;
    }[];
  }
  | { kind: "tick" }
  | { kind: "advance"; ms: number }
  | { kind: "delete"; name: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("create" as const),
    name: fc.nat(1),
    partitions: fc.integer({ min: 1, max: 3 }),
    maxMessages: fc.option(fc.integer({ min: 1, max: 6 })),
    maxAgeMs: fc.option(fc.integer({ min: 1, max: 300 })),
  }),
  fc.record({
    kind: fc.constant("publish" as const),
    name: fc.nat(1),
    producer: fc.option(fc.nat(2)),
    messages: fc.array(
      fc.record({
        key: fc.option(fc.nat(4)),
        partition: fc.option(fc.nat(3)),
        delayMs: fc.option(fc.integer({ min: 0, max: 200 })),
        sequence: fc.nat(8),
      }),
      { minLength: 1, maxLength: 5 },
    ),
  }),
  fc.constant({ kind: "tick" as const }),
  fc.record({
    kind: fc.constant("advance" as const),
    ms: fc.integer({ min: 1, max: 150 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), name: fc.nat(1) }),
);

function command(s: Step, nowMs: number): PubsubCommand {
  switch (s.kind) {
    case "create":
      return {
        type: "topicCreate",
        name: NAMES[s.name]!,
        partitions: s.partitions,
        retention: {
          maxMessages: s.maxMessages,
          maxBytes: null,
          maxAgeMs: s.maxAgeMs,
        },
        dedupWindowMs: 100,
        nowMs,
      };
    case "publish":
      return {
        type: "publish",
        topic: NAMES[s.name]!,
        producerId: s.producer === null ? null : `p${s.producer}`,
        messages: s.messages.map((m) => ({
          value: new Uint8Array([1, 2]),
          encoding: "bytes",
          key: m.key === null ? null : `k${m.key}`,
          headers: [],
          partition: m.partition,
          sequence: s.producer === null ? null : m.sequence,
          deliverAtMs: m.delayMs === null ? null : nowMs + m.delayMs,
        })),
        nowMs,
      };
    case "delete":
      return { type: "topicDelete", name: NAMES[s.name]!, force: false };
    default:
      return { type: "tick", nowMs };
  }
}

function rowsOf(store: MemoryStateStore, tag: number, ...name: string[]) {
  const prefix = pubsubKey(tag, ...name.map((n) => ({ name: n })));
  return store.scan({ ...prefixRange(prefix), limit: 100_000 });
}

/** Every topic row agrees with the rows it counts and indexes. */
function checkInvariants(store: MemoryStateStore): void {
  const rows = { store, overlay: new Map() };
  const topics = rowsOf(store, TAG.topic).map((r) => decodeTopic(r.value));
  const count = store.get(pubsubKey(TAG.topicCount));
  assert.equal(count === null ? 0 : decode(count.value), topics.length);
  for (const topic of topics) {
    for (let p = 0; p < topic.partitions; p++) {
      const partition = readPartition(rows, topic.name, p);
      const records = store.scan({
        ...prefixRange(pubsubKey(TAG.record, { name: topic.name }, { u16: p })),
        limit: 100_000,
      });
      // Offsets contiguous: exactly [first, next) retained.
      assert.deepEqual(
        records.map((r) => readU64(r.key, r.key.length - 8)),
        Array.from(
          { length: partition.next - partition.first },
          (_, i) => partition.first + i,
        ),
      );
      let bytes = 0;
      let last = 0;
      for (const record of records.map((r) => decodeRecord(r.value))) {
        bytes += record.bytes;
        assert.ok(
          record.publishedAtMs >= last,
          "times never decrease along a partition",
        );
        last = record.publishedAtMs;
      }
      assert.equal(bytes, partition.bytes);
      if (topic.retention.maxMessages !== null) {
        assert.ok(records.length <= topic.retention.maxMessages);
      }
    }
    // A topic being deleted is purged a few rows at a time: its counts
    // lag until it is gone (nothing reads them: it is absent to readers).
    if (topic.deleting === true) continue;
    const scheduled = rowsOf(store, TAG.scheduled, topic.name).filter((r) =>
      r.key.length > scheduledCountKey(topic.name).length
    );
    assert.equal(
      decodeCount(store.get(scheduledCountKey(topic.name))?.value),
      scheduled.length,
    );
    const producers = rowsOf(store, TAG.producer, topic.name).filter((r) =>
      r.key.length > producerCountKey(topic.name).length
    );
    assert.equal(
      decodeCount(store.get(producerCountKey(topic.name))?.value),
      producers.length,
    );
    assert.equal(
      rowsOf(store, TAG.producerIdle, topic.name).length,
      producers.length,
    );
  }
  // Every due row names a scheduled row, and every scheduled row has one.
  const due = rowsOf(store, TAG.scheduleDue);
  const scheduledAll = rowsOf(store, TAG.scheduled).filter((r) => {
    const [, at] = readName(r.key, 3);
    return r.key.length > at;
  });
  assert.equal(due.length, scheduledAll.length);
  for (const row of due) {
    const [topic, at] = readName(row.key, 11);
    const key = pubsubKey(TAG.scheduled, { name: topic }, {
      u64: readU64(row.key, at),
    }, {
      u16: readU16(row.key, at + 8),
    });
    assert.ok(
      store.get(key) !== null,
      `scheduled row of due ${toHex(row.key)}`,
    );
  }
}

Deno.test("topics keep their counts, indexes and contiguous offsets under random commands", () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
      const store = new MemoryStateStore();
      const machine = new KvStateMachine(store, {}, {
        extra: [{
          id: SERVICE_IDS.pubsub,
          service: pubsubService({}, { purgeRowsMax: 4 }),
        }],
      });
      let index = 0;
      let nowMs = T0;
      for (const s of steps) {
        if (s.kind === "advance") {
          nowMs += s.ms;
          continue;
        }
        const result = machine.host.applyData(
          logIndex(++index),
          encodeEnvelope({
            serviceId: SERVICE_IDS.pubsub,
            payload: encodePubsubCommand(command(s, nowMs)),
          }),
        ) as PubsubResult;
        if (!result.ok) {
          assert.ok(
            ["invalid", "topicExists", "topicNotFound", "sequenceTooOld"]
              .includes(result.reason),
            JSON.stringify(result),
          );
        }
        checkInvariants(store);
      }
      // Ticks ever later drain every schedule, purge, and trim what they released.
      for (let i = 0; i < 50; i++) {
        machine.host.applyData(
          logIndex(++index),
          encodeEnvelope({
            serviceId: SERVICE_IDS.pubsub,
            payload: encodePubsubCommand({
              type: "tick",
              nowMs: nowMs + 1_000_000 * (i + 1),
            }),
          }),
        );
      }
      checkInvariants(store);
      assert.equal(rowsOf(store, TAG.scheduleDue).length, 0);
      assert.equal(rowsOf(store, TAG.topicDeleting).length, 0);
      // Age retention left nothing older than maxAgeMs.
      for (const row of rowsOf(store, TAG.topic)) {
        const topic = decodeTopic(row.value);
        if (topic.retention.maxAgeMs === null) continue;
        assert.equal(rowsOf(store, TAG.record, topic.name).length, 0);
      }
      // Deleted topics left no rows behind.
      const names = new Set(
        rowsOf(store, TAG.topic).map((r) => decodeTopic(r.value).name),
      );
      for (const row of store.scan({ ...PUBSUB_KEYSPACE, limit: 100_000 })) {
        const tag = row.key[2]!;
        if (tag === TAG.topicCount || tag === TAG.scheduleDue) continue;
        assert.ok(names.has(readName(row.key, 3)[0]), toHex(row.key));
      }
    }),
    { numRuns: 150 },
  );
});
