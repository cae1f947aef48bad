/**
 * Drives one Raft core against real storage, a peer transport and a state
 * machine: ticks on a timer, runs the ready loop (group commit: everything
 * that arrived while the previous batch was being written goes into the next
 * one, in one transaction with one fsync), answers proposals and reads.
 *
 * @module
 */
import { ProposalDroppedError } from "../raft/errors.ts";
import { RaftNode, type RaftStatus } from "../raft/raft_node.ts";
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";
import type {
  ConfChange,
  Entry,
  HardState,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  RandomSource,
  Ready,
  Snapshot,
} from "../raft/types.ts";
import type { LogStore } from "../storage/log_store.ts";
import type { PeerTransport } from "../transport/types.ts";
import type { PeerResult } from "../protocol/envelope.ts";
import { type LogWriter, SyncLogWriter } from "../storage/log_writer.ts";
import { PeerRpcRouter } from "../transport/peer_rpc.ts";
import {
  ProposalOutcomeUnknownError,
  Proposer,
  type RequestOptions,
  RequestTimeoutError,
} from "./proposer.ts";
import {
  newRunnerMetrics,
  PeerTiming,
  type RunnerMetrics,
} from "./runner_metrics.ts";
import { systemClock, systemScheduler } from "./system_clock.ts";
import { StageRecorder } from "./write_stages.ts";

/**
 * What the runner applies committed entries to. Results are structured:
 * the runner hands them to the local proposer as they are and encodes one
 * only to answer a proposal forwarded from another node.
 */
export interface ReplicatedStateMachine<R = unknown> {
  /** The last applied index, as durable in the machine's own store. */
  appliedIndex(): LogIndex;
  /** Applies one committed entry (any type) and returns its result. */
  apply(entry: Entry): R;
  /** Encodes a result for the answer to a forwarded proposal. */
  encodeResult(result: R): Uint8Array;
  /**
   * Decodes a forwarded proposal's answer.
   *
   * @throws {TypeError} When the bytes are not a result.
   */
  decodeResult(bytes: Uint8Array): R;
  /** Serializes the state at `appliedIndex()` for a Raft snapshot. */
  snapshotData(): Uint8Array;
  /** Replaces the whole state with a snapshot's data, atomically. */
  installSnapshot(snapshot: Snapshot): void;
  /** Makes everything applied so far durable (before the log is compacted). */
  sync(): void;
  /** Runs `work` (several applies) as one durable unit; optional. */
  batch?<T>(work: () => T): T;
  /**
   * Refuses, before it is proposed, what apply would treat as an invariant
   * violation (bytes that are no entry of a registered service); optional.
   *
   * @throws {RangeError} When `data` must not enter the log.
   */
  checkProposal?(data: Uint8Array): void;
}

/** Options of {@linkcode RaftRunner}. */
export interface RaftRunnerOptions<R = unknown> {
  readonly id: NodeId;
  /** Voters of a new cluster; ignored once the log holds a configuration. */
  readonly voters: readonly NodeId[];
  /** Read once at start (hard state, snapshot metadata, entries). */
  readonly logStore: LogStore;
  /** Where the ready loop writes. Default: `logStore` on this thread. */
  readonly logWriter?: LogWriter;
  readonly stateMachine: ReplicatedStateMachine<R>;
  readonly transport: PeerTransport;
  /** Milliseconds per Raft tick. Default 50 (election timeout 0.5–1 s), as a node's. */
  readonly tickMs?: number;
  /** Ticks before an election. Default 10. */
  readonly electionTicks?: number;
  /** Milliseconds a proposal or read may take end to end. Default 5000. */
  readonly requestTimeoutMs?: number;
  /**
   * Entries past the last snapshot that trigger a new one; past a 4 MiB
   * snapshot, once they also hold at least half as many bytes as its part
   * above 4 MiB (a snapshot encodes the whole state: so its total cost stays
   * linear in the state instead of growing with it at every period).
   * Default 10,000.
   */
  readonly snapshotEntries?: number;
  /** "lease" serves strong reads from the leader lease. Default "safe". */
  readonly readOnly?: "safe" | "lease";
  /** Largest clock and timer rate error the lease allows for (fraction). Default 0.1. */
  readonly clockDrift?: number;
  /** Delay margin subtracted from the lease, in ms. Default 10. */
  readonly maxDelayMs?: number;
  /** Randomness for election timeouts. Default `Math.random`. */
  readonly random?: RandomSource;
  /** Where notable events are reported. Default: nowhere. */
  readonly log?: (event: string, detail?: Record<string, unknown>) => void;
  /** Time source for ticks, leases, deadlines and metrics. Default: the system clock. */
  readonly clock?: Clock;
  /**
   * Timers for ticks, deadlines and the ready loop's wake. Default: the
   * system timers, with the zero-delay wake on a MessageChannel (a nested
   * zero setTimeout is clamped to 4 ms).
   */
  readonly scheduler?: Scheduler;
  /**
   * Identity of this process in read contexts (must differ from every
   * earlier incarnation's). Default: 8 random bytes as hex.
   */
  readonly incarnation?: string;
  /** Core settings beyond the ones above (flow control, planted bugs for the simulator). */
  readonly raft?: Partial<
    Pick<
      RaftConfig,
      | "heartbeatTicks"
      | "maxMessageBytes"
      | "maxInflightMessages"
      | "maxUncommittedBytes"
      | "snapshotChunkBytes"
      | "snapshotKeepBytes"
      | "testingKnobs"
    >
  >;
  /**
   * Called after every input to the core and every handled Ready (the
   * simulator checks its invariants here). Default: nothing.
   */
  readonly observe?: (core: RaftNode) => void;
  /** Planted bugs of the runner, for the simulator (never set in production). */
  readonly testingKnobs?: RunnerTestingKnobs;
}

/** Planted bugs of {@linkcode RaftRunner}: each makes it wrong on purpose. */
export interface RunnerTestingKnobs {
  /**
   * Restart with the durable commit index as it is, below a state that
   * applied further: the snapshot taken at start is labelled below the
   * state it holds (sim seed 644).
   */
  readonly snapshotBelowState?: boolean;
}

/**
 * A snapshot waits until the entries since the last one hold at least this
 * fraction of its bytes: total snapshot work stays a few times the state.
 */
const SNAPSHOT_LOG_RATIO = 0.5;
/** Snapshots smaller than this follow `snapshotEntries` alone. */
const SNAPSHOT_RATIO_FLOOR_BYTES = 4 * 1024 * 1024;

/**
 * The hard state a restarting core starts from: the stored one, its commit
 * index raised to the state's applied index when the log holds that entry.
 *
 * Why this is safe: the state machine only ever applied entries the core
 * handed out as committed (or a leader's snapshot, which holds committed
 * entries only), so every entry up to `applied` is committed in the
 * cluster. The core hands out only entries already durable in the log, and
 * a committed entry is never overwritten (Log Matching, Leader
 * Completeness): the log's entries up to `applied` are the ones the state
 * applied. The durable commit index can lag behind because a write that
 * only moves it is not synced (see #handleReady): Raft lets a node forget
 * its commit index, and raising it to an index known committed is what
 * hearing it from the leader again would do. Capped at the log's last
 * index: a dropped corrupt tail may have held entries the state applied
 * (the store keeps only what is at or below its durable commit index);
 * such a tail's recovery bound is past the log's end, so this never
 * reaches it, and an older bound it reaches is truly committed through,
 * which is the condition that bound waits for. (With the simulator's
 * planted bug `apply-uncommitted` the premise is false on purpose.)
 *
 * @param stored The stored hard state.
 * @param applied The state machine's applied index.
 * @param lastIndex The log's last index (its snapshot's when empty).
 * @returns The hard state to give the core.
 */
export function restoredHardState(
  stored: HardState,
  applied: LogIndex,
  lastIndex: LogIndex,
): HardState {
  const commit = Math.max(stored.commit, Math.min(applied, lastIndex));
  return commit === stored.commit
    ? stored
    : { ...stored, commit: commit as LogIndex };
}

export { ProposalOutcomeUnknownError, RequestTimeoutError };
export type { RequestOptions, RunnerMetrics };

/** Runs one Raft node: the driver loop (ticks, the ready loop, apply). */
export class RaftRunner<R = unknown> {
  readonly id: NodeId;
  readonly #options:
    & Required<
      Omit<
        RaftRunnerOptions<R>,
        | "log"
        | "random"
        | "logWriter"
        | "clock"
        | "scheduler"
        | "incarnation"
        | "raft"
        | "observe"
        | "testingKnobs"
      >
    >
    & Pick<RaftRunnerOptions<R>, "log" | "observe">;
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  readonly #writer: LogWriter;
  /** The ready loop in progress, if any (one at a time). */
  #processing: Promise<void> | null = null;
  readonly #node: RaftNode;
  readonly #proposer: Proposer;
  readonly #router = new PeerRpcRouter();
  readonly #appliedListeners = new Set<(index: LogIndex) => void>();
  /** With the system scheduler: posting here runs the ready loop as a macrotask (see #schedule). */
  readonly #wake: MessageChannel | null;
  /** The term when the previous Ready was handled. */
  #lastReadyTerm = -1;
  #tickTimer: Scheduled | undefined;
  /** A snapshot was asked for ({@linkcode RaftRunner.requestSnapshot}). */
  #snapshotRequested = false;
  /**
   * Set at start when the state applied entries the log lost: no snapshot
   * until Raft's applied index reaches the state's, then one at once.
   */
  #stateAheadOfLog = false;
  /** When the previous tick ran (monotonic ms), to report event-loop stalls. */
  #lastTickAt: number | null = null;
  #scheduled = false;
  #running = false;
  #stopped = false;
  /** Set when storage failed: the node stops accepting writes. */
  #storageError: Error | null = null;
  readonly metrics: RunnerMetrics = newRunnerMetrics();
  /** Where each request's time goes, stage by stage (always on). */
  readonly stages: StageRecorder = new StageRecorder();
  /** The hard state last written with a sync (term and vote must be durable). */
  #syncedHardState: HardState;
  /** Entry bytes applied since the last snapshot, and that snapshot's size. */
  #bytesSinceSnapshot = 0;
  #lastSnapshotBytes = 0;
  /** A Ready's write is in flight (entries committed meanwhile may apply at once). */
  #writing = false;
  /** The commit index last reported to {@linkcode RaftRunner.stages}. */
  #commitSeen: LogIndex = 0 as LogIndex;
  readonly #timing = new PeerTiming(this.metrics);

  constructor(options: RaftRunnerOptions<R>) {
    this.id = options.id;
    this.#options = {
      tickMs: 50,
      electionTicks: 10,
      requestTimeoutMs: 5000,
      snapshotEntries: 10_000,
      readOnly: "safe",
      clockDrift: 0.1,
      maxDelayMs: 10,
      ...options,
    };
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#wake = options.scheduler === undefined ? new MessageChannel() : null;
    const incarnation = options.incarnation ?? Array.from(
      // Random per process: read contexts of this incarnation never match
      // those of an earlier one (the counter restarts at 1).
      crypto.getRandomValues(new Uint8Array(8)),
      (byte) => byte.toString(16).padStart(2, "0"),
    ).join("");
    this.#writer = options.logWriter ?? new SyncLogWriter(options.logStore);
    const store = options.logStore;
    this.#syncedHardState = store.hardState();
    const meta = store.snapshotMeta();
    const applied = options.stateMachine.appliedIndex();
    if (applied < meta.index) {
      throw new Error(
        `Cannot start node '${options.id}' as its state (applied ${applied}) is behind its log's snapshot (${meta.index})`,
      );
    }
    const knobs = options.testingKnobs ?? {};
    const hardState = knobs.snapshotBelowState === true
      ? store.hardState()
      : restoredHardState(store.hardState(), applied, store.lastIndex());
    const entries = store.lastIndex() > meta.index
      ? store.entries(
        (meta.index + 1) as LogIndex,
        (store.lastIndex() + 1) as LogIndex,
        Infinity,
      )
      : [];
    const random = options.random ??
      { nextInt: (bound: number) => Math.floor(Math.random() * bound) };
    this.#node = new RaftNode(
      {
        id: options.id,
        voters: options.voters,
        electionTicks: this.#options.electionTicks,
        heartbeatTicks: 1,
        readOnly: this.#options.readOnly,
        tickMs: this.#options.tickMs,
        clockDrift: this.#options.clockDrift,
        maxDelayMs: this.#options.maxDelayMs,
        random,
        ...options.raft,
      },
      {
        hardState,
        // The data is the state at `applied`: replaced right below (or
        // dropped, after a lost tail) when that is past the log's snapshot.
        snapshot: meta.index > 0
          ? { meta, data: options.stateMachine.snapshotData() }
          : null,
        entries,
        applied: Math.min(
          applied,
          Math.max(hardState.commit, meta.index),
        ) as LogIndex,
        recover: store.recoveryBound(),
      },
    );
    const status = this.#node.status();
    if (status.applied === applied || knobs.snapshotBelowState === true) {
      // Make the Raft snapshot describe exactly the state we can send: the
      // data is the state at `applied`, so only a snapshot labelled
      // `applied` does.
      if (status.applied > meta.index) {
        this.#node.takeSnapshot(
          status.applied,
          options.stateMachine.snapshotData(),
        );
      }
    } else {
      // The log lost a tail the state had applied (a corrupt tail dropped
      // at open: its last entries are not here to label a snapshot with).
      // Raft's applied index reaches the state's once the leader sends
      // them again (they apply as no-ops, see #applyEntry); the snapshot
      // is retaken there (#maybeSnapshot), and none is taken below it.
      // Meanwhile the restored snapshot's data (the state at `applied`,
      // not at its label) is dropped: a transfer waits for the new one.
      this.#node.dropSnapshotData();
      this.#stateAheadOfLog = true;
    }
    this.#proposer = new Proposer({
      id: options.id,
      core: this.#node,
      clock: this.#clock,
      scheduler: this.#scheduler,
      transport: options.transport,
      requestTimeoutMs: this.#options.requestTimeoutMs,
      incarnation,
      schedule: () => this.#schedule(),
      observed: () => this.#observed(),
      proposed: (index) => {
        this.metrics.proposals++;
        this.stages.proposed(index, this.#clock.monotonicMs());
      },
      stages: this.stages,
      appliedIndex: () => options.stateMachine.appliedIndex(),
      checkWritable: () => this.#checkWritable(),
      decodeResult: (bytes) => options.stateMachine.decodeResult(bytes),
    });
    if (this.#wake !== null) {
      this.#wake.port1.onmessage = () => this.#woken();
    }
    options.transport.onMessage((message) => this.#onMessage(message));
    this.#router.handle(
      "forwardProposal",
      (request, from) => this.#onForwardedProposal(request.data, from),
    );
    this.#router.attach(options.transport);
  }

  /** Starts ticking and processing. */
  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#tickTimer = this.#scheduler.every(this.#options.tickMs, () => {
      // The lease is timed by this monotonic clock, read at every input: a
      // stalled event loop gets one late tick here, not the ones it missed.
      const now = this.#clock.monotonicMs();
      const last = this.#lastTickAt;
      this.#lastTickAt = now;
      // Missed ticks are not replayed; a stall of half an election timeout
      // is worth telling the operator (a lease held meanwhile may have
      // lapsed, which the clock check above catches).
      const stallMs = this.#options.tickMs * this.#options.electionTicks / 2;
      if (last !== null && now - last > stallMs) {
        this.#options.log?.("event-loop-stalled", {
          ms: Math.round(now - last),
        });
      }
      this.#node.tick(now);
      this.#observed();
      this.#proposer.sweepDeadlines(now);
      this.#schedule();
    });
    this.#schedule();
  }

  /** Stops ticking; pending requests fail with an unavailable error. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#running = false;
    this.#tickTimer?.cancel();
    this.#wake?.port1.close();
    this.#wake?.port2.close();
    // Let the batch being written finish (its entries may be acknowledged),
    // but never hang a shutdown on a stuck disk.
    let timer: Scheduled | undefined;
    await Promise.race([
      this.#processing,
      new Promise((resolve) =>
        timer = this.#scheduler.after(5000, () => resolve(undefined))
      ),
    ]);
    timer?.cancel();
    this.#proposer.failProposals(
      "Node stopped before the proposal's outcome was known",
    );
    this.#proposer.failReads("Node stopped before the read was confirmed");
    await this.#options.transport.close();
  }

  /** The Raft core's status. */
  status(): RaftStatus {
    return this.#node.status();
  }

  /**
   * Whether `peer` was heard from within an election timeout, and how long
   * ago (ms; null when never).
   */
  peerContact(
    peer: NodeId,
  ): { reachable: boolean; lastContactMs: number | null } {
    return this.#timing.contact(
      peer,
      this.#clock.monotonicMs(),
      this.#options.tickMs * this.#options.electionTicks,
    );
  }

  /** True once `stop()` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** The storage failure that stopped writes, if any. */
  storageError(): Error | null {
    return this.#storageError;
  }

  /** Calls `listener` after each batch of applied entries. Returns an unsubscribe function. */
  onApplied(listener: (index: LogIndex) => void): () => void {
    this.#appliedListeners.add(listener);
    return () => this.#appliedListeners.delete(listener);
  }

  /**
   * Proposes `data` on the leader (forwarding from a follower) and resolves
   * with the state machine's result once the entry is applied. One deadline
   * (`requestTimeoutMs`) covers waiting for a leader, forwarding and
   * applying; `options.signal` ends the wait early.
   *
   * @throws {ProposalDroppedError} When nothing was appended (safe to retry).
   * @throws {ProposalOutcomeUnknownError} When the outcome is unknown.
   */
  async propose(data: Uint8Array, options?: RequestOptions): Promise<R> {
    this.#options.stateMachine.checkProposal?.(data);
    return await this.#proposer.propose(data, options) as R;
  }

  /** Proposes on this node, which must lead. */
  async proposeLocal(data: Uint8Array, options?: RequestOptions): Promise<R> {
    this.#options.stateMachine.checkProposal?.(data);
    return await this.#proposer.proposeLocal(
      data,
      undefined,
      options?.signal,
    ) as R;
  }

  /** Proposes a membership change on the leader. */
  proposeConfChange(change: ConfChange): LogIndex {
    const index = this.#node.proposeConfChange(change);
    this.#observed();
    this.#schedule();
    return index;
  }

  /** Transfers leadership (on the leader). */
  transferLeader(target: NodeId): void {
    this.#node.transferLeader(target);
    this.#observed();
    this.#schedule();
  }

  /** Starts an election now, whatever the election timer says (tests, the simulator). */
  campaign(): void {
    this.#node.campaign();
    this.#observed();
    this.#schedule();
  }

  /**
   * Takes a snapshot of the applied state at the end of the next ready
   * loop, whatever `snapshotEntries` says (the simulator's nemesis).
   */
  requestSnapshot(): void {
    this.#snapshotRequested = true;
    this.#schedule();
  }

  /** The Raft core, read-only use: the simulator reads its status and log. */
  get core(): RaftNode {
    return this.#node;
  }

  /**
   * Waits until this node's state reflects everything committed before the
   * call (ReadIndex), then resolves with that index.
   *
   * @throws {ProposalDroppedError} Without a leader.
   * @throws {RequestTimeoutError} When no quorum confirmed in time.
   */
  readIndex(options?: RequestOptions): Promise<LogIndex> {
    return this.#proposer.readIndex(options);
  }

  // ------------------------------------------------------------ internals

  #checkWritable(): void {
    if (this.#stopped) {
      throw new ProposalDroppedError(
        "noLeader",
        `Node '${this.id}' is stopped`,
      );
    }
    if (this.#storageError !== null) {
      throw new ProposalDroppedError(
        "noLeader",
        `Node '${this.id}' stopped writing: ${this.#storageError.message}`,
      );
    }
  }

  async #onForwardedProposal(
    data: Uint8Array,
    from: NodeId,
  ): Promise<PeerResult> {
    try {
      // A follower passes the proposal on to its leader (a peer that cannot
      // reach the leader yet, e.g. one whose address changed, asks anyone),
      // but never back to the node it came from: two stale views would bounce it.
      const leader = this.#node.knownLeader;
      const forwardOn = leader !== null && leader !== this.id &&
        leader !== from;
      // Bytes from another process: what apply would stop on never enters the log.
      if (!forwardOn) this.#options.stateMachine.checkProposal?.(data);
      const answer = forwardOn
        ? await this.#proposer.forward(leader, data)
        : this.#options.stateMachine.encodeResult(
          await this.#proposer.proposeLocal(data) as R,
        );
      return { ok: true, data: answer };
    } catch (error) {
      const leader = this.#node.knownLeader;
      const code = error instanceof ProposalDroppedError
        ? "dropped"
        : error instanceof RangeError
        ? "invalid"
        : "unknown";
      return { ok: false, code, message: (error as Error).message, leader };
    }
  }

  #onMessage(message: Message): void {
    if (this.#stopped) return;
    const now = this.#clock.monotonicMs();
    this.#timing.received(message, now);
    this.#node.step(message, now);
    if (message.type === "appResp" && !message.reject) {
      this.stages.acknowledged(message.from, message.index, now);
    }
    this.#noteCommit(now);
    this.#observed();
    this.#applyCommittedNow();
    this.#serveReadsNow();
    this.#schedule();
  }

  /**
   * While a ready loop is busy (a write in flight), serves the reads the
   * core confirmed meanwhile instead of after that write.
   */
  #serveReadsNow(): void {
    if (this.#processing === null || this.#stopped) return;
    for (const state of this.#node.takeReadStates()) {
      this.#proposer.readConfirmed(state.index, state.context);
    }
  }

  /** Tells the stage recorder when the commit index moved. */
  #noteCommit(now: number): void {
    const commit = this.#node.commitIndex;
    if (commit === this.#commitSeen) return;
    this.#commitSeen = commit;
    this.stages.committed(commit, now);
  }

  /** Runs the ready loop soon, once, letting pending I/O callbacks queue up first. */
  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    // A macrotask, so requests that arrived meanwhile join the next batch
    // (group commit), but not setTimeout: nested zero timeouts are clamped to
    // 4 ms, which measured as most of a single write's latency.
    if (this.#wake !== null) this.#wake.port2.postMessage(null);
    else this.#scheduler.after(0, () => this.#woken());
  }

  #woken(): void {
    this.#scheduled = false;
    // Reads queued since the last wake share one read context.
    this.#proposer.flushReads();
    this.#serveReadsNow();
    this.#processReady();
  }

  #observed(): void {
    this.#options.observe?.(this.#node);
  }

  #processReady(): void {
    if (
      this.#processing !== null || this.#stopped || this.#storageError !== null
    ) return;
    this.#processing = this.#runReadyLoop().finally(() => {
      this.#processing = null;
      if (this.#node.hasReady()) this.#schedule();
    });
  }

  async #runReadyLoop(): Promise<void> {
    try {
      while (this.#node.hasReady() && !this.#stopped) {
        const ready = this.#node.ready();
        await this.#handleReady(ready);
        this.#node.advance();
        this.#noteCommit(this.#clock.monotonicMs());
        this.#observed();
        this.metrics.readyBatches++;
      }
      await this.#maybeSnapshot();
    } catch (error) {
      this.#failStorage(error as Error);
    }
  }

  async #handleReady(ready: Ready): Promise<void> {
    const { stateMachine } = this.#options;
    const proposer = this.#proposer;
    // A leader that stays leader may send before its own write (Raft §10.2.1):
    // it counts itself only once durable.
    const node = this.#node;
    const term = node.currentTerm;
    if (ready.softState !== null) {
      proposer.leaderChanged(ready.softState.leader);
    }
    if (ready.softState !== null || ready.hardState !== null) {
      proposer.failUnconfirmedReads(node.knownLeader, term);
    }
    const sendFirst = ready.softState === null && node.isLeader &&
      term === this.#lastReadyTerm;
    this.#lastReadyTerm = term;
    if (sendFirst) { for (const m of ready.messages) this.#send(m); }
    if (ready.snapshot !== null) {
      stateMachine.installSnapshot(ready.snapshot);
      stateMachine.sync();
      this.#lastSnapshotBytes = ready.snapshot.data.byteLength;
      this.#bytesSinceSnapshot = 0;
      await this.#writer.compact(ready.snapshot.meta);
      this.metrics.snapshotsInstalled++;
    }
    const hardState = ready.hardState;
    let saving: Promise<void> | null = null;
    if (
      ready.entries.length === 0 && hardState !== null &&
      hardState.term === this.#syncedHardState.term &&
      hardState.vote === this.#syncedHardState.vote
    ) {
      // Only the commit index moved: Raft may forget it (it is relearned
      // from the leader), so apply does not wait for this write, and the
      // store need not sync it (etcd's MustSync rule). The writer keeps
      // the order: the next synced write makes it durable.
      this.#writer.save({ hardState, sync: false }).catch((error) =>
        this.#failStorage(error as Error)
      );
    } else if (ready.entries.length > 0 || hardState !== null) {
      // Everything proposed while the previous batch was written is in this one.
      saving = this.#save(ready);
      // Awaited below; an apply that throws first must not leave it unhandled.
      saving.catch(() => {});
    }
    // Committed entries are durable here already (the core hands out none
    // past its stable index), so they apply while the new ones are being
    // written; entries committed meanwhile apply as the commit index moves
    // (#applyCommittedNow), not after this write.
    this.#applyBatch(ready.committedEntries);
    for (const state of ready.readStates) {
      proposer.readConfirmed(state.index, state.context);
    }
    // After this batch's entries resolved their waiters: a node that lost
    // leadership fails the rest now (outcome unknown; the session makes the
    // retry safe) instead of at the request deadline.
    if (ready.softState !== null && ready.softState.role !== "leader") {
      this.stages.clear();
      proposer.failProposals(
        "Proposal at index {index} has no known outcome: this node lost leadership",
      );
    }
    const applied = ready.committedEntries.at(-1)?.index ??
      ready.snapshot?.meta.index;
    if (applied !== undefined) {
      proposer.releaseReads(applied);
      for (const listener of this.#appliedListeners) listener(applied);
    }
    // Acknowledgements and votes leave only once what they promise is durable.
    if (saving !== null) {
      this.#writing = true;
      try {
        await saving;
      } finally {
        this.#writing = false;
      }
    }
    if (!sendFirst) { for (const m of ready.messages) this.#send(m); }
  }

  /**
   * Applies committed entries in one state-store transaction (not one per
   * entry) and settles their waiters.
   */
  #applyBatch(entries: readonly Entry[]): void {
    const last = entries.at(-1)?.index;
    if (last === undefined) return;
    const { stateMachine } = this.#options;
    const started = this.#clock.monotonicMs();
    const applyAll = () => {
      for (const entry of entries) this.#applyEntry(entry);
    };
    if (stateMachine.batch !== undefined && entries.length > 1) {
      stateMachine.batch(applyAll);
    } else applyAll();
    this.stages.applied(last, started, this.#clock.monotonicMs());
  }

  /**
   * While a Ready's write is in flight, applies what became committed
   * since (a follower's acknowledgement on the leader, the leader's commit
   * index on a follower) instead of waiting for that write to finish.
   */
  #applyCommittedNow(): void {
    if (!this.#writing || this.#stopped || this.#storageError !== null) return;
    const entries = this.#node.takeCommittedEntries();
    const last = entries.at(-1)?.index;
    if (last === undefined) return;
    try {
      this.#applyBatch(entries);
    } catch (error) {
      this.#failStorage(error as Error);
      return;
    }
    this.#node.appliedTo(last);
    this.#observed();
    this.#proposer.releaseReads(last);
    for (const listener of this.#appliedListeners) listener(last);
  }

  /** Writes the Ready's entries and hard state with a sync, timing it. */
  async #save(ready: Ready): Promise<void> {
    const started = this.#clock.monotonicMs();
    const last = ready.entries.at(-1)?.index;
    if (last !== undefined) this.stages.handed(last, started);
    await this.#writer.save({
      ...(ready.hardState !== null ? { hardState: ready.hardState } : {}),
      ...(ready.entries.length > 0 ? { entries: ready.entries } : {}),
    });
    const saved = this.#clock.monotonicMs();
    this.metrics.saveMs.observe(saved - started);
    if (ready.hardState !== null) this.#syncedHardState = ready.hardState;
    if (last !== undefined) this.stages.durable(last, saved);
    this.metrics.entriesPersisted += ready.entries.length;
  }

  #send(message: Message): void {
    const now = this.#clock.monotonicMs();
    this.#timing.sent(message, now);
    if (message.type === "app" && message.entries.length > 0) {
      this.stages.sent(message.to, message.entries.at(-1)!.index, now);
    }
    this.#options.transport.send(message.to, message);
  }

  #applyEntry(entry: Entry): void {
    const { stateMachine } = this.#options;
    // Entries at or below the state's applied index were applied before a
    // restart (no proposal waits on them).
    const result = entry.index > stateMachine.appliedIndex()
      ? stateMachine.apply(entry)
      : undefined;
    this.metrics.entriesApplied++;
    this.#bytesSinceSnapshot += entry.data.byteLength;
    this.#proposer.applied(entry, () => result);
  }

  async #maybeSnapshot(): Promise<void> {
    const status = this.#node.status();
    // A transfer may need the snapshot's data back (dropped from memory).
    const wanted = this.#node.snapshotWanted;
    const { stateMachine } = this.#options;
    if (status.applied < stateMachine.appliedIndex()) {
      // Only after a restart with the state ahead of the log: a snapshot
      // here would be labelled below the state it holds.
      return;
    }
    const requested = this.#snapshotRequested || wanted ||
      this.#stateAheadOfLog;
    this.#snapshotRequested = false;
    this.#stateAheadOfLog = false;
    if (
      (status.applied <= status.snapshotIndex && !wanted) ||
      (!requested &&
        (status.applied - status.snapshotIndex <
            this.#options.snapshotEntries ||
          this.#bytesSinceSnapshot <
            (this.#lastSnapshotBytes - SNAPSHOT_RATIO_FLOOR_BYTES) *
              SNAPSHOT_LOG_RATIO))
    ) {
      return;
    }
    // The state must be durable before the log that could rebuild it goes.
    stateMachine.sync();
    const snapshot = this.#node.takeSnapshot(
      status.applied,
      stateMachine.snapshotData(),
    );
    this.#observed();
    this.#lastSnapshotBytes = snapshot.data.byteLength;
    this.#bytesSinceSnapshot = 0;
    // The writer owns the log: a real node closes `logStore` once started.
    await this.#writer.compact(snapshot.meta);
    this.metrics.snapshotsTaken++;
    this.#options.log?.("snapshot", {
      index: snapshot.meta.index,
      bytes: snapshot.data.byteLength,
    });
  }

  #failStorage(error: Error): void {
    this.#storageError = error;
    this.#options.log?.("storage-failed", { message: error.message });
    this.#proposer.failProposals(`Storage failed: ${error.message}`);
  }
}
