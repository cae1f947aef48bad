/**
 * Types of Aspen's Raft core: branded numbers, log entries, messages, the
 * `Ready` batch handed to the application, and the core's configuration.
 *
 * The core is pure: it never performs I/O, never reads a clock and never
 * draws randomness except through the injected {@linkcode RandomSource}.
 *
 * @module
 */

/** A Raft term. Branded so it cannot be mixed with an index by accident. */
export type Term = number & { readonly __brand: "Term" };
/** A position in the replicated log (1-based; 0 means "before the log"). */
export type LogIndex = number & { readonly __brand: "LogIndex" };
/** A node's identity inside one Raft group. */
export type NodeId = string & { readonly __brand: "NodeId" };

/** Brands a number as a {@linkcode Term}. */
export function term(value: number): Term {
  return value as Term;
}
/** Brands a number as a {@linkcode LogIndex}. */
export function logIndex(value: number): LogIndex {
  return value as LogIndex;
}
/** Brands a string as a {@linkcode NodeId}. */
export function nodeId(value: string): NodeId {
  return value as NodeId;
}

/** What an entry carries: application data, or a membership change. */
export type EntryType = "normal" | "confChange";

/** One replicated log entry. An empty `data` on a `normal` entry is the blank entry a new leader appends. */
export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** State that must be durable before any message of the same `Ready` is sent. */
export interface HardState {
  readonly term: Term;
  /** The candidate this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

/**
 * The membership of the group. In a joint configuration (`votersOutgoing`
 * non-empty) every decision needs a majority of `voters` and a majority of
 * `votersOutgoing`. Learners receive the log but never vote.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  /** The old voters while a joint change is in progress; empty otherwise. */
  readonly votersOutgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** A requested membership change, applied through joint consensus. */
export type ConfChange =
  | { readonly type: "addLearner"; readonly node: NodeId }
  | { readonly type: "promote"; readonly node: NodeId }
  | { readonly type: "addVoter"; readonly node: NodeId }
  | { readonly type: "remove"; readonly node: NodeId }
  /** Replace the whole voter set at once (e.g. swap the leader out). */
  | { readonly type: "replaceVoters"; readonly voters: readonly NodeId[] };

/** What a snapshot describes: the state as of (`index`, `term`), with its membership. */
export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
  readonly confState: ConfState;
}

/** An application snapshot: opaque bytes plus what they describe. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/** A read whose index a quorum confirmed; serve it once applied ≥ `index`. */
export interface ReadState {
  readonly index: LogIndex;
  /** The caller's request context, echoed unchanged. */
  readonly context: Uint8Array;
}

/** Role of a node. Changes only through the core's `become*()` methods. */
export type Role = "follower" | "preCandidate" | "candidate" | "leader";

/** Fields every message between peers carries. */
interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  /** Sender's term; for PreVote requests, the term the sender would campaign at. */
  readonly term: Term;
}

/** AppendEntries: entries following (`logTerm`, `index`), plus the leader's commit. */
export interface AppendMessage extends MessageBase {
  readonly type: "app";
  readonly logTerm: Term;
  readonly index: LogIndex;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}

/** Answer to AppendEntries. On reject, `rejectHint`/`logTerm` let the leader skip back fast. */
export interface AppendResponseMessage extends MessageBase {
  readonly type: "appResp";
  /** On success: the last index now matching the leader. On reject: the probed index. */
  readonly index: LogIndex;
  readonly reject: boolean;
  /** On reject: the largest index ≤ the probed one whose term ≤ `logTerm` on the follower. */
  readonly rejectHint: LogIndex;
  /** On reject: the follower's term at `rejectHint`. */
  readonly logTerm: Term;
}

/** RequestVote or its PreVote probe. */
export interface VoteMessage extends MessageBase {
  readonly type: "vote" | "preVote";
  readonly logTerm: Term;
  readonly index: LogIndex;
  /** Sent on a leader's request (TimeoutNow): receivers bypass their leader lease. */
  readonly transfer: boolean;
}

/** Answer to RequestVote or PreVote. */
export interface VoteResponseMessage extends MessageBase {
  readonly type: "voteResp" | "preVoteResp";
  readonly reject: boolean;
}

/** Leader liveness; carries a commit index the follower is known to have. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: "heartbeat";
  readonly commit: LogIndex;
  /**
   * The leader's monotonic clock when sent (whole units of the clock the
   * application passes in, rounded down); echoed back to time the lease.
   */
  readonly sentAt: number;
  /** ReadIndex round this heartbeat confirms leadership for (empty = none). */
  readonly context: Uint8Array;
}

/** Answer to a heartbeat, echoing its context. */
export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: "heartbeatResp";
  readonly context: Uint8Array;
  /** The `sentAt` of the heartbeat this answers. */
  readonly sentAt: number;
  /**
   * How long, in clock units of real time at least, the sender refuses votes
   * to other candidates after this heartbeat (0 without the CheckQuorum
   * guard). A leader counts the answer toward its lease only when this
   * covers the lease it computed: nodes configured differently (tick length,
   * election timeout, drift bound, read mode) never extend a lease.
   */
  readonly voteGuardMs: number;
}

/** One chunk of a snapshot sent to a follower whose next entry is compacted away. */
export interface SnapshotMessage extends MessageBase {
  readonly type: "snap";
  readonly meta: SnapshotMeta;
  /** Byte offset of `data` in the whole snapshot. */
  readonly offset: number;
  readonly data: Uint8Array;
  /** True on the last chunk. */
  readonly done: boolean;
}

/** Acknowledges snapshot chunks: the offset expected next, or a reject to restart. */
export interface SnapshotResponseMessage extends MessageBase {
  readonly type: "snapResp";
  readonly index: LogIndex;
  readonly offset: number;
  readonly reject: boolean;
  readonly done: boolean;
}

/** Leader transfer: the target campaigns at once, bypassing PreVote and leases. */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: "timeoutNow";
}

/** A follower asks the leader to confirm a read index for `context`. */
export interface ReadIndexMessage extends MessageBase {
  readonly type: "readIndex";
  readonly context: Uint8Array;
}

/** The leader's confirmed read index for `context`. */
export interface ReadIndexResponseMessage extends MessageBase {
  readonly type: "readIndexResp";
  readonly index: LogIndex;
  readonly context: Uint8Array;
}

/** Every message peers exchange. */
export type Message =
  | AppendMessage
  | AppendResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | SnapshotMessage
  | SnapshotResponseMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

/** The kinds of {@linkcode Message}. */
export type MessageType = Message["type"];

/** Volatile state worth telling the application about when it changes. */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * Everything the application must do after the core changed, in this order:
 * persist `entries` (truncating any stored suffix at or after the first one's
 * index) and `hardState` durably, send `messages`, apply `committedEntries`,
 * then call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  /** A snapshot received from the leader: install it (state and log) before `entries`. */
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  /** Reads confirmed by a quorum; serve each once applied ≥ its index. */
  readonly readStates: readonly ReadState[];
}

/** A source of randomness the core draws from; the simulator seeds it. */
export interface RandomSource {
  /** Returns an integer in [0, bound). */
  nextInt(bound: number): number;
}

/**
 * Switches that plant known bugs, for proving the simulator finds them.
 * Only the simulator sets these; a node's configuration cannot reach them.
 */
export interface TestingKnobs {
  /** Commit by counting replicas of an entry from an earlier term (Raft §5.4.2 violated). */
  readonly commitPreviousTerm?: boolean;
  /** Grant votes without checking that the candidate's log is up to date. */
  readonly voteIgnoresLog?: boolean;
  /** Forget the persisted vote when restarting. */
  readonly forgetVoteOnRestart?: boolean;
  /** Hand entries to the application before they are committed. */
  readonly applyUncommitted?: boolean;
  /** Serve ReadIndex without confirming leadership with a quorum. */
  readonly readWithoutQuorum?: boolean;
  /** Serve ReadIndex before an entry of the current term has committed. */
  readonly readBeforeTermCommit?: boolean;
  /** Serve lease reads while followers still grant votes to challengers. */
  readonly leaseWithoutVoteGuard?: boolean;
  /** Time the lease in ticks (which a stalled process misses) instead of the clock. */
  readonly leaseTickCount?: boolean;
  /** Size the lease as the whole election timeout, without the drift bound and delay margin. */
  readonly leaseBeyondDrift?: boolean;
  /** Accept Raft traffic from nodes the membership removed. */
  readonly nonMemberAppend?: boolean;
  /** Apply membership changes that alter voters in one step, without joint consensus. */
  readonly singleStepDoubleChange?: boolean;
  /** Install a snapshot without taking its membership. */
  readonly snapshotSkipsMembership?: boolean;
  /** Vote and campaign at once after losing a log tail the node may have acknowledged (ignore `RaftStorageState.recover`). */
  readonly truncateAcknowledgedTail?: boolean;
}

/** What a store lost: see {@linkcode RaftStorageState.recover}. */
export interface RecoveryBound {
  readonly index: LogIndex;
  readonly term: Term;
}

/** What a restarting node had durably stored. */
export interface RaftStorageState {
  readonly hardState: HardState;
  /** The last snapshot installed or taken, if any; entries follow its index. */
  readonly snapshot?: Snapshot | null;
  /** Durable entries, contiguous, in index order, after the snapshot's index. */
  readonly entries: readonly Entry[];
  /** The last index the application has applied (entries up to it are never handed out again). */
  readonly applied: LogIndex;
  /**
   * Set when the store dropped a corrupt tail this node may have acknowledged
   * (absent or null when nothing was lost): the lost tail's last index and
   * the node's term when it was lost (no lost entry has a later term). Until
   * its commit index reaches `index`, the node votes only for a candidate
   * whose log is at least as up to date as (`index`, `term`), so one that
   * holds every entry it may have counted toward a quorum, and campaigns only
   * when its own log is: protocol-aware recovery (Alagappan et al., FAST '18).
   */
  readonly recover?: RecoveryBound | null;
}

/** Configuration of one Raft core. Validated by `validateRaftConfig`. */
export interface RaftConfig {
  /** This node's id; must be one of `voters` or `learners` when the log is empty. */
  readonly id: NodeId;
  /** The initial membership, used when storage holds no configuration (empty for a node that joins). */
  readonly voters: readonly NodeId[];
  /** Initial learners, likewise. Default none. */
  readonly learners?: readonly NodeId[];
  /** Ticks without hearing from a leader before campaigning (randomized in [n, 2n)). Default 10. */
  readonly electionTicks?: number;
  /** Ticks between heartbeats from a leader. Must be less than `electionTicks`. Default 1. */
  readonly heartbeatTicks?: number;
  /** Run a PreVote round before incrementing the term. Default true. */
  readonly preVote?: boolean;
  /** Leaders step down without a quorum of contact; nodes ignore votes while a leader is live. Default true. */
  readonly checkQuorum?: boolean;
  /** AppendEntries in flight per follower in replicate state. Default 256. */
  readonly maxInflightMessages?: number;
  /** Bytes of entries in flight per follower (0 = unbounded). Default 32 MiB. */
  readonly maxInflightBytes?: number;
  /** Bytes of entries in one AppendEntries (at least one entry is always sent). Default 1 MiB. */
  readonly maxMessageBytes?: number;
  /** Bytes of proposed but uncommitted entry data a leader accepts. Default 64 MiB. */
  readonly maxUncommittedBytes?: number;
  /** Bytes of committed entries handed out in one Ready. Default 16 MiB. */
  readonly maxCommittedBytesPerReady?: number;
  /** How reads are confirmed: a heartbeat round (safe) or the leader lease (needs checkQuorum). Default "safe". */
  readonly readOnly?: "safe" | "lease";
  /**
   * Length of one tick in the units of the monotonic clock the application
   * passes to `tick`, `step` and `readIndex` (milliseconds in Aspen).
   * Lease reads are sized from it. Default 100.
   */
  readonly tickMs?: number;
  /**
   * Largest rate error of any node's clock and tick timer, as a fraction
   * (0.1: each runs between 10% slow and 10% fast). Default 0.1.
   */
  readonly clockDrift?: number;
  /**
   * Safety margin subtracted from the lease, in clock units: the largest
   * one-way delay and timer lateness the lease allows for. Default 10.
   */
  readonly maxDelayMs?: number;
  /** Bytes of snapshot data per `snap` message. Default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /**
   * Snapshot data larger than this is dropped from memory after two
   * election timeouts without a transfer (the metadata stays); a transfer
   * that needs it then sets `snapshotWanted`, and the application takes a
   * new snapshot. Default 1 MiB.
   */
  readonly snapshotKeepBytes?: number;
  /** Seeded randomness for election timeouts. */
  readonly random: RandomSource;
  /** Planted bugs; only the simulator sets them. */
  readonly testingKnobs?: TestingKnobs;
}
