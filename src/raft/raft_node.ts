/**
 * The Raft core: a deterministic state machine in the spirit of etcd's
 * RawNode. Inputs are `tick()`, `step(message)`, `campaign()`, `propose()`,
 * `proposeConfChange()`, `transferLeader()`, `readIndex()` and
 * `takeSnapshot()`; outputs come out of `ready()` and are acknowledged with
 * `advance()`. No I/O, no clock, no randomness but the injected source.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import { type ResolvedRaftConfig, resolveRaftConfig } from "./config.ts";
import {
  ConfChangeError,
  decodeConfState,
  encodeConfState,
  enterChange,
  isJoint,
  leaveJoint,
  type Membership,
  membershipOf,
} from "./confchange.ts";
import { IllegalTransitionError, ProposalDroppedError } from "./errors.ts";
import { entryBytes, RaftLog } from "./log.ts";
import { jointCommitted, jointVoteResult } from "./quorum.ts";
import { READ_REQUESTS_MAX, ReadOnlyQueue } from "./read_only.ts";
import { Inflights, Progress } from "./tracker.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  RaftStorageState,
  ReadState,
  Ready,
  RecoveryBound,
  Role,
  Snapshot,
  SnapshotMessage,
  SnapshotResponseMessage,
  SoftState,
  Term,
  VoteMessage,
} from "./types.ts";

/** A snapshot of a core's state, for status pages and invariant checks. */
export interface RaftStatus {
  readonly id: NodeId;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly lastIndex: LogIndex;
  readonly stableIndex: LogIndex;
  readonly snapshotIndex: LogIndex;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId | null;
  /** Per-peer progress; only on a leader. */
  readonly progress:
    | ReadonlyMap<NodeId, { match: LogIndex; next: LogIndex; state: string }>
    | null;
}

interface InFlightReady {
  readonly lastEntry: { index: LogIndex; term: Term } | null;
  readonly committedLast: LogIndex | null;
}

interface IncomingSnapshot {
  readonly message: SnapshotMessage;
  readonly chunks: Uint8Array[];
  size: number;
}

const EMPTY_STORAGE: RaftStorageState = {
  hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
  entries: [],
  applied: 0 as LogIndex,
};

/** One member of a Raft group. */
export class RaftNode {
  readonly #config: ResolvedRaftConfig;
  readonly id: NodeId;
  readonly #log: RaftLog;
  #term: Term;
  #vote: NodeId | null;
  #role: Role = "follower";
  #leader: NodeId | null = null;
  /** Membership as of the log's snapshot (or the initial configuration). */
  #baseConf: ConfState;
  /** Configuration entries in the log after the snapshot, in index order. */
  #confEntries: { index: LogIndex; conf: ConfState }[] = [];
  #conf: ConfState;
  #members: Membership;
  /** Every node this process saw in a configuration: one of them absent from both the latest and the committed configuration was removed. */
  readonly #knownIds = new Set<NodeId>();
  #progress = new Map<NodeId, Progress>();
  #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  /** Ticks since this core was created (the `leaseTickCount` planted bug's lease clock). */
  #tickCount = 0;
  /** The newest monotonic time the application passed in (0 before any). */
  #now = 0;
  /** The time passed with the input being handled now, or null: a lease needs it. */
  #inputNow: number | null = null;
  /** After a restart, refuse votes for one election timeout. */
  #restartGuard: boolean;
  /** What a lost corrupt tail may have held (see `RaftStorageState.recover`), or null. */
  #recover: RecoveryBound | null;
  #uncommittedBytes = 0;
  #leadTransferee: NodeId | null = null;
  /** Once TimeoutNow went out, a new leader may exist: no more lease reads this term. */
  #leaseRevoked = false;
  #messages: Message[] = [];
  #readStates: ReadState[] = [];
  readonly #readOnly = new ReadOnlyQueue();
  /** Reads that arrived before this leader committed an entry of its term. */
  #pendingReads: { from: NodeId; context: Uint8Array }[] = [];
  #snapshot: Snapshot | null;
  /** The snapshot's data was dropped from memory (its metadata stays). */
  #snapshotDropped = false;
  /** A transfer needed dropped data: the application should take a snapshot. */
  #snapshotWanted = false;
  /** Ticks since the snapshot's data was last taken, installed or sent. */
  #snapshotIdleTicks = 0;
  #snapshotToInstall: Snapshot | null = null;
  #incoming: IncomingSnapshot | null = null;
  #previousHardState: HardState;
  #previousSoftState: SoftState;
  #inFlight: InFlightReady | null = null;
  /** The Ready in flight carries a snapshot (nothing applies beside it). */
  #snapshotInFlight = false;

  /**
   * @param config Identity, membership and tuning; validated first.
   * @param stored What the node had durably stored, for a restart. The
   *   application restores its state from `stored.snapshot` before this.
   */
  constructor(config: RaftConfig, stored: RaftStorageState = EMPTY_STORAGE) {
    this.#config = resolveRaftConfig(config);
    this.id = this.#config.id;
    const snapshot = stored.snapshot ?? null;
    const offset = snapshot?.meta.index ?? (0 as LogIndex);
    const hardState = stored.hardState;
    this.#log = new RaftLog(
      stored.entries,
      Math.max(hardState.commit, offset) as LogIndex,
      Math.max(stored.applied, offset) as LogIndex,
      offset,
      snapshot?.meta.term ?? (0 as Term),
    );
    this.#snapshot = snapshot;
    this.#baseConf = snapshot?.meta.confState ?? {
      voters: this.#config.voters,
      votersOutgoing: [],
      learners: this.#config.learners,
    };
    this.#conf = this.#baseConf;
    this.#members = membershipOf(this.#conf);
    for (const id of [...this.#config.voters, ...this.#config.learners]) {
      this.#knownIds.add(id);
    }
    this.#refreshConf((offset + 1) as LogIndex);
    this.#term = hardState.term;
    this.#vote = this.#config.testingKnobs.forgetVoteOnRestart
      ? null
      : hardState.vote;
    // A restarted node may have acknowledged a leader's lease just before it
    // stopped: it refuses votes for one election timeout, as if it still heard
    // from that leader. A node that never held a term has nothing to guard.
    // Every node arms it, whatever its own read mode: another node's lease
    // may count on it.
    this.#restartGuard = hardState.term > 0;
    this.#recover = stored.recover ?? null;
    this.#previousHardState = hardState;
    this.#previousSoftState = { leader: null, role: "follower" };
    this.#becomeFollower(this.#term, null);
  }

  // ---------------------------------------------------------------- inputs

  /**
   * Advances logical time by one tick.
   *
   * @param now The monotonic clock at this tick (see `RaftConfig.tickMs`);
   *   lease reads need it, and time measured by ticks alone stops while the
   *   process stalls.
   */
  tick(now?: number): void {
    this.#withClock(now, () => {
      this.#tickCount++;
      this.#tickSnapshotData();
      if (this.#role === "leader") this.#tickLeader();
      else this.#tickElection();
    });
  }

  /** Runs one input with the clock reading it came with. */
  #withClock(now: number | undefined, input: () => void): void {
    if (now !== undefined && Number.isFinite(now)) {
      this.#now = Math.max(this.#now, now);
      this.#inputNow = this.#now;
    }
    try {
      input();
    } finally {
      this.#inputNow = null;
    }
  }

  /** Starts an election now (PreVote first when enabled). */
  campaign(): void {
    if (this.#role === "leader" || !this.#promotable()) return;
    this.#hup();
  }

  /**
   * Appends `data` to the log as a new entry if this node leads.
   *
   * @returns The index the entry got; it commits at that index or never.
   * @throws {ProposalDroppedError} Without a leader, on a follower, during a
   *   leader transfer, or over the uncommitted bound.
   */
  propose(data: Uint8Array): LogIndex {
    this.#checkCanPropose();
    const bytes = data.byteLength;
    if (
      this.#uncommittedBytes > 0 &&
      this.#uncommittedBytes + bytes > this.#config.maxUncommittedBytes
    ) {
      throw new ProposalDroppedError(
        "uncommittedBytesExceeded",
        `Cannot propose as uncommitted entries would exceed 'maxUncommittedBytes': ${
          this.#uncommittedBytes + bytes
        } > ${this.#config.maxUncommittedBytes}`,
        this.id,
      );
    }
    this.#uncommittedBytes += bytes;
    const index = this.#appendEntry(data, "normal");
    this.#broadcastAppend();
    return index;
  }

  /**
   * Proposes a membership change. It takes effect when appended; a change of
   * voters goes through a joint configuration that the leader leaves on its
   * own once the joint entry commits.
   *
   * @returns The index of the configuration entry.
   * @throws {ProposalDroppedError} When this node cannot propose.
   * @throws {ConfChangeError} While another change is pending, or when the change is invalid.
   */
  proposeConfChange(change: ConfChange): LogIndex {
    this.#checkCanPropose();
    if (this.#confPending()) {
      throw new ConfChangeError(
        "Cannot change membership as another change is still pending",
      );
    }
    const next = enterChange(
      this.#conf,
      change,
      this.#config.testingKnobs.singleStepDoubleChange === true,
    );
    const index = this.#appendEntry(encodeConfState(next), "confChange");
    this.#broadcastAppend();
    return index;
  }

  /**
   * Hands leadership to `target`: brings it up to date, then tells it to
   * campaign at once. Proposals are refused meanwhile; the transfer is
   * abandoned after an election timeout.
   *
   * @throws {ProposalDroppedError} When this node is not the leader.
   * @throws {ConfChangeError} When `target` is not a voter.
   */
  transferLeader(target: NodeId): void {
    if (this.#role !== "leader") this.#checkCanPropose();
    if (target === this.id || this.#leadTransferee === target) return;
    if (!this.#members.voters.has(target)) {
      throw new ConfChangeError(
        `Cannot transfer leadership to '${target}' as it is not a voter`,
      );
    }
    this.#leadTransferee = target;
    this.#electionElapsed = 0;
    const pr = this.#progress.get(target);
    assert(pr !== undefined, `Leader has no progress for voter '${target}'`);
    if (pr.match === this.#log.lastIndex()) this.#sendTimeoutNow(target);
    else this.#sendAppend(target, pr, true);
  }

  /**
   * Asks for a read index: once a quorum confirms this leadership, a
   * `ReadState` with `context` comes out of `ready()`; the read may be served
   * when the applied index reaches it. Followers ask the leader.
   *
   * @param context A unique id of this read, echoed in the ReadState.
   * @param now The monotonic clock now: a leader in lease mode answers from
   *   its lease only with it.
   * @throws {ProposalDroppedError} When no leader is known.
   */
  readIndex(context: Uint8Array, now?: number): void {
    if (this.#role === "leader") {
      this.#withClock(now, () => this.#handleReadRequest(this.id, context));
      return;
    }
    if (this.#leader === null) {
      throw new ProposalDroppedError(
        "noLeader",
        `Cannot read on node '${this.id}' as no leader is known`,
      );
    }
    this.#send({
      type: "readIndex",
      from: this.id,
      to: this.#leader,
      term: this.#term,
      context,
    });
  }

  /**
   * Forgets the data of the snapshot in memory, keeping its metadata: the
   * application cannot make the state at its index any more (a restarted
   * state that applied entries its log then lost). A transfer that needs it
   * waits, with {@linkcode RaftNode.snapshotWanted} set, until the
   * application takes a new one at its applied index.
   *
   * @throws {Error} While a snapshot is being sent or installed.
   */
  dropSnapshotData(): void {
    const snapshot = this.#snapshot;
    if (snapshot === null || this.#snapshotDropped) return;
    assert(
      this.#snapshotToInstall === null &&
        [...this.#progress.values()].every((pr) => pr.state !== "snapshot"),
      "Cannot drop the snapshot's data while a snapshot is in transfer",
    );
    this.#snapshot = { meta: snapshot.meta, data: new Uint8Array(0) };
    this.#snapshotDropped = true;
  }

  /**
   * Records the application's snapshot of its state at `index` (which it has
   * applied) and drops the log up to it. Persist the returned snapshot and
   * compact the stored log the same way.
   *
   * @throws {RangeError} When `index` is not applied yet.
   */
  takeSnapshot(index: LogIndex, data: Uint8Array): Snapshot {
    if (index > this.#log.applied) {
      throw new RangeError(
        `Cannot snapshot at ${index} as applied index is ${this.#log.applied}`,
      );
    }
    if (this.#snapshot !== null && index <= this.#snapshot.meta.index) {
      if (this.#snapshotDropped && index === this.#snapshot.meta.index) {
        // The same state again: it gets its data back.
        this.#snapshot = { meta: this.#snapshot.meta, data };
        this.#snapshotKept();
      }
      return this.#snapshot;
    }
    const t = this.#log.term(index);
    assert(t !== undefined, `Cannot snapshot at ${index}: its entry is gone`);
    const confState = this.#confAt(index);
    this.#snapshot = { meta: { index, term: t, confState }, data };
    this.#snapshotKept();
    this.#log.compact(index);
    this.#baseConf = confState;
    this.#confEntries = this.#confEntries.filter((c) => c.index > index);
    return this.#snapshot;
  }

  /**
   * Handles a message from a peer. Stale messages, and messages from a node
   * the membership removed, are ignored.
   *
   * @param now The monotonic clock now (lease reads asked by followers need it).
   */
  step(message: Message, now?: number): void {
    this.#withClock(now, () => this.#step(message));
  }

  #step(message: Message): void {
    if (message.to !== this.id) return;
    // The leader of this term may finish it after committing its own
    // removal (its entries and its TimeoutNow hand-over are that term's).
    const fromLeader = message.from === this.#leader &&
      message.term === this.#term;
    if (!fromLeader && this.#fromRemoved(message.from)) return;
    if (message.term > this.#term) {
      if (!this.#stepHigherTerm(message)) return;
    } else if (message.term < this.#term) {
      this.#stepLowerTerm(message);
      return;
    }
    if (message.type === "vote" || message.type === "preVote") {
      this.#handleVoteRequest(message);
      return;
    }
    if (this.#role === "leader") this.#stepLeader(message);
    else if (this.#role === "follower") this.#stepFollower(message);
    else this.#stepCandidate(message);
  }

  // --------------------------------------------------------------- outputs

  /** True when `ready()` has something for the application. */
  hasReady(): boolean {
    if (this.#inFlight !== null) return false;
    return this.#messages.length > 0 ||
      this.#readStates.length > 0 ||
      this.#snapshotToInstall !== null ||
      this.#log.unstableEntries().length > 0 ||
      this.#log.hasNextCommittedEntries(this.#applyUnstable()) ||
      !sameHardState(this.#hardState(), this.#previousHardState) ||
      !sameSoftState(this.#softState(), this.#previousSoftState);
  }

  /**
   * Takes what the application must do next: install `snapshot`, persist
   * `entries` and `hardState`, then send `messages`, apply
   * `committedEntries`, serve `readStates`, and call `advance()` before
   * calling `ready()` again.
   */
  ready(): Ready {
    assert(
      this.#inFlight === null,
      "Cannot call ready() again before advance()",
    );
    const entries = this.#log.unstableEntries();
    const committedEntries = this.#log.nextCommittedEntries(
      this.#config.maxCommittedBytesPerReady,
      this.#applyUnstable(),
    );
    const hardState = this.#hardState();
    const softState = this.#softState();
    const ready: Ready = {
      softState: sameSoftState(softState, this.#previousSoftState)
        ? null
        : softState,
      hardState: sameHardState(hardState, this.#previousHardState)
        ? null
        : hardState,
      snapshot: this.#snapshotToInstall,
      entries,
      committedEntries,
      messages: this.#messages,
      readStates: this.#readStates,
    };
    this.#messages = [];
    this.#readStates = [];
    this.#snapshotToInstall = null;
    this.#previousHardState = hardState;
    this.#previousSoftState = softState;
    const last = entries.at(-1);
    const committedLast = committedEntries.at(-1)?.index ?? null;
    if (committedLast !== null) {
      this.#log.applyingTo(committedLast);
      if (this.#role === "leader") this.#releaseUncommitted(committedEntries);
    }
    this.#snapshotInFlight = ready.snapshot !== null;
    this.#inFlight = {
      lastEntry: last === undefined
        ? null
        : { index: last.index, term: last.term },
      committedLast,
    };
    return ready;
  }

  /** Acknowledges that the last Ready was persisted, sent and applied. */
  advance(): void {
    const inFlight = this.#inFlight;
    assert(inFlight !== null, "Cannot advance() without a ready() in flight");
    this.#inFlight = null;
    if (inFlight.lastEntry !== null) {
      this.#log.stableTo(inFlight.lastEntry.index, inFlight.lastEntry.term);
    }
    // A snapshot restored meanwhile may have moved applied past these entries.
    if (
      inFlight.committedLast !== null &&
      inFlight.committedLast > this.#log.applied
    ) {
      this.#log.appliedTo(inFlight.committedLast);
    }
    if (this.#role === "leader") {
      // The leader counts itself only once its own entries are durable.
      const self = this.#progress.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.#log.stableIndex)) {
        this.#maybeCommit();
      }
    }
  }

  /**
   * A follower needs a snapshot whose data was dropped from memory: take
   * one (`takeSnapshot` at the applied index) and the transfer starts at
   * its next answer.
   */
  get snapshotWanted(): boolean {
    return this.#snapshotWanted;
  }

  /** The current term (no allocation, unlike `status()`: for hot paths). */
  get currentTerm(): Term {
    return this.#term;
  }

  /** The highest committed index (no allocation). */
  get commitIndex(): LogIndex {
    return this.#log.committed;
  }

  /** The leader this node knows of, if any (no allocation). */
  get knownLeader(): NodeId | null {
    return this.#leader;
  }

  /** Whether this node leads now (no allocation). */
  get isLeader(): boolean {
    return this.#role === "leader";
  }

  /**
   * Committed entries that no Ready handed out yet, taken while a Ready is
   * in flight: the application may apply them at once instead of after the
   * write in flight (they are durable here: none past the stable index).
   * Call {@linkcode RaftNode.appliedTo} once they are applied. Empty when no
   * Ready is in flight (`ready()` hands them out then), or a snapshot is
   * being or waiting to be installed.
   */
  takeCommittedEntries(): Entry[] {
    if (
      this.#inFlight === null || this.#snapshotInFlight ||
      this.#snapshotToInstall !== null
    ) return [];
    const entries = this.#log.nextCommittedEntries(
      this.#config.maxCommittedBytesPerReady,
      this.#applyUnstable(),
    );
    const last = entries.at(-1);
    if (last === undefined) return [];
    this.#log.applyingTo(last.index);
    if (this.#role === "leader") this.#releaseUncommitted(entries);
    return entries;
  }

  /**
   * Read states produced while a Ready is in flight, taken now (they do not
   * depend on any write: the application serves each once its applied
   * index reaches it). Empty when no Ready is in flight (`ready()` hands
   * them out then).
   */
  takeReadStates(): ReadState[] {
    if (this.#inFlight === null || this.#readStates.length === 0) return [];
    const states = this.#readStates;
    this.#readStates = [];
    return states;
  }

  /** The application applied the entries taken with `takeCommittedEntries()` up to `index`. */
  appliedTo(index: LogIndex): void {
    assert(
      index <= this.#log.applying,
      `Cannot mark ${index} applied as only ${this.#log.applying} was handed out`,
    );
    if (index > this.#log.applied) this.#log.appliedTo(index);
  }

  /** The node's state, for status and checks. */
  status(): RaftStatus {
    let progress:
      | Map<NodeId, { match: LogIndex; next: LogIndex; state: string }>
      | null = null;
    if (this.#role === "leader") {
      progress = new Map();
      for (const [id, pr] of this.#progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state });
      }
    }
    return {
      id: this.id,
      term: this.#term,
      vote: this.#vote,
      role: this.#role,
      leader: this.#leader,
      commit: this.#log.committed,
      applied: this.#log.applied,
      lastIndex: this.#log.lastIndex(),
      stableIndex: this.#log.stableIndex,
      snapshotIndex: this.#log.snapshotIndex(),
      conf: this.#conf,
      leadTransferee: this.#leadTransferee,
      progress,
    };
  }

  /** Entries in [lo, hi) of the in-memory log (for traces and tests). */
  entries(lo: LogIndex, hi: LogIndex): Entry[] {
    return this.#log.slice(lo, hi, Infinity);
  }

  // ------------------------------------------------------- role transitions

  #becomeFollower(t: Term, leader: NodeId | null): void {
    this.#reset(t);
    this.#role = "follower";
    this.#leader = leader;
  }

  #becomePreCandidate(): void {
    if (this.#role === "leader") {
      throw new IllegalTransitionError(
        `Node '${this.id}' cannot become pre-candidate as it is the leader`,
      );
    }
    // PreVote does not change the term or the vote.
    this.#votes = new Map();
    this.#role = "preCandidate";
    this.#leader = null;
  }

  #becomeCandidate(): void {
    if (this.#role === "leader") {
      throw new IllegalTransitionError(
        `Node '${this.id}' cannot become candidate as it is the leader`,
      );
    }
    this.#reset((this.#term + 1) as Term);
    this.#vote = this.id;
    this.#role = "candidate";
  }

  #becomeLeader(): void {
    if (this.#role !== "candidate") {
      throw new IllegalTransitionError(
        `Node '${this.id}' cannot become leader from role '${this.#role}'`,
      );
    }
    this.#reset(this.#term);
    this.#role = "leader";
    this.#leader = this.id;
    const last = this.#log.lastIndex();
    for (const id of this.#memberIds()) {
      const pr = this.#newProgress(last);
      if (id === this.id) {
        pr.maybeUpdate(this.#log.stableIndex);
        pr.becomeReplicate();
        pr.recentActive = true;
      }
      this.#progress.set(id, pr);
    }
    // A blank entry of the new term lets earlier entries commit (Raft §5.4.2).
    this.#appendEntry(new Uint8Array(0), "normal");
    this.#broadcastAppend();
  }

  #reset(t: Term): void {
    if (this.#term !== t) {
      assert(t > this.#term, `Term cannot decrease from ${this.#term} to ${t}`);
      this.#term = t;
      this.#vote = null;
      this.#restartGuard = false;
    }
    this.#leader = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#randomizedElectionTimeout = this.#config.electionTicks +
      this.#config.random.nextInt(this.#config.electionTicks);
    this.#votes = new Map();
    this.#progress = new Map();
    this.#uncommittedBytes = 0;
    this.#leadTransferee = null;
    this.#leaseRevoked = false;
    this.#readOnly.clear();
    this.#pendingReads = [];
  }

  // ------------------------------------------------------------- elections

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#config.electionTicks) {
      this.#restartGuard = false;
    }
    if (
      this.#promotable() &&
      this.#electionElapsed >= this.#randomizedElectionTimeout
    ) {
      this.#electionElapsed = 0;
      this.#hup();
    }
  }

  #hup(): void {
    if (this.#config.preVote) this.#runElection("preVote", false);
    else this.#runElection("vote", false);
  }

  #runElection(kind: "preVote" | "vote", transfer: boolean): void {
    if (kind === "preVote") this.#becomePreCandidate();
    else this.#becomeCandidate();
    const campaignTerm =
      (kind === "preVote" ? this.#term + 1 : this.#term) as Term;
    this.#votes.set(this.id, true);
    if (this.#tallyVotes(kind)) return;
    for (const id of this.#voterIds()) {
      if (id === this.id) continue;
      this.#send({
        type: kind,
        from: this.id,
        to: id,
        term: campaignTerm,
        index: this.#log.lastIndex(),
        logTerm: this.#log.lastTerm(),
        transfer,
      });
    }
  }

  /** Counts votes; on a decision changes role and returns true. */
  #tallyVotes(kind: "preVote" | "vote"): boolean {
    const result = jointVoteResult(
      this.#members.voters,
      this.#members.votersOutgoing,
      this.#votes,
    );
    if (result === "won") {
      if (kind === "preVote") this.#runElection("vote", false);
      else this.#becomeLeader();
      return true;
    }
    if (result === "lost") {
      this.#becomeFollower(this.#term, null);
      return true;
    }
    return false;
  }

  /** Handles a message of a higher term; returns false when it is to be ignored. */
  #stepHigherTerm(message: Message): boolean {
    if (message.type === "vote" || message.type === "preVote") {
      // CheckQuorum's guard: while a leader was heard from within the election
      // timeout, a disruptive candidate is ignored (unless the leader asked
      // for the election). Lease reads rely on this.
      const guarded = this.#config.checkQuorum &&
        this.#config.testingKnobs.leaseWithoutVoteGuard !== true &&
        (this.#leader !== null || this.#restartGuard) &&
        this.#electionElapsed < this.#config.electionTicks;
      if (guarded && !message.transfer) return false;
      // A PreVote never changes the receiver's term.
      if (message.type === "preVote") return true;
      this.#becomeFollower(message.term, null);
      return true;
    }
    if (message.type === "preVoteResp" && !message.reject) {
      // Granted pre-votes carry the term we would campaign at.
      return true;
    }
    this.#becomeFollower(
      message.term,
      isFromLeader(message) ? message.from : null,
    );
    return true;
  }

  #stepLowerTerm(message: Message): void {
    if (
      message.type === "app" || message.type === "heartbeat" ||
      message.type === "snap"
    ) {
      // Tell a stale leader about the newer term so it steps down; with
      // CheckQuorum or PreVote it may otherwise never learn of it.
      if (this.#config.checkQuorum || this.#config.preVote) {
        this.#send({
          type: "appResp",
          from: this.id,
          to: message.from,
          term: this.#term,
          index: 0 as LogIndex,
          reject: false,
          rejectHint: 0 as LogIndex,
          logTerm: 0 as Term,
        });
      }
    } else if (message.type === "preVote") {
      this.#send({
        type: "preVoteResp",
        from: this.id,
        to: message.from,
        term: this.#term,
        reject: true,
      });
    }
  }

  #handleVoteRequest(message: VoteMessage): void {
    const responseType = message.type === "vote" ? "voteResp" : "preVoteResp";
    const canVote = this.#vote === message.from ||
      (this.#vote === null && this.#leader === null) ||
      (message.type === "preVote" && message.term > this.#term);
    const upToDate = this.#config.testingKnobs.voteIgnoresLog === true ||
      this.#log.isUpToDate(message.index, message.logTerm);
    if (
      canVote && upToDate && this.#holdsLostTail(message.index, message.logTerm)
    ) {
      // A granted PreVote answers at the proposed term; a vote at our own (equal) term.
      this.#send({
        type: responseType,
        from: this.id,
        to: message.from,
        term: message.term,
        reject: false,
      });
      if (message.type === "vote") {
        this.#electionElapsed = 0;
        this.#vote = message.from;
      }
    } else {
      this.#send({
        type: responseType,
        from: this.id,
        to: message.from,
        term: this.#term,
        reject: true,
      });
    }
  }

  #stepCandidate(message: Message): void {
    switch (message.type) {
      case "app":
      case "heartbeat":
      case "snap":
        // A leader of our term exists: yield to it.
        this.#becomeFollower(this.#term, message.from);
        this.#stepFollower(message);
        return;
      case "preVoteResp":
      case "voteResp": {
        const kind = message.type === "preVoteResp" ? "preVote" : "vote";
        const expected = this.#role === "preCandidate" ? "preVote" : "vote";
        if (kind !== expected) return;
        this.#votes.set(message.from, !message.reject);
        this.#tallyVotes(kind);
        return;
      }
      default:
        return;
    }
  }

  #stepFollower(message: Message): void {
    switch (message.type) {
      case "app":
        this.#heardFromLeader(message.from);
        this.#handleAppend(message);
        return;
      case "heartbeat":
        this.#heardFromLeader(message.from);
        this.#handleHeartbeat(message);
        return;
      case "snap":
        this.#heardFromLeader(message.from);
        this.#handleSnapshot(message);
        return;
      case "timeoutNow":
        // The leader hands over: campaign now, skipping PreVote and leases.
        if (message.from === this.#leader && this.#promotable()) {
          this.#runElection("vote", true);
        }
        return;
      case "readIndexResp":
        this.#readStates.push({
          index: message.index,
          context: message.context,
        });
        return;
      default:
        return;
    }
  }

  #heardFromLeader(leader: NodeId): void {
    this.#electionElapsed = 0;
    this.#leader = leader;
  }

  // ----------------------------------------------------------- replication

  #handleAppend(message: AppendMessage): void {
    const base = {
      type: "appResp",
      from: this.id,
      to: message.from,
      term: this.#term,
    } as const;
    const accept = (index: LogIndex) =>
      this.#send({
        ...base,
        index,
        reject: false,
        rejectHint: 0 as LogIndex,
        logTerm: 0 as Term,
      });
    if (message.index < this.#log.committed) {
      // Everything up to commit is known to match; say so.
      accept(this.#log.committed);
      return;
    }
    const lastNew = this.#log.maybeAppend(
      message.index,
      message.logTerm,
      message.commit,
      message.entries,
    );
    if (lastNew !== undefined) {
      if (message.entries.length > 0) {
        this.#refreshConf((message.index + 1) as LogIndex);
      }
      accept(lastNew);
      return;
    }
    const hint = this.#log.findConflictByTerm(
      Math.min(message.index, this.#log.lastIndex()) as LogIndex,
      message.logTerm,
    );
    this.#send({
      ...base,
      index: message.index,
      reject: true,
      rejectHint: hint,
      logTerm: this.#log.term(hint) ?? (0 as Term),
    });
  }

  #handleHeartbeat(message: HeartbeatMessage): void {
    // After losing a tail, the leader may still believe this node holds
    // entries it acknowledged before: commit only what is here.
    const commit = this.#recover !== null
      ? Math.min(message.commit, this.#log.lastIndex()) as LogIndex
      : message.commit;
    this.#log.commitTo(commit);
    this.#send({
      type: "heartbeatResp",
      from: this.id,
      to: message.from,
      term: this.#term,
      context: message.context,
      sentAt: message.sentAt,
      voteGuardMs: this.#config.voteGuardMs,
    });
  }

  #stepLeader(message: Message): void {
    if (message.type === "readIndex") {
      if (this.#progress.has(message.from)) {
        this.#handleReadRequest(message.from, message.context);
      }
      return;
    }
    const pr = this.#progress.get(message.from);
    if (pr === undefined) return;
    switch (message.type) {
      case "appResp":
        pr.recentActive = true;
        this.#handleAppendResponse(message, pr);
        return;
      case "heartbeatResp":
        pr.recentActive = true;
        this.#handleHeartbeatResponse(message, pr);
        return;
      case "snapResp":
        pr.recentActive = true;
        this.#handleSnapshotResponse(message, pr);
        return;
      default:
        return;
    }
  }

  #handleAppendResponse(message: AppendResponseMessage, pr: Progress): void {
    if (message.reject) {
      let probeNext = message.rejectHint;
      if (message.logTerm > 0) {
        probeNext = this.#log.findConflictByTerm(
          message.rejectHint,
          message.logTerm,
        );
      }
      if (pr.state !== "snapshot" && pr.maybeDecrTo(message.index, probeNext)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.#sendAppend(message.from, pr, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(message.index)) return;
    if (pr.state === "probe") pr.becomeReplicate();
    else if (pr.state === "replicate") pr.inflights.freeLE(message.index);
    else if (pr.match >= pr.snapshotIndex) pr.becomeProbe();
    if (!this.#maybeCommit() && wasPaused) {
      // It may have missed a commit while paused: tell it even without entries.
      this.#sendAppend(message.from, pr, true);
    }
    // Fill the pipeline while the window allows.
    for (let i = 0; i < this.#config.maxInflightMessages; i++) {
      if (!this.#sendAppend(message.from, pr, false)) break;
    }
    if (
      message.from === this.#leadTransferee &&
      pr.match === this.#log.lastIndex()
    ) {
      this.#sendTimeoutNow(message.from);
    }
  }

  #handleHeartbeatResponse(
    message: HeartbeatResponseMessage,
    pr: Progress,
  ): void {
    if (
      message.voteGuardMs >= this.#config.voteGuardMs ||
      this.#config.testingKnobs.leaseTickCount === true
    ) {
      pr.lastAckedAt = Math.max(pr.lastAckedAt, message.sentAt);
    }
    pr.probeSent = false;
    if (pr.state === "replicate" && pr.inflights.full()) {
      pr.inflights.freeFirstOne();
    }
    if (pr.state !== "snapshot" && pr.match < this.#log.lastIndex()) {
      // Behind: probe even without new entries, so lost appends are noticed.
      this.#sendAppend(message.from, pr, true);
    }
    if (message.context.byteLength === 0) return;
    const acks = this.#readOnly.ack(message.context, message.from);
    if (acks === undefined) return;
    const votes = new Map([...acks].map((id) => [id, true]));
    if (
      jointVoteResult(
        this.#members.voters,
        this.#members.votersOutgoing,
        votes,
      ) !== "won"
    ) return;
    for (const request of this.#readOnly.releaseThrough(message.context)) {
      this.#respondRead(request.from, request.index, request.context);
    }
  }

  /** Commits the index a quorum holds, if its entry is from this term. */
  #maybeCommit(): boolean {
    const committed = jointCommitted(
      this.#members.voters,
      this.#members.votersOutgoing,
      (id) => this.#progress.get(id)?.match,
    );
    if (committed <= this.#log.committed) return false;
    const currentTerm = this.#log.term(committed) === this.#term;
    if (!currentTerm && this.#config.testingKnobs.commitPreviousTerm !== true) {
      return false;
    }
    this.#log.commitTo(committed);
    this.#afterCommit();
    return true;
  }

  /** What a leader does when its commit index grows. */
  #afterCommit(): void {
    this.#broadcastAppend();
    if (
      this.#log.term(this.#log.committed) === this.#term &&
      this.#pendingReads.length > 0
    ) {
      const pending = this.#pendingReads;
      this.#pendingReads = [];
      for (const read of pending) {
        this.#handleReadRequest(read.from, read.context);
      }
    }
    if (this.#confPending()) return;
    if (isJoint(this.#conf)) {
      // The joint configuration committed: leave it.
      this.#appendEntry(encodeConfState(leaveJoint(this.#conf)), "confChange");
      this.#broadcastAppend();
      return;
    }
    if (!this.#members.voters.has(this.id)) this.#stepDownRemoved();
  }

  /** A removed leader hands over to its most up-to-date voter, then steps down. */
  #stepDownRemoved(): void {
    let best: NodeId | null = null;
    let bestMatch = -1;
    for (const id of [...this.#members.voters].sort()) {
      const match = this.#progress.get(id)?.match ?? 0;
      if (match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    if (best !== null && bestMatch === this.#log.lastIndex()) {
      this.#sendTimeoutNow(best);
    }
    this.#becomeFollower(this.#term, null);
  }

  #broadcastAppend(): void {
    for (const [id, pr] of this.#progress) {
      if (id !== this.id) this.#sendAppend(id, pr, true);
    }
  }

  /** Sends entries from `pr.next` (or a snapshot); returns whether a message went out. */
  #sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = (pr.next - 1) as LogIndex;
    const prevTerm = this.#log.term(prevIndex);
    if (prevTerm === undefined) return this.#startSnapshot(to, pr);
    const last = this.#log.lastIndex();
    const entries = pr.next <= last
      ? this.#log.slice(
        pr.next,
        (last + 1) as LogIndex,
        this.#config.maxMessageBytes,
      )
      : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.#send({
      type: "app",
      from: this.id,
      to,
      term: this.#term,
      index: prevIndex,
      logTerm: prevTerm,
      entries,
      commit: this.#log.committed,
    });
    const lastSent = entries.at(-1);
    if (pr.state === "replicate" && lastSent !== undefined) {
      pr.next = (lastSent.index + 1) as LogIndex;
      pr.inflights.add(
        lastSent.index,
        entries.reduce((sum, e) => sum + entryBytes(e), 0),
      );
    } else if (pr.state === "probe") {
      pr.probeSent = true;
    }
    return true;
  }

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#config.electionTicks) {
      this.#electionElapsed = 0;
      if (this.#config.checkQuorum && !this.#quorumActive()) {
        this.#becomeFollower(this.#term, null);
        return;
      }
      // A transfer that did not finish within an election timeout is abandoned.
      this.#leadTransferee = null;
    }
    this.#tickSnapshotTransfers();
    if (this.#heartbeatElapsed >= this.#config.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#broadcastHeartbeat(this.#readOnly.lastContext());
    }
  }

  #broadcastHeartbeat(context: Uint8Array): void {
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      this.#send({
        type: "heartbeat",
        from: this.id,
        to: id,
        term: this.#term,
        commit: Math.min(pr.match, this.#log.committed) as LogIndex,
        context,
        sentAt: this.#config.testingKnobs.leaseTickCount === true
          ? this.#tickCount
          : Math.floor(this.#now),
      });
    }
  }

  /** CheckQuorum: did a quorum talk to us since the last round? Resets the marks. */
  #quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.#progress) {
      if (id === this.id || pr.recentActive) active.set(id, true);
      pr.recentActive = id === this.id;
    }
    return jointVoteResult(
      this.#members.voters,
      this.#members.votersOutgoing,
      active,
    ) === "won";
  }

  #sendTimeoutNow(to: NodeId): void {
    this.#leaseRevoked = true;
    this.#send({ type: "timeoutNow", from: this.id, to, term: this.#term });
  }

  // ------------------------------------------------------------- snapshots

  #startSnapshot(to: NodeId, pr: Progress): boolean {
    const snapshot = this.#snapshot;
    assert(
      snapshot !== null,
      `Leader compacted its log without a snapshot, needed by '${to}'`,
    );
    if (this.#snapshotDropped) {
      // Retried at the peer's next answer, once the application took one.
      this.#snapshotWanted = true;
      return false;
    }
    pr.becomeSnapshot(snapshot.meta.index);
    this.#sendSnapshotChunk(to, pr, snapshot);
    return true;
  }

  #sendSnapshotChunk(to: NodeId, pr: Progress, snapshot: Snapshot): void {
    if (this.#snapshotDropped) {
      this.#snapshotWanted = true;
      pr.becomeProbe();
      return;
    }
    this.#snapshotIdleTicks = 0;
    const offset = pr.snapshotOffset;
    const data = snapshot.data.subarray(
      offset,
      offset + this.#config.snapshotChunkBytes,
    );
    pr.snapshotAwaitedOffset = offset + data.byteLength;
    this.#send({
      type: "snap",
      from: this.id,
      to,
      term: this.#term,
      meta: snapshot.meta,
      offset,
      data,
      done: pr.snapshotAwaitedOffset >= snapshot.data.byteLength,
    });
  }

  #handleSnapshotResponse(
    message: SnapshotResponseMessage,
    pr: Progress,
  ): void {
    if (message.done) {
      // Installed (or already covered): continue with entries after it.
      pr.maybeUpdate(message.index);
      if (pr.state === "snapshot") pr.becomeProbe();
      this.#sendAppend(message.from, pr, true);
      return;
    }
    if (pr.state !== "snapshot" || message.index !== pr.snapshotIndex) return;
    const snapshot = this.#snapshot;
    if (
      snapshot === null || snapshot.meta.index !== pr.snapshotIndex ||
      message.reject
    ) {
      // Restart from the first chunk of the newest snapshot.
      if (snapshot !== null) {
        this.#startSnapshotAgain(message.from, pr, snapshot);
      }
      return;
    }
    if (message.offset !== pr.snapshotAwaitedOffset) return;
    pr.snapshotOffset = message.offset;
    pr.snapshotElapsedTicks = 0;
    this.#sendSnapshotChunk(message.from, pr, snapshot);
  }

  #startSnapshotAgain(to: NodeId, pr: Progress, snapshot: Snapshot): void {
    pr.becomeSnapshot(snapshot.meta.index);
    this.#sendSnapshotChunk(to, pr, snapshot);
  }

  /** The snapshot in memory has its data (just taken, installed or restored). */
  #snapshotKept(): void {
    this.#snapshotDropped = false;
    this.#snapshotWanted = false;
    this.#snapshotIdleTicks = 0;
  }

  /**
   * Drops large snapshot data no transfer used for two election timeouts:
   * it is the whole state, and the application can make it again.
   */
  #tickSnapshotData(): void {
    const snapshot = this.#snapshot;
    if (snapshot === null || this.#snapshotDropped) return;
    if (snapshot.data.byteLength <= this.#config.snapshotKeepBytes) return;
    if (++this.#snapshotIdleTicks < 2 * this.#config.electionTicks) return;
    if (this.#snapshotToInstall !== null) return;
    for (const pr of this.#progress.values()) {
      if (pr.state === "snapshot") return;
    }
    this.#snapshot = { meta: snapshot.meta, data: new Uint8Array(0) };
    this.#snapshotDropped = true;
  }

  /** Retries a snapshot transfer that has not progressed for an election timeout. */
  #tickSnapshotTransfers(): void {
    for (const [id, pr] of this.#progress) {
      if (pr.state !== "snapshot") continue;
      pr.snapshotElapsedTicks++;
      if (
        pr.snapshotElapsedTicks >= this.#config.electionTicks &&
        this.#snapshot !== null
      ) {
        this.#startSnapshotAgain(id, pr, this.#snapshot);
      }
    }
  }

  #handleSnapshot(message: SnapshotMessage): void {
    const reply = (
      fields: {
        index: LogIndex;
        offset: number;
        reject: boolean;
        done: boolean;
      },
    ) =>
      this.#send({
        type: "snapResp",
        from: this.id,
        to: message.from,
        term: this.#term,
        ...fields,
      });
    const meta = message.meta;
    if (meta.index <= this.#log.committed) {
      this.#incoming = null;
      reply({
        index: this.#log.committed,
        offset: 0,
        reject: false,
        done: true,
      });
      return;
    }
    if (message.offset === 0) this.#incoming = { message, chunks: [], size: 0 };
    const incoming = this.#incoming;
    const sameSnapshot = incoming !== null &&
      incoming.message.meta.index === meta.index &&
      incoming.message.meta.term === meta.term;
    if (!sameSnapshot || message.offset > incoming.size) {
      // A chunk of another or an interrupted transfer: ask to start over.
      reply({ index: meta.index, offset: 0, reject: true, done: false });
      return;
    }
    if (message.offset < incoming.size) {
      // A duplicate: acknowledge what is already here.
      reply({
        index: meta.index,
        offset: incoming.size,
        reject: false,
        done: false,
      });
      return;
    }
    incoming.chunks.push(message.data);
    incoming.size += message.data.byteLength;
    if (!message.done) {
      reply({
        index: meta.index,
        offset: incoming.size,
        reject: false,
        done: false,
      });
      return;
    }
    this.#incoming = null;
    if (this.#log.matchTerm(meta.index, meta.term)) {
      // Our log already holds the snapshot's last entry: just move commit.
      this.#log.commitTo(meta.index);
    } else {
      this.#installSnapshot({
        meta,
        data: concat(incoming.chunks, incoming.size),
      });
    }
    reply({
      index: meta.index,
      offset: incoming.size,
      reject: false,
      done: true,
    });
  }

  #installSnapshot(snapshot: Snapshot): void {
    this.#log.restore(snapshot.meta.index, snapshot.meta.term);
    this.#snapshot = snapshot;
    this.#snapshotKept();
    this.#snapshotToInstall = snapshot;
    if (this.#config.testingKnobs.snapshotSkipsMembership !== true) {
      this.#baseConf = snapshot.meta.confState;
    }
    this.#confEntries = [];
    this.#setConf(this.#baseConf);
  }

  // ----------------------------------------------------------------- reads

  #handleReadRequest(from: NodeId, context: Uint8Array): void {
    const knobs = this.#config.testingKnobs;
    if (
      this.#log.term(this.#log.committed) !== this.#term &&
      knobs.readBeforeTermCommit !== true
    ) {
      // Until an entry of this term commits, the commit index may be stale.
      if (this.#pendingReads.length < READ_REQUESTS_MAX) {
        this.#pendingReads.push({ from, context });
      }
      return;
    }
    const index = this.#log.committed;
    const selfOnly = new Map([[this.id, true]]);
    if (
      jointVoteResult(
          this.#members.voters,
          this.#members.votersOutgoing,
          selfOnly,
        ) === "won" ||
      knobs.readWithoutQuorum === true ||
      (this.#config.readOnly === "lease" && this.#leaseValid())
    ) {
      this.#respondRead(from, index, context);
      return;
    }
    if (
      this.#readOnly.add({ index, context, from, acks: new Set([this.id]) })
    ) {
      this.#broadcastHeartbeat(context);
    }
  }

  /**
   * The lease holds while less than `leaseMs` passed on our clock, read with
   * the input being handled, since we sent a heartbeat that a quorum
   * acknowledged: each of those voters refuses other candidates for at least
   * its `voteGuardMs` of real time after receiving it (see `leaseBounds`).
   * Without a clock reading for this input there is no lease.
   */
  #leaseValid(): boolean {
    if (this.#leadTransferee !== null || this.#leaseRevoked) return false;
    const byTicks = this.#config.testingKnobs.leaseTickCount === true;
    const now = byTicks ? this.#tickCount : this.#inputNow;
    if (now === null) return false;
    const leaseStart = jointCommitted(
      this.#members.voters,
      this.#members.votersOutgoing,
      (id) =>
        (id === this.id
          ? now
          : this.#progress.get(id)?.lastAckedAt ?? -Infinity) as LogIndex,
    );
    return now - leaseStart <
      (byTicks ? this.#config.leaseTicks : this.#config.leaseMs);
  }

  #respondRead(from: NodeId, index: LogIndex, context: Uint8Array): void {
    if (from === this.id) this.#readStates.push({ index, context });
    else {this.#send({
        type: "readIndexResp",
        from: this.id,
        to: from,
        term: this.#term,
        index,
        context,
      });}
  }

  // ------------------------------------------------------------ membership

  /** Recomputes the configuration from the log, from `from` on. */
  #refreshConf(from: LogIndex): void {
    this.#confEntries = this.#confEntries.filter((c) => c.index < from);
    const last = this.#log.lastIndex();
    if (from <= last) {
      for (
        const entry of this.#log.slice(from, (last + 1) as LogIndex, Infinity)
      ) {
        if (entry.type === "confChange") {
          this.#confEntries.push({
            index: entry.index,
            conf: decodeEntry(entry),
          });
        }
      }
    }
    this.#setConf(this.#confEntries.at(-1)?.conf ?? this.#baseConf);
  }

  #setConf(conf: ConfState): void {
    this.#conf = conf;
    this.#members = membershipOf(conf);
    for (const id of this.#memberIds()) this.#knownIds.add(id);
    if (this.#role !== "leader") return;
    const last = this.#log.lastIndex();
    const members = new Set(this.#memberIds());
    for (const id of members) {
      if (!this.#progress.has(id)) {
        this.#progress.set(id, this.#newProgress(last));
      }
    }
    for (const id of [...this.#progress.keys()]) {
      if (!members.has(id) && id !== this.id) this.#progress.delete(id);
    }
    if (
      this.#leadTransferee !== null &&
      !this.#members.voters.has(this.#leadTransferee)
    ) {
      this.#leadTransferee = null;
    }
  }

  /**
   * True for a sender the membership removed: known from an earlier
   * configuration, absent from the latest one and from the committed one.
   * Its messages are dropped, so a removed node cannot depose the leader,
   * truncate entries or push a commit index. A node that is not in its own
   * configuration yet (it is still learning its membership, from the
   * leader's log or snapshot) accepts everyone, and so does any node for a
   * sender it never saw in a configuration (a member added by entries it has
   * not received yet).
   */
  #fromRemoved(from: NodeId): boolean {
    if (this.#config.testingKnobs.nonMemberAppend === true) return false;
    return this.isRemoved(from);
  }

  /**
   * True when this node knows `id` was removed from the membership (see
   * `step`): it drops every message from it.
   */
  isRemoved(id: NodeId): boolean {
    const from = id;
    if (!this.#knownIds.has(from)) return false;
    const inConf = (conf: ConfState, id: NodeId) =>
      conf.voters.includes(id) || conf.votersOutgoing.includes(id) ||
      conf.learners.includes(id);
    if (!inConf(this.#conf, this.id)) return false;
    if (inConf(this.#conf, from)) return false;
    return !inConf(this.#confAt(this.#log.committed), from);
  }

  /** The configuration in force at `index`. */
  #confAt(index: LogIndex): ConfState {
    let conf = this.#baseConf;
    for (const c of this.#confEntries) {
      if (c.index <= index) conf = c.conf;
    }
    return conf;
  }

  /** True while the latest configuration entry is not committed yet. */
  #confPending(): boolean {
    const latest = this.#confEntries.at(-1);
    return latest !== undefined && latest.index > this.#log.committed;
  }

  // --------------------------------------------------------------- helpers

  #checkCanPropose(): void {
    if (this.#role !== "leader") {
      if (this.#leader === null) {
        throw new ProposalDroppedError(
          "noLeader",
          `Cannot propose on node '${this.id}' as no leader is known`,
        );
      }
      throw new ProposalDroppedError(
        "notLeader",
        `Cannot propose on node '${this.id}' as it is not the leader: leader is '${this.#leader}'`,
        this.#leader,
      );
    }
    if (this.#leadTransferee !== null) {
      throw new ProposalDroppedError(
        "transferInProgress",
        `Cannot propose on node '${this.id}' as leadership is being transferred to '${this.#leadTransferee}'`,
        this.id,
      );
    }
  }

  #appendEntry(data: Uint8Array, type: EntryType): LogIndex {
    const index = (this.#log.lastIndex() + 1) as LogIndex;
    this.#log.append([{ term: this.#term, index, type, data }]);
    if (type === "confChange") this.#refreshConf(index);
    return index;
  }

  #releaseUncommitted(entries: readonly Entry[]): void {
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.byteLength;
    this.#uncommittedBytes = Math.max(0, this.#uncommittedBytes - bytes);
  }

  #newProgress(last: LogIndex): Progress {
    return new Progress(
      0 as LogIndex,
      (last + 1) as LogIndex,
      new Inflights(
        this.#config.maxInflightMessages,
        this.#config.maxInflightBytes,
      ),
    );
  }

  #voterIds(): NodeId[] {
    return [
      ...new Set([...this.#members.voters, ...this.#members.votersOutgoing]),
    ];
  }

  #memberIds(): NodeId[] {
    return [
      ...new Set([...this.#voterIds(), ...this.#members.learners, this.id]),
    ];
  }

  /**
   * False when a log ending at (`index`, `term`) may lack an entry this node
   * acknowledged before losing its tail: it then must not get our vote.
   */
  #holdsLostTail(index: LogIndex, term: Term): boolean {
    const lost = this.#recover;
    if (lost === null || this.#log.committed >= lost.index) return true;
    if (this.#config.testingKnobs.truncateAcknowledgedTail === true) {
      return true;
    }
    return term > lost.term || (term === lost.term && index >= lost.index);
  }

  /**
   * May this node campaign? Not while its own log may lack a lost tail it
   * acknowledged. Otherwise yes when it votes in its latest configuration,
   * and also while the committed configuration still counts it: a server
   * whose latest (uncommitted) configuration leaves it out may still be needed
   * to elect a leader until that configuration commits (Raft thesis §4.2.2).
   */
  #promotable(): boolean {
    if (!this.#holdsLostTail(this.#log.lastIndex(), this.#log.lastTerm())) {
      return false;
    }
    const votesIn = (conf: ConfState) =>
      conf.voters.includes(this.id) || conf.votersOutgoing.includes(this.id);
    return votesIn(this.#conf) || votesIn(this.#confAt(this.#log.committed));
  }

  #applyUnstable(): boolean {
    return this.#config.testingKnobs.applyUncommitted === true;
  }

  #send(message: Message): void {
    this.#messages.push(message);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#log.committed };
  }

  #softState(): SoftState {
    return { leader: this.#leader, role: this.#role };
  }
}

function isFromLeader(message: Message): boolean {
  return message.type === "app" || message.type === "heartbeat" ||
    message.type === "snap" ||
    message.type === "timeoutNow" || message.type === "readIndexResp";
}

function decodeEntry(entry: Entry): ConfState {
  try {
    return decodeConfState(entry.data);
  } catch (error) {
    // Only the core writes configuration entries; a bad one is a broken invariant.
    assert(
      false,
      `Configuration entry ${entry.term}/${entry.index} is malformed: ${error}`,
    );
  }
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
