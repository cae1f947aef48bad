/**
 * The pub/sub part of Aspen's HTTP protocol (issue 18): partitioned topics
 * with idempotent and delayed publish, and consumer groups whose members
 * are leases, fenced by generation, acking each message.
 *
 * Topics: `POST /v1/topics/{create,list,describe,delete,publish}`. Groups:
 * `POST /v1/groups/{join,leave,fetch,ack,list,describe,reset,pause,resume}`
 * and `GET /v1/groups/consume` (SSE push). Routes are in `ROUTES`
 * ({@link ./http_api.ts}), limits in {@linkcode PUBSUB_LIMITS}; every route
 * is behind the bearer check.
 *
 * **Records.** A topic has P partitions (fixed at creation); a record is
 * `[topic, partition, offset]`, offsets contiguous per partition from 0,
 * assigned at apply. A keyed message goes to `murmur2(utf8(key)) & 0x7fffffff
 * mod P` (Kafka's default partitioner), an unkeyed one round-robin, an
 * explicit `partition` wins. A batch is one Raft entry: all or nothing.
 *
 * **Groups.** Partition p belongs to the live member with the highest first
 * 8 bytes of BLAKE3(`group \0 p \0 memberId`). Each membership change bumps
 * the group's `generation`; each partition records the generation since
 * which its owner has held it (`ownerSince`). Fetch, ack and cursor
 * commits carrying `generation` are accepted on p only from its owner with
 * `generation ≥ ownerSince(p)`; anything else is 409 `staleGeneration`
 * (details: the current `generation` and `assignment`).
 *
 * **Acks.** `ack`, `nack {delayMs}`, `inProgress` (deadline reset) and
 * `terminate` (to the dead-letter topic now). An expired deadline is a
 * failed delivery; past `maxDeliveries` a message goes to the dead-letter
 * topic (`<topic>.dlq.<group>` unless configured) with headers
 * `aspen-dlq-reason`, `aspen-source` (`topic/partition/offset`) and
 * `aspen-deliveries`. The cursor of (group, partition) is the lowest offset
 * not yet acked, terminated or dead-lettered.
 *
 * This module holds no code with side effects: browsers load it.
 *
 * @module
 */
import type { WireValue } from "./http_api.ts";

/** Limits of the pub/sub API. */
export const PUBSUB_LIMITS = {
  topicsMax: 10_000,
  /** Topic, group and member names. */
  namePattern: /^[A-Za-z0-9._-]{1,128}$/,
  memberIdPattern: /^[A-Za-z0-9._-]{1,64}$/,
  partitionsMax: 256,
  partitionsDefault: 1,
  keyBytesMax: 1_024,
  headersMax: 64,
  headerNameBytesMax: 128,
  /** All of one message's header names and values. */
  headersBytesMax: 16_384,
  /** Header names starting so are the server's (dead letters). */
  reservedHeaderPrefix: "aspen-",
  /** One message: value, key and headers. */
  messageBytesMax: 256 * 1024,
  batchMessagesMax: 1_000,
  /** One batch: every message's value, key and headers. */
  batchBytesMax: 1024 * 1024,
  producerIdCharsMax: 64,
  dedupWindowMsDefault: 120_000,
  dedupWindowMsMax: 7 * 86_400_000,
  /** Producers remembered per topic; the longest idle is forgotten first. */
  producersPerTopicMax: 10_000,
  delayMsMax: 30 * 86_400_000,
  groupsPerTopicMax: 1_000,
  membersPerGroupMax: 1_000,
  ackDeadlineMsDefault: 30_000,
  ackDeadlineMsMin: 1_000,
  ackDeadlineMsMax: 43_200_000,
  maxDeliveriesDefault: 5,
  maxDeliveriesMax: 100,
  maxAckPendingDefault: 1_000,
  maxAckPendingMax: 10_000,
  fetchBatchMax: 1_000,
  fetchBatchDefault: 100,
  fetchWaitMsMax: 60_000,
  /** Acks of one call. */
  acksMax: 1_000,
  /** Longest `nack` delay (as the longest ack deadline). */
  nackDelayMsMax: 43_200_000,
  /** Push streams one node serves at once. */
  consumeStreamsMax: 1_000,
} as const;

/** A message's value: Deno KV's encodings (V8-serialized or raw bytes). */
export type WireMessageValue = WireValue & {
  readonly encoding: "v8" | "bytes";
};

/** Retention of each partition of a topic; absent fields are unbounded. */
export interface WireRetention {
  readonly maxMessages?: number;
  readonly maxBytes?: number;
  readonly maxAgeMs?: number;
}

/** `POST /v1/topics/create` */
export interface TopicCreateRequest {
  readonly name: string;
  /** 1 to 256 (default 1), fixed for the topic's life. */
  readonly partitions?: number;
  readonly retention?: WireRetention;
  /** 0 to 7 days (default 120,000). */
  readonly dedupWindowMs?: number;
}

/** A topic's settings. */
export interface WireTopic {
  readonly name: string;
  readonly partitions: number;
  readonly retention: WireRetention;
  readonly dedupWindowMs: number;
  readonly createdAtMs: number;
}

/**
 * Reply to `POST /v1/topics/create`: a create repeating an existing topic's
 * settings answers it with `created: false`; other settings are 409
 * `topicExists`.
 */
export interface TopicCreateResponse {
  readonly topic: WireTopic;
  readonly created: boolean;
}

/** Reply to `POST /v1/topics/list` (body `{}`), by name. */
export interface TopicListResponse {
  readonly topics: readonly WireTopic[];
}

/** `POST /v1/topics/describe` and `POST /v1/topics/delete`. */
export interface TopicNameRequest {
  readonly name: string;
  /** Delete only: also with groups (they are deleted with it). */
  readonly force?: boolean;
}

/** One partition as describe reports it. */
export interface WirePartitionInfo {
  readonly partition: number;
  /** The first retained offset (= nextOffset when empty). */
  readonly firstOffset: number;
  readonly nextOffset: number;
  /** Bytes of the retained records (values, keys, headers). */
  readonly bytes: number;
}

/** Reply to `POST /v1/topics/describe`. */
export interface TopicDescribeResponse extends Omit<WireTopic, "partitions"> {
  readonly partitions: readonly WirePartitionInfo[];
  /** The topic's groups, by name. */
  readonly groups: readonly string[];
  /** Delayed messages not yet due. */
  readonly scheduled: number;
}

/** Reply to `POST /v1/topics/delete`. */
export interface TopicDeleteResponse {
  readonly deleted: boolean;
}

/** One message to publish. */
export interface WirePublishMessage {
  readonly value: WireMessageValue;
  /** ≤ 1 KiB of UTF-8; keyed messages keep their order in one partition. */
  readonly key?: string;
  /** ≤ 64 headers; names ≤ 128 bytes, not `aspen-*`; ≤ 16 KiB in all. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Explicit partition (wins over the key). */
  readonly partition?: number;
  /** With `producerId`: this message's sequence number (a safe integer). */
  readonly sequence?: number;
  /** Hold the message this long (≤ 30 days) before it is appended. */
  readonly delayMs?: number;
  /** Or until this Unix time, ms. */
  readonly deliverAtMs?: number;
}

/** `POST /v1/topics/publish`: one entry, all or nothing. */
export interface PublishRequest {
  readonly topic: string;
  /** 1 to 1,000 messages, ≤ 1 MiB in all. */
  readonly messages: readonly WirePublishMessage[];
  /** Idempotent publish: every message then carries a `sequence`. */
  readonly producerId?: string;
}

/** Where a published message went. */
export type WirePublishRecord =
  | {
    readonly partition: number;
    readonly offset: number;
    readonly duplicate: boolean;
  }
  | {
    /** The schedule's id of a delayed message. */
    readonly scheduled: string;
    readonly deliverAtMs: number;
    readonly duplicate: boolean;
  };

/** Reply to `POST /v1/topics/publish`, one record per message in order. */
export interface PublishResponse {
  readonly records: readonly WirePublishRecord[];
}

/** Where a new group starts reading each partition. */
export type WireGroupStart =
  | "all"
  | "new"
  | { readonly offsets: Readonly<Record<string, number>> }
  | { readonly timeMs: number };

/** A group's options, fixed by its first join. */
export interface WireGroupOptions {
  /** Default `all`. */
  readonly start?: WireGroupStart;
  /** 1,000 to 43,200,000 (default 30,000). */
  readonly ackDeadlineMs?: number;
  /** 1 to 100 (default 5). */
  readonly maxDeliveries?: number;
  /** Per partition, 1 to 10,000 (default 1,000); 1 = strictly ordered. */
  readonly maxAckPending?: number;
  /** Default `<topic>.dlq.<group>`, created on demand. */
  readonly deadLetterTopic?: string;
}

/** `POST /v1/groups/join` */
export interface GroupJoinRequest {
  readonly topic: string;
  readonly group: string;
  /** Default: a new random id. A rejoin with the same id and lease answers it. */
  readonly memberId?: string;
  /** The member lives while this lease does. */
  readonly lease: string;
  /** Only the first join's options count; others must match (409 `groupConfigMismatch`). */
  readonly options?: WireGroupOptions;
}

/** Reply to `POST /v1/groups/join`. */
export interface GroupJoinResponse {
  readonly memberId: string;
  readonly generation: number;
  /** The partitions this member owns now. */
  readonly partitions: readonly number[];
}

/** `POST /v1/groups/leave` */
export interface GroupLeaveRequest {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
}

/** Reply to `POST /v1/groups/leave`. */
export interface GroupLeaveResponse {
  readonly generation: number;
  /** False when the member was not in the group. */
  readonly left: boolean;
}

/** `POST /v1/groups/fetch`: a leader command recording the deliveries. */
export interface GroupFetchRequest {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly generation: number;
  /** 1 to 1,000 (default 100). */
  readonly batch?: number;
  /** Wait up to this long for a first message (≤ 60,000; default 0). */
  readonly maxWaitMs?: number;
  /** Stop adding messages once this many value bytes are taken (≥ 1 message). */
  readonly maxBytes?: number;
}

/** A message delivered to a member. */
export interface WireDelivery {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: WireMessageValue;
  readonly headers: Readonly<Record<string, string>>;
  readonly publishedAtMs: number;
  /** 1 for a first delivery. */
  readonly delivery: number;
  /** Unix ms after which an unacked delivery counts as failed. */
  readonly deadlineMs: number;
}

/** Reply to `POST /v1/groups/fetch`. */
export interface GroupFetchResponse {
  readonly generation: number;
  readonly messages: readonly WireDelivery[];
}

/** What a member does with a delivered message. */
export type WireAckAction = "ack" | "nack" | "inProgress" | "terminate";

/** One ack. */
export interface WireAck {
  readonly partition: number;
  readonly offset: number;
  readonly action: WireAckAction;
  /** `nack` only: redeliver after this long (default 0, ≤ 43,200,000). */
  readonly delayMs?: number;
}

/** `POST /v1/groups/ack`: up to 1,000, one entry. */
export interface GroupAckRequest {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly generation: number;
  readonly acks: readonly WireAck[];
}

/** One ack's outcome: `finished` when the message was already acked, dead-lettered or never delivered. */
export interface WireAckResult {
  readonly partition: number;
  readonly offset: number;
  readonly ok: boolean;
  readonly reason?: "finished";
}

/** Reply to `POST /v1/groups/ack`, in the order of the acks. */
export interface GroupAckResponse {
  readonly results: readonly WireAckResult[];
}

/** `POST /v1/groups/list` */
export interface GroupListRequest {
  readonly topic?: string;
}

/** A group in a list. */
export interface WireGroupSummary {
  readonly topic: string;
  readonly group: string;
  readonly generation: number;
  readonly members: number;
  readonly paused: boolean;
}

/** Reply to `POST /v1/groups/list`, by topic then group. */
export interface GroupListResponse {
  readonly groups: readonly WireGroupSummary[];
}

/** `POST /v1/groups/describe`, `resume`. */
export interface GroupRefRequest {
  readonly topic: string;
  readonly group: string;
}

/** A member as describe reports it. */
export interface WireGroupMember {
  readonly id: string;
  readonly lease: string;
  readonly partitions: readonly number[];
}

/** One partition of a group. */
export interface WireGroupPartition {
  readonly partition: number;
  readonly owner: string | null;
  readonly ownerSince: number;
  /** The lowest offset not acked, terminated or dead-lettered. */
  readonly cursor: number;
  readonly nextOffset: number;
  /** nextOffset − cursor. */
  readonly lag: number;
  /** Delivered and not finished. */
  readonly pending: number;
  /** Deliveries after the first, in all. */
  readonly redelivered: number;
  /** Records trimmed by retention before the group finished them. */
  readonly skipped: number;
}

/** Reply to `POST /v1/groups/describe`. */
export interface GroupDescribeResponse {
  readonly topic: string;
  readonly group: string;
  readonly generation: number;
  readonly paused: boolean;
  readonly pausedUntilMs: number | null;
  readonly options: Required<WireGroupOptions>;
  readonly members: readonly WireGroupMember[];
  readonly partitions: readonly WireGroupPartition[];
  /** Messages sent to the dead-letter topic, in all. */
  readonly deadLettered: number;
}

/** Where a reset moves cursors. */
export type WireResetTarget =
  | "earliest"
  | "latest"
  | { readonly offset: number }
  | { readonly timeMs: number };

/** `POST /v1/groups/reset`: needs a group without members unless `force` (which bumps the generation). */
export interface GroupResetRequest {
  readonly topic: string;
  readonly group: string;
  readonly to: WireResetTarget;
  /** Only this partition (default all). */
  readonly partition?: number;
  readonly force?: boolean;
}

/** Reply to `POST /v1/groups/reset`. */
export interface GroupResetResponse {
  readonly generation: number;
  readonly partitions: readonly {
    readonly partition: number;
    readonly cursor: number;
  }[];
}

/** `POST /v1/groups/pause` */
export interface GroupPauseRequest {
  readonly topic: string;
  readonly group: string;
  /** Resume by itself at this Unix time, ms (default: until resumed). */
  readonly untilMs?: number;
}

/** Reply to `POST /v1/groups/pause` and `resume`. */
export interface GroupPauseResponse {
  readonly paused: boolean;
  readonly pausedUntilMs: number | null;
}

/**
 * `GET /v1/groups/consume?topic=&group=&member=&generation=`
 * (`text/event-stream`): `event: message` frames (data: a
 * {@linkcode WireDelivery}) within the group's `maxAckPending`, each
 * recorded as a delivery before it is sent; `event: fenced` (data: the
 * `staleGeneration` details) ends the stream once the member loses its
 * partitions or its generation is stale.
 */
export interface GroupConsumeQuery {
  readonly topic: string;
  readonly group: string;
  readonly member: string;
  readonly generation: number;
}

/** Details of a 409 `staleGeneration` (and of an `event: fenced` frame). */
export interface StaleGenerationDetails {
  readonly generation: number;
  /** Partition → member id. */
  readonly assignment: Readonly<Record<string, string>>;
}

/** A publish inside `POST /v1/kv/atomic`. */
export interface WireAtomicPublish extends WirePublishMessage {
  readonly topic: string;
  readonly producerId?: string;
}

/** An ack inside `POST /v1/kv/atomic`. */
export interface WireAtomicAck {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly generation: number;
  readonly partition: number;
  readonly offset: number;
}
