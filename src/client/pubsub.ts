/**
 * `client.pubsub` (issue 18): partitioned topics with idempotent and delayed
 * publish, and consumer groups whose members are leases, fenced by
 * generation, acking each message. `client.pubsub.groups` administers
 * groups (list, describe, reset, pause, resume).
 *
 * Values are Deno KV's encodings, as `client.kv` writes them: a
 * `Uint8Array` is raw bytes, anything else is V8-serialized (a `KvV8Bytes`
 * is sent as it is). Refusals are typed: `TopicExistsError`,
 * `TopicNotFoundError`, `TopicInUseError`, `GroupNotFoundError`,
 * `GroupConfigMismatchError`, `GroupNotEmptyError`, `StaleGenerationError`,
 * `SequenceTooOldError`, and the client's others (`InvalidRequestError`,
 * `LimitExceededError`, `LeaseNotFoundError`, …).
 *
 * @example
 * ```ts ignore
 * await client.pubsub.createTopic("orders", { partitions: 6 });
 * await client.pubsub.publish("orders", { id: 1 }, { key: "customer-7" });
 * await using consumer = await client.pubsub.consumer("orders", "billing");
 * for await (const message of consumer) {
 *   console.log(message.partition, message.offset, message.value);
 *   await message.ack();
 * }
 * ```
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  type PublishResponse,
  PUBSUB_LIMITS,
  type TopicCreateResponse,
  type TopicDeleteResponse,
  type TopicDescribeResponse,
  type TopicListResponse,
  type WireGroupOptions,
} from "../protocol/http_api_pubsub.ts";
import type { HttpTransport } from "./_transport.ts";
import { AspenGroups } from "./_pubsub_groups.ts";
import type { StreamConnector } from "./_sse.ts";
import { type AspenLeases, checkLeaseId } from "./leases.ts";
import { type ConsumerLease, GroupConsumer } from "./_pubsub_consumer.ts";
import {
  checkBatch,
  checkMemberId,
  checkPubsubName,
  checkRange,
  publishMessageToWire,
  randomMemberId,
  readPath,
} from "./_pubsub_wire.ts";
import type {
  Consumer,
  ConsumerOptions,
  PublishBatchOptions,
  PublishMessage,
  PublishOptions,
  PublishRecord,
  PubsubReadOptions,
  TopicCreated,
  TopicCreateOptions,
  TopicDescription,
  TopicInfo,
} from "./_pubsub_types.ts";

export { AspenGroups } from "./_pubsub_groups.ts";
export type {
  AckAction,
  Consumer,
  ConsumerAck,
  ConsumerFetchOptions,
  ConsumerMessage,
  ConsumerOptions,
  GroupDescription,
  GroupMember,
  GroupOptions,
  GroupPartitionInfo,
  GroupPauseState,
  GroupResetOptions,
  GroupResetResult,
  GroupResetTarget,
  GroupStart,
  GroupSummary,
  PublishBatchOptions,
  PublishMessage,
  PublishOptions,
  PublishRecord,
  PubsubReadConsistency,
  PubsubReadOptions,
  TopicCreated,
  TopicCreateOptions,
  TopicDescription,
  TopicInfo,
  TopicPartitionInfo,
  TopicRetention,
} from "./_pubsub_types.ts";

/** TTL of the lease a consumer grants itself when given none, ms. */
export const CONSUMER_LEASE_TTL_MS_DEFAULT = 10_000;

/** The group options a consumer sends with its joins; null when it names none. */
function groupOptionsOf(options: ConsumerOptions): WireGroupOptions | null {
  const { start, ackDeadlineMs, maxDeliveries, maxAckPending } = options;
  const limits = PUBSUB_LIMITS;
  checkRange(
    ackDeadlineMs,
    "ackDeadlineMs",
    limits.ackDeadlineMsMin,
    limits.ackDeadlineMsMax,
  );
  checkRange(maxDeliveries, "maxDeliveries", 1, limits.maxDeliveriesMax);
  checkRange(maxAckPending, "maxAckPending", 1, limits.maxAckPendingMax);
  if (options.deadLetterTopic !== undefined) {
    checkPubsubName(options.deadLetterTopic, "dead-letter topic");
  }
  const wire: WireGroupOptions = {
    ...(start === undefined ? {} : { start }),
    ...(ackDeadlineMs === undefined ? {} : { ackDeadlineMs }),
    ...(maxDeliveries === undefined ? {} : { maxDeliveries }),
    ...(maxAckPending === undefined ? {} : { maxAckPending }),
    ...(options.deadLetterTopic === undefined
      ? {}
      : { deadLetterTopic: options.deadLetterTopic }),
  };
  return Object.keys(wire).length === 0 ? null : wire;
}

/**
 * Topics and publishing, consumers, and `groups`.
 */
export class AspenPubsub {
  /** Consumer groups: list, describe, reset, pause, resume. */
  readonly groups: AspenGroups;
  readonly #transport: HttpTransport;
  readonly #streams: StreamConnector;
  readonly #leases: AspenLeases;

  /** Used by `connect`. */
  constructor(
    transport: HttpTransport,
    leases: AspenLeases,
    streams: StreamConnector,
  ) {
    this.#transport = transport;
    this.#leases = leases;
    this.#streams = streams;
    this.groups = new AspenGroups(transport);
  }

  /**
   * Creates topic `name`. An existing topic with the same settings is
   * answered with `created: false`.
   *
   * @throws {TopicExistsError} When it exists with other settings.
   * @throws {LimitExceededError} When the cluster holds 10,000 topics.
   * @throws {TypeError} For a malformed name.
   * @throws {RangeError} For partitions or a window out of range.
   */
  async createTopic(
    name: string,
    options: TopicCreateOptions = {},
  ): Promise<TopicCreated> {
    checkPubsubName(name, "topic");
    checkRange(
      options.partitions,
      "partitions",
      1,
      PUBSUB_LIMITS.partitionsMax,
    );
    checkRange(
      options.dedupWindowMs,
      "dedupWindowMs",
      0,
      PUBSUB_LIMITS.dedupWindowMsMax,
    );
    const retention = options.retention;
    checkRange(
      retention?.maxMessages,
      "maxMessages",
      1,
      Number.MAX_SAFE_INTEGER,
    );
    checkRange(retention?.maxBytes, "maxBytes", 1, Number.MAX_SAFE_INTEGER);
    checkRange(retention?.maxAgeMs, "maxAgeMs", 1, Number.MAX_SAFE_INTEGER);
    const reply = await this.#transport.request("POST", ROUTES.topicCreate, {
      name,
      ...(options.partitions === undefined
        ? {}
        : { partitions: options.partitions }),
      ...(retention === undefined ? {} : { retention: { ...retention } }),
      ...(options.dedupWindowMs === undefined
        ? {}
        : { dedupWindowMs: options.dedupWindowMs }),
    }, "write") as TopicCreateResponse;
    return { topic: { ...reply.topic }, created: reply.created };
  }

  /** Every topic, by name. */
  async listTopics(options: PubsubReadOptions = {}): Promise<TopicInfo[]> {
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.topicList, options.consistency),
      {},
      "idempotent",
    ) as TopicListResponse;
    return reply.topics.map((topic) => ({ ...topic }));
  }

  /**
   * A topic's settings, partitions (first and next offsets, bytes), groups
   * and delayed messages not yet due.
   *
   * @throws {TopicNotFoundError} When no topic has this name.
   */
  async describeTopic(
    name: string,
    options: PubsubReadOptions = {},
  ): Promise<TopicDescription> {
    checkPubsubName(name, "topic");
    const reply = await this.#transport.request(
      "POST",
      readPath(ROUTES.topicDescribe, options.consistency),
      { name },
      "idempotent",
    ) as TopicDescribeResponse;
    return { ...reply };
  }

  /**
   * Deletes topic `name` with its records; with `force`, also its groups.
   *
   * @returns Whether it was deleted.
   * @throws {TopicNotFoundError} When no topic has this name.
   * @throws {TopicInUseError} When it has groups and `force` is not set.
   */
  async deleteTopic(
    name: string,
    options: { readonly force?: boolean } = {},
  ): Promise<boolean> {
    checkPubsubName(name, "topic");
    const reply = await this.#transport.request("POST", ROUTES.topicDelete, {
      name,
      ...(options.force === true ? { force: true } : {}),
    }, "write") as TopicDeleteResponse;
    return reply.deleted;
  }

  /**
   * Publishes one message (see {@linkcode AspenPubsub.publishBatch}).
   *
   * @returns Where it went: `{partition, offset, duplicate}`, or `{scheduled, deliverAtMs, duplicate}` for a delayed one.
   */
  async publish(
    topic: string,
    value: unknown,
    options: PublishOptions = {},
  ): Promise<PublishRecord> {
    const { producerId, ...message } = options;
    const [record] = await this.publishBatch(
      topic,
      [{ ...message, value }],
      { producerId },
    );
    return record!;
  }

  /**
   * Publishes up to 1,000 messages (≤ 1 MiB) in one entry: all or none.
   * With `producerId`, every message carries a `sequence`; a sequence seen
   * inside the topic's dedup window answers its first record with
   * `duplicate: true` and appends nothing, so a retry is safe.
   *
   * @returns One record per message, in order.
   * @throws {TopicNotFoundError} When the topic does not exist.
   * @throws {SequenceTooOldError} When a sequence is at or below the producer's highest and left the window.
   * @throws {LimitExceededError} When the batch is larger than the cluster takes.
   * @throws {TypeError} For a value, key or header of the wrong shape.
   * @throws {RangeError} For a batch, key, header or delay out of range.
   */
  async publishBatch(
    topic: string,
    messages: readonly PublishMessage[],
    options: PublishBatchOptions = {},
  ): Promise<PublishRecord[]> {
    checkPubsubName(topic, "topic");
    checkBatch(messages, options.producerId);
    const wire = messages.map((message) => publishMessageToWire(message));
    const reply = await this.#transport.request("POST", ROUTES.topicPublish, {
      topic,
      messages: wire,
      ...(options.producerId === undefined
        ? {}
        : { producerId: options.producerId }),
    }, "write") as PublishResponse;
    return reply.records.map((record) => ({ ...record }));
  }

  /**
   * Joins group `group` of `topic` and returns the member. The first join
   * creates the group with the options given (defaults otherwise); a later
   * join naming options that differ is refused. Without a lease, the
   * consumer grants one of `ttlMs` (default 10,000) and keeps it alive;
   * `close()` leaves the group and revokes it.
   *
   * @throws {TopicNotFoundError} When the topic does not exist.
   * @throws {GroupConfigMismatchError} When the options differ from the group's.
   * @throws {LeaseNotFoundError} When the given lease does not exist.
   * @throws {LimitExceededError} When the topic has 1,000 groups or the group 1,000 members.
   */
  async consumer(
    topic: string,
    group: string,
    options: ConsumerOptions = {},
  ): Promise<Consumer> {
    checkPubsubName(topic, "topic");
    checkPubsubName(group, "group");
    const memberId = options.memberId ?? randomMemberId();
    checkMemberId(memberId);
    const groupOptions = groupOptionsOf(options);
    const lease = await this.#lease(options);
    return await GroupConsumer.join({
      transport: this.#transport,
      streams: this.#streams,
      topic,
      group,
      memberId,
      lease,
      options: groupOptions,
    });
  }

  async #lease(options: ConsumerOptions): Promise<ConsumerLease> {
    const given = options.lease;
    if (typeof given === "string") {
      checkLeaseId(given);
      return { id: given, signal: null, own: null };
    }
    if (given !== undefined) {
      return { id: given.id, signal: given.signal, own: null };
    }
    const open = await this.#leases.open({
      ttlMs: options.ttlMs ?? CONSUMER_LEASE_TTL_MS_DEFAULT,
    });
    return { id: open.id, signal: open.signal, own: open };
  }
}
