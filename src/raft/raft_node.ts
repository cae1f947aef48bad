/**
 * The Raft core: a deterministic state machine in the spirit of etcd's
 * RawNode. Inputs are `tick()`, `step(message)`, `campaign()` and
 * `propose(data)`; outputs come out of `ready()` and are acknowledged with
 * `advance()`. No I/O, no clock, no randomness but the injected source.
 *
 * @module
 */
import { assert } from "./assert.ts";
import { type ResolvedRaftConfig, resolveRaftConfig } from "./config.ts";
import { IllegalTransitionError, ProposalDroppedError } from "./errors.ts";
import { entryBytes, RaftLog } from "./log.ts";
import { majorityCommitted, majorityVoteResult } from "./quorum.ts";
import { Inflights, Progress } from "./tracker.ts";
import type {
  AppendMessage,
  AppendResponseMessage,
  Entry,
  EntryType,
  HardState,
  HeartbeatMessage,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  RaftStorageState,
  Ready,
  Role,
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
  /** Per-peer progress; only on a leader. */
  readonly progress:
    | ReadonlyMap<NodeId, { match: LogIndex; next: LogIndex; state: string }>
    | null;
}

interface InFlightReady {
  readonly lastEntry: { index: LogIndex; term: Term } | null;
  readonly committedLast: LogIndex | null;
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
  #voters: Set<NodeId>;
  #learners: Set<NodeId> = new Set();
  #progress = new Map<NodeId, Progress>();
  #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  #uncommittedBytes = 0;
  #messages: Message[] = [];
  #previousHardState: HardState;
  #previousSoftState: SoftState;
  #inFlight: InFlightReady | null = null;

  /**
   * @param config Identity, membership and tuning; validated first.
   * @param stored What the node had durably stored, for a restart.
   */
  constructor(config: RaftConfig, stored: RaftStorageState = EMPTY_STORAGE) {
    this.#config = resolveRaftConfig(config);
    this.id = this.#config.id;
    this.#voters = new Set(this.#config.voters);
    const hardState = stored.hardState;
    this.#log = new RaftLog(stored.entries, hardState.commit, stored.applied);
    this.#term = hardState.term;
    this.#vote = this.#config.testingKnobs.forgetVoteOnRestart
      ? null
      : hardState.vote;
    this.#previousHardState = hardState;
    this.#previousSoftState = { leader: null, role: "follower" };
    this.#becomeFollower(this.#term, null);
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.#role === "leader") this.#tickLeader();
    else this.#tickElection();
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
   * @throws {ProposalDroppedError} Without a leader, on a follower, or over the uncommitted bound.
   */
  propose(data: Uint8Array, type: EntryType = "normal"): LogIndex {
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
    const index = this.#appendEntry(data, type);
    this.#broadcastAppend();
    return index;
  }

  /** Handles a message from a peer. Stale or unknown-sender messages are ignored. */
  step(message: Message): void {
    if (message.to !== this.id) return;
    if (message.term > this.#term) {
      if (!this.#stepHigherTerm(message)) return;
    } else if (message.term < this.#term) {
      this.#stepLowerTerm(message);
      return;
    }
    switch (message.type) {
      case "vote":
      case "preVote":
        this.#handleVoteRequest(message);
        return;
      default:
        break;
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
      this.#log.unstableEntries().length > 0 ||
      this.#log.hasNextCommittedEntries(this.#applyUnstable()) ||
      !sameHardState(this.#hardState(), this.#previousHardState) ||
      !sameSoftState(this.#softState(), this.#previousSoftState);
  }

  /**
   * Takes what the application must do next. Call `advance()` after doing it
   * and before calling `ready()` again.
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
      entries,
      committedEntries,
      messages: this.#messages,
    };
    this.#messages = [];
    this.#previousHardState = hardState;
    this.#previousSoftState = softState;
    const last = entries.at(-1);
    const committedLast = committedEntries.at(-1)?.index ?? null;
    if (committedLast !== null) {
      this.#log.applyingTo(committedLast);
      if (this.#role === "leader") this.#releaseUncommitted(committedEntries);
    }
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
    if (inFlight.committedLast !== null) {
      this.#log.appliedTo(inFlight.committedLast);
    }
    if (this.#role === "leader") {
      // The leader counts itself only once its own entries are durable.
      const self = this.#progress.get(this.id);
      if (
        self !== undefined && self.maybeUpdate(this.#log.stableIndex) &&
        this.#maybeCommit()
      ) {
        this.#broadcastAppend();
      }
    }
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
    for (const id of this.#members()) {
      const pr = this.#newProgress(id, last);
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
    }
    this.#leader = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#randomizedElectionTimeout = this.#config.electionTicks +
      this.#config.random.nextInt(this.#config.electionTicks);
    this.#votes = new Map();
    this.#progress = new Map();
    this.#uncommittedBytes = 0;
  }

  // ------------------------------------------------------------- elections

  #tickElection(): void {
    this.#electionElapsed++;
    if (
      this.#promotable() &&
      this.#electionElapsed >= this.#randomizedElectionTimeout
    ) {
      this.#electionElapsed = 0;
      this.#hup();
    }
  }

  #hup(): void {
    if (this.#config.preVote) this.#runElection("preVote");
    else this.#runElection("vote");
  }

  #runElection(kind: "preVote" | "vote"): void {
    if (kind === "preVote") this.#becomePreCandidate();
    else this.#becomeCandidate();
    const campaignTerm =
      (kind === "preVote" ? this.#term + 1 : this.#term) as Term;
    this.#votes.set(this.id, true);
    if (this.#tallyVotes(kind)) return;
    for (const id of this.#voters) {
      if (id === this.id) continue;
      this.#send({
        type: kind,
        from: this.id,
        to: id,
        term: campaignTerm,
        index: this.#log.lastIndex(),
        logTerm: this.#log.lastTerm(),
      });
    }
  }

  /** Counts votes; on a decision changes role and returns true. */
  #tallyVotes(kind: "preVote" | "vote"): boolean {
    const result = majorityVoteResult(this.#voters, this.#votes);
    if (result === "won") {
      if (kind === "preVote") this.#runElection("vote");
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
      // timeout, a disruptive candidate is ignored.
      const inLease = this.#config.checkQuorum && this.#leader !== null &&
        this.#electionElapsed < this.#config.electionTicks;
      if (inLease) return false;
      // A PreVote never changes the receiver's term.
      if (message.type === "preVote") return true;
      this.#becomeFollower(message.term, null);
      return true;
    }
    if (message.type === "preVoteResp" && !message.reject) {
      // Granted pre-votes carry the term we would campaign at.
      return true;
    }
    const fromLeader = message.type === "app" || message.type === "heartbeat";
    this.#becomeFollower(message.term, fromLeader ? message.from : null);
    return true;
  }

  #stepLowerTerm(message: Message): void {
    if (message.type === "app" || message.type === "heartbeat") {
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
    if (canVote && upToDate) {
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
        this.#electionElapsed = 0;
        this.#leader = message.from;
        this.#handleAppend(message);
        return;
      case "heartbeat":
        this.#electionElapsed = 0;
        this.#leader = message.from;
        this.#handleHeartbeat(message);
        return;
      default:
        return;
    }
  }

  // ----------------------------------------------------------- replication

  #handleAppend(message: AppendMessage): void {
    const base = {
      type: "appResp",
      from: this.id,
      to: message.from,
      term: this.#term,
    } as const;
    if (message.index < this.#log.committed) {
      // Everything up to commit is known to match; say so.
      this.#send({
        ...base,
        index: this.#log.committed,
        reject: false,
        rejectHint: 0 as LogIndex,
        logTerm: 0 as Term,
      });
      return;
    }
    const lastNew = this.#log.maybeAppend(
      message.index,
      message.logTerm,
      message.commit,
      message.entries,
    );
    if (lastNew !== undefined) {
      this.#send({
        ...base,
        index: lastNew,
        reject: false,
        rejectHint: 0 as LogIndex,
        logTerm: 0 as Term,
      });
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
    this.#log.commitTo(message.commit);
    this.#send({
      type: "heartbeatResp",
      from: this.id,
      to: message.from,
      term: this.#term,
    });
  }

  #stepLeader(message: Message): void {
    const pr = this.#progress.get(message.from);
    if (pr === undefined) return;
    switch (message.type) {
      case "appResp":
        pr.recentActive = true;
        this.#handleAppendResponse(message, pr);
        return;
      case "heartbeatResp":
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === "replicate" && pr.inflights.full()) {
          pr.inflights.freeFirstOne();
        }
        if (pr.match < this.#log.lastIndex()) {
          this.#sendAppend(message.from, pr, false);
        }
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
      if (pr.maybeDecrTo(message.index, probeNext)) {
        if (pr.state === "replicate") pr.becomeProbe();
        this.#sendAppend(message.from, pr, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(message.index)) return;
    if (pr.state === "probe") pr.becomeReplicate();
    else pr.inflights.freeLE(message.index);
    if (this.#maybeCommit()) {
      this.#broadcastAppend();
    } else if (wasPaused) {
      // It may have missed a commit while paused: tell it even without entries.
      this.#sendAppend(message.from, pr, true);
    }
    // Fill the pipeline while the window allows.
    for (let i = 0; i < this.#config.maxInflightMessages; i++) {
      if (!this.#sendAppend(message.from, pr, false)) break;
    }
  }

  /** Commits the index a quorum holds, if its entry is from this term. */
  #maybeCommit(): boolean {
    const committed = majorityCommitted(
      this.#voters,
      (id) => this.#progress.get(id)?.match,
    );
    if (committed <= this.#log.committed) return false;
    const currentTerm = this.#log.term(committed) === this.#term;
    if (!currentTerm && this.#config.testingKnobs.commitPreviousTerm !== true) {
      return false;
    }
    this.#log.commitTo(committed);
    return true;
  }

  #broadcastAppend(): void {
    for (const [id, pr] of this.#progress) {
      if (id !== this.id) this.#sendAppend(id, pr, true);
    }
  }

  /** Sends entries from `pr.next`; returns whether a message went out. */
  #sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = (pr.next - 1) as LogIndex;
    const prevTerm = this.#log.term(prevIndex);
    assert(
      prevTerm !== undefined,
      `Leader has no term at ${prevIndex} for '${to}' (snapshots come later)`,
    );
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
    }
    if (this.#heartbeatElapsed >= this.#config.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      for (const [id, pr] of this.#progress) {
        if (id === this.id) continue;
        this.#send({
          type: "heartbeat",
          from: this.id,
          to: id,
          term: this.#term,
          commit: Math.min(pr.match, this.#log.committed) as LogIndex,
        });
      }
    }
  }

  /** CheckQuorum: did a quorum talk to us since the last round? Resets the marks. */
  #quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.#progress) {
      if (id === this.id) active.set(id, true);
      else if (pr.recentActive) active.set(id, true);
      pr.recentActive = id === this.id;
    }
    return majorityVoteResult(this.#voters, active) === "won";
  }

  // --------------------------------------------------------------- helpers

  #appendEntry(data: Uint8Array, type: EntryType): LogIndex {
    const index = (this.#log.lastIndex() + 1) as LogIndex;
    this.#log.append([{ term: this.#term, index, type, data }]);
    return index;
  }

  #releaseUncommitted(entries: readonly Entry[]): void {
    let bytes = 0;
    for (const entry of entries) bytes += entry.data.byteLength;
    this.#uncommittedBytes = Math.max(0, this.#uncommittedBytes - bytes);
  }

  #newProgress(id: NodeId, last: LogIndex): Progress {
    return new Progress(
      0 as LogIndex,
      (last + 1) as LogIndex,
      new Inflights(
        this.#config.maxInflightMessages,
        this.#config.maxInflightBytes,
      ),
      this.#learners.has(id),
    );
  }

  #members(): NodeId[] {
    return [...this.#voters, ...this.#learners];
  }

  #promotable(): boolean {
    return this.#voters.has(this.id);
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

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
