/**
 * Where a published message goes: an explicit partition, else Kafka's
 * default partitioner for a keyed message (murmur2 of the key's UTF-8
 * bytes, positive, mod P), else round robin by the topic's counter.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { type PublishMessage, PubsubError } from "./commands.ts";
import type { TopicRow } from "./records.ts";

const utf8 = new TextEncoder();

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
