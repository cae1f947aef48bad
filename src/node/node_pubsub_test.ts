/**
 * NodePubsub over a stand-in Raft (its proposals decoded and answered by
 * the test): what the proposer decides (defaults, times, member ids, the
 * dead-letter topic), refusals before any proposal, the consume stream's
 * bound per node and its `fenced` end.
 */
import assert from "node:assert/strict";
import { decodeEnvelope } from "../state/envelope.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import {
  decodePubsubCommand,
  type PubsubCommand,
  PubsubError,
  type PubsubResult,
} from "../services/pubsub/api.ts";
import { NodePubsub, PUBSUB_SERVICE_ID } from "./node_pubsub.ts";

const NOW = 1_700_000_000_000;

/** A port whose proposals `answer` decides; `commands` records them. */
function stand(
  answer: (command: PubsubCommand, index: number) => PubsubResult,
  consumeStreamsMax?: number,
  nowMs: () => number = () => NOW,
): { pubsub: NodePubsub; commands: PubsubCommand[] } {
  const commands: PubsubCommand[] = [];
  const store = new MemoryStateStore();
  const pubsub = new NodePubsub({
    propose: (data) => {
      const envelope = decodeEnvelope(data);
      assert.equal(envelope.serviceId, PUBSUB_SERVICE_ID);
      assert.ok(envelope.session !== undefined, "proposed with a session");
      const command = decodePubsubCommand(envelope.payload);
      commands.push(command);
      return Promise.resolve(answer(command, commands.length));
    },
    readIndex: () => Promise.resolve(0),
    store,
    onApplied: () => () => {},
    topics: { list: () => [], describe: () => null },
    nowMs,
    ...(consumeStreamsMax === undefined ? {} : { consumeStreamsMax }),
  });
  return { pubsub, commands };
}

function ok(answer: Extract<PubsubResult, { ok: true }>["answer"]) {
  return { ok: true as const, index: 0, answer };
}

Deno.test("NodePubsub fills defaults and times at proposal", async () => {
  const { pubsub, commands } = stand((command) => {
    switch (command.type) {
      case "topicCreate":
        return ok({ type: "topicCreate", created: true });
      case "publish":
        return ok({ type: "publish", records: [] });
      case "join":
        return ok({
          type: "join",
          memberId: command.memberId,
          generation: 1,
          partitions: [0],
        });
      default:
        throw new Error(`unexpected ${command.type}`);
    }
  });
  const created = await pubsub.createTopic({ name: "t" });
  assert.deepEqual(commands[0], {
    type: "topicCreate",
    name: "t",
    partitions: 1,
    retention: { maxMessages: null, maxBytes: null, maxAgeMs: null },
    dedupWindowMs: 120_000,
    nowMs: NOW,
  });
  assert.deepEqual(created.topic, {
    name: "t",
    partitions: 1,
    retention: {},
    dedupWindowMs: 120_000,
    createdAtMs: NOW,
  });
  await pubsub.publish("t", [
    {
      value: new Uint8Array([1]),
      encoding: "bytes",
      headers: { b: "2", a: "1" },
      delayMs: 500,
    },
    { value: new Uint8Array([2]), encoding: "v8", key: "k", partition: 0 },
  ]);
  const publish = commands[1] as Extract<PubsubCommand, { type: "publish" }>;
  assert.equal(publish.nowMs, NOW);
  assert.equal(publish.producerId, null);
  assert.equal(publish.messages[0]!.deliverAtMs, NOW + 500);
  assert.deepEqual(publish.messages[0]!.headers, [["b", "2"], ["a", "1"]]);
  assert.equal(publish.messages[1]!.deliverAtMs, null);
  assert.equal(publish.messages[1]!.key, "k");
  assert.equal(publish.messages[1]!.partition, 0);

  const first = await pubsub.join({
    topic: "t",
    group: "g",
    lease: "00000000000000aa",
  });
  assert.match(first.memberId, /^[0-9a-f]{16}$/);
  const join = commands[2] as Extract<PubsubCommand, { type: "join" }>;
  assert.equal(join.options, null);
  assert.equal(join.nowMs, NOW);
  await pubsub.join({
    topic: "t",
    group: "g",
    memberId: "m1",
    lease: "00000000000000aa",
    options: { maxAckPending: 1 },
  });
  const withOptions = commands[3] as Extract<PubsubCommand, { type: "join" }>;
  assert.equal(withOptions.memberId, "m1");
  assert.deepEqual(withOptions.options, {
    start: { kind: "all" },
    ackDeadlineMs: 30_000,
    maxDeliveries: 5,
    maxAckPending: 1,
    deadLetterTopic: "t.dlq.g",
  });
});

Deno.test("NodePubsub refuses bad requests with PubsubError before proposing", async () => {
  const { pubsub, commands } = stand(() => {
    throw new Error("nothing may be proposed");
  });
  const long = "x".repeat(100);
  const refusals: [string, () => Promise<unknown>, string][] = [
    [
      "a default dead-letter topic past 128 characters",
      () =>
        pubsub.join({
          topic: long,
          group: long,
          lease: "00000000000000aa",
          options: {},
        }),
      "invalid",
    ],
    [
      "delayMs and deliverAtMs",
      () =>
        pubsub.publish("t", [{
          value: new Uint8Array(),
          encoding: "bytes",
          delayMs: 1,
          deliverAtMs: NOW + 1,
        }]),
      "invalid",
    ],
    [
      "a bad start",
      () =>
        pubsub.join({
          topic: "t",
          group: "g",
          lease: "00000000000000aa",
          options: { start: "middle" as "all" },
        }),
      "invalid",
    ],
    [
      "a fetch wait past the maximum",
      () =>
        pubsub.fetch(
          { topic: "t", group: "g", memberId: "m", generation: 1 },
          { maxWaitMs: 60_001 },
        ),
      "invalid",
    ],
    ["a bad name", () => pubsub.describeTopic("a b", "eventual"), "invalid"],
  ];
  for (const [what, call, code] of refusals) {
    await assert.rejects(
      call,
      (error) => error instanceof PubsubError && error.code === code,
      what,
    );
  }
  assert.deepEqual(commands, []);
});

Deno.test("NodePubsub bounds consume streams per node and ends one with a fenced item on staleGeneration", async () => {
  let fetches = 0;
  const { pubsub } = stand(
    (command) => {
      assert.equal(command.type, "fetch");
      fetches++;
      if (fetches === 1) {
        return ok({
          type: "fetch",
          generation: 3,
          messages: [{
            partition: 0,
            offset: 7,
            key: null,
            value: new Uint8Array([9]),
            encoding: "bytes",
            headers: [],
            publishedAtMs: NOW,
            delivery: 1,
            deadlineMs: NOW + 30_000,
          }],
        });
      }
      if (fetches === 2) {
        return ok({
          type: "fetch",
          generation: 3,
          messages: [],
        });
      }
      return {
        ok: false,
        index: 0,
        reason: "staleGeneration",
        message: "Member 'm' is fenced",
        details: { generation: 4, assignment: { "0": "n" } },
      };
    },
    1,
    Date.now,
  );
  const member = { topic: "t", group: "g", memberId: "m", generation: 3 };
  const abort = new AbortController();
  const stream = await pubsub.consume(member, abort.signal);
  assert.equal(pubsub.consumersOpen, 1);
  await assert.rejects(
    pubsub.consume(member, new AbortController().signal),
    KvUnavailableError,
  );
  const items = [];
  for await (const item of stream) items.push(item);
  assert.equal(items.length, 2);
  assert.equal(items[0]!.type, "message");
  // The member is gone from the (empty) state: the next fetch is refused.
  assert.deepEqual(items[1], {
    type: "fenced",
    generation: 4,
    assignment: { "0": "n" },
  });
  assert.equal(pubsub.consumersOpen, 0);
  // A refused open frees its slot too.
  await assert.rejects(
    pubsub.consume(member, new AbortController().signal),
    (error) => error instanceof PubsubError && error.code === "staleGeneration",
  );
  assert.equal(pubsub.consumersOpen, 0);
});
