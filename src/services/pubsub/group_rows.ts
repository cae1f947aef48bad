/**
 * The rows of consumer groups (tags `07`–`0b` of {@link ./keys.ts}): their
 * keys and MessagePack codecs, shared by the writer (`groups.ts`) and the
 * reads (`group_reads.ts`).
 *
 * | row             | value                                                                 |
 * | --------------- | --------------------------------------------------------------------- |
 * | group           | options, generation, members `[id, lease]` by id, pause, dead letters |
 * | group partition | owner, ownerSince, nextDeliver, cursor, inFlight, available, redelivered, skipped |
 * | in flight       | delivery count, state, due time, generation and member of the delivery |
 * | deadline        | empty: a due in-flight row (`… p offset`) or a pause end (no `p offset`) |
 * | member lease    | empty: the member `topic/group/member` lives on that lease            |
 *
 * An in-flight row is `pending` (delivered; the deadline row is at its
 * deadline), `waiting` (nacked with a delay; the deadline row is at its
 * availability time) or `available` (to be redelivered; no deadline row).
 * A row delivered before its partition's `ownerSince` (to an earlier
 * owner) counts as available whatever its state: a moved partition's
 * deliveries are released without rewriting their rows, and its
 * `available` count is set to its `inFlight` count.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import { fromHex, toHex } from "../../base/bytes.ts";
import type { KeyRange } from "../../state/registry.ts";
import type { GroupOptions, GroupStart } from "./commands.ts";
import {
  prefixRange,
  pubsubKey,
  readName,
  readU16,
  readU64,
  TAG,
} from "./keys.ts";

const encoder = new Encoder();
const decoder = new Decoder();

/** A member of a group. */
export interface MemberRow {
  readonly id: string;
  readonly lease: string;
}

/** A group's row. */
export interface GroupRow {
  readonly options: GroupOptions;
  /** Bumped by every membership change (and a forced reset); 1 at creation. */
  readonly generation: number;
  /** By id. */
  readonly members: readonly MemberRow[];
  readonly paused: boolean;
  /** With `paused`: when the pause ends by itself (null: on resume). */
  readonly pausedUntilMs: number | null;
  /** Messages sent to the dead-letter topic, in all. */
  readonly deadLettered: number;
  readonly createdAtMs: number;
}

/** One partition of a group. */
export interface GroupPartitionRow {
  readonly owner: string | null;
  /** The generation since which `owner` holds the partition. */
  readonly ownerSince: number;
  /** The next offset never delivered to the group. */
  readonly nextDeliver: number;
  /** min(lowest in-flight offset, nextDeliver). */
  readonly cursor: number;
  /** In-flight rows (delivered, not finished). */
  readonly inFlight: number;
  /** In-flight rows available for redelivery. */
  readonly available: number;
  /** Deliveries after the first, in all. */
  readonly redelivered: number;
  /** Records trimmed by retention before the group finished them. */
  readonly skipped: number;
}

/** The state of an in-flight row. */
export type InFlightState = "pending" | "waiting" | "available";

/** A delivered, unfinished message of a group. */
export interface InFlightRow {
  /** Deliveries so far (1 after the first). */
  readonly delivery: number;
  readonly state: InFlightState;
  /** `pending`: the deadline; `waiting`: when available; else 0. */
  readonly dueMs: number;
  /** The group's generation at the last delivery (or nack/extension). */
  readonly generation: number;
  /** The member delivered to. */
  readonly member: string;
}

/** Key of a group's row. */
export function groupKey(topic: string, group: string): Uint8Array {
  return pubsubKey(TAG.group, { name: topic }, { name: group });
}

/** The group rows of `topic`, or of every topic. */
export function groupRange(topic?: string): KeyRange {
  return prefixRange(
    topic === undefined
      ? pubsubKey(TAG.group)
      : pubsubKey(TAG.group, { name: topic }),
  );
}

/** Topic and group of a group row's key. */
export function parseGroupKey(key: Uint8Array): [string, string] {
  const [topic, at] = readName(key, 3);
  const [group] = readName(key, at);
  return [topic, group];
}

/** Key of partition `p` of a group. */
export function groupPartitionKey(
  topic: string,
  group: string,
  partition: number,
): Uint8Array {
  return pubsubKey(TAG.groupPartition, { name: topic }, { name: group }, {
    u16: partition,
  });
}

/** Every partition row of a group. */
export function groupPartitionRange(topic: string, group: string): KeyRange {
  return prefixRange(
    pubsubKey(TAG.groupPartition, { name: topic }, { name: group }),
  );
}

/** Key of the in-flight row of `offset` in partition `p` of a group. */
export function inFlightKey(
  topic: string,
  group: string,
  partition: number,
  offset: number,
): Uint8Array {
  return pubsubKey(
    TAG.inFlight,
    { name: topic },
    { name: group },
    { u16: partition },
    { u64: offset },
  );
}

/** In-flight rows of partition `p` of a group from `from` on. */
export function inFlightRange(
  topic: string,
  group: string,
  partition: number,
  from = 0,
): KeyRange {
  const prefix = pubsubKey(TAG.inFlight, { name: topic }, { name: group }, {
    u16: partition,
  });
  return {
    start: inFlightKey(topic, group, partition, from),
    end: prefixRange(prefix).end,
  };
}

/** Every in-flight row of a group. */
export function groupInFlightRange(topic: string, group: string): KeyRange {
  return prefixRange(pubsubKey(TAG.inFlight, { name: topic }, { name: group }));
}

/** Partition and offset of an in-flight row's key. */
export function parseInFlightKey(key: Uint8Array): [number, number] {
  const [, atGroup] = readName(key, 3);
  const [, at] = readName(key, atGroup);
  return [readU16(key, at), readU64(key, at + 2)];
}

/** Key of the deadline row of an in-flight row due at `dueMs`. */
export function deadlineKey(
  dueMs: number,
  topic: string,
  group: string,
  partition: number,
  offset: number,
): Uint8Array {
  return pubsubKey(
    TAG.deadline,
    { u64: dueMs },
    { name: topic },
    { name: group },
    { u16: partition },
    { u64: offset },
  );
}

/** Key of the deadline row of a pause of a group ending at `untilMs`. */
export function pauseDueKey(
  untilMs: number,
  topic: string,
  group: string,
): Uint8Array {
  return pubsubKey(TAG.deadline, { u64: untilMs }, { name: topic }, {
    name: group,
  });
}

/** Deadline rows due at or before `nowMs`. */
export function dueRange(nowMs: number): KeyRange {
  return {
    start: pubsubKey(TAG.deadline),
    end: pubsubKey(TAG.deadline, { u64: nowMs + 1 }),
  };
}

/** Every deadline row. */
export function deadlineRange(): KeyRange {
  return prefixRange(pubsubKey(TAG.deadline));
}

/** A deadline row's key, read. */
export type DueItem =
  | {
    readonly kind: "delivery";
    readonly dueMs: number;
    readonly topic: string;
    readonly group: string;
    readonly partition: number;
    readonly offset: number;
  }
  | {
    readonly kind: "pause";
    readonly dueMs: number;
    readonly topic: string;
    readonly group: string;
  };

/** Reads a deadline row's key. */
export function parseDeadlineKey(key: Uint8Array): DueItem {
  const dueMs = readU64(key, 3);
  const [topic, atGroup] = readName(key, 11);
  const [group, at] = readName(key, atGroup);
  if (at >= key.length) return { kind: "pause", dueMs, topic, group };
  return {
    kind: "delivery",
    dueMs,
    topic,
    group,
    partition: readU16(key, at),
    offset: readU64(key, at + 2),
  };
}

/** The due time of the first deadline row of `key`s form. */
export function dueOfDeadlineKey(key: Uint8Array): number {
  return readU64(key, 3);
}

/** Key of the member-lease row of a member. */
export function memberLeaseKey(
  lease: string,
  topic: string,
  group: string,
  member: string,
): Uint8Array {
  return pubsubKey(
    TAG.memberLease,
    { bytes: fromHex(lease) },
    { name: topic },
    { name: group },
    { name: member },
  );
}

/** Every member-lease row of lease `lease`. */
export function memberLeaseRange(lease: string): KeyRange {
  return prefixRange(pubsubKey(TAG.memberLease, { bytes: fromHex(lease) }));
}

/** Lease, topic, group and member of a member-lease row's key. */
export function parseMemberLeaseKey(
  key: Uint8Array,
): { lease: string; topic: string; group: string; member: string } {
  const lease = toHex(key.subarray(3, 11));
  const [topic, atGroup] = readName(key, 11);
  const [group, atMember] = readName(key, atGroup);
  const [member] = readName(key, atMember);
  return { lease, topic, group, member };
}

function encodeStart(start: GroupStart): unknown[] {
  switch (start.kind) {
    case "all":
    case "new":
      return [start.kind];
    case "offsets":
      return [
        "offsets",
        Object.entries(start.offsets)
          .map(([p, n]) => [Number(p), n])
          .sort((a, b) => a[0]! - b[0]!),
      ];
    case "time":
      return ["time", start.timeMs];
  }
}

function decodeStart(raw: unknown[]): GroupStart {
  const kind = raw[0] as string;
  if (kind === "all" || kind === "new") return { kind };
  if (kind === "time") return { kind, timeMs: raw[1] as number };
  const offsets: Record<string, number> = {};
  for (const [p, n] of raw[1] as [number, number][]) offsets[String(p)] = n;
  return { kind: "offsets", offsets };
}

/** A canonical encoding of options (equal options, equal bytes). */
export function encodeOptions(options: GroupOptions): Uint8Array {
  return encoder.encode(optionsTuple(options));
}

function optionsTuple(options: GroupOptions): unknown[] {
  return [
    encodeStart(options.start),
    options.ackDeadlineMs,
    options.maxDeliveries,
    options.maxAckPending,
    options.deadLetterTopic,
  ];
}

function optionsOfTuple(raw: unknown[]): GroupOptions {
  return {
    start: decodeStart(raw[0] as unknown[]),
    ackDeadlineMs: raw[1] as number,
    maxDeliveries: raw[2] as number,
    maxAckPending: raw[3] as number,
    deadLetterTopic: raw[4] as string,
  };
}

/** Encodes a group row. */
export function encodeGroup(row: GroupRow): Uint8Array {
  return encoder.encode([
    optionsTuple(row.options),
    row.generation,
    row.members.map((member) => [member.id, member.lease]),
    row.paused,
    row.pausedUntilMs,
    row.deadLettered,
    row.createdAtMs,
  ]);
}

/** Decodes a group row. */
export function decodeGroup(bytes: Uint8Array): GroupRow {
  const raw = decoder.decode(bytes) as unknown[];
  return {
    options: optionsOfTuple(raw[0] as unknown[]),
    generation: raw[1] as number,
    members: (raw[2] as [string, string][]).map(([id, lease]) => ({
      id,
      lease,
    })),
    paused: raw[3] as boolean,
    pausedUntilMs: raw[4] as number | null,
    deadLettered: raw[5] as number,
    createdAtMs: raw[6] as number,
  };
}

/** Encodes a group partition row. */
export function encodeGroupPartition(row: GroupPartitionRow): Uint8Array {
  return encoder.encode([
    row.owner,
    row.ownerSince,
    row.nextDeliver,
    row.cursor,
    row.inFlight,
    row.available,
    row.redelivered,
    row.skipped,
  ]);
}

/** Decodes a group partition row. */
export function decodeGroupPartition(bytes: Uint8Array): GroupPartitionRow {
  const raw = decoder.decode(bytes) as unknown[];
  return {
    owner: raw[0] as string | null,
    ownerSince: raw[1] as number,
    nextDeliver: raw[2] as number,
    cursor: raw[3] as number,
    inFlight: raw[4] as number,
    available: raw[5] as number,
    redelivered: raw[6] as number,
    skipped: raw[7] as number,
  };
}

const STATES: readonly InFlightState[] = ["pending", "waiting", "available"];

/** Encodes an in-flight row. */
export function encodeInFlight(row: InFlightRow): Uint8Array {
  return encoder.encode([
    row.delivery,
    STATES.indexOf(row.state),
    row.dueMs,
    row.generation,
    row.member,
  ]);
}

/** Decodes an in-flight row. */
export function decodeInFlight(bytes: Uint8Array): InFlightRow {
  const raw = decoder.decode(bytes) as unknown[];
  return {
    delivery: raw[0] as number,
    state: STATES[raw[1] as number]!,
    dueMs: raw[2] as number,
    generation: raw[3] as number,
    member: raw[4] as string,
  };
}

/** Whether an in-flight row is available for redelivery in a partition. */
export function isAvailable(
  row: InFlightRow,
  partition: GroupPartitionRow,
): boolean {
  return row.state === "available" || row.generation < partition.ownerSince;
}

/** Whether a pause is in force at `nowMs`. */
export function pausedAt(group: GroupRow, nowMs: number): boolean {
  return group.paused &&
    (group.pausedUntilMs === null || group.pausedUntilMs > nowMs);
}
