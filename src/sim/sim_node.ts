/**
 * One simulated server: a Raft core, its durable storage (which keeps only
 * what an fsync completed, plus the last snapshot), its replicated state
 * machine, and the Ready loop that ties them together in the order the core's
 * contract demands: install the snapshot and persist, then send, then apply,
 * then advance; ReadIndex answers are served from the local state machine
 * once it has applied their index.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { AssertionError } from "../base/assert.ts";
import { ConfChangeError, decodeConfState } from "../raft/confchange.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import { RaftNode } from "../raft/raft_node.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  ReadState,
  Ready,
  RecoveryBound,
  Role,
  Snapshot,
  Term,
} from "../raft/types.ts";
import type { EventQueue } from "./event_queue.ts";
import { COMPACTED, type InvariantChecker, type TermAt } from "./invariants.ts";
import {
  commandId,
  decodeCommand,
  type KvCommand,
} from "./kv_state_machine.ts";
import type { KvOutput } from "./lincheck.ts";
import type { SeededRandom } from "./random.ts";
import type { Replica } from "./replica.ts";

/** What a node needs from the simulation around it. */
export interface NodeEnvironment {
  readonly queue: EventQueue;
  readonly checker: InvariantChecker;
  send(message: Message): void;
  /** Called for every normal entry the node applies (blank ones with nulls). */
  applied(
    node: SimNode,
    entry: Entry,
    command: KvCommand | null,
    output: KvOutput | null,
  ): void;
  /** A read confirmed for `context` may now be served from this node's state. */
  readReady(node: SimNode, context: Uint8Array): void;
  /** Called when a node becomes leader. */
  leaderElected(node: SimNode): void;
  /** Called when a node starts campaigning (becomes a pre-candidate or candidate). */
  campaigned(node: SimNode): void;
  /** Called when a leader advances its commit index for the first time in its term. */
  leaderFirstCommit(node: SimNode): void;
  /** A fresh, empty replicated state machine. */
  newReplica(): Replica;
  /** Compact the log once this many entries were applied since the last snapshot (0: never). */
  readonly autoCompactEntries: number;
  readonly trace: ((line: string) => void) | null;
}

/** Messages held for a paused node, at most. */
const inboxMessagesMax = 10_000;
/** Client reads queued at a paused or stalled node (in its socket), at most. */
const queuedReadsMax = 1_000;
/** Probability a snapshot stalls the process (it blocks the main thread). */
const snapshotStallProbability = 0.3;
/** Read states waiting for their index to be applied, at most. */
const readStatesMax = 1_000;
/** Without cheap hashing, replicas are compared every this many indexes. */
const hashIntervalEntries = 8;

const EMPTY_HARD_STATE: HardState = {
  term: 0 as Term,
  vote: null,
  commit: 0 as LogIndex,
};

/** A snapshot's data: the replica's state and the command ids it applied. */
interface SnapshotData {
  readonly state: Uint8Array;
  readonly commands: string[];
}

/** True when two configurations have the same voters, outgoing voters and learners. */
export function sameConf(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly NodeId[], y: readonly NodeId[]) =>
    x.length === y.length && [...x].sort().join() === [...y].sort().join();
  return same(a.voters, b.voters) &&
    same(a.votersOutgoing, b.votersOutgoing) && same(a.learners, b.learners);
}

/** Short text of a configuration for traces and violations. */
export function describeConf(conf: ConfState): string {
  const outgoing = conf.votersOutgoing.length > 0
    ? ` & ${conf.votersOutgoing.join(",")}`
    : "";
  const learners = conf.learners.length > 0
    ? ` learners ${conf.learners.join(",")}`
    : "";
  return `voters ${conf.voters.join(",")}${outgoing}${learners}`;
}

/** A simulated server process and its disk. */
export class SimNode {
  readonly id: string;
  readonly #config: RaftConfig;
  readonly #environment: NodeEnvironment;
  readonly #disk: SeededRandom;
  raft: RaftNode | null = null;
  /** True while the process does not run: paused by the nemesis, or stalled. */
  paused = false;
  incarnation = 0;
  #pausedByNemesis = false;
  #stalled = false;
  /** Simulated ms per tick of this node's clock, at the nominal rate. */
  readonly #nominalTickMs: number;
  #tickPeriodMs: number;
  /** This node's monotonic clock at `#clockSetAt` (simulated ms). */
  #clockBase = 0;
  #clockSetAt = 0;
  /** Durable snapshot: the log before it is compacted away. */
  durableSnapshot: Snapshot | null = null;
  /** Durable log after the snapshot: entry i has index i + 1 + durableOffset. */
  durableEntries: Entry[] = [];
  durableHardState: HardState = EMPTY_HARD_STATE;
  /** Durable recovery bound after a lost tail (the SQLite store's "recover" row). */
  durableRecover: RecoveryBound | null = null;
  replica: Replica;
  /** Index of the last entry the replica applied (or the snapshot's). */
  appliedIndex = 0 as LogIndex;
  /** Command ids applied by this process (rebuilt after a restart). */
  appliedCommands = new Set<string>();
  /** Snapshots received from a leader and installed, for reports. */
  snapshotsInstalled = 0;
  /** Client reads that queued while the process did not run, for reports. */
  readsQueued = 0;
  #pending: Ready | null = null;
  #pendingSynced = false;
  #inbox: Message[] = [];
  /** Reads that arrived while the process did not run, delivered first on resume. */
  #queuedReads: Uint8Array[] = [];
  #readStates: ReadState[] = [];
  #role: Role = "follower";
  #term = 0 as Term;
  #commitSeen = 0 as LogIndex;
  #snapshotSeen = 0 as LogIndex;
  #firstCommitTerm = -1;

  constructor(
    config: RaftConfig,
    environment: NodeEnvironment,
    disk: SeededRandom,
    tickPeriodMs: number,
  ) {
    this.id = config.id;
    this.#config = config;
    this.#environment = environment;
    this.#disk = disk;
    this.#nominalTickMs = tickPeriodMs;
    this.#tickPeriodMs = tickPeriodMs;
    this.replica = environment.newReplica();
  }

  /**
   * Simulated ms per tick of this node's clock (skew changes it). The
   * node's monotonic clock runs at the same rate: nominal tick / period.
   */
  get tickPeriodMs(): number {
    return this.#tickPeriodMs;
  }

  set tickPeriodMs(period: number) {
    this.#clockBase = this.clockMs();
    this.#clockSetAt = this.#environment.queue.now;
    this.#tickPeriodMs = period;
  }

  /** This node's monotonic clock now: it runs on while the process is paused or stalled. */
  clockMs(): number {
    const elapsed = this.#environment.queue.now - this.#clockSetAt;
    return this.#clockBase +
      (elapsed * this.#nominalTickMs) / this.#tickPeriodMs;
  }

  /** True when the process runs (paused or not): its socket accepts requests. */
  get acceptsRequests(): boolean {
    return this.raft !== null;
  }

  /** True when the process runs and is not paused. */
  get available(): boolean {
    return this.raft !== null && !this.paused;
  }

  /** True while a Ready waits for its fsync. */
  get syncing(): boolean {
    return this.#pending !== null;
  }

  /** Index of the durable snapshot (0 without one). */
  get durableOffset(): number {
    return this.durableSnapshot?.meta.index ?? 0;
  }

  /** Starts (or restarts) the process from what is durable. */
  start(): void {
    const hardState = this.durableHardState;
    const snapshot = this.durableSnapshot;
    this.#environment.checker.observeStart(this.id, hardState);
    this.replica = this.#environment.newReplica();
    this.appliedCommands = new Set();
    this.appliedIndex = 0 as LogIndex;
    this.#readStates = [];
    this.#queuedReads = [];
    if (snapshot !== null) this.#restore(snapshot, "restart");
    this.#role = "follower";
    this.#term = hardState.term;
    this.#commitSeen = this.appliedIndex;
    this.#snapshotSeen = 0 as LogIndex;
    this.#guard(() => {
      this.raft = new RaftNode(this.#config, {
        hardState,
        snapshot,
        entries: [...this.durableEntries],
        applied: this.appliedIndex,
        recover: this.durableRecover,
      });
    });
    this.#afterStep();
  }

  /** Kills the process: the unsynced Ready and everything in memory is lost. */
  crash(): void {
    this.#environment.checker.observeRole(
      this.id,
      "follower",
      this.#term,
      () => undefined,
    );
    this.raft = null;
    this.paused = false;
    this.#pausedByNemesis = false;
    this.#stalled = false;
    this.#pending = null;
    this.#pendingSynced = false;
    this.#inbox = [];
    this.#queuedReads = [];
    this.#readStates = [];
    this.incarnation++;
  }

  /**
   * While the process is down: up to `count` durable entries after the
   * durable commit index fail their checksum, so the store drops them at the
   * next start and keeps the lost tail's end as its recovery bound, as
   * `SqliteLogStore` does. Returns how many were dropped.
   */
  corruptTail(
    count: number,
    heldElsewhere: (index: LogIndex, term: Term) => boolean,
  ): number {
    const offset = this.durableOffset;
    const last = offset + this.durableEntries.length;
    const keep = Math.max(this.durableHardState.commit, offset, last - count);
    if (keep >= last) return 0;
    // The recovering node votes only for a log at least as up to date as
    // (last, its term). When no other node holds one, elections that need
    // its vote wait for ever (a known limit: the cluster waits, it never
    // loses data; README): not simulated, so liveness can be checked.
    const lastTerm = this.durableTermAt(last as LogIndex);
    if (
      lastTerm !== this.durableHardState.term ||
      !heldElsewhere(last as LogIndex, lastTerm)
    ) return 0;
    this.durableEntries.length = keep - offset;
    this.durableRecover = {
      index: Math.max(this.durableRecover?.index ?? 0, last) as LogIndex,
      term: Math.max(
        this.durableRecover?.term ?? 0,
        this.durableHardState.term,
      ) as Term,
    };
    return last - keep;
  }

  /** True while a lost tail's recovery bound is above the commit index. */
  get recovering(): boolean {
    const bound = this.durableRecover;
    if (bound === null) return false;
    const commit = this.raft?.status().commit ?? this.durableHardState.commit;
    return commit < bound.index;
  }

  /** Stops the process from running without killing it (SIGSTOP). */
  pause(): void {
    this.#pausedByNemesis = true;
    this.paused = true;
  }

  /** Lets a paused process run again (unless it is also stalled). */
  resume(): void {
    if (!this.#pausedByNemesis) return;
    this.#pausedByNemesis = false;
    if (!this.#stalled) this.#run();
  }

  /**
   * The event loop stops for `ms` (a long GC, a snapshot on the main
   * thread, VM steal) without anyone pausing the process: ticks that fall
   * due meanwhile are lost, as with setInterval, and requests queue.
   *
   * @returns False when the process is down, paused or already stalled.
   */
  stall(ms: number): boolean {
    if (this.raft === null || this.paused) return false;
    this.#stalled = true;
    this.paused = true;
    const incarnation = this.incarnation;
    this.#environment.trace?.(`stall ${this.id} ${ms}ms`);
    this.#environment.queue.after(ms, () => {
      if (incarnation !== this.incarnation || !this.#stalled) return;
      this.#stalled = false;
      this.#environment.trace?.(`unstall ${this.id}`);
      if (!this.#pausedByNemesis) this.#run();
    });
    return true;
  }

  /**
   * The process runs again: no missed tick is replayed (its clock moved on),
   * the queued reads come first (the worst order for a lease: the socket
   * may hand them over before the peers' messages), then its fsync and inbox.
   */
  #run(): void {
    if (!this.paused) return;
    this.paused = false;
    const raft = this.raft;
    const reads = this.#queuedReads;
    this.#queuedReads = [];
    for (const context of reads) {
      if (raft === null || this.paused) break;
      try {
        this.#guard(() => raft.readIndex(context, this.clockMs()), true);
      } catch (error) {
        // Refused (no leader known): the client's retry takes over.
        if (!(error instanceof ProposalDroppedError)) throw error;
      }
    }
    if (this.#pendingSynced) this.#finishPending();
    const inbox = this.#inbox;
    this.#inbox = [];
    for (const message of inbox) this.receive(message);
    this.#pump();
  }

  /** One tick of logical time; a tick due while the process does not run is lost. */
  tick(): void {
    const raft = this.raft;
    if (raft === null || this.paused) return;
    this.#guard(() => raft.tick(this.clockMs()));
    this.#pump();
  }

  /** A message arrives from the network. */
  receive(message: Message): void {
    const raft = this.raft;
    if (raft === null) return;
    if (this.paused) {
      if (this.#inbox.length < inboxMessagesMax) this.#inbox.push(message);
      return;
    }
    this.#guard(() => raft.step(message, this.clockMs()));
    this.#pump();
  }

  /**
   * Proposes a command on this node.
   *
   * @returns The index and term the entry got, or null when the node is down.
   * @throws {ProposalDroppedError} When the core refuses it.
   */
  propose(data: Uint8Array): { index: LogIndex; term: Term } | null {
    const raft = this.raft;
    if (raft === null || this.paused) return null;
    let index: LogIndex | null = null;
    this.#guard(() => {
      index = raft.propose(data);
    }, true);
    if (index === null) return null;
    const term = raft.status().term;
    this.#pump();
    return { index, term };
  }

  /**
   * Proposes a membership change on this node.
   *
   * @returns The index of the configuration entry, or null when the node is down.
   * @throws {ProposalDroppedError} When the node cannot propose.
   * @throws {ConfChangeError} While another change is pending, or for an invalid change.
   */
  proposeConfChange(change: ConfChange): LogIndex | null {
    const raft = this.raft;
    if (raft === null || this.paused) return null;
    let index: LogIndex | null = null;
    this.#guard(() => {
      index = raft.proposeConfChange(change);
    }, true);
    this.#pump();
    return index;
  }

  /** Starts an election on this node now, whatever its election timer says. */
  campaign(): void {
    const raft = this.raft;
    if (raft === null || this.paused) return;
    this.#guard(() => raft.campaign());
    this.#pump();
  }

  /**
   * Starts a leader transfer to `target`.
   *
   * @throws {ProposalDroppedError} When this node does not lead.
   * @throws {ConfChangeError} When `target` is not a voter.
   */
  transferLeader(target: NodeId): void {
    const raft = this.raft;
    if (raft === null || this.paused) return;
    this.#guard(() => raft.transferLeader(target), true);
    this.#pump();
  }

  /**
   * Asks for a read index; the read is served through `readReady` once
   * this node has applied it.
   *
   * @returns False when the node is down. A paused or stalled node queues
   *   the read and handles it first when it runs again.
   * @throws {ProposalDroppedError} When no leader is known.
   */
  readIndex(context: Uint8Array): boolean {
    const raft = this.raft;
    if (raft === null) return false;
    if (this.paused) {
      if (this.#queuedReads.length >= queuedReadsMax) return false;
      this.#queuedReads.push(context);
      this.readsQueued++;
      return true;
    }
    this.#guard(() => raft.readIndex(context, this.clockMs()), true);
    this.#pump();
    return true;
  }

  /**
   * Snapshots the applied state and compacts the log up to it, in memory and
   * on disk (the snapshot is written durably before the log is cut).
   *
   * @returns The snapshot's index, or null when there is nothing new to compact.
   */
  compact(): LogIndex | null {
    const raft = this.raft;
    if (raft === null || this.paused || this.#pending !== null) return null;
    const index = this.appliedIndex;
    if (index <= raft.status().snapshotIndex) return null;
    const data = encode(
      {
        state: this.replica.snapshot(),
        commands: [...this.appliedCommands],
      } satisfies SnapshotData,
    );
    let snapshot: Snapshot | null = null;
    this.#guard(() => {
      snapshot = raft.takeSnapshot(index, data);
    });
    if (snapshot === null) return null;
    const taken: Snapshot = snapshot;
    const offset = this.durableOffset;
    if (offset + this.durableEntries.length < index) {
      this.#environment.checker.fail(
        `storage: '${this.id}' applied index ${index} beyond its durable log (last ${
          offset + this.durableEntries.length
        })`,
      );
      return null;
    }
    this.durableEntries = this.durableEntries.slice(index - offset);
    this.durableSnapshot = taken;
    this.#environment.checker.observeState(
      this.id,
      index,
      this.replica.hash(),
      "took a snapshot",
    );
    this.#environment.trace?.(`snapshot ${this.id} at ${index}`);
    // Building a snapshot blocks the main thread now and then.
    if (this.#disk.chance(snapshotStallProbability)) {
      this.stall(this.#disk.between(5, 150));
    }
    return index;
  }

  /**
   * Term of the entry at `index` in the running process's log, COMPACTED
   * inside its snapshot, or undefined.
   */
  termAt(index: LogIndex): Term | undefined {
    const raft = this.raft;
    if (raft === null) return undefined;
    if (index < 1) return index === 0 ? 0 as Term : undefined;
    const status = raft.status();
    if (index <= status.snapshotIndex) return COMPACTED;
    if (index > status.lastIndex) return undefined;
    return raft.entries(index, (index + 1) as LogIndex)[0]?.term;
  }

  /** Term of the durable entry at `index`, or undefined. */
  durableTermAt: TermAt = (index) => {
    const offset = this.durableOffset;
    if (index === offset) {
      return this.durableSnapshot?.meta.term ?? (0 as Term);
    }
    if (index < offset) return undefined;
    return this.durableEntries[index - offset - 1]?.term;
  };

  /** Runs a core call; a core assertion or other error is a violation. */
  #guard(call: () => void, rethrowRefusals = false): void {
    try {
      call();
    } catch (error) {
      if (
        rethrowRefusals &&
        (error instanceof ProposalDroppedError ||
          error instanceof ConfChangeError)
      ) {
        throw error;
      }
      const kind = error instanceof AssertionError
        ? "node assertion"
        : "node error";
      const text = error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error);
      this.#environment.checker.fail(`${kind}: '${this.id}': ${text}`);
    }
    if (this.raft !== null) this.#afterStep();
  }

  #pump(): void {
    for (;;) {
      const raft = this.raft;
      if (raft === null || this.paused || this.#pending !== null) return;
      if (this.#environment.checker.violation !== null) return;
      let ready: Ready | null = null;
      this.#guard(() => {
        if (raft.hasReady()) ready = raft.ready();
      });
      if (ready === null) return;
      const next: Ready = ready;
      if (
        next.entries.length > 0 || next.hardState !== null ||
        next.snapshot !== null
      ) {
        this.#pending = next;
        this.#pendingSynced = false;
        const incarnation = this.incarnation;
        const delay = this.#disk.chance(0.05)
          ? this.#disk.between(10, 40)
          : this.#disk.between(1, 4);
        this.#environment.queue.after(delay, () => this.#synced(incarnation));
        return;
      }
      this.#finish(next);
    }
  }

  #synced(incarnation: number): void {
    const ready = this.#pending;
    if (incarnation !== this.incarnation || ready === null) return;
    this.#persist(ready);
    this.#pendingSynced = true;
    if (this.paused) return;
    this.#finishPending();
    this.#pump();
  }

  #finishPending(): void {
    const ready = this.#pending;
    this.#pending = null;
    this.#pendingSynced = false;
    if (ready !== null) this.#finish(ready);
  }

  #persist(ready: Ready): void {
    const checker = this.#environment.checker;
    if (ready.snapshot !== null) {
      // Installing a snapshot replaces the whole durable log.
      this.durableSnapshot = ready.snapshot;
      this.durableEntries = [];
    }
    const first = ready.entries[0];
    if (first !== undefined) {
      const offset = this.durableOffset;
      if (first.index <= offset) {
        checker.fail(
          `storage: '${this.id}' asked to persist index ${first.index} at or below its snapshot ${offset}`,
        );
        return;
      }
      this.durableEntries.length = Math.min(
        this.durableEntries.length,
        first.index - offset - 1,
      );
      this.durableEntries.push(...ready.entries);
      checker.observeDurableAppend(this.id, ready.entries, this.durableTermAt);
    }
    if (ready.hardState !== null) {
      this.durableHardState = ready.hardState;
      checker.observeDurableHardState(this.id, ready.hardState);
    }
  }

  /** The durable part is done: send, install, apply, advance, serve reads. */
  #finish(ready: Ready): void {
    const environment = this.#environment;
    for (const message of ready.messages) {
      if (message.type === "voteResp" && !message.reject) {
        environment.checker.observeVote(
          message.from,
          message.term,
          message.to,
          "granted in a message",
        );
      }
      environment.send(message);
    }
    if (ready.snapshot !== null) this.#restore(ready.snapshot, "install");
    for (const entry of ready.committedEntries) this.#apply(entry);
    for (const state of ready.readStates) {
      if (this.#readStates.length < readStatesMax) this.#readStates.push(state);
    }
    const raft = this.raft;
    if (raft !== null) this.#guard(() => raft.advance());
    this.#serveReads();
    const compactAfter = environment.autoCompactEntries;
    if (
      compactAfter > 0 && raft !== null &&
      this.appliedIndex - raft.status().snapshotIndex >= compactAfter
    ) {
      this.compact();
    }
  }

  /** Serves every confirmed read whose index this replica has applied. */
  #serveReads(): void {
    if (this.#readStates.length === 0) return;
    const ready = this.#readStates.filter((s) => s.index <= this.appliedIndex);
    if (ready.length === 0) return;
    this.#readStates = this.#readStates.filter((s) =>
      s.index > this.appliedIndex
    );
    for (const state of ready) {
      this.#environment.readReady(this, state.context);
    }
  }

  /** Replaces the replica with a snapshot's state (installed or restarted from). */
  #restore(snapshot: Snapshot, why: "install" | "restart"): void {
    if (why === "install") this.snapshotsInstalled++;
    const data = decode(snapshot.data) as SnapshotData;
    this.replica.restore(data.state);
    this.appliedCommands = new Set(data.commands);
    this.appliedIndex = snapshot.meta.index;
    this.#environment.checker.observeState(
      this.id,
      snapshot.meta.index,
      this.replica.hash(),
      why === "install" ? "installed a snapshot" : "restarted from a snapshot",
    );
    this.#environment.trace?.(
      `${why} snapshot ${this.id} at ${snapshot.meta.index}`,
    );
  }

  #apply(entry: Entry): void {
    const checker = this.#environment.checker;
    if (entry.index !== this.appliedIndex + 1) {
      checker.fail(
        `apply order: '${this.id}' applied index ${entry.index} after ${this.appliedIndex}`,
      );
      return;
    }
    checker.observeApplied(this.id, entry);
    this.appliedIndex = entry.index;
    if (entry.type === "normal") {
      const command = decodeCommand(entry.data);
      if (command === null) {
        this.#environment.applied(this, entry, null, null);
      } else {
        const output = this.replica.apply(entry.index, command);
        this.appliedCommands.add(commandId(command));
        this.#environment.applied(this, entry, command, output);
      }
    }
    if (
      this.replica.hashEveryIndex ||
      entry.index % hashIntervalEntries === 0 ||
      checker.wantsStateAt(entry.index)
    ) {
      checker.observeState(
        this.id,
        entry.index,
        this.replica.hash(),
        "applied the log",
      );
    }
  }

  #afterStep(): void {
    const raft = this.raft;
    if (raft === null) return;
    const status = raft.status();
    const checker = this.#environment.checker;
    checker.observeProcess(this.id, status.term, status.commit, status.applied);
    if (status.snapshotIndex !== this.#snapshotSeen) {
      this.#snapshotSeen = status.snapshotIndex;
      this.#checkConfAfterSnapshot(raft);
    }
    if (status.commit > this.#commitSeen) {
      const from = Math.max(this.#commitSeen, status.snapshotIndex) + 1;
      checker.observeCommitted(
        this.id,
        status.term,
        raft.entries(from as LogIndex, (status.commit + 1) as LogIndex),
        status.role === "leader" ? status.conf : null,
      );
      this.#commitSeen = status.commit;
      if (status.role === "leader" && this.#firstCommitTerm !== status.term) {
        this.#firstCommitTerm = status.term;
        this.#environment.leaderFirstCommit(this);
      }
    }
    if (status.role !== this.#role || status.term !== this.#term) {
      if (status.role !== this.#role) {
        this.#environment.trace?.(
          `role ${this.id} ${this.#role}->${status.role} t${status.term}`,
        );
      }
      const elected = status.role === "leader" && this.#role !== "leader";
      const campaigned = status.role !== this.#role &&
        (status.role === "preCandidate" || status.role === "candidate");
      this.#role = status.role;
      this.#term = status.term;
      if (elected) this.#environment.leaderElected(this);
      if (campaigned) this.#environment.campaigned(this);
      checker.observeRole(
        this.id,
        status.role,
        status.term,
        (index) => this.termAt(index) ?? (index === 0 ? 0 as Term : undefined),
      );
    }
  }

  /**
   * After a snapshot is installed, restored or taken, the node's membership
   * must be the one its log says: the last configuration entry after the
   * snapshot, or else the configuration the cluster committed at the
   * snapshot's index.
   */
  #checkConfAfterSnapshot(raft: RaftNode): void {
    const status = raft.status();
    const checker = this.#environment.checker;
    let expected: ConfState | null = null;
    let source = `committed at or before index ${status.snapshotIndex}`;
    if (status.lastIndex > status.snapshotIndex) {
      const after = raft.entries(
        (status.snapshotIndex + 1) as LogIndex,
        (status.lastIndex + 1) as LogIndex,
      );
      const last = after.findLast((entry) => entry.type === "confChange");
      if (last !== undefined) {
        expected = decodeConfState(last.data);
        source = `in its log at index ${last.index}`;
      }
    }
    expected ??= checker.committedConfAt(status.snapshotIndex);
    if (expected === null || sameConf(expected, status.conf)) return;
    checker.fail(
      `snapshot membership: '${this.id}' with a snapshot at index ${status.snapshotIndex} uses ${
        describeConf(status.conf)
      }, but the configuration ${source} is ${describeConf(expected)}`,
    );
  }
}
