/**
 * Topics at apply: create, delete (bounded: purged over later ticks when
 * large), publish (Kafka's partitioner, dedup by producer, delayed messages
 * held in a schedule) and the topics part of the leader's `tick` (due
 * releases, age trims, purges of deleted topics).
 *
 * Rows (see `keys.ts`):
 *
 * - `04 topic 00` the topic's scheduled count; `04 topic 00 index position`
 *   one delayed message (`index` 8 bytes, `position` 2 bytes: its id is
 *   `<index>.<position>`), `0c dueMs topic 00 index position` its due index;
 * - `05 topic 00` the topic's producer count; `05 topic 00 producerId` one
 *   producer's dedup state, `06 topic 00 lastSeenMs producerId` its idle
 *   index (the longest idle is forgotten first);
 * - `0e topic` a topic being deleted; `0f topic` a topic with age retention.
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
import { type ApplyContext, readThrough } from "../../state/write_context.ts";
import { assert } from "../../base/assert.ts";
import { Decoder, Encoder } from "@msgpack/msgpack";
import {
  messageBytes,
  type PublishMessage,
  type PublishOutcome,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
} from "./commands.ts";
import type { GroupWriter, PubsubKnobs } from "./groups.ts";
import {
  prefixRange,
  pubsubKey,
  readName,
  readU16,
  readU64,
  TAG,
} from "./keys.ts";
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

const encoder = new Encoder();
const decoder = new Decoder();
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** Rows one entry purges of deleted topics at most. */
export const PURGE_ROWS_MAX = 10_000;
/** Sequences one producer remembers at most (the oldest forgotten first). */
export const DEDUP_ENTRIES_MAX = 2_000;

type Of<T extends PubsubCommand["type"]> = Extract<PubsubCommand, { type: T }>;
type AnswerOf<T extends PubsubAnswer["type"]> = Extract<
  PubsubAnswer,
  { type: T }
>;

// ---------------------------------------------------------------------------
// The partitioner.

/**
 * Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): seed
 * `0x9747b28c`, as a signed 32-bit integer.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (0x9747b28c ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) |
      (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** Where Kafka's default partitioner puts `key`: `murmur2(utf8) & 0x7fffffff` mod `partitions`. */
export function keyPartition(key: string, partitions: number): number {
  assert(partitions >= 1, "A topic has at least one partition");
  return (murmur2(utf8.encode(key)) & 0x7fffffff) % partitions;
}

/**
 * The partition of `message` in `topic`: explicit, else by key, else round
 * robin (advancing the counter in the returned row).
 */
export function choosePartition(
  topic: TopicRow,
  message: Pick<PublishMessage, "key" | "partition">,
): { partition: number; topic: TopicRow } {
  if (message.partition !== null) {
    if (message.partition >= topic.partitions) {
      throw new PubsubError(
        "invalid",
        `Invalid partition: topic '${topic.name}' has ${topic.partitions} partitions: received ${message.partition}`,
      );
    }
    return { partition: message.partition, topic };
  }
  if (message.key !== null) {
    return { partition: keyPartition(message.key, topic.partitions), topic };
  }
  const partition = topic.roundRobin % topic.partitions;
  return {
    partition,
    topic: { ...topic, roundRobin: (topic.roundRobin + 1) % 0x7fffffff },
  };
}

// ---------------------------------------------------------------------------
// Keys of the rows this file owns.

function idBytes(producerId: string): { bytes: Uint8Array } {
  return { bytes: utf8.encode(producerId) };
}

/** The producer count row of `topic`. */
export function producerCountKey(topic: string): Uint8Array {
  return pubsubKey(TAG.producer, { name: topic });
}

/** The dedup row of `producerId` in `topic`. */
export function producerKey(topic: string, producerId: string): Uint8Array {
  return pubsubKey(TAG.producer, { name: topic }, idBytes(producerId));
}

/** The idle index row of a producer last seen at `lastSeenMs`. */
export function producerIdleKey(
  topic: string,
  lastSeenMs: number,
  producerId: string,
): Uint8Array {
  return pubsubKey(
    TAG.producerIdle,
    { name: topic },
    { u64: lastSeenMs },
    idBytes(producerId),
  );
}

/** The scheduled count row of `topic`. */
export function scheduledCountKey(topic: string): Uint8Array {
  return pubsubKey(TAG.scheduled, { name: topic });
}

/** The row of delayed message `(index, position)` of `topic`. */
export function scheduledKey(
  topic: string,
  index: number,
  position: number,
): Uint8Array {
  return pubsubKey(TAG.scheduled, { name: topic }, { u64: index }, {
    u16: position,
  });
}

/** Its due index row. */
export function scheduleDueKey(
  dueMs: number,
  topic: string,
  index: number,
  position: number,
): Uint8Array {
  return pubsubKey(TAG.scheduleDue, { u64: dueMs }, { name: topic }, {
    u64: index,
  }, { u16: position });
}

/** Parses a due index row's key. */
export function parseScheduleDueKey(
  key: Uint8Array,
): { dueMs: number; topic: string; index: number; position: number } {
  const dueMs = readU64(key, 3);
  const [topic, at] = readName(key, 11);
  return {
    dueMs,
    topic,
    index: readU64(key, at),
    position: readU16(key, at + 8),
  };
}

/** The marker of a topic being deleted. */
export function deletingKey(topic: string): Uint8Array {
  return pubsubKey(TAG.topicDeleting, { name: topic });
}

/** The index row of a topic with age retention. */
export function ageRetainedKey(topic: string): Uint8Array {
  return pubsubKey(TAG.ageRetained, { name: topic });
}

/** The topic name of a `0e` or `0f` index row's key. */
export function topicOfIndexKey(key: Uint8Array): string {
  return readName(key, 3)[0];
}

/** Decodes a count row (absent: 0). */
export function decodeCount(bytes: Uint8Array | undefined): number {
  return bytes === undefined ? 0 : decoder.decode(bytes) as number;
}

/** A stored delayed message. */
export interface ScheduledRow {
  readonly deliverAtMs: number;
  readonly message: Omit<PublishMessage, "sequence" | "deliverAtMs">;
}

/** Encodes a delayed message. */
export function encodeScheduled(row: ScheduledRow): Uint8Array {
  const m = row.message;
  return encoder.encode([
    row.deliverAtMs,
    m.key,
    m.value,
    m.encoding,
    m.headers,
    m.partition,
  ]);
}

/** Decodes a delayed message. */
export function decodeScheduled(bytes: Uint8Array): ScheduledRow {
  const [deliverAtMs, key, value, encoding, headers, partition] = decoder
    .decode(bytes) as [
      number,
      string | null,
      Uint8Array,
      PublishMessage["encoding"],
      [string, string][],
      number | null,
    ];
  return { deliverAtMs, message: { key, value, encoding, headers, partition } };
}

/** One producer's dedup state. */
export interface ProducerRow {
  readonly highest: number;
  readonly lastSeenMs: number;
  /** `(sequence, atMs, outcome)`, oldest first. */
  readonly window: readonly (readonly [number, number, PublishOutcome])[];
}

function encodeOutcome(outcome: PublishOutcome): unknown[] {
  return "scheduled" in outcome
    ? [1, outcome.scheduled, outcome.deliverAtMs]
    : [0, outcome.partition, outcome.offset];
}

function decodeOutcome(raw: unknown[]): PublishOutcome {
  return raw[0] === 1
    ? {
      scheduled: raw[1] as string,
      deliverAtMs: raw[2] as number,
      duplicate: false,
    }
    : {
      partition: raw[1] as number,
      offset: raw[2] as number,
      duplicate: false,
    };
}

/** Encodes a producer row. */
export function encodeProducer(row: ProducerRow): Uint8Array {
  return encoder.encode([
    row.highest,
    row.lastSeenMs,
    row.window.map((
      [seq, atMs, outcome],
    ) => [seq, atMs, encodeOutcome(outcome)]),
  ]);
}

/** Decodes a producer row. */
export function decodeProducer(bytes: Uint8Array): ProducerRow {
  const [highest, lastSeenMs, window] = decoder.decode(bytes) as [
    number,
    number,
    [number, number, unknown[]][],
  ];
  return {
    highest,
    lastSeenMs,
    window: window.map(([seq, atMs, raw]) =>
      [seq, atMs, decodeOutcome(raw)] as const
    ),
  };
}

/** The producer id of an idle index row's key (after `06 topic 00 lastSeenMs`). */
export function producerOfIdleKey(
  key: Uint8Array,
): { lastSeenMs: number; producerId: string } {
  const [, at] = readName(key, 3);
  return {
    lastSeenMs: readU64(key, at),
    producerId: utf8Decoder.decode(key.subarray(at + 8)),
  };
}

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
    this.#rows.put(key, encoder.encode(count));
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
    const prefixes = [
      pubsubKey(TAG.record, { name }),
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
    const producer = command.producerId === null ? null : new ProducerState(
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
class ProducerState {
  readonly #context: ApplyContext;
  readonly #topic: string;
  readonly #producerId: string;
  readonly #nowMs: number;
  readonly #before: ProducerRow | null;
  #highest: number;
  readonly #window: Map<number, readonly [number, number, PublishOutcome]>;

  constructor(
    context: ApplyContext,
    topic: TopicRow,
    producerId: string,
    nowMs: number,
  ) {
    this.#context = context;
    this.#topic = topic.name;
    this.#producerId = producerId;
    this.#nowMs = nowMs;
    const bytes = readThrough(context, producerKey(topic.name, producerId))
      ?.value ?? null;
    this.#before = bytes === null ? null : decodeProducer(bytes);
    this.#highest = this.#before?.highest ?? -1;
    this.#window = new Map();
    for (const entry of this.#before?.window ?? []) {
      // In the window: younger than dedupWindowMs (by the commands' times).
      if (nowMs - entry[1] < topic.dedupWindowMs) {
        this.#window.set(entry[0], entry);
      }
    }
  }

  /**
   * The remembered outcome of `sequence` (a duplicate), or null when it is
   * new.
   *
   * @throws {PubsubError} `sequenceTooOld` for a sequence at or below the
   *   highest that is no longer remembered.
   */
  check(sequence: number, knobs: PubsubKnobs): PublishOutcome | null {
    const seen = this.#window.get(sequence);
    if (seen !== undefined) {
      // Planted bug: a sequence inside the window is appended again.
      return knobs.dedupAfterWindowAppend ? null : seen[2];
    }
    if (sequence <= this.#highest) {
      throw new PubsubError(
        "sequenceTooOld",
        `Sequence ${sequence} of producer '${this.#producerId}' is at or below its highest (${this.#highest}) and outside the dedup window`,
        { producerId: this.#producerId, sequence, highest: this.#highest },
      );
    }
    return null;
  }

  /** Remembers `sequence`'s outcome. */
  remember(sequence: number, outcome: PublishOutcome): void {
    this.#window.delete(sequence);
    this.#window.set(sequence, [sequence, this.#nowMs, outcome]);
    while (this.#window.size > DEDUP_ENTRIES_MAX) {
      this.#window.delete(this.#window.keys().next().value!);
    }
    this.#highest = Math.max(this.#highest, sequence);
  }

  /** Writes the state and its idle index; a new producer past the cap evicts the longest idle. */
  save(producersMax: number): void {
    const rows = rowWriter(this.#context);
    const countKey = producerCountKey(this.#topic);
    let count = decodeCount(readThrough(this.#context, countKey)?.value);
    if (this.#before === null) {
      const idle = scanMerged(
        this.#context,
        prefixRange(pubsubKey(TAG.producerIdle, { name: this.#topic })),
        Math.max(0, count + 1 - producersMax),
      );
      for (const row of idle) {
        const { producerId } = producerOfIdleKey(row.key);
        rows.remove(row.key);
        rows.remove(producerKey(this.#topic, producerId));
        count--;
      }
      count++;
      rows.put(countKey, encoder.encode(count));
    } else if (this.#before.lastSeenMs !== this.#nowMs) {
      rows.remove(
        producerIdleKey(this.#topic, this.#before.lastSeenMs, this.#producerId),
      );
    }
    assert(count <= producersMax, "Producers stay within the per-topic cap");
    rows.put(
      producerIdleKey(this.#topic, this.#nowMs, this.#producerId),
      new Uint8Array(),
    );
    rows.put(
      producerKey(this.#topic, this.#producerId),
      encodeProducer({
        highest: this.#highest,
        lastSeenMs: this.#nowMs,
        window: [...this.#window.values()],
      }),
    );
  }
}
