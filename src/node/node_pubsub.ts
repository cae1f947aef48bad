/**
 * Pub/sub as a node serves it (the {@linkcode PubsubPort} of
 * `services/pubsub/api.ts`): every change is a proposal of the `pubsub`
 * service (a follower's is forwarded to the leader), decided in apply;
 * waiting is done here, on the applied state.
 *
 * - **Proposals** carry this node's session, so a retry after an unknown
 *   outcome (a leader lost mid-write) applies at most once, and a retried
 *   fetch answers the same deliveries. What depends on time or chance is
 *   decided here (the service's `requests.ts`): `nowMs` from this node's clock, a
 *   new member's random id, `delayMs` → `deliverAtMs`, option defaults.
 * - **Fetch with `maxWaitMs`**: when a fetch delivered nothing, it waits on
 *   applied batches (and on the groups' next due time: a deadline passing
 *   makes a message deliverable without any entry) until
 *   `GroupReads.hasDeliverable`, then proposes again; at most
 *   {@linkcode FETCH_ROUNDS_MAX} proposals, never past the wait.
 * - **Consume** (push): a loop of such fetches, each at most
 *   {@linkcode CONSUME_BATCH} deliveries (the service keeps every partition
 *   within `maxAckPending`), yielded one by one; a `staleGeneration`
 *   refusal yields a `fenced` item and ends the stream. At most
 *   `consumeStreamsMax` streams per node.
 * - **Reads**: `strong` waits for a ReadIndex (linearizable), `eventual`
 *   reads the local replica.
 *
 * @module
 */
import { strongRead } from "./_strong_read.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import {
  type Delivery,
  encodePubsubCommand,
  GroupReads,
  type MemberRef,
  type PortAck,
  type PortMessage,
  type PublishOutcome,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type PubsubPort,
  type PubsubReadConsistency,
  type PubsubResult,
  validateInteger,
  validateLease,
  validateMemberId,
} from "../services/pubsub/api.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import type { StateStore } from "../state/state_store.ts";
import { toHex } from "../base/bytes.ts";
import {
  type GroupDescribeResponse,
  type GroupListResponse,
  type GroupPauseResponse,
  type GroupResetResponse,
  PUBSUB_LIMITS,
  type TopicCreateResponse,
  type TopicDescribeResponse,
  type TopicListResponse,
  type WireGroupOptions,
  type WireResetTarget,
  type WireRetention,
  type WireTopic,
} from "../protocol/http_api_pubsub.ts";
import { appliedThrough, proposeWithSession } from "./_session_proposal.ts";
import {
  ackOp,
  checked,
  checkedName,
  groupOptions,
  publishCommand,
  resetTarget,
  topicCreateCommand,
} from "../services/pubsub/api.ts";
import { DeliveryWaiter, MEMBER_CHECK_MS } from "./_pubsub_waits.ts";
import { type ConsumeItem, consumeStream } from "./_pubsub_consume.ts";

/** The pub/sub service's envelope id (its line in `services/table.ts`). */
export const PUBSUB_SERVICE_ID = 7;
/** Fetch proposals one fetch makes at most while it waits. */
export const FETCH_ROUNDS_MAX = 32;
/** Deliveries one fetch of a consume stream records at most. */
export const CONSUME_BATCH = 100;

/** The topic reads the port needs (the service's `TopicReads`). */
export interface TopicReadsPort {
  /** Every topic, by name. */
  list(): readonly WireTopic[];
  /** One topic, or null. */
  describe(name: string): TopicDescribeResponse | null;
}

/** What {@linkcode NodePubsub} needs of its node. */
export interface NodePubsubOptions {
  /** Proposes an entry (forwarded to the leader) and answers its apply result. */
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  /** Waits for a linearizable read point, applied on this node. */
  readonly readIndex: () => Promise<unknown>;
  /** This node's applied state. */
  readonly store: StateStore;
  /** Calls `listener` after each applied batch; returns an unsubscribe function. */
  readonly onApplied: (listener: () => void) => () => void;
  /** The topic reads over `store`. */
  readonly topics: TopicReadsPort;
  /** Clock in Unix ms. Default `Date.now`. */
  readonly nowMs?: () => number;
  /** The service's envelope id. Default {@linkcode PUBSUB_SERVICE_ID}. */
  readonly serviceId?: number;
  /** Consume streams at once at most. Default `PUBSUB_LIMITS.consumeStreamsMax`. */
  readonly consumeStreamsMax?: number;
}

type Answer<T extends PubsubAnswer["type"]> = Extract<
  PubsubAnswer,
  { type: T }
>;

/** The pub/sub port over a Raft node. */
export class NodePubsub implements PubsubPort {
  readonly #options: NodePubsubOptions;
  readonly #groups: GroupReads;
  readonly #waits: DeliveryWaiter;
  readonly #now: () => number;
  readonly #sessionId = `pubsub-${crypto.randomUUID()}`;
  #sessionSeq = 0;
  #consumers = 0;

  /** The port over the node parts in `options`. */
  constructor(options: NodePubsubOptions) {
    this.#options = options;
    this.#groups = new GroupReads(options.store);
    this.#now = options.nowMs ?? Date.now;
    this.#waits = new DeliveryWaiter({
      groups: this.#groups,
      onApplied: options.onApplied,
      now: this.#now,
    });
  }

  /** Consume streams open now. */
  get consumersOpen(): number {
    return this.#consumers;
  }

  /** The group reads over this node's state (the leader task and metrics use them). */
  get groups(): GroupReads {
    return this.#groups;
  }

  async createTopic(request: {
    readonly name: string;
    readonly partitions?: number;
    readonly retention?: WireRetention;
    readonly dedupWindowMs?: number;
  }): Promise<TopicCreateResponse> {
    const command = topicCreateCommand(request, this.#now());
    const answer = await this.#propose(command, "topicCreate");
    const described = this.#options.topics.describe(command.name);
    return {
      // Read back (an identical existing topic keeps its creation time);
      // gone already only if deleted meanwhile: the command's settings.
      topic: described === null
        ? {
          name: command.name,
          partitions: command.partitions,
          retention: wireRetention(command.retention),
          dedupWindowMs: command.dedupWindowMs,
          createdAtMs: command.nowMs,
        }
        : {
          name: described.name,
          partitions: described.partitions.length,
          retention: described.retention,
          dedupWindowMs: described.dedupWindowMs,
          createdAtMs: described.createdAtMs,
        },
      created: answer.created,
    };
  }

  async listTopics(
    consistency: PubsubReadConsistency,
  ): Promise<TopicListResponse> {
    await this.#read(consistency);
    return { topics: [...this.#options.topics.list()] };
  }

  async describeTopic(
    name: string,
    consistency: PubsubReadConsistency,
  ): Promise<TopicDescribeResponse> {
    checkedName("name", name);
    await this.#read(consistency);
    const topic = this.#options.topics.describe(name);
    if (topic === null) {
      throw new PubsubError("topicNotFound", `No topic '${name}'`);
    }
    return topic;
  }

  async deleteTopic(name: string, force: boolean): Promise<
    { deleted: boolean }
  > {
    const answer = await this.#propose(
      checked({ type: "topicDelete", name, force }),
      "topicDelete",
    );
    return { deleted: answer.deleted };
  }

  async publish(
    topic: string,
    messages: readonly PortMessage[],
    producerId?: string,
  ): Promise<{ records: readonly PublishOutcome[] }> {
    const command = publishCommand(topic, messages, producerId, this.#now());
    const answer = await this.#propose(command, "publish");
    return { records: answer.records };
  }

  async join(request: {
    readonly topic: string;
    readonly group: string;
    readonly memberId?: string;
    readonly lease: string;
    readonly options?: WireGroupOptions;
  }): Promise<{ memberId: string; generation: number; partitions: number[] }> {
    const { topic, group } = request;
    checkedName("topic", topic);
    checkedName("group", group);
    const memberId = request.memberId === undefined
      ? toHex(crypto.getRandomValues(new Uint8Array(8)))
      : validateMemberId(request.memberId);
    const answer = await this.#propose(
      checked({
        type: "join",
        topic,
        group,
        memberId,
        lease: validateLease(request.lease),
        options: groupOptions(topic, group, request.options),
        nowMs: this.#now(),
      }),
      "join",
    );
    return {
      memberId: answer.memberId,
      generation: answer.generation,
      partitions: [...answer.partitions],
    };
  }

  async leave(
    topic: string,
    group: string,
    memberId: string,
  ): Promise<{ generation: number; left: boolean }> {
    const answer = await this.#propose(
      checked({ type: "leave", topic, group, memberId, nowMs: this.#now() }),
      "leave",
    );
    return { generation: answer.generation, left: answer.left };
  }

  async fetch(
    member: MemberRef,
    options: {
      readonly batch?: number;
      readonly maxWaitMs?: number;
      readonly maxBytes?: number;
    },
    signal?: AbortSignal,
  ): Promise<{ generation: number; messages: readonly Delivery[] }> {
    const waitMs = options.maxWaitMs === undefined ? 0 : validateInteger(
      "maxWaitMs",
      options.maxWaitMs,
      0,
      PUBSUB_LIMITS.fetchWaitMsMax,
    );
    const fetchOnce = () =>
      this.#fetchOnce(
        member,
        options.batch ?? PUBSUB_LIMITS.fetchBatchDefault,
        options.maxBytes ?? null,
      );
    let answer = await fetchOnce();
    if (answer.messages.length > 0 || waitMs === 0) return plain(answer);
    const deadline = this.#now() + waitMs;
    for (let round = 1; round < FETCH_ROUNDS_MAX; round++) {
      // After an empty fetch, the next entry (or a while) first: a state
      // that looks deliverable but is not cannot spin proposals.
      if (round > 1) await this.#waits.nextApplied(MEMBER_CHECK_MS, signal);
      const ready = await this.#waits.untilDeliverable(
        member,
        deadline,
        signal,
      );
      if (!ready) return plain(answer);
      answer = await fetchOnce();
      if (answer.messages.length > 0) return plain(answer);
    }
    return plain(answer);
  }

  async ack(
    member: MemberRef,
    acks: readonly PortAck[],
  ): Promise<
    { results: readonly { partition: number; offset: number; ok: boolean }[] }
  > {
    if (!Array.isArray(acks)) {
      throw new PubsubError("invalid", "Invalid acks: expected a list");
    }
    if (acks.length > PUBSUB_SERVICE_LIMITS.acksMax) {
      throw new PubsubError(
        "invalid",
        `An ack call carries 1 to ${PUBSUB_SERVICE_LIMITS.acksMax} acks`,
      );
    }
    const answer = await this.#propose(
      checked({
        type: "ack",
        topic: member.topic,
        group: member.group,
        memberId: member.memberId,
        generation: member.generation,
        acks: acks.map(ackOp),
        nowMs: this.#now(),
      }),
      "ack",
    );
    return { results: answer.results };
  }

  async consume(
    member: MemberRef,
    signal: AbortSignal,
  ): Promise<AsyncIterable<ConsumeItem>> {
    const max = this.#options.consumeStreamsMax ??
      PUBSUB_LIMITS.consumeStreamsMax;
    if (this.#consumers >= max) {
      throw new KvUnavailableError(
        `Cannot consume: this node serves ${max} consume streams already; retry later`,
      );
    }
    this.#consumers++;
    let first: Answer<"fetch">;
    try {
      // The first fetch checks the member and its generation: a refusal
      // comes before the stream opens.
      first = await this.#fetchOnce(member, CONSUME_BATCH, null);
    } catch (error) {
      this.#consumers--;
      throw error;
    }
    let open = true;
    const release = () => {
      if (open) this.#consumers--;
      open = false;
    };
    const stream = consumeStream({
      member,
      first,
      signal,
      release,
      waits: this.#waits,
      fetchNext: () => this.#fetchOnce(member, CONSUME_BATCH, null),
    });
    // Ended before its first item, a generator never runs its finally:
    // return() releases the slot too.
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => stream.next(),
        return: async () => {
          const result = await stream.return(undefined);
          release();
          return result;
        },
      }),
    };
  }

  async listGroups(
    topic: string | undefined,
    consistency: PubsubReadConsistency,
  ): Promise<GroupListResponse> {
    if (topic !== undefined) checkedName("topic", topic);
    await this.#read(consistency);
    return { groups: this.#groups.list(topic) };
  }

  async describeGroup(
    topic: string,
    group: string,
    consistency: PubsubReadConsistency,
  ): Promise<GroupDescribeResponse> {
    checkedName("topic", topic);
    checkedName("group", group);
    await this.#read(consistency);
    const described = this.#groups.describe(topic, group);
    if (described === null) {
      throw new PubsubError(
        "groupNotFound",
        `No group '${group}' on topic '${topic}'`,
      );
    }
    return described;
  }

  async resetGroup(request: {
    readonly topic: string;
    readonly group: string;
    readonly to: WireResetTarget;
    readonly partition?: number;
    readonly force?: boolean;
  }): Promise<GroupResetResponse> {
    const answer = await this.#propose(
      checked({
        type: "reset",
        topic: request.topic,
        group: request.group,
        to: resetTarget(request.to),
        partition: request.partition ?? null,
        force: request.force ?? false,
        nowMs: this.#now(),
      }),
      "reset",
    );
    return { generation: answer.generation, partitions: answer.partitions };
  }

  async pauseGroup(
    topic: string,
    group: string,
    untilMs?: number,
  ): Promise<GroupPauseResponse> {
    const answer = await this.#propose(
      checked({ type: "pause", topic, group, untilMs: untilMs ?? null }),
      "pause",
    );
    return { paused: answer.paused, pausedUntilMs: answer.pausedUntilMs };
  }

  async resumeGroup(topic: string, group: string): Promise<GroupPauseResponse> {
    const answer = await this.#propose(
      checked({ type: "resume", topic, group }),
      "pause",
    );
    return { paused: answer.paused, pausedUntilMs: answer.pausedUntilMs };
  }

  async #fetchOnce(
    member: MemberRef,
    batch: number,
    maxBytes: number | null,
  ): Promise<Answer<"fetch">> {
    return await this.#propose(
      checked({
        type: "fetch",
        topic: member.topic,
        group: member.group,
        memberId: member.memberId,
        generation: member.generation,
        batch,
        maxBytes,
        nowMs: this.#now(),
      }),
      "fetch",
    );
  }

  async #read(consistency: PubsubReadConsistency): Promise<void> {
    if (consistency === "eventual") return;
    await strongRead(() => this.#options.readIndex());
  }

  /**
   * Proposes `command` with this node's session, retrying dropped
   * proposals and unknown outcomes for a while, and answers its answer.
   *
   * @throws {PubsubError} When apply refused the command (nothing changed).
   */
  async #propose<T extends PubsubAnswer["type"]>(
    command: PubsubCommand,
    answerType: T,
  ): Promise<Answer<T>> {
    const data = encodeEnvelope({
      serviceId: this.#options.serviceId ?? PUBSUB_SERVICE_ID,
      session: { clientId: this.#sessionId, seq: this.#sessionSeq++ },
      payload: encodePubsubCommand(command),
    });
    const result = await proposeWithSession<PubsubResult>({
      propose: this.#options.propose,
      data,
      what: command.type,
      caughtUp: (index) => appliedThrough(this.#options.store, index),
      refused: (reason, message, details) =>
        new PubsubError(reason as PubsubError["code"], message, details),
    });
    if (result.answer.type !== answerType) {
      throw new TypeError(
        `Unexpected pub/sub answer: expected '${answerType}', received '${result.answer.type}'`,
      );
    }
    return result.answer as Answer<T>;
  }
}

function plain(
  answer: Answer<"fetch">,
): { generation: number; messages: readonly Delivery[] } {
  return { generation: answer.generation, messages: answer.messages };
}

function wireRetention(
  retention: {
    maxMessages: number | null;
    maxBytes: number | null;
    maxAgeMs: number | null;
  },
): WireRetention {
  return {
    ...(retention.maxMessages === null
      ? {}
      : { maxMessages: retention.maxMessages }),
    ...(retention.maxBytes === null ? {} : { maxBytes: retention.maxBytes }),
    ...(retention.maxAgeMs === null ? {} : { maxAgeMs: retention.maxAgeMs }),
  };
}

/** Prometheus text of this node's pub/sub streams. */
export function pubsubMetrics(pubsub: NodePubsub): string {
  return [
    "# HELP aspen_pubsub_consume_streams Pub/sub consume (push) streams this node serves.",
    "# TYPE aspen_pubsub_consume_streams gauge",
    `aspen_pubsub_consume_streams ${pubsub.consumersOpen}`,
    "",
  ].join("\n");
}
