/**
 * The queue part of Aspen's HTTP protocol (an extension of Deno KV's API):
 * listen (long-poll, leader only), ack, nack, info, peek and configure. Routes
 * and limits are in {@link ./http_api.ts}; enqueues travel in
 * `AtomicRequest.enqueues`. Message ids are 20 lowercase hex characters.
 *
 * @module
 */
import type { WireBytes } from "./http_api.ts";

/** `POST /v1/queue/listen`: waits for messages and leases them to the caller (leader only). */
export interface QueueListenRequest {
  /** The queue. Default: the default queue. */
  readonly queue?: string;
  /** Messages returned at most, 1 to 100. Default 1. */
  readonly countMax?: number;
  /** Ms each delivery is leased before it counts as failed. Default 30,000. */
  readonly leaseMs?: number;
  /** Ms to wait for a message before answering with none. Default 5,000. */
  readonly waitMs?: number;
}
/** A leased delivery: ack it, or nack it quoting `delivery`. */
export interface WireQueueMessage {
  /** The message id: 20 hex characters. */
  readonly id: string;
  readonly queue: string;
  /** The V8-serialized value. */
  readonly payload: WireBytes;
  /** 1 for the first delivery, 2 for the first retry… */
  readonly delivery: number;
  /** Unix ms at which the lease ends and the delivery counts as failed. */
  readonly leaseDeadlineMs: number;
}
/** Reply to `POST /v1/queue/listen`: empty when nothing came within `waitMs`. */
export interface QueueListenResponse {
  readonly messages: readonly WireQueueMessage[];
}

/** `POST /v1/queue/ack`: the deliveries succeeded; the messages are deleted. */
export interface QueueAckRequest {
  /** Message ids, at most 100. */
  readonly ids: readonly string[];
}
/** `POST /v1/queue/nack`: the deliveries failed; each is retried after its next backoff step or dead-lettered. */
export interface QueueNackRequest {
  /** At most 100; a delivery no longer leased under that number is ignored. */
  readonly messages: readonly {
    readonly id: string;
    readonly delivery: number;
  }[];
}
/** Reply to ack and nack: how many messages were acted on. */
export interface QueueCountResponse {
  readonly count: number;
}

/** `POST /v1/queue/info` */
export interface QueueInfoRequest {
  /** The queue. Default: the default queue. */
  readonly queue?: string;
}
/** Reply to `POST /v1/queue/info`. */
export interface QueueInfoResponse {
  readonly queue: string;
  /** Messages in the queue, leased ones included. */
  readonly length: number;
  /** Messages leased right now. */
  readonly leasedCount: number;
  /** Most messages leased at once; null for no limit. */
  readonly concurrencyMax: number | null;
}

/** `POST /v1/queue/peek`: waiting messages, soonest first, without leasing them. */
export interface QueuePeekRequest {
  /** The queue. Default: the default queue. */
  readonly queue?: string;
  /** 1 to 1000. Default 10. */
  readonly limit?: number;
}
/** A waiting message as peek shows it. */
export interface WirePeekedMessage {
  /** The message id: 20 hex characters. */
  readonly id: string;
  readonly queue: string;
  /** The V8-serialized value. */
  readonly payload: WireBytes;
  /** Unix ms from which it may be delivered. */
  readonly readyAtMs: number;
  /** Deliveries so far. */
  readonly delivery: number;
}
/** Reply to `POST /v1/queue/peek`. */
export interface QueuePeekResponse {
  readonly messages: readonly WirePeekedMessage[];
}

/** `POST /v1/queue/configure`: a queue's concurrency limit. */
export interface QueueConfigureRequest {
  /** The queue. Default: the default queue. */
  readonly queue?: string;
  /** Most messages leased at once (1 to 100,000); null for no limit. */
  readonly concurrencyMax: number | null;
}
