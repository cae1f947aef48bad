/**
 * The port the node runtime uses to talk to its peers. Adapters: QUIC
 * (`quic_transport.ts`) for real nodes, in-memory (`memory_transport.ts`) for
 * tests. The simulator keeps its own deterministic network.
 *
 * @module
 */
import type { Message, NodeId } from "../raft/types.ts";
import type { PeerRequest, PeerResult } from "../protocol/envelope.ts";

/** What `send` did with a message. */
export type SendOutcome =
  /** Queued behind the peer's earlier messages. */
  | "queued"
  /** A heartbeat (or its response) replaced an older one still queued. */
  | "coalesced"
  /** Not queued: the queue was full, the peer unknown, or the transport closed. */
  | "dropped";

/** Receives every Raft message an authenticated peer sent. */
export type MessageHandler = (message: Message) => void;
/**
 * Told when messages to `peer` were lost (queue full, no connection); Raft
 * should then probe the peer instead of assuming delivery.
 */
export type UnreachableHandler = (peer: NodeId, reason: string) => void;
/** Answers a non-Raft request from an authenticated peer. */
export type RequestHandler = (
  request: PeerRequest,
  from: NodeId,
) => Promise<PeerResult>;

/** Options of one request. */
export interface RequestOptions {
  /** Milliseconds before the request fails with `RequestTimeoutError`. Default 5000. */
  readonly timeoutMs?: number;
  /**
   * Fails the request at once with `RequestAbortedError` when aborted, e.g.
   * when the node learns the peer it asked is no longer the leader.
   */
  readonly signal?: AbortSignal;
}

/** Sends Raft messages and peer requests; delivers what peers send. */
export interface PeerTransport {
  /** This node's id; the `from` of everything it sends. */
  readonly localId: NodeId;
  /**
   * Queues `message` for `to` and returns at once. Never blocks and never
   * throws for operating conditions: a full queue drops (heartbeats coalesce)
   * and reports the peer unreachable.
   */
  send(to: NodeId, message: Message): SendOutcome;
  /** Sets the handler for Raft messages. */
  onMessage(handler: MessageHandler): void;
  /** Sets the handler told about unreachable peers. */
  onUnreachable(handler: UnreachableHandler): void;
  /** Sets the handler answering non-Raft requests. */
  onRequest(handler: RequestHandler): void;
  /**
   * Sends a request to `to` and waits for its result.
   *
   * @returns The result's data when the peer answered `ok`.
   * @throws {RemoteError} When the peer answered with an error.
   * @throws {PeerUnreachableError} When no connection could be made.
   * @throws {RequestTimeoutError} When no answer came in time.
   * @throws {TransportClosedError} When the transport is or becomes closed.
   */
  request(
    to: NodeId,
    request: PeerRequest,
    options?: RequestOptions,
  ): Promise<Uint8Array>;
  /** Stops sending and receiving; idempotent. */
  close(): Promise<void>;
}
