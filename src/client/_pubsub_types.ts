/**
 * The types of `client.pubsub` (issue 18): topics, publishing, consumer
 * groups and their members. Re-exported by `pubsub.ts` and `mod.ts`.
 * Private to `src/client/`.
 *
 * @module
 */
import type {
  WireAckAction,
  WireGroupMember,
  WireGroupPartition,
  WireGroupSummary,
  WirePartitionInfo,
  WireResetTarget,
  WireRetention,
} from "../protocol/http_api_pubsub.ts";
import type { OpenLease } from "./types.ts";

/** Retention of each partition; absent fields are unbounded. */
export type TopicRetention = WireRetention;

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
  readonly name: string;
  readonly partitions: number;
  readonly retention: TopicRetention;
  readonly dedupWindowMs: number;
  readonly createdAtMs: number;
}

/** What `pubsub.createTopic` answers: `created` is false for an identical existing topic. */
export interface TopicCreated {
  readonly topic: TopicInfo;
  readonly created: boolean;
}

/** A topic as `pubsub.describeTopic` reports it. */
export interface TopicDescription {
  readonly name: string;
  readonly retention: TopicRetention;
  readonly dedupWindowMs: number;
  readonly createdAtMs: number;
  readonly partitions: readonly WirePartitionInfo[];
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
    readonly partition: number;
    readonly offset: number;
    /** True when a retry of an already published sequence. */
    readonly duplicate: boolean;
  }
  | {
    /** The schedule's id of a delayed message. */
    readonly scheduled: string;
    readonly deliverAtMs: number;
    readonly duplicate: boolean;
  };

/** Where a new group starts reading: everything, only new records, offsets per partition, or a time. */
export type GroupStart =
  | "all"
  | "new"
  | { readonly offsets: Readonly<Record<string, number>> }
  | { readonly timeMs: number };

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
export type AckAction = WireAckAction;

/**
 * A message delivered to a consumer. Its acks are batched: every ack made
 * in the same turn of the event loop goes in one request (one Raft entry).
 */
export interface ConsumerMessage {
  readonly topic: string;
  readonly group: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  /** The value as published (V8 values decoded, bytes as `Uint8Array`). */
  readonly value: unknown;
  readonly headers: Readonly<Record<string, string>>;
  readonly publishedAtMs: number;
  /** 1 for a first delivery. */
  readonly delivery: number;
  /** Unix ms after which an unacked delivery counts as failed. */
  readonly deadlineMs: number;
  /** The generation it was delivered in. */
  readonly generation: number;
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
  readonly topic: string;
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
   * and fetches again.
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
export type GroupSummary = WireGroupSummary;

/** A group as `groups.describe` reports it. */
export interface GroupDescription {
  readonly topic: string;
  readonly group: string;
  readonly generation: number;
  readonly paused: boolean;
  readonly pausedUntilMs: number | null;
  readonly options: {
    readonly start: GroupStart;
    readonly ackDeadlineMs: number;
    readonly maxDeliveries: number;
    readonly maxAckPending: number;
    readonly deadLetterTopic: string;
  };
  readonly members: readonly WireGroupMember[];
  readonly partitions: readonly WireGroupPartition[];
  /** Messages sent to the dead-letter topic, in all. */
  readonly deadLettered: number;
}

/** Where `groups.reset` moves cursors. */
export type GroupResetTarget = WireResetTarget;

/** Options of `groups.reset`. */
export interface GroupResetOptions {
  /** Only this partition. Default: all. */
  readonly partition?: number;
  /** Also with members (bumps the generation). */
  readonly force?: boolean;
}

/** What `groups.reset` answers. */
export interface GroupResetResult {
  readonly generation: number;
  readonly partitions: readonly {
    readonly partition: number;
    readonly cursor: number;
  }[];
}

/** What `groups.pause` and `groups.resume` answer. */
export interface GroupPauseState {
  readonly paused: boolean;
  readonly pausedUntilMs: number | null;
}
