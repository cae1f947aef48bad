/**
 * The surface a running node offers its front ends (HTTP API, CLI): the KV
 * backend plus status, health, metrics and membership administration.
 *
 * @module
 */
import type { KvBackend } from "../services/kv/api.ts";
import type { LocksPort } from "../services/locks/api.ts";
import type { EventsPort } from "../services/events/api.ts";
import type { HooksPort } from "../services/events/api.ts";
import type { PubsubPort } from "../services/pubsub/api.ts";
import type {
  ClusterMember,
  ClusterStatus,
  HealthStatus,
  NodeAddress,
} from "../protocol/cluster.ts";

/** A member as the status page shows it (the wire type of `/v1/cluster/status`). */
export type MemberStatus = ClusterMember;

export type { ClusterStatus, HealthStatus, NodeAddress };

/** Thrown by admin calls refused by Raft's rules (not leader, change pending, lagging learner). */
export class ClusterAdminError extends Error {
  override name = "ClusterAdminError";
  /** A machine-readable reason: "notLeader" | "changePending" | "alreadyMember" | "notCaughtUp" | "unknownNode" | "invalid". */
  readonly code: string;
  /** The leader's HTTP URL, when known, for the caller to retry there. */
  readonly leaderHttpUrl: string | null;

  constructor(
    code: string,
    message: string,
    leaderHttpUrl: string | null = null,
  ) {
    super(message);
    this.code = code;
    this.leaderHttpUrl = leaderHttpUrl;
  }
}

/** A running node, as front ends use it. */
export interface NodeApi {
  readonly backend: KvBackend;
  status(): ClusterStatus;
  health(): HealthStatus;
  /** Prometheus text exposition. */
  metrics(): string;
  /** A client ticket (never a secret) naming the known members. */
  clientTicket(): string;
  /** Adds a node as a learner (leader only). */
  addLearner(address: NodeAddress): Promise<void>;
  /** Promotes a caught-up learner to voter through joint consensus (leader only). */
  promote(nodeId: string): Promise<void>;
  /** Removes a member (the leader too) through joint consensus (leader only). */
  remove(nodeId: string): Promise<void>;
  /** Hands leadership to `nodeId` (leader only). */
  transferLeader(nodeId: string): Promise<void>;
  /**
   * A consistent backup of the KV state (see `backup.ts`), taken after a
   * ReadIndex so it holds every write acknowledged before the call.
   * Optional: front ends answer 501 without it.
   */
  snapshot?(): Promise<ReadableStream<Uint8Array<ArrayBuffer>>>;
  /** Locks, semaphores and elections (`services/locks`). Optional: front ends answer `unsupported` without it. */
  readonly locks?: LocksPort;
  /** The events history and watch (`services/events`). Optional: front ends answer `unsupported` without it. */
  readonly events?: EventsPort;
  /** Durable hooks (`services/events`). Optional: front ends answer `unsupported` without it. */
  readonly hooks?: HooksPort;
  /** Topics and consumer groups (`services/pubsub`). Optional: front ends answer `unsupported` without it. */
  readonly pubsub?: PubsubPort;
}
