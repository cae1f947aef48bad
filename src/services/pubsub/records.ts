/**
 * The rows both halves of the service share: topics, partitions and
 * records, and the one way records are appended (offsets assigned here, at
 * apply; count and byte retention trimmed in the same entry). Publishing
 * (`topics.ts`) and dead-lettering (`groups.ts`) both append through
 * {@linkcode appendRecord}.
 *
 * A record's `publishedAtMs` is the proposer's time, raised to the
 * partition's last one, so times never decrease along a partition and a
 * time lookup is a binary search over offsets.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { compareBytes, toHex } from "../../base/bytes.ts";
import type { KvRow } from "../../model/types.ts";
import type { KeyRange } from "../../state/registry.ts";
import {
  type ApplyContext,
  internalRowWriter,
  readThrough,
} from "../../state/write_context.ts";
import {
  type MessageEncoding,
  PUBSUB_SERVICE_LIMITS,
  PubsubError,
  type Retention,
} from "./commands.ts";
import { pubsubKey, TAG } from "./keys.ts";

const encoder = new Encoder();
const decoder = new Decoder();

/** A topic's row. */
export interface TopicRow {
  readonly name: string;
  readonly partitions: number;
  readonly retention: Retention;
  readonly dedupWindowMs: number;
  readonly createdAtMs: number;
  /** The next unkeyed message's partition counter. */
  readonly roundRobin: number;
  /**
   * Being deleted (its rows purged over later ticks): readers treat it as
   * absent ({@linkcode readTopic} answers null); absent means false.
   */
  readonly deleting?: boolean;
}

/** A partition's row. */
export interface PartitionRow {
  /** First retained offset (= next when empty). */
  readonly first: number;
  /** The next offset to assign. */
  readonly next: number;
  /** Bytes of the retained records. */
  readonly bytes: number;
  /** The last record's publishedAtMs (0 before any). */
  readonly lastAtMs: number;
}

/** A stored record. */
export interface RecordRow {
  readonly key: string | null;
  readonly value: Uint8Array;
  readonly encoding: MessageEncoding;
  readonly headers: readonly (readonly [string, string])[];
  readonly publishedAtMs: number;
  /** Bytes it counts for (value, key, headers). */
  readonly bytes: number;
}

/** The read side both halves use: the store plus this entry's overlay. */
export type Rows = Pick<ApplyContext, "store" | "overlay">;

function getValue(rows: Rows, key: Uint8Array): Uint8Array | null {
  const row = readThrough(rows, key);
  return row === null ? null : row.value;
}

/** Key of a topic's row. */
export function topicKey(name: string): Uint8Array {
  return pubsubKey(TAG.topic, { name });
}

/** Key of a partition's row. */
export function partitionKey(topic: string, partition: number): Uint8Array {
  return pubsubKey(TAG.partition, { name: topic }, { u16: partition });
}

/** Key of a record. */
export function recordKey(
  topic: string,
  partition: number,
  offset: number,
): Uint8Array {
  return pubsubKey(TAG.record, { name: topic }, { u16: partition }, {
    u64: offset,
  });
}

/** Records of one partition, `[from, to)` by offset. */
export function recordRange(
  topic: string,
  partition: number,
  from: number,
  to: number,
): KeyRange {
  return {
    start: recordKey(topic, partition, from),
    end: recordKey(topic, partition, to),
  };
}

/** Encodes a topic row. */
export function encodeTopic(row: TopicRow): Uint8Array {
  return encoder.encode([
    row.name,
    row.partitions,
    [row.retention.maxMessages, row.retention.maxBytes, row.retention.maxAgeMs],
    row.dedupWindowMs,
    row.createdAtMs,
    row.roundRobin,
    ...(row.deleting === true ? [true] : []),
  ]);
}

/** Decodes a topic row. */
export function decodeTopic(bytes: Uint8Array): TopicRow {
  const [
    name,
    partitions,
    [maxMessages, maxBytes, maxAgeMs],
    dedupWindowMs,
    createdAtMs,
    roundRobin,
    deleting,
  ] = decoder.decode(bytes) as [
    string,
    number,
    [number | null, number | null, number | null],
    number,
    number,
    number,
    boolean | undefined,
  ];
  return {
    name,
    partitions,
    retention: { maxMessages, maxBytes, maxAgeMs },
    dedupWindowMs,
    createdAtMs,
    roundRobin,
    ...(deleting === true ? { deleting: true } : {}),
  };
}

/** The topic `name` as this entry sees it, or null (also while it is being deleted). */
export function readTopic(rows: Rows, name: string): TopicRow | null {
  const row = readTopicRow(rows, name);
  return row === null || row.deleting === true ? null : row;
}

/** The topic row of `name`, also one being deleted, or null. */
export function readTopicRow(rows: Rows, name: string): TopicRow | null {
  const bytes = getValue(rows, topicKey(name));
  return bytes === null ? null : decodeTopic(bytes);
}

/** Partition `p` of `topic` (an empty row before its first record). */
export function readPartition(
  rows: Rows,
  topic: string,
  partition: number,
): PartitionRow {
  const bytes = getValue(rows, partitionKey(topic, partition));
  if (bytes === null) return { first: 0, next: 0, bytes: 0, lastAtMs: 0 };
  const [first, next, size, lastAtMs] = decoder.decode(bytes) as number[];
  return { first: first!, next: next!, bytes: size!, lastAtMs: lastAtMs! };
}

/** Encodes a partition row. */
export function encodePartition(row: PartitionRow): Uint8Array {
  return encoder.encode([row.first, row.next, row.bytes, row.lastAtMs]);
}

/** Encodes a record. */
export function encodeRecord(row: RecordRow): Uint8Array {
  return encoder.encode([
    row.key,
    row.value,
    row.encoding,
    row.headers,
    row.publishedAtMs,
    row.bytes,
  ]);
}

/** Decodes a record. */
export function decodeRecord(bytes: Uint8Array): RecordRow {
  const [key, value, encoding, headers, publishedAtMs, size] = decoder.decode(
    bytes,
  ) as [
    string | null,
    Uint8Array,
    MessageEncoding,
    [string, string][],
    number,
    number,
  ];
  return { key, value, encoding, headers, publishedAtMs, bytes: size };
}

/** The record at `offset`, or null (never written, or trimmed). */
export function readRecord(
  rows: Rows,
  topic: string,
  partition: number,
  offset: number,
): RecordRow | null {
  const bytes = getValue(rows, recordKey(topic, partition, offset));
  return bytes === null ? null : decodeRecord(bytes);
}

/**
 * The first offset of `partition` whose record was published at or after
 * `timeMs` (the next offset when none): a binary search, times being
 * non-decreasing along a partition.
 */
export function offsetAtTime(
  rows: Rows,
  topic: string,
  partition: number,
  timeMs: number,
): number {
  const { first, next } = readPartition(rows, topic, partition);
  let lo = first;
  let hi = next;
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const record = readRecord(rows, topic, partition, mid);
    // A record below `first` is trimmed; treat missing ones as earlier.
    if (record === null || record.publishedAtMs < timeMs) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Rows of `range` as this entry sees them (the store's rows merged with
 * the overlay's, additions included), in key order, at most `limit`.
 */
export function scanMerged(
  rows: Rows,
  range: KeyRange,
  limit: number,
): KvRow[] {
  const staged: KvRow[] = [];
  const hidden = new Set<string>();
  for (const [hex, pending] of rows.overlay) {
    if (
      compareBytes(pending.key, range.start) < 0 ||
      compareBytes(pending.key, range.end) >= 0
    ) continue;
    hidden.add(hex);
    if (pending.row !== null) staged.push(pending.row);
  }
  staged.sort((a, b) => compareBytes(a.key, b.key));
  const out: KvRow[] = [];
  let start = range.start;
  let s = 0;
  const page = Math.min(Math.max(limit, 16), 1024);
  while (out.length < limit) {
    const stored = rows.store.scan({ start, end: range.end, limit: page });
    for (const row of stored) {
      while (
        s < staged.length && compareBytes(staged[s]!.key, row.key) < 0 &&
        out.length < limit
      ) out.push(staged[s++]!);
      if (out.length === limit) return out;
      if (!hidden.has(toHex(row.key))) out.push(row);
      if (out.length === limit) return out;
    }
    if (stored.length < page) break;
    const last = stored[stored.length - 1]!.key;
    start = new Uint8Array(last.length + 1);
    start.set(last);
  }
  while (s < staged.length && out.length < limit) out.push(staged[s++]!);
  return out;
}

/** Writes one internal row or deletes it. */
export function rowWriter(context: ApplyContext): ReturnType<
  typeof internalRowWriter
> {
  return internalRowWriter(context.overlay, context.versionstamp);
}

/** What one append did. */
export interface Appended {
  readonly offset: number;
  readonly publishedAtMs: number;
  /** Records trimmed by count or byte retention in this append. */
  readonly trimmed: number;
}

/**
 * Appends one record to `partition` of `topic` at the next offset and
 * trims from the front by the topic's count and byte retention (the record
 * just appended always stays).
 */
export function appendRecord(
  context: ApplyContext,
  topic: TopicRow,
  partition: number,
  record: Omit<RecordRow, "publishedAtMs">,
  nowMs: number,
): Appended {
  const rows = rowWriter(context);
  const before = readPartition(context, topic.name, partition);
  const publishedAtMs = Math.max(nowMs, before.lastAtMs);
  const offset = before.next;
  rows.put(
    recordKey(topic.name, partition, offset),
    encodeRecord({ ...record, publishedAtMs }),
  );
  let first = before.first;
  let bytes = before.bytes + record.bytes;
  const next = offset + 1;
  let trimmed = 0;
  const { maxMessages, maxBytes } = topic.retention;
  while (
    first < offset &&
    ((maxMessages !== null && next - first > maxMessages) ||
      (maxBytes !== null && bytes > maxBytes))
  ) {
    const old = readRecord(context, topic.name, partition, first);
    if (old !== null) bytes -= old.bytes;
    rows.remove(recordKey(topic.name, partition, first));
    first++;
    trimmed++;
  }
  rows.put(
    partitionKey(topic.name, partition),
    encodePartition({ first, next, bytes, lastAtMs: publishedAtMs }),
  );
  return { offset, publishedAtMs, trimmed };
}

/**
 * Trims `partition` of `topic` from the front up to (not including)
 * offset `below` (bounded by the next offset); returns the count trimmed.
 */
export function trimBelow(
  context: ApplyContext,
  topic: string,
  partition: number,
  below: number,
): number {
  const rows = rowWriter(context);
  const before = readPartition(context, topic, partition);
  const to = Math.min(below, before.next);
  let bytes = before.bytes;
  let first = before.first;
  while (first < to) {
    const old = readRecord(context, topic, partition, first);
    if (old !== null) bytes -= old.bytes;
    rows.remove(recordKey(topic, partition, first));
    first++;
  }
  if (first !== before.first) {
    rows.put(
      partitionKey(topic, partition),
      encodePartition({ ...before, first, bytes }),
    );
  }
  return first - before.first;
}

/** Key of the row counting the cluster's topics. */
export function topicCountKey(): Uint8Array {
  return pubsubKey(TAG.topicCount);
}

/** How many topics exist, as this entry sees it. */
export function topicCount(rows: Rows): number {
  const bytes = getValue(rows, topicCountKey());
  return bytes === null ? 0 : decoder.decode(bytes) as number;
}

/** Sets the topic count. */
export function writeTopicCount(context: ApplyContext, count: number): void {
  rowWriter(context).put(topicCountKey(), encoder.encode(count));
}

/** Writes a topic's row (create or update). */
export function writeTopic(context: ApplyContext, row: TopicRow): void {
  rowWriter(context).put(topicKey(row.name), encodeTopic(row));
}

/**
 * The topic `name`, created with one partition, unbounded retention and
 * the default dedup window when absent (dead-letter topics are created
 * so, on demand). A topic being deleted is answered as it is: what is
 * appended to it is purged with the rest.
 *
 * @throws {PubsubError} `limitExceeded` when the cluster holds its maximum of topics.
 */
export function ensureTopic(
  context: ApplyContext,
  name: string,
  nowMs: number,
): TopicRow {
  const existing = readTopicRow(context, name);
  if (existing !== null) return existing;
  const count = topicCount(context);
  if (count >= PUBSUB_SERVICE_LIMITS.topicsMax) {
    throw new PubsubError(
      "limitExceeded",
      `The cluster holds at most ${PUBSUB_SERVICE_LIMITS.topicsMax} topics`,
    );
  }
  const row: TopicRow = {
    name,
    partitions: 1,
    retention: { maxMessages: null, maxBytes: null, maxAgeMs: null },
    dedupWindowMs: PUBSUB_SERVICE_LIMITS.dedupWindowMsDefault,
    createdAtMs: nowMs,
    roundRobin: 0,
  };
  writeTopic(context, row);
  writeTopicCount(context, count + 1);
  return row;
}
