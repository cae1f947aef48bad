/**
 * The cluster's wire types, defined once for the node, its HTTP front end,
 * the client module and the CLI: where a member is reached
 * ({@linkcode NodeAddress}) and what `/v1/cluster/status` reports
 * ({@linkcode ClusterStatus}, {@linkcode ClusterMember}).
 *
 * @module
 */

/** Where a node can be reached, as peers and clients need it. */
export interface NodeAddress {
  /** Id of the node. */
  readonly nodeId: string;
  /** Its HTTP API URL. */
  readonly httpUrl: string;
  /** Host of its QUIC peer listener. */
  readonly quicHost: string;
  /** UDP port of its QUIC peer listener. */
  readonly quicPort: number;
  /** The node's public key (base64url). */
  readonly nodeKey: string;
  /** SHA-256 of the node's current TLS certificate (base64url). */
  readonly certificateHash: string;
  /** The node's human name, when configured (`name`, `--name`). */
  readonly name?: string;
}

/** `/health`: healthy only when a leader is known and storage is writable. */
export interface HealthStatus {
  readonly ok: boolean;
  readonly reason: string | null;
}

/** A member as the cluster reports it. */
export interface ClusterMember {
  /** Node id. */
  readonly id: string;
  /** Voter or learner. */
  readonly role: "voter" | "learner";
  /** Leader only: the member's match index. */
  readonly match: number | null;
  /** Leader only: how far it lags the commit index, in entries. */
  readonly lag: number | null;
  /**
   * Leader only: whether the leader heard from it within an election
   * timeout (the leader itself: true); null when a follower answers.
   */
  readonly reachable?: boolean | null;
  /** Leader only: milliseconds since the leader last heard from it (itself: 0). */
  readonly lastContactMs?: number | null;
  /** The member's human name, when it has one. */
  readonly name?: string | null;
  /** Its HTTP API URL, when known. */
  readonly httpUrl: string | null;
}

/** The status of the node that answered. */
export interface ClusterStatus {
  /** The cluster's id. */
  readonly clusterId: string;
  /** Id of the node. */
  readonly nodeId: string;
  /** The answering node's Raft role. */
  readonly role: "follower" | "preCandidate" | "candidate" | "leader";
  /** Current Raft term. */
  readonly term: number;
  /** Id of the leader, when known. */
  readonly leader: string | null;
  /** The leader's HTTP URL, when known. */
  readonly leaderHttpUrl: string | null;
  /** Highest log index known committed. */
  readonly commitIndex: number;
  /** Highest log index applied on the answering node. */
  readonly appliedIndex: number;
  /** Log index of the last snapshot. */
  readonly snapshotIndex: number;
  /** True while a joint membership change is in progress. */
  readonly joint: boolean;
  /** The members. */
  readonly members: readonly ClusterMember[];
}
