/**
 * A member of a consumer group (`client.pubsub.consumer`): its lease (given,
 * or granted and kept alive here), its join and rejoins, pull (`fetch`,
 * long polls of at most half the request deadline) and push (the SSE
 * stream of `GET /v1/groups/consume`), and its batched acks.
 *
 * A `staleGeneration` refusal means the group rebalanced: the consumer
 * rejoins with the same member id and lease (answered with the current
 * generation and its partitions, nothing bumped) and goes on. Acks carry
 * the generation their message was delivered in, so an ack of a partition
 * that moved meanwhile fails with `StaleGenerationError`. Private to
 * `src/client/`.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  type GroupFetchResponse,
  type GroupJoinResponse,
  PUBSUB_LIMITS,
  type WireDelivery,
  type WireGroupOptions,
} from "../protocol/http_api_pubsub.ts";
import type { HttpTransport } from "./_transport.ts";
import type { StreamConnector } from "./_sse.ts";
import { AckBatcher } from "./_pubsub_acks.ts";
import { deliveryFromWire } from "./_pubsub_wire.ts";
import { pushStream } from "./_pubsub_push.ts";
import {
  GroupNotFoundError,
  StaleGenerationError,
  TimeoutError,
  TopicNotFoundError,
  UnavailableError,
} from "./errors.ts";
import { sleepFor } from "./_timers.ts";
import type {
  AckAction,
  Consumer,
  ConsumerAck,
  ConsumerFetchOptions,
  ConsumerMessage,
} from "./_pubsub_types.ts";
import type { OpenLease } from "./types.ts";

/** Pause after an empty fetch answered well before its wait, ms. */
const EMPTY_POLL_PAUSE_MS = 50;
/** Retries of one fetch after a node failed or its outcome was unknown. */
const TRANSIENT_RETRIES_MAX = 5;
/** Pause before such a retry, ms. */
const TRANSIENT_PAUSE_MS = 200;

/** A failure after which fetching again is safe: nothing happened, or a fetch's outcome is unknown. */
function isTransient(error: unknown): boolean {
  return error instanceof UnavailableError || error instanceof TimeoutError;
}

/** Rejoins one fetch makes after `staleGeneration` before it gives up. */
const REJOINS_PER_CALL_MAX = 3;

/** How the consumer holds its lease. */
export interface ConsumerLease {
  readonly id: string;
  /** Aborted when the lease is (or may be) lost; null for a bare id. */
  readonly signal: AbortSignal | null;
  /** The consumer's own open lease (closed, so revoked, by `close()`). */
  readonly own: OpenLease | null;
}

/** What a consumer is built from. */
export interface ConsumerParts {
  readonly transport: HttpTransport;
  readonly streams: StreamConnector;
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly lease: ConsumerLease;
  /** Sent with every join; null joins any group as it is. */
  readonly options: WireGroupOptions | null;
}

/** A group member. Built by {@linkcode GroupConsumer.join}. */
export class GroupConsumer implements Consumer {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly #parts: ConsumerParts;
  readonly #acks: AckBatcher;
  readonly #closing = new AbortController();
  /** Aborted by `close()`, the client's close, or the lease's loss. */
  readonly #stop: AbortSignal;
  #generation = 0;
  #partitions: readonly number[] = [];
  #rejoinNeeded = false;
  #rejoining: Promise<void> | null = null;
  #closed = false;

  private constructor(parts: ConsumerParts) {
    this.#parts = parts;
    this.topic = parts.topic;
    this.group = parts.group;
    this.memberId = parts.memberId;
    const lease = parts.lease.signal;
    this.#stop = AbortSignal.any(
      lease === null
        ? [this.#closing.signal, parts.transport.closed]
        : [this.#closing.signal, parts.transport.closed, lease],
    );
    this.#acks = new AckBatcher(parts.transport, {
      topic: parts.topic,
      group: parts.group,
      memberId: parts.memberId,
      fenced: () => {
        this.#rejoinNeeded = true;
      },
    });
  }

  /**
   * Joins the group and returns the member; when the join fails, the
   * consumer's own lease is revoked.
   */
  static async join(parts: ConsumerParts): Promise<GroupConsumer> {
    const consumer = new GroupConsumer(parts);
    try {
      await consumer.#join();
    } catch (error) {
      await parts.lease.own?.close().catch(() => {});
      throw error;
    }
    return consumer;
  }

  get leaseId(): string {
    return this.#parts.lease.id;
  }

  get generation(): number {
    return this.#generation;
  }

  get partitions(): readonly number[] {
    return this.#partitions;
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new TypeError(
        `Cannot use consumer '${this.memberId}' of group '${this.group}': it is closed`,
      );
    }
    const lease = this.#parts.lease.signal;
    if (lease?.aborted) throw lease.reason;
  }

  async #join(): Promise<void> {
    const { transport, topic, group, memberId, lease, options } = this.#parts;
    // The member id and lease are fixed: a retried join answers the same.
    const reply = await transport.request("POST", ROUTES.groupJoin, {
      topic,
      group,
      memberId,
      lease: lease.id,
      ...(options === null ? {} : { options }),
    }, "idempotent") as GroupJoinResponse;
    this.#generation = reply.generation;
    this.#partitions = [...reply.partitions];
    this.#rejoinNeeded = false;
  }

  /** Rejoins once for every caller that saw the group move. */
  rejoin(): Promise<void> {
    if (this.#rejoining === null) {
      this.#rejoining = this.#join().finally(() => {
        this.#rejoining = null;
      });
    }
    return this.#rejoining;
  }

  async fetch(
    batch: number = PUBSUB_LIMITS.fetchBatchDefault,
    maxWaitMs = 0,
    options: ConsumerFetchOptions = {},
  ): Promise<ConsumerMessage[]> {
    checkFetch(batch, maxWaitMs, options.maxBytes);
    this.#checkOpen();
    const until = performance.now() + maxWaitMs;
    // Each poll is answered well within the request deadline.
    const pollMsMax = Math.max(
      0,
      Math.floor(this.#parts.transport.timeoutMs / 2),
    );
    let rejoins = 0;
    let retries = 0;
    while (true) {
      this.#checkOpen();
      if (options.signal?.aborted) return [];
      if (this.#rejoinNeeded) await this.rejoin();
      const generation = this.#generation;
      const waitMs = Math.max(
        0,
        Math.min(Math.ceil(until - performance.now()), pollMsMax),
      );
      const sentAt = performance.now();
      let reply: GroupFetchResponse;
      try {
        reply = await this.#parts.transport.request("POST", ROUTES.groupFetch, {
          topic: this.topic,
          group: this.group,
          memberId: this.memberId,
          generation,
          batch,
          maxWaitMs: waitMs,
          ...(options.maxBytes === undefined
            ? {}
            : { maxBytes: options.maxBytes }),
        }, "write") as GroupFetchResponse;
      } catch (error) {
        if (isTransient(error) && ++retries <= TRANSIENT_RETRIES_MAX) {
          // A fetch whose outcome is unknown may have recorded deliveries:
          // they come back once their ack deadline passes.
          await sleepFor(TRANSIENT_PAUSE_MS, options.signal ?? this.#stop);
          continue;
        }
        if (!(error instanceof StaleGenerationError)) throw error;
        if (++rejoins > REJOINS_PER_CALL_MAX) throw error;
        this.#rejoinNeeded = true;
        continue;
      }
      // The group moved on: learn this member's partitions before the next fetch.
      if (reply.generation > generation) this.#rejoinNeeded = true;
      if (reply.messages.length > 0 || performance.now() >= until) {
        return reply.messages.map((wire) => this.message(wire, generation));
      }
      // An empty answer long before its wait (a node that does not wait,
      // or a rebalance): pause a little rather than spin.
      const early = waitMs - (performance.now() - sentAt);
      if (early > EMPTY_POLL_PAUSE_MS) {
        await sleepFor(EMPTY_POLL_PAUSE_MS, options.signal ?? this.#stop);
      }
    }
  }

  /** A delivery as the caller gets it, acking through this consumer. */
  message(wire: WireDelivery, generation: number): ConsumerMessage {
    const decoded = deliveryFromWire(wire);
    const act = (action: AckAction, delayMs?: number) =>
      this.#acks.add(
        generation,
        decoded.partition,
        decoded.offset,
        action,
        delayMs,
      );
    return {
      topic: this.topic,
      group: this.group,
      ...decoded,
      generation,
      memberId: this.memberId,
      ack: () => act("ack"),
      nack: (options = {}) => act("nack", options.delayMs),
      inProgress: () => act("inProgress"),
      terminate: () => act("terminate"),
    };
  }

  ackMany(acks: readonly ConsumerAck[]): Promise<boolean[]> {
    return Promise.all(acks.map(({ message, action, delayMs }) => {
      if (message.topic !== this.topic || message.group !== this.group) {
        return Promise.reject(
          new TypeError(
            `Cannot ack a message of '${message.topic}'/'${message.group}' with a consumer of '${this.topic}'/'${this.group}'`,
          ),
        );
      }
      return this.#acks.add(
        message.generation,
        message.partition,
        message.offset,
        action ?? "ack",
        delayMs,
      );
    }));
  }

  [Symbol.asyncIterator](): AsyncIterator<ConsumerMessage> {
    this.#checkOpen();
    return pushStream({
      connector: this.#parts.streams,
      topic: this.topic,
      group: this.group,
      memberId: this.memberId,
      stop: this.#stop,
      lease: this.#parts.lease.signal,
      generation: () => this.#generation,
      rejoin: () => this.rejoin(),
      message: (wire, generation) => this.message(wire, generation),
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(
      new DOMException("The consumer was closed", "AbortError"),
    );
    const { transport, lease } = this.#parts;
    try {
      await this.#acks.drain();
      if (!transport.closed.aborted && lease.signal?.aborted !== true) {
        await transport.request("POST", ROUTES.groupLeave, {
          topic: this.topic,
          group: this.group,
          memberId: this.memberId,
        }, "write").catch((error) => {
          // A group or topic deleted meanwhile: there is nothing to leave.
          const gone = error instanceof GroupNotFoundError ||
            error instanceof TopicNotFoundError;
          if (!gone) throw error;
        });
      }
    } finally {
      await lease.own?.close();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Checks a fetch's batch, wait and byte bound.
 *
 * @throws {RangeError} When one is out of range.
 */
function checkFetch(
  batch: number,
  maxWaitMs: number,
  maxBytes: number | undefined,
): void {
  const { fetchBatchMax, fetchWaitMsMax } = PUBSUB_LIMITS;
  if (!Number.isSafeInteger(batch) || batch < 1 || batch > fetchBatchMax) {
    throw new RangeError(
      `Cannot fetch as 'batch' must be 1 to ${fetchBatchMax}: current value is ${batch}`,
    );
  }
  if (
    !Number.isSafeInteger(maxWaitMs) || maxWaitMs < 0 ||
    maxWaitMs > fetchWaitMsMax
  ) {
    throw new RangeError(
      `Cannot fetch as 'maxWaitMs' must be 0 to ${fetchWaitMsMax}: current value is ${maxWaitMs}`,
    );
  }
  if (
    maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes < 1)
  ) {
    throw new RangeError(
      `Cannot fetch as 'maxBytes' must be a positive whole number: current value is ${maxBytes}`,
    );
  }
}
