/**
 * The rows of the topics half (see `keys.ts`), their keys and codecs:
 *
 * - `04 topic 00` the topic's scheduled count; `04 topic 00 index position`
 *   one delayed message (`index` 8 bytes, `position` 2 bytes: its id is
 *   `<index>.<position>`), `0c dueMs topic 00 index position` its due index;
 * - `05 topic 00` the topic's producer count; `05 topic 00 producerId` one
 *   producer's dedup state, `06 topic 00 lastSeenMs producerId` its idle
 *   index (the longest idle is forgotten first);
 * - `0e topic` a topic being deleted; `0f topic` a topic with age retention.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { PublishMessage, PublishOutcome } from "./commands.ts";
import { pubsubKey, readName, readU16, readU64, TAG } from "./keys.ts";

const encoder = new Encoder();
const decoder = new Decoder();
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

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

/** Encodes a count row. */
export function encodeCount(count: number): Uint8Array {
  return encoder.encode(count);
}
