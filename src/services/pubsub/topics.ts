/**
 * Topics at apply: create, delete (bounded: purged over later ticks when
 * large), publish (Kafka's partitioner, dedup by producer, delayed messages
 * held in a schedule) and the topics part of the leader's `tick` (due
 * releases, age trims, purges of deleted topics).
 *
 * Its rows are in `topic_rows.ts`, the partitioner in `partitioner.ts`,
 * dedup in `dedup.ts`.
 *
 * **Delete.** A delete marks the topic deleting (readers see it absent,
 * publish is `topicNotFound`, a create of its name `topicExists`) and purges
 * up to {@linkcode PURGE_ROWS_MAX} rows in the same entry; what is left goes
 * in later ticks, the topic row and its count last. A small topic is gone
 * in the delete's own entry.
 *
 * **Dedup.** A producer remembers `(sequence, atMs, outcome)` for the
 * sequences it published within the topic's `dedupWindowMs` (by the
 * commands' `nowMs`), at most {@linkcode DEDUP_ENTRIES_MAX}, plus its
 * highest sequence. A remembered sequence answers its outcome with
 * `duplicate: true`; any other sequence at or below the highest refuses the
 * whole publish (`sequenceTooOld`), so a message is never appended twice.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { type ApplyContext, readThrough } from "../../state/write_context.ts";
import {
  messageBytes,
  type PublishMessage,
  type PublishOutcome,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
} from "./commands.ts";
import { ProducerDedup } from "./dedup.ts";
import type { GroupWriter, PubsubKnobs } from "./groups.ts";
import { prefixRange, pubsubKey, readU16, readU64, TAG } from "./keys.ts";
import { choosePartition } from "./partitioner.ts";
import {
  appendRecord,
  readPartition,
  readRecord,
  readTopic,
  readTopicRow,
  rowWriter,
  scanMerged,
  topicCount,
  topicKey,
  type TopicRow,
  trimBelow,
  writeTopic,
  writeTopicCount,
} from "./records.ts";
import {
  ageRetainedKey,
  decodeCount,
  decodeScheduled,
  deletingKey,
  encodeCount,
  encodeScheduled,
  parseScheduleDueKey,
  scheduledCountKey,
  scheduledKey,
  scheduleDueKey,
  topicOfIndexKey,
} from "./topic_rows.ts";

export { DEDUP_ENTRIES_MAX } from "./dedup.ts";
export { choosePartition, keyPartition, murmur2 } from "./partitioner.ts";

/** Rows one entry purges of deleted topics at most. */
export const PURGE_ROWS_MAX = 10_000;

type Of<T extends PubsubCommand["type"]> = Extract<PubsubCommand, { type: T }>;
type AnswerOf<T extends PubsubAnswer["type"]> = Extract<
  PubsubAnswer,
  { type: T }
>;

// ---------------------------------------------------------------------------

/** Tuning of {@linkcode TopicWriter} (tests shrink the bounds). */
export interface TopicTuning {
  /** Producers remembered per topic. Default `PUBSUB_SERVICE_LIMITS.producersPerTopicMax`. */
  readonly producersPerTopicMax?: number;
  /** Rows one entry purges. Default {@linkcode PURGE_ROWS_MAX}. */
  readonly purgeRowsMax?: number;
}

function sameSettings(a: TopicRow, b: Of<"topicCreate">): boolean {
  return a.partitions === b.partitions &&
    a.dedupWindowMs === b.dedupWindowMs &&
    a.retention.maxMessages === b.retention.maxMessages &&
    a.retention.maxBytes === b.retention.maxBytes &&
    a.retention.maxAgeMs === b.retention.maxAgeMs;
}

/** The apply-time operations on topics over one entry. */
export class TopicWriter {
  readonly #context: ApplyContext;
  readonly #knobs: PubsubKnobs;
  readonly #producersMax: number;
  readonly #purgeRowsMax: number;
  readonly #rows: ReturnType<typeof rowWriter>;

  constructor(
    context: ApplyContext,
    knobs: PubsubKnobs = {},
    tuning: TopicTuning = {},
  ) {
    this.#context = context;
    this.#knobs = knobs;
    this.#producersMax = tuning.producersPerTopicMax ??
      PUBSUB_SERVICE_LIMITS.producersPerTopicMax;
    this.#purgeRowsMax = tuning.purgeRowsMax ?? PURGE_ROWS_MAX;
    assert(this.#producersMax >= 1, "producersPerTopicMax must be positive");
    assert(this.#purgeRowsMax >= 1, "purgeRowsMax must be positive");
    this.#rows = rowWriter(context);
  }

  #count(key: Uint8Array): number {
    return decodeCount(this.#get(key) ?? undefined);
  }

  #setCount(key: Uint8Array, count: number): void {
    assert(count >= 0, "A count never goes below zero");
    this.#rows.put(key, encodeCount(count));
  }

  #get(key: Uint8Array): Uint8Array | null {
    return readThrough(this.#context, key)?.value ?? null;
  }

  /**
   * Creates a topic; an identical existing one answers `created: false`.
   *
   * @throws {PubsubError} `topicExists` (other settings, or being deleted), `limitExceeded`.
   */
  create(command: Of<"topicCreate">): AnswerOf<"topicCreate"> {
    const existing = readTopicRow(this.#context, command.name);
    if (existing !== null) {
      if (existing.deleting === true) {
        throw new PubsubError(
          "topicExists",
          `Topic '${command.name}' is being deleted: try again later`,
        );
      }
      if (sameSettings(existing, command)) {
        return { type: "topicCreate", created: false };
      }
      throw new PubsubError(
        "topicExists",
        `Topic '${command.name}' exists with other settings`,
      );
    }
    const count = topicCount(this.#context);
    if (count >= PUBSUB_SERVICE_LIMITS.topicsMax) {
      throw new PubsubError(
        "limitExceeded",
        `The cluster holds at most ${PUBSUB_SERVICE_LIMITS.topicsMax} topics`,
      );
    }
    writeTopic(this.#context, {
      name: command.name,
      partitions: command.partitions,
      retention: command.retention,
      dedupWindowMs: command.dedupWindowMs,
      createdAtMs: command.nowMs,
      roundRobin: 0,
    });
    writeTopicCount(this.#context, count + 1);
    if (command.retention.maxAgeMs !== null) {
      this.#rows.put(ageRetainedKey(command.name), new Uint8Array());
    }
    return { type: "topicCreate", created: true };
  }

  /**
   * Deletes a topic (its groups too with `force`): marks it deleting and
   * purges what one entry may; later ticks purge the rest.
   *
   * @throws {PubsubError} `topicNotFound`, `topicInUse` (groups, no `force`).
   */
  delete(
    command: Of<"topicDelete">,
    groups: GroupWriter,
  ): AnswerOf<"topicDelete"> {
    const topic = readTopic(this.#context, command.name);
    if (topic === null) {
      throw new PubsubError("topicNotFound", `No topic '${command.name}'`);
    }
    if (groups.hasGroups(command.name)) {
      if (!command.force) {
        throw new PubsubError(
          "topicInUse",
          `Topic '${command.name}' has consumer groups: delete with force to delete them too`,
        );
      }
      groups.topicDeleted(command.name);
    }
    writeTopic(this.#context, { ...topic, deleting: true });
    this.#rows.put(deletingKey(command.name), new Uint8Array());
    this.#rows.remove(ageRetainedKey(command.name));
    this.#purge(command.name, this.#purgeRowsMax);
    return { type: "topicDelete", deleted: true };
  }

  /**
   * Purges up to `budget` rows of deleted topic `name`; when nothing else
   * is left, its topic row, marker and count. Returns the rows removed and
   * whether it is gone.
   */
  #purge(name: string, budget: number): { removed: number; done: boolean } {
    let removed = 0;
    // Records from the front of each partition, its row kept in step, so
    // a deleting topic's partitions stay contiguous (a dead letter may
    // still be appended to it: purged with the rest).
    const partitions = readTopicRow(this.#context, name)?.partitions ?? 0;
    for (let p = 0; p < partitions; p++) {
      const { first, next } = readPartition(this.#context, name, p);
      const below = Math.min(next, first + budget - removed);
      removed += trimBelow(this.#context, name, p, below);
      if (removed >= budget) return { removed, done: false };
    }
    const prefixes = [
      pubsubKey(TAG.scheduled, { name }),
      pubsubKey(TAG.producer, { name }),
      pubsubKey(TAG.producerIdle, { name }),
      pubsubKey(TAG.partition, { name }),
    ];
    for (const prefix of prefixes) {
      const rows = scanMerged(
        this.#context,
        prefixRange(prefix),
        budget - removed,
      );
      for (const row of rows) {
        if (prefix[2] === TAG.scheduled && row.key.length > prefix.length) {
          const { deliverAtMs } = decodeScheduled(row.value);
          const at = prefix.length;
          this.#rows.remove(
            scheduleDueKey(
              deliverAtMs,
              name,
              readU64(row.key, at),
              readU16(row.key, at + 8),
            ),
          );
        }
        this.#rows.remove(row.key);
        removed++;
      }
      if (removed >= budget) return { removed, done: false };
    }
    this.#rows.remove(topicKey(name));
    this.#rows.remove(deletingKey(name));
    writeTopicCount(this.#context, topicCount(this.#context) - 1);
    return { removed, done: true };
  }

  /**
   * Publishes a batch: each message appended (or scheduled) in order, or
   * none (any refusal throws, and the entry changes nothing).
   *
   * @throws {PubsubError} `topicNotFound`, `invalid` (a partition out of
   *   range), `sequenceTooOld`.
   */
  publish(command: Of<"publish">): AnswerOf<"publish"> {
    let topic = readTopic(this.#context, command.topic);
    if (topic === null) {
      throw new PubsubError("topicNotFound", `No topic '${command.topic}'`);
    }
    const producer = command.producerId === null ? null : new ProducerDedup(
      this.#context,
      topic,
      command.producerId,
      command.nowMs,
    );
    const records: PublishOutcome[] = [];
    const startRoundRobin = topic.roundRobin;
    for (const [position, message] of command.messages.entries()) {
      if (message.partition !== null) choosePartition(topic, message);
      if (producer !== null) {
        const seen = producer.check(message.sequence!, this.#knobs);
        if (seen !== null) {
          records.push({ ...seen, duplicate: true });
          continue;
        }
      }
      const delivered = this.#deliver(topic, message, position, command.nowMs);
      topic = delivered.topic;
      records.push(delivered.outcome);
      producer?.remember(message.sequence!, delivered.outcome);
    }
    if (topic.roundRobin !== startRoundRobin) writeTopic(this.#context, topic);
    producer?.save(this.#producersMax);
    assert(
      records.length === command.messages.length,
      "One outcome per message",
    );
    return { type: "publish", records };
  }

  #deliver(
    topic: TopicRow,
    message: PublishMessage,
    position: number,
    nowMs: number,
  ): { topic: TopicRow; outcome: PublishOutcome } {
    if (message.deliverAtMs !== null && message.deliverAtMs > nowMs) {
      const index = Number(this.#context.index);
      const { sequence: _s, deliverAtMs, ...rest } = message;
      this.#rows.put(
        scheduledKey(topic.name, index, position),
        encodeScheduled({ deliverAtMs, message: rest }),
      );
      this.#rows.put(
        scheduleDueKey(deliverAtMs, topic.name, index, position),
        new Uint8Array(),
      );
      const countKey = scheduledCountKey(topic.name);
      this.#setCount(countKey, this.#count(countKey) + 1);
      return {
        topic,
        outcome: {
          scheduled: `${index}.${position}`,
          deliverAtMs,
          duplicate: false,
        },
      };
    }
    const chosen = choosePartition(topic, message);
    const appended = appendRecord(
      this.#context,
      chosen.topic,
      chosen.partition,
      {
        key: message.key,
        value: message.value,
        encoding: message.encoding,
        headers: message.headers,
        bytes: messageBytes(message),
      },
      nowMs,
    );
    return {
      topic: chosen.topic,
      outcome: {
        partition: chosen.partition,
        offset: appended.offset,
        duplicate: false,
      },
    };
  }

  /**
   * The topics part of the leader's tick: due delayed messages appended
   * (in `(deliverAtMs, id)` order), records older than `maxAgeMs` trimmed,
   * deleted topics purged; at most `budget` of each.
   */
  tick(
    nowMs: number,
    budget: number,
  ): { released: number; trimmed: number; more: boolean } {
    const releases = this.#release(nowMs, budget);
    const trims = this.#trimByAge(nowMs, budget);
    let more = releases.more || trims.more;
    const deleting = scanMerged(
      this.#context,
      prefixRange(pubsubKey(TAG.topicDeleting)),
      budget,
    );
    let purgeBudget = this.#purgeRowsMax;
    for (const row of deleting) {
      if (purgeBudget <= 0) {
        more = true;
        break;
      }
      const purged = this.#purge(topicOfIndexKey(row.key), purgeBudget);
      purgeBudget -= purged.removed;
      if (!purged.done) more = true;
    }
    if (deleting.length === budget) more = true;
    return { released: releases.released, trimmed: trims.trimmed, more };
  }

  #release(nowMs: number, budget: number): { released: number; more: boolean } {
    const due = scanMerged(this.#context, {
      start: pubsubKey(TAG.scheduleDue),
      end: pubsubKey(TAG.scheduleDue, { u64: nowMs + 1 }),
    }, budget + 1);
    const topics = new Map<string, TopicRow | null>();
    let released = 0;
    for (const row of due.slice(0, budget)) {
      const { topic: name, index, position } = parseScheduleDueKey(row.key);
      const key = scheduledKey(name, index, position);
      const stored = this.#get(key);
      this.#rows.remove(row.key);
      if (stored === null) continue;
      this.#rows.remove(key);
      const countKey = scheduledCountKey(name);
      this.#setCount(countKey, Math.max(0, this.#count(countKey) - 1));
      if (!topics.has(name)) topics.set(name, readTopic(this.#context, name));
      const topic = topics.get(name) ?? null;
      if (topic === null) continue;
      const { message } = decodeScheduled(stored);
      const chosen = choosePartition(topic, message);
      topics.set(name, chosen.topic);
      appendRecord(this.#context, chosen.topic, chosen.partition, {
        ...message,
        bytes: messageBytes({ ...message, sequence: null, deliverAtMs: null }),
      }, nowMs);
      released++;
    }
    for (const topic of topics.values()) {
      if (topic !== null) writeTopic(this.#context, topic);
    }
    return { released, more: due.length > budget };
  }

  #trimByAge(
    nowMs: number,
    budget: number,
  ): { trimmed: number; more: boolean } {
    const aged = scanMerged(
      this.#context,
      prefixRange(pubsubKey(TAG.ageRetained)),
      PUBSUB_SERVICE_LIMITS.topicsMax,
    );
    let trimmed = 0;
    for (const row of aged) {
      const topic = readTopic(this.#context, topicOfIndexKey(row.key));
      if (topic === null || topic.retention.maxAgeMs === null) continue;
      const cutoffMs = nowMs - topic.retention.maxAgeMs;
      for (let p = 0; p < topic.partitions; p++) {
        const { first, next } = readPartition(this.#context, topic.name, p);
        let below = first;
        while (below < next) {
          if (trimmed + (below - first) >= budget) {
            trimBelow(this.#context, topic.name, p, below);
            return { trimmed: trimmed + (below - first), more: true };
          }
          const record = readRecord(this.#context, topic.name, p, below);
          if (record !== null && record.publishedAtMs >= cutoffMs) break;
          below++;
        }
        trimmed += trimBelow(this.#context, topic.name, p, below);
      }
    }
    return { trimmed, more: false };
  }
}

/** One producer's dedup state over one publish. */
