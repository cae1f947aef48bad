/**
 * The types of `client.pubsub` (issue 18): topics, publishing, consumer
 * groups and their members. Re-exported by `pubsub.ts` and `mod.ts`.
 * Private to `src/client/`.
 *
 * @module
 */
import type { OpenLease } from "./types.ts";

/** Retention of each partition; absent fields are unbounded. */
export interface TopicRetention {
  /** Records kept per partition at most. */
  readonly maxMessages?: number;
  /** Bytes (values, keys, headers) kept per partition at most. */
  readonly maxBytes?: number;
  /** Records older than this are trimmed, ms. */
  readonly maxAgeMs?: number;
}

/** Options of `pubsub.createTopic`. */
export interface TopicCreateOptions {
  /** 1 to 256, fixed for the topic's life. Default 1. */
  readonly partitions?: number;
  /** Per partition: `maxMessages`, `maxBytes`, `maxAgeMs`. Default: unbounded. */
  readonly retention?: TopicRetention;
  /** How long a producer's sequence is remembered, 0 to 7 days, ms. Default 120,000. */
  readonly dedupWindowMs?: number;
}

/** A topic's settings. */
export interface TopicInfo {
  /** The topic name. */
  readonly name: string;
  /** Its number of partitions. */
  readonly partitions: number;
  /** Retention per partition. */
  readonly retention: TopicRetention;
  /** How long producer sequences are remembered, ms. */
  readonly dedupWindowMs: number;
  /** When it was created, Unix ms. */
  readonly createdAtMs: number;
}

/** What `pubsub.createTopic` answers: `created` is false for an identical existing topic. */
export interface TopicCreated {
  /** The topic's settings. */
  readonly topic: TopicInfo;
  /** False when an identical topic existed. */
  readonly created: boolean;
}

/** One partition of a topic. */
export interface TopicPartitionInfo {
  /** The partition number. */
  readonly partition: number;
  /** The first retained offset (= nextOffset when empty). */
  readonly firstOffset: number;
  /** The offset the next record gets. */
  readonly nextOffset: number;
  /** Bytes of the retained records (values, keys, headers). */
  readonly bytes: number;
}

/** A topic as `pubsub.describeTopic` reports it. */
export interface TopicDescription {
  /** The topic name. */
  readonly name: string;
  /** Retention per partition. */
  readonly retention: TopicRetention;
  /** How long producer sequences are remembered, ms. */
  readonly dedupWindowMs: number;
  /** When it was created, Unix ms. */
  readonly createdAtMs: number;
  /** Its partitions, in order. */
  readonly partitions: readonly TopicPartitionInfo[];
  /** The topic's groups, by name. */
  readonly groups: readonly string[];
  /** Delayed messages not yet due. */
  readonly scheduled: number;
}

/** How a read is served: linearizable (default) or from the answering node's replica. */
export type PubsubReadConsistency = "strong" | "eventual";

/** Options of reads (`listTopics`, `describeTopic`, `groups.list`, `groups.describe`). */
export interface PubsubReadOptions {
  /** Default `strong`. */
  readonly consistency?: PubsubReadConsistency;
}

/** Where and when one message is published. */
export interface PublishOptions {
  /** ≤ 1 KiB of UTF-8: messages of one key go to one partition, in order. */
  readonly key?: string;
  /** ≤ 64 headers, names ≤ 128 bytes and not `aspen-*`, ≤ 16 KiB in all. */
  readonly headers?: Readonly<Record<string, string>>;
  /** An explicit partition (wins over the key). */
  readonly partition?: number;
  /** Hold the message this long (≤ 30 days), ms. */
  readonly delayMs?: number;
  /** Or until this Unix time, ms. */
  readonly deliverAtMs?: number;
  /** Idempotent publish: the producer, ≤ 64 characters (with `sequence`). */
  readonly producerId?: string;
  /** Idempotent publish: this message's sequence number (a safe integer). */
  readonly sequence?: number;
}

/** One message of `pubsub.publishBatch`. */
export interface PublishMessage extends Omit<PublishOptions, "producerId"> {
  /** Any value V8 serializes, a `Uint8Array` (raw bytes) or `KvV8Bytes`. */
  readonly value: unknown;
}

/** Options of `pubsub.publishBatch`. */
export interface PublishBatchOptions {
  /** Idempotent publish: every message then carries a `sequence`. */
  readonly producerId?: string;
}

/** Where a published message went: appended, or held in the topic's schedule. */
export type PublishRecord =
  | {
    /** The partition it was appended to. */
    readonly partition: number;
    /** Its offset there. */
    readonly offset: number;
    /** True when a retry of an already published sequence. */
    readonly duplicate: boolean;
  }
  | {
    /** The schedule's id of a delayed message. */
    readonly scheduled: string;
    /** When it is appended, Unix ms. */
    readonly deliverAtMs: number;
    /** True when a retry of an already published sequence. */
    readonly duplicate: boolean;
  };

/** Where a new group starts reading: everything, only new records, offsets per partition, or a time. */
export type GroupStart =
  | "all"
  | "new"
  | {
    /** Partition → first offset (clamped to the retained records). */
    readonly offsets: Readonly<Record<string, number>>;
  }
  | {
    /** The first record published at or after this Unix time, ms. */
    readonly timeMs: number;
  };

/** Options of `pubsub.consumer`. */
export interface ConsumerOptions {
  /**
   * The member's lease: an id (not kept alive by the consumer), or an open
   * lease (whose loss ends the consumer). Default: a lease of `ttlMs`
   * granted and kept alive by the consumer, revoked by `close()`.
   */
  readonly lease?: string | OpenLease;
  /** TTL of the consumer's own lease, ms. Default 10,000. */
  readonly ttlMs?: number;
  /** The member id, ≤ 64 of `[A-Za-z0-9._-]`. Default: 16 random hex digits. */
  readonly memberId?: string;
  /** A new group's start. Default `all`. */
  readonly start?: GroupStart;
  /** 1,000 to 43,200,000 ms. Default 30,000. */
  readonly ackDeadlineMs?: number;
  /** 1 to 100. Default 5. */
  readonly maxDeliveries?: number;
  /** Per partition, 1 to 10,000 (1: strictly ordered). Default 1,000. */
  readonly maxAckPending?: number;
  /** Default `<topic>.dlq.<group>`, created on demand. */
  readonly deadLetterTopic?: string;
}

/** What a member does with a delivered message. */
export type AckAction = "ack" | "nack" | "inProgress" | "terminate";

/**
 * A message delivered to a consumer. Its acks are batched: every ack made
 * in the same turn of the event loop goes in one request (one Raft entry).
 */
export interface ConsumerMessage {
  /** The topic. */
  readonly topic: string;
  /** The consumer's group. */
  readonly group: string;
  /** The record's partition. */
  readonly partition: number;
  /** The record's offset. */
  readonly offset: number;
  /** Its key, or null. */
  readonly key: string | null;
  /** The value as published (V8 values decoded, bytes as `Uint8Array`). */
  readonly value: unknown;
  /** Its headers (dead letters carry `aspen-*` ones). */
  readonly headers: Readonly<Record<string, string>>;
  /** When it was appended, Unix ms (the leader's clock). */
  readonly publishedAtMs: number;
  /** 1 for a first delivery. */
  readonly delivery: number;
  /** Unix ms after which an unacked delivery counts as failed. */
  readonly deadlineMs: number;
  /** The generation it was delivered in. */
  readonly generation: number;
  /** The member it was delivered to. */
  readonly memberId: string;
  /**
   * Finishes the message. Resolves true when applied, false when the
   * message was no longer in flight (already finished, or its deadline
   * passed and it went to the dead-letter topic).
   *
   * @throws {StaleGenerationError} When its partition moved to another member.
   */
  ack(): Promise<boolean>;
  /** Redelivers it after `delayMs` (default 0). Resolves as `ack`. */
  nack(options?: { readonly delayMs?: number }): Promise<boolean>;
  /** Resets its deadline to now + the group's `ackDeadlineMs`. Resolves as `ack`. */
  inProgress(): Promise<boolean>;
  /** Sends it to the dead-letter topic now. Resolves as `ack`. */
  terminate(): Promise<boolean>;
}

/** One ack of `consumer.ackMany`. */
export interface ConsumerAck {
  /** A message this consumer fetched. */
  readonly message: ConsumerMessage;
  /** Default `ack`. */
  readonly action?: AckAction;
  /** `nack` only. */
  readonly delayMs?: number;
}

/** Options of `consumer.fetch` and of the push iterator. */
export interface ConsumerFetchOptions {
  /** Stop adding messages once this many value bytes are taken (≥ 1 message). */
  readonly maxBytes?: number;
  /** Stops waiting when aborted (then `fetch` answers what it has: nothing). */
  readonly signal?: AbortSignal;
}

/** A member of a consumer group. */
export interface Consumer {
  /** The topic. */
  readonly topic: string;
  /** The group. */
  readonly group: string;
  /** This member's id. */
  readonly memberId: string;
  /** The member's lease id. */
  readonly leaseId: string;
  /** The generation of the last join (rejoins update it). */
  readonly generation: number;
  /** The partitions owned as of the last join, fetch or push. */
  readonly partitions: readonly number[];
  /**
   * Up to `batch` messages (1 to 1,000), waiting up to `maxWaitMs` (≤ 60,000)
   * for a first one. A `staleGeneration` refusal rejoins (same member id)
   * and fetches again; a node down or an answer lost is retried (up to 5
   * times): deliveries a lost answer recorded come back once their ack
   * deadline passes.
   *
   * @throws {LeaseLostError} When the consumer's lease was lost.
   */
  fetch(
    batch?: number,
    maxWaitMs?: number,
    options?: ConsumerFetchOptions,
  ): Promise<ConsumerMessage[]>;
  /** Several acks at once, results in order (one request per 1,000). */
  ackMany(acks: readonly ConsumerAck[]): Promise<boolean[]>;
  /**
   * Push: messages as the cluster streams them (`GET /v1/groups/consume`),
   * within the group's `maxAckPending`, until `close()` or the client
   * closes. A dropped stream reconnects; a fenced one rejoins.
   */
  [Symbol.asyncIterator](): AsyncIterator<ConsumerMessage>;
  /** Sends pending acks, leaves the group, and revokes the consumer's own lease. */
  close(): Promise<void>;
  /** Same as `close`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A group in `groups.list`. */
export interface GroupSummary {
  /** The topic. */
  readonly topic: string;
  /** The group. */
  readonly group: string;
  /** Its generation (bumped by each membership change). */
  readonly generation: number;
  /** Its members now. */
  readonly members: number;
  /** Whether it delivers nothing. */
  readonly paused: boolean;
}

/** A member as `groups.describe` reports it. */
export interface GroupMember {
  /** The member id. */
  readonly id: string;
  /** Its lease id. */
  readonly lease: string;
  /** The partitions it owns. */
  readonly partitions: readonly number[];
}

/** One partition of a group. */
export interface GroupPartitionInfo {
  /** The partition number. */
  readonly partition: number;
  /** The owning member, or null. */
  readonly owner: string | null;
  /** The generation since which its owner holds it. */
  readonly ownerSince: number;
  /** The lowest offset not acked, terminated or dead-lettered. */
  readonly cursor: number;
  /** The partition's next offset. */
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

/** A group as `groups.describe` reports it. */
export interface GroupDescription {
  /** The topic. */
  readonly topic: string;
  /** The group. */
  readonly group: string;
  /** Its generation. */
  readonly generation: number;
  /** Whether it delivers nothing. */
  readonly paused: boolean;
  /** When a pause ends by itself, Unix ms; null: until resumed (or not paused). */
  readonly pausedUntilMs: number | null;
  /** The options its first join fixed. */
  readonly options: GroupOptions;
  /** Its members. */
  readonly members: readonly GroupMember[];
  /** Its partitions. */
  readonly partitions: readonly GroupPartitionInfo[];
  /** Messages sent to the dead-letter topic, in all. */
  readonly deadLettered: number;
}

/** A group's options, fixed by its first join. */
export interface GroupOptions {
  /** Where it started. */
  readonly start: GroupStart;
  /** Time to ack a delivery, ms. */
  readonly ackDeadlineMs: number;
  /** Deliveries before a message is dead-lettered. */
  readonly maxDeliveries: number;
  /** Unfinished deliveries per partition at most. */
  readonly maxAckPending: number;
  /** Where dead letters go. */
  readonly deadLetterTopic: string;
}

/** Where `groups.reset` moves cursors. */
export type GroupResetTarget =
  | "earliest"
  | "latest"
  | {
    /** This offset on every partition reset (clamped to the retained records). */
    readonly offset: number;
  }
  | {
    /** The first record published at or after this Unix time, ms. */
    readonly timeMs: number;
  };

/** Options of `groups.reset`. */
export interface GroupResetOptions {
  /** Only this partition. Default: all. */
  readonly partition?: number;
  /** Also with members (bumps the generation). */
  readonly force?: boolean;
}

/** What `groups.reset` answers. */
export interface GroupResetResult {
  /** The group's generation after the reset. */
  readonly generation: number;
  /** The partitions reset and their cursors. */
  readonly partitions: readonly {
    /** The partition number. */
    readonly partition: number;
    /** Its cursor now. */
    readonly cursor: number;
  }[];
}

/** What `groups.pause` and `groups.resume` answer. */
export interface GroupPauseState {
  /** Whether it delivers nothing. */
  readonly paused: boolean;
  /** When the pause ends by itself, Unix ms; null: until resumed (or not paused). */
  readonly pausedUntilMs: number | null;
}
