import assert from "node:assert/strict";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvPubsubStep,
} from "../../model/types.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { logIndex } from "../../raft/types.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { encodeKvEntry } from "../entries.ts";
import { encodeLeaseCommand } from "../leases/api.ts";
import { KvStateMachine } from "../state_machine.ts";
import { SERVICE_IDS } from "../table.ts";
import {
  type Delivery,
  encodePubsubCommand,
  GroupReads,
  type PubsubAnswer,
  type PubsubCommand,
  type PubsubResult,
  TopicReads,
} from "./api.ts";
import { defaultGroupOptions } from "./groups.ts";

const NOW = 1_700_000_000_000;
const LEASE = "00000000000000a1";

class Cluster {
  readonly store = new MemoryStateStore();
  readonly machine = new KvStateMachine(this.store);
  readonly topics = new TopicReads(this.store);
  readonly groups = new GroupReads(this.store);
  #index = 0;

  #apply(serviceId: number, payload: Uint8Array): unknown {
    return this.machine.host.applyData(
      logIndex(++this.#index),
      encodeEnvelope({ serviceId, payload }),
    );
  }

  pubsub(command: PubsubCommand): PubsubAnswer {
    const result = this.#apply(
      SERVICE_IDS.pubsub,
      encodePubsubCommand(command),
    ) as PubsubResult;
    if (!result.ok) throw new Error(`${result.reason}: ${result.message}`);
    return result.answer;
  }

  grant(id: string): void {
    this.#apply(
      SERVICE_IDS.leases,
      encodeLeaseCommand({ type: "grant", id, ttlMs: 10_000 }),
    );
  }

  atomic(
    operation: Omit<KvAtomicOperation, "checks" | "enqueues">,
  ): KvApplyResult {
    const data = encodeKvEntry({
      type: "atomic",
      operation: { checks: [], enqueues: [], ...operation },
    });
    return this.machine.host.applyData(
      logIndex(++this.#index),
      data,
    ) as KvApplyResult;
  }

  records(topic: string): number {
    const described = this.topics.describe(topic);
    assert.ok(described !== null);
    return described.partitions.reduce(
      (n, p) => n + p.nextOffset - p.firstOffset,
      0,
    );
  }

  kv(key: string): Uint8Array | null {
    return this.store.get(encodeKey([key]))?.value ?? null;
  }
}

const bytes = (text: string) => new TextEncoder().encode(text);

function setup(): { c: Cluster; generation: number; deliveries: Delivery[] } {
  const c = new Cluster();
  for (const name of ["in", "out"]) {
    c.pubsub({
      type: "topicCreate",
      name,
      partitions: 1,
      retention: { maxMessages: null, maxBytes: null, maxAgeMs: null },
      dedupWindowMs: 120_000,
      nowMs: NOW,
    });
  }
  c.pubsub({
    type: "publish",
    topic: "in",
    producerId: null,
    messages: [0, 1].map((i) => ({
      value: bytes(`m${i}`),
      encoding: "bytes" as const,
      key: null,
      headers: [],
      partition: null,
      sequence: null,
      deliverAtMs: null,
    })),
    nowMs: NOW,
  });
  c.grant(LEASE);
  const joined = c.pubsub({
    type: "join",
    topic: "in",
    group: "g",
    memberId: "m1",
    lease: LEASE,
    options: defaultGroupOptions("in", "g"),
    nowMs: NOW,
  });
  assert.equal(joined.type, "join");
  const generation = joined.type === "join" ? joined.generation : -1;
  const fetched = c.pubsub({
    type: "fetch",
    topic: "in",
    group: "g",
    memberId: "m1",
    generation,
    batch: 10,
    maxBytes: null,
    nowMs: NOW,
  });
  assert.equal(fetched.type, "fetch");
  return {
    c,
    generation,
    deliveries: fetched.type === "fetch" ? [...fetched.messages] : [],
  };
}

function step(
  generation: number,
  offset: number,
  topic = "out",
): KvPubsubStep {
  return {
    nowMs: NOW + 1,
    publishes: [{
      topic,
      producerId: null,
      value: bytes(`processed ${offset}`),
      encoding: "bytes",
      key: null,
      headers: [["from", `in/0/${offset}`]],
      partition: null,
      sequence: null,
      deliverAtMs: null,
    }],
    acks: [{
      topic: "in",
      group: "g",
      memberId: "m1",
      generation,
      partition: 0,
      offset,
    }],
  };
}

const set = (key: string, value: string) => ({
  type: "set" as const,
  key: encodeKey([key]),
  value: { encoding: "bytes" as const, data: bytes(value) },
  expireAtMs: null,
});

Deno.test("a KV atomic operation sets a key, publishes and acks in one entry (consume-transform-produce)", () => {
  const { c, generation, deliveries } = setup();
  assert.deepEqual(deliveries.map((d) => d.offset), [0, 1]);
  const result = c.atomic({
    mutations: [set("done/0", "yes")],
    pubsub: step(generation, 0),
  });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.deepEqual(c.kv("done/0"), bytes("yes"));
  assert.equal(c.records("out"), 1);
  const group = c.groups.describe("in", "g");
  assert.equal(group?.partitions[0]?.cursor, 1);
  assert.equal(group?.partitions[0]?.pending, 1);
});

Deno.test("a KV atomic operation whose ack is of a finished message changes nothing (messageFinished)", () => {
  const { c, generation } = setup();
  assert.equal(
    c.atomic({ mutations: [set("done/0", "yes")], pubsub: step(generation, 0) })
      .ok,
    true,
  );
  // The client retries the same step as a new write (its answer was lost
  // and it has no session): the ack finds the message finished.
  const again = c.atomic({
    mutations: [set("done/0", "again")],
    pubsub: step(generation, 0),
  });
  assert.equal(again.ok, false);
  assert.equal(!again.ok && again.reason, "messageFinished");
  assert.deepEqual(c.kv("done/0"), bytes("yes"));
  assert.equal(c.records("out"), 1);
});

Deno.test("a KV atomic operation with a fenced ack, or a publish to a missing topic, changes nothing", () => {
  const { c, generation } = setup();
  const stale = c.atomic({
    mutations: [set("k", "v")],
    pubsub: step(generation + 5, 1),
  });
  assert.equal(!stale.ok && stale.reason, "staleGeneration");
  const missing = c.atomic({
    mutations: [set("k", "v")],
    pubsub: step(generation, 1, "absent"),
  });
  assert.equal(!missing.ok && missing.reason, "topicNotFound");
  assert.equal(c.kv("k"), null);
  assert.equal(c.records("out"), 0);
  const group = c.groups.describe("in", "g");
  assert.equal(group?.partitions[0]?.cursor, 0);
  assert.equal(group?.partitions[0]?.pending, 2);
});
