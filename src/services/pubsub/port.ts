/**
 * The port a node offers front ends for pub/sub (implemented by
 * `node/node_pubsub.ts`): proposals through Raft with the node's session
 * (a retried proposal applies once), waits on the applied state, and reads.
 * Requests arrive decoded from the wire (bytes are bytes) but otherwise as
 * the client sent them; every method validates them with the service's
 * validators and throws `PubsubError` (its protocol error code and
 * details) for a refusal, `KvUnavailableError` when nothing was proposed,
 * and `KvOutcomeUnknownError` when a proposal's outcome is unknown. Reads
 * answer in the protocol's shapes (they carry no bytes).
 *
 * @module
 */
import type {
  GroupDescribeResponse,
  GroupListResponse,
  GroupPauseResponse,
  GroupResetResponse,
  TopicCreateResponse,
  TopicDescribeResponse,
  TopicListResponse,
  WireGroupOptions,
  WireResetTarget,
  WireRetention,
} from "../../protocol/http_api_pubsub.ts";
import type {
  AckAction,
  Delivery,
  MessageEncoding,
  PublishOutcome,
} from "./commands.ts";

/** How a read is served: linearizable (ReadIndex) or from the local replica. */
export type PubsubReadConsistency = "strong" | "eventual";

/** A message to publish, its value decoded. */
export interface PortMessage {
  readonly value: Uint8Array;
  readonly encoding: MessageEncoding;
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly partition?: number;
  readonly sequence?: number;
  readonly delayMs?: number;
  readonly deliverAtMs?: number;
}

/** A member's place in a group, for fetch, ack and consume. */
export interface MemberRef {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly generation: number;
}

/** One ack as the port takes it. */
export interface PortAck {
  readonly partition: number;
  readonly offset: number;
  readonly action: AckAction;
  readonly delayMs?: number;
}

/** Pub/sub as a node serves it. */
export interface PubsubPort {
  createTopic(request: {
    readonly name: string;
    readonly partitions?: number;
    readonly retention?: WireRetention;
    readonly dedupWindowMs?: number;
  }): Promise<TopicCreateResponse>;
  listTopics(consistency: PubsubReadConsistency): Promise<TopicListResponse>;
  describeTopic(
    name: string,
    consistency: PubsubReadConsistency,
  ): Promise<TopicDescribeResponse>;
  deleteTopic(name: string, force: boolean): Promise<{ deleted: boolean }>;
  /** One entry: every message appended (or scheduled) or none. */
  publish(
    topic: string,
    messages: readonly PortMessage[],
    producerId?: string,
  ): Promise<{ records: readonly PublishOutcome[] }>;

  join(request: {
    readonly topic: string;
    readonly group: string;
    readonly memberId?: string;
    readonly lease: string;
    readonly options?: WireGroupOptions;
  }): Promise<{ memberId: string; generation: number; partitions: number[] }>;
  leave(
    topic: string,
    group: string,
    memberId: string,
  ): Promise<{ generation: number; left: boolean }>;
  /**
   * Records up to `batch` deliveries to the member; when there is nothing
   * to deliver, waits up to `maxWaitMs` for records (or redeliveries) to
   * become available and tries again. A stale member is refused
   * (`staleGeneration`) at once.
   */
  fetch(
    member: MemberRef,
    options: {
      readonly batch?: number;
      readonly maxWaitMs?: number;
      readonly maxBytes?: number;
    },
    signal?: AbortSignal,
  ): Promise<{ generation: number; messages: readonly Delivery[] }>;
  ack(
    member: MemberRef,
    acks: readonly PortAck[],
  ): Promise<
    { results: readonly { partition: number; offset: number; ok: boolean }[] }
  >;
  /**
   * Push: records deliveries within `maxAckPending` as they become
   * available and yields them; ends (after yielding a `fenced` item with
   * the current generation and assignment) once the member is stale.
   * Resolves once the stream is open (the stream bound checked and the
   * member's generation verified), so a refusal comes before any item.
   */
  consume(
    member: MemberRef,
    signal: AbortSignal,
  ): Promise<
    AsyncIterable<
      | { readonly type: "message"; readonly delivery: Delivery }
      | {
        readonly type: "fenced";
        readonly generation: number;
        readonly assignment: Readonly<Record<string, string>>;
      }
    >
  >;
  listGroups(
    topic: string | undefined,
    consistency: PubsubReadConsistency,
  ): Promise<GroupListResponse>;
  describeGroup(
    topic: string,
    group: string,
    consistency: PubsubReadConsistency,
  ): Promise<GroupDescribeResponse>;
  resetGroup(request: {
    readonly topic: string;
    readonly group: string;
    readonly to: WireResetTarget;
    readonly partition?: number;
    readonly force?: boolean;
  }): Promise<GroupResetResponse>;
  pauseGroup(
    topic: string,
    group: string,
    untilMs?: number,
  ): Promise<GroupPauseResponse>;
  resumeGroup(topic: string, group: string): Promise<GroupPauseResponse>;
}
