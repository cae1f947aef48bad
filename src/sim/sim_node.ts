/**
 * One simulated server: the production {@linkcode RaftRunner} (its ready
 * loop with send-before-persist and batched apply, its proposal forwarding
 * and ReadIndex waiters) on a simulated process (clock, timers, input gate),
 * transport and disk, replicating the real KV state. The node observes the
 * runner's core after every input for the invariant checker, and answers
 * the clients' writes and reads through the runner's own paths.
 *
 * @module
 */
import { AssertionError } from "../base/assert.ts";
import { ConfChangeError, decodeConfState } from "../raft/confchange.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import type { RaftNode, RaftStatus } from "../raft/raft_node.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  LogIndex,
  Message,
  NodeId,
  RandomSource,
  RecoveryBound,
  Role,
  Term,
  TestingKnobs,
} from "../raft/types.ts";
import { RaftRunner, type RunnerTestingKnobs } from "../node/raft_runner.ts";
import { runnerLeadership, ServiceHost } from "../node/service_host.ts";
import type {
  KvStateMachine,
  KvStateMachineKnobs,
} from "../services/state_machine.ts";
import type { KvStateResult } from "../services/replicated_state.ts";
import type { KvEntry } from "../model/types.ts";
import type { CoordinationBinding } from "./coordination_binding.ts";
import type { CoordinationNode } from "./coordination_clients.ts";
import {
  attachEvents,
  type EventsSettings,
  type SimEventsPort,
} from "./events_node.ts";
import { attachHooks, type SimHooksPort } from "./hooks_node.ts";
import type { StateStore } from "../state/state_store.ts";
import { ChangeFeed } from "../state/change_feed.ts";
import type { EventQueue } from "./event_queue.ts";
import type { ServiceBugKnobs } from "./options.ts";
import { COMPACTED, type InvariantChecker, type TermAt } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";
import type { SimNetwork } from "./network.ts";
import { SimDisk } from "./sim_disk.ts";
import { SimProcess } from "./sim_process.ts";
import { SimKvState } from "./sim_state.ts";
import { SimTransport, type SimTransportDirectory } from "./sim_transport.ts";

/** What a node needs from the simulation around it. */
export interface NodeEnvironment {
  readonly queue: EventQueue;
  readonly checker: InvariantChecker;
  readonly network: SimNetwork;
  readonly directory: SimTransportDirectory;
  /** Called when a node becomes leader. */
  leaderElected(node: SimNode): void;
  /** Called when a node starts campaigning (becomes a pre-candidate or candidate). */
  campaigned(node: SimNode): void;
  /** Called when a leader advances its commit index for the first time in its term. */
  leaderFirstCommit(node: SimNode): void;
  /** An input ran on some node: promise jobs it started must settle before time moves. */
  ran(): void;
  /**
   * With the coordination services: a replica applied an entry (`reset`
   * false) or replaced its state (a restart or a snapshot, `reset` true).
   */
  coordinationApplied?(node: SimNode, kv: KvStateMachine, reset: boolean): void;
  /** With the events service: as `coordinationApplied`, for the history's reference. */
  eventsApplied?(node: SimNode, kv: KvStateMachine, reset: boolean): void;
  readonly trace: ((line: string) => void) | null;
}

/** How every node of a seed is configured. */
export interface NodeSettings {
  readonly voters: readonly NodeId[];
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly maxMessageBytes: number;
  readonly maxInflightMessages: number;
  readonly maxUncommittedBytes: number;
  readonly snapshotChunkBytes: number;
  readonly readOnly: "safe" | "lease";
  readonly clockDrift: number;
  readonly maxDelayMs: number;
  /** Entries applied between automatic snapshots; 0 for none. */
  readonly autoCompactEntries: number;
  /** How long the runner waits for a proposal or read, in the node's ms. */
  readonly requestTimeoutMs: number;
  readonly testingKnobs: TestingKnobs | undefined;
  /** Planted bugs of the runner itself (empty for none). */
  readonly runnerKnobs: RunnerTestingKnobs;
  readonly kvKnobs: KvStateMachineKnobs;
  /** The leases and locks services and their leader-side bugs, or null (KV only). */
  readonly coordination: {
    readonly binding: CoordinationBinding;
    readonly knobs: ServiceBugKnobs;
  } | null;
  /** The events service and its planted bug, or null (not run). */
  readonly events: EventsSettings | null;
}

/** A client request cannot reach the process (it is down). */
export class NodeDownError extends Error {
  override name = "NodeDownError";
}

/** Probability a snapshot stalls the process (it blocks the main thread). */
const snapshotStallProbability = 0.3;

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
  readonly #settings: NodeSettings;
  readonly #environment: NodeEnvironment;
  readonly #random: RandomSource;
  readonly #stalls: SeededRandom;
  readonly process: SimProcess;
  readonly disk: SimDisk;
  #runner: RaftRunner<KvStateResult> | null = null;
  #transport: SimTransport | null = null;
  #state: SimKvState | null = null;
  /** The running incarnation's coordination port, or null (down, or KV only). */
  #coordination: CoordinationNode | null = null;
  /** The running incarnation's events port (gated), or null (down, or not run). */
  #events: SimEventsPort | null = null;
  /** The running incarnation's hooks port (gated), or null (down, or not run). */
  #hooks: SimHooksPort | null = null;
  /** Aborted when the running incarnation dies: its watch streams end. */
  #died: AbortController | null = null;
  /** Snapshots received from a leader and installed by earlier incarnations. */
  #snapshotsInstalledBefore = 0;
  /** Client reads that queued while the process did not run, for reports. */
  readsQueued = 0;
  #role: Role = "follower";
  #term = 0 as Term;
  #commitSeen = 0 as LogIndex;
  #snapshotSeen = 0 as LogIndex;
  #firstCommitTerm = -1;

  constructor(
    id: NodeId,
    settings: NodeSettings,
    environment: NodeEnvironment,
    random: { raft: RandomSource; disk: SeededRandom; phaseMs: number },
  ) {
    this.id = id;
    this.#settings = settings;
    this.#environment = environment;
    this.#random = random.raft;
    this.#stalls = random.disk;
    this.process = new SimProcess(
      id,
      environment.queue,
      settings.tickMs,
      random.phaseMs,
      () => environment.ran(),
      (error) => this.#failed(error),
      environment.trace,
    );
    this.disk = new SimDisk(
      id,
      environment.queue,
      random.disk,
      environment.checker,
    );
  }

  /** The running process's Raft core, or null while it is down. */
  get raft(): RaftNode | null {
    return this.#runner?.core ?? null;
  }

  /** The running process's transport, or undefined while it is down. */
  get transport(): SimTransport | undefined {
    return this.#transport ?? undefined;
  }

  get incarnation(): number {
    return this.process.incarnation;
  }

  get paused(): boolean {
    return this.process.paused;
  }

  get tickPeriodMs(): number {
    return this.process.tickPeriodMs;
  }

  set tickPeriodMs(period: number) {
    this.process.tickPeriodMs = period;
  }

  /** True when the process runs (paused or not): its socket accepts requests. */
  get acceptsRequests(): boolean {
    return this.#runner !== null;
  }

  /** True when the process runs and is not paused. */
  get available(): boolean {
    return this.#runner !== null && !this.process.paused;
  }

  /** True while a write waits for its fsync. */
  get syncing(): boolean {
    return this.disk.inFlight > 0;
  }

  get durableEntries(): readonly Entry[] {
    return this.disk.entries;
  }

  get durableHardState(): HardState {
    return this.disk.hardState;
  }

  get durableRecover(): RecoveryBound | null {
    return this.disk.recover;
  }

  /** Index of the durable snapshot (0 without one). */
  get durableOffset(): number {
    return this.disk.offset;
  }

  /** Index of the last entry the state applied (0 while down). */
  get appliedIndex(): LogIndex {
    return this.#state?.appliedIndex() ?? (0 as LogIndex);
  }

  /** Snapshots received from a leader and installed, for reports. */
  get snapshotsInstalled(): number {
    return this.#snapshotsInstalledBefore +
      (this.#state?.snapshotsInstalled ?? 0);
  }

  /**
   * The coordination services' port of the running process (requests
   * queue while it is paused, fail while it is down), or null while it is
   * down or the run is KV only.
   */
  get coordination(): CoordinationNode | null {
    return this.#runner === null ? null : this.#coordination;
  }

  /**
   * The events service's port of the running process (requests queue
   * while it is paused, fail while it is down), or null while it is down
   * or the run does not run events.
   */
  get events(): SimEventsPort | null {
    return this.#runner === null ? null : this.#events;
  }

  /**
   * The hooks' port of the running process (gated as the events port), or
   * null while it is down or the run does not run hooks.
   */
  get hooks(): SimHooksPort | null {
    return this.#runner === null ? null : this.#hooks;
  }

  /** The running replica's state store, or null while down (the properties' reads). */
  get store(): StateStore | null {
    return this.#runner === null ? null : this.#state?.kv.store ?? null;
  }

  /** Ids of the writes the running state applied. */
  appliedIds(): Set<string> {
    return this.#state?.appliedIds() ?? new Set();
  }

  /** Bytes of the running state's snapshot (0 while down). */
  stateBytes(): number {
    return this.#state?.snapshotData().byteLength ?? 0;
  }

  /** Hash of the running state ("down" while down). */
  stateHash(): string {
    return this.#state?.hash() ?? "down";
  }

  /** Starts (or restarts) the process from what is durable. */
  start(): void {
    const environment = this.#environment;
    const settings = this.#settings;
    const process = this.process;
    const checker = environment.checker;
    checker.observeStart(this.id, this.disk.hardState);
    process.start();
    const feed = settings.events === null ? undefined : new ChangeFeed();
    const state = new SimKvState(
      this.id,
      checker,
      this.disk,
      settings.kvKnobs,
      environment.trace,
      feed,
    );
    state.restoreImage();
    const transport = new SimTransport(
      this.id as NodeId,
      environment.network,
      process,
      environment.directory,
      (message) => this.#sent(message),
    );
    this.#role = "follower";
    this.#term = this.disk.hardState.term;
    this.#commitSeen = state.appliedIndex();
    this.#snapshotSeen = 0 as LogIndex;
    this.#guard(() => {
      const runner = new RaftRunner({
        id: this.id as NodeId,
        voters: settings.voters,
        logStore: this.disk.logStore(),
        logWriter: this.disk.writer(process),
        stateMachine: state,
        transport,
        tickMs: settings.tickMs,
        electionTicks: settings.electionTicks,
        requestTimeoutMs: settings.requestTimeoutMs,
        snapshotEntries: settings.autoCompactEntries > 0
          ? settings.autoCompactEntries
          : Number.MAX_SAFE_INTEGER,
        readOnly: settings.readOnly,
        clockDrift: settings.clockDrift,
        maxDelayMs: settings.maxDelayMs,
        random: this.#random,
        clock: process.clock,
        scheduler: process.scheduler,
        incarnation: `${process.incarnation}`,
        raft: {
          heartbeatTicks: settings.heartbeatTicks,
          maxMessageBytes: settings.maxMessageBytes,
          maxInflightMessages: settings.maxInflightMessages,
          maxUncommittedBytes: settings.maxUncommittedBytes,
          snapshotChunkBytes: settings.snapshotChunkBytes,
          // Every snapshot's data may leave memory: the path a large state takes.
          snapshotKeepBytes: 0,
          ...(settings.testingKnobs === undefined
            ? {}
            : { testingKnobs: settings.testingKnobs }),
        },
        testingKnobs: settings.runnerKnobs,
        observe: (core) => this.#afterStep(core),
        log: (event, detail) => this.#logged(event, detail),
      });
      this.#runner = runner;
      this.#transport = transport;
      this.#state = state;
      this.#afterStep(runner.core);
      runner.start();
      this.#attachServices(runner, state, feed);
    });
    if (this.#runner === null) process.crash();
  }

  /** Kills the process: unsynced writes and everything in memory are lost. */
  crash(): void {
    this.#environment.checker.observeRole(
      this.id,
      "follower",
      this.#term,
      () => undefined,
    );
    this.#snapshotsInstalledBefore += this.#state?.snapshotsInstalled ?? 0;
    this.#runner = null;
    this.#transport = null;
    this.#state = null;
    // Its timers die with the incarnation; the port refuses from now on.
    this.#coordination = null;
    this.#events = null;
    this.#hooks = null;
    this.#died?.abort();
    this.#died = null;
    this.process.crash();
  }

  /**
   * With the coordination services or events: a service host of this
   * incarnation runs their leader tasks on the process's clock and timers,
   * and the node answers their ports through the process's input gate.
   */
  #attachServices(
    runner: RaftRunner<KvStateResult>,
    state: SimKvState,
    feed: ChangeFeed | undefined,
  ): void {
    const coordination = this.#settings.coordination;
    const events = this.#settings.events;
    if (coordination === null && (events === null || feed === undefined)) {
      return;
    }
    const process = this.process;
    const environment = this.#environment;
    state.onApplied = (reset) => {
      if (coordination !== null) {
        environment.coordinationApplied?.(this, state.kv, reset);
      }
      if (events !== null) environment.eventsApplied?.(this, state.kv, reset);
    };
    if (coordination !== null) {
      environment.coordinationApplied?.(this, state.kv, true);
    }
    if (events !== null) environment.eventsApplied?.(this, state.kv, true);
    const services = new ServiceHost({
      leadership: runnerLeadership(runner),
      proposeLocal: (data) => runner.proposeLocal(data),
      clock: process.clock,
      scheduler: process.scheduler,
    });
    const port = coordination?.binding.attach({
      runner,
      kv: state.kv,
      services,
      clock: process.clock,
      scheduler: process.scheduler,
      // Raft draws election timeouts in [electionTicks, 2 × electionTicks).
      electionTimeoutMs: 2 * this.#settings.tickMs *
        this.#settings.electionTicks,
      knobs: coordination.knobs,
    });
    const died = new AbortController();
    const eventsPort = events === null || feed === undefined
      ? undefined
      : attachEvents({
        nodeId: this.id,
        runner,
        store: state.kv.store,
        feed,
        services,
        clock: process.clock,
        scheduler: process.scheduler,
        died: died.signal,
      }, events);
    services.start();
    const gate = <T>(call: () => Promise<T>): Promise<T> =>
      this.#request((current) =>
        current === runner
          ? call()
          : Promise.reject(new NodeDownError(`'${this.id}' restarted`))
      );
    if (port !== undefined) {
      this.#coordination = {
        grant: (request) => gate(() => port.grant(request)),
        keepAlive: (request) => gate(() => port.keepAlive(request)),
        revoke: (request) => gate(() => port.revoke(request)),
        acquire: (request) => gate(() => port.acquire(request)),
        cancel: (request) => gate(() => port.cancel(request)),
        release: (request) => gate(() => port.release(request)),
        commit: (request) => gate(() => port.commit(request)),
      };
    }
    if (eventsPort !== undefined) {
      this.#died = died;
      this.#events = {
        open: (request, signal) =>
          gate(async () => {
            const opened = await eventsPort.open(request, signal);
            if (opened.kind === "compacted") return opened;
            const watch = opened.watch;
            return {
              kind: "open",
              watch: {
                next: () => gate(() => watch.next()),
                close: watch.close,
              },
            };
          }),
        compact: (below) => gate(() => eventsPort.compact(below)),
        window: () => eventsPort.window(),
      };
    }
    if (events?.hooks === true) {
      const hooksPort = attachHooks(runner, state.kv.store);
      this.#hooks = {
        propose: (command) => gate(() => hooksPort.propose(command)),
        hook: (id) => gate(() => hooksPort.hook(id)),
        next: (hook, cursor) => gate(() => hooksPort.next(hook, cursor)),
      };
    }
  }

  /** While the process is down: a tail of unsynced-to-commit entries fails its checksum. */
  corruptTail(
    count: number,
    heldElsewhere: (index: LogIndex, term: Term) => boolean,
  ): number {
    return this.disk.corruptTail(count, heldElsewhere);
  }

  /** True while a lost tail's recovery bound is above the commit index. */
  get recovering(): boolean {
    const bound = this.disk.recover;
    if (bound === null) return false;
    const commit = this.raft?.status().commit ?? this.disk.hardState.commit;
    return commit < bound.index;
  }

  /** Stops the process from running without killing it (SIGSTOP). */
  pause(): void {
    this.process.pause();
  }

  /** Lets a paused process run again (unless it is also stalled). */
  resume(): void {
    this.process.resume();
  }

  /**
   * The event loop stops for `ms`: ticks that fall due meanwhile are lost
   * and requests queue.
   *
   * @returns False when the process is down, paused or already stalled.
   */
  stall(ms: number): boolean {
    return this.process.stall(ms);
  }

  /** A message arrives from the network. */
  receive(message: Message): void {
    this.#transport?.deliver(message);
  }

  /**
   * A client's write through the runner (forwarded to the leader from a
   * follower); resolves with the encoded apply result. A paused process
   * queues it.
   *
   * @throws {NodeDownError} (rejects) When the process is down.
   */
  submit(data: Uint8Array): Promise<KvStateResult> {
    return this.#request((runner) => runner.propose(data));
  }

  /**
   * A client's strong read: ReadIndex through the runner, then the entry
   * at `key` in this node's applied state. A paused process queues it.
   *
   * @throws {NodeDownError} (rejects) When the process is down.
   */
  read(key: Uint8Array): Promise<{ entry: KvEntry | null; applied: LogIndex }> {
    if (this.process.paused) this.readsQueued++;
    return this.#request(async (runner) => {
      await runner.readIndex();
      const state = this.#state;
      if (state === null || this.#runner !== runner) {
        throw new NodeDownError(`'${this.id}' died before serving the read`);
      }
      return { entry: state.get(key), applied: state.appliedIndex() };
    });
  }

  #request<T>(
    call: (runner: RaftRunner<KvStateResult>) => Promise<T>,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const accepted = this.process.input(() => {
        const runner = this.#runner;
        if (runner === null) {
          reject(new NodeDownError(`'${this.id}' is down`));
          return;
        }
        call(runner).then(resolve, reject);
      }, true);
      if (!accepted) reject(new NodeDownError(`'${this.id}' is down`));
    });
  }

  /**
   * Proposes a membership change on this node.
   *
   * @returns The index of the configuration entry, or null when the node is down.
   * @throws {ProposalDroppedError} When the node cannot propose.
   * @throws {ConfChangeError} While another change is pending, or for an invalid change.
   */
  proposeConfChange(change: ConfChange): LogIndex | null {
    const runner = this.#runner;
    if (runner === null || this.paused) return null;
    let index: LogIndex | null = null;
    this.#guard(() => {
      index = runner.proposeConfChange(change);
    }, true);
    return index;
  }

  /** Starts an election on this node now, whatever its election timer says. */
  campaign(): void {
    const runner = this.#runner;
    if (runner === null || this.paused) return;
    this.#guard(() => runner.campaign());
  }

  /**
   * Starts a leader transfer to `target`.
   *
   * @throws {ProposalDroppedError} When this node does not lead.
   * @throws {ConfChangeError} When `target` is not a voter.
   */
  transferLeader(target: NodeId): void {
    const runner = this.#runner;
    if (runner === null || this.paused) return;
    this.#guard(() => runner.transferLeader(target), true);
  }

  /**
   * Asks the runner for a snapshot and log compaction at its next ready
   * loop (the state is synced to disk before the log is cut).
   *
   * @returns The applied index it will cover, or null when there is nothing new to compact.
   */
  compact(): LogIndex | null {
    const runner = this.#runner;
    if (runner === null || this.paused) return null;
    const index = this.appliedIndex;
    if (index <= runner.core.status().snapshotIndex) return null;
    runner.requestSnapshot();
    this.#environment.ran();
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
  durableTermAt: TermAt = (index) => this.disk.termAt(index);

  #sent(message: Message): void {
    if (message.type === "voteResp" && !message.reject) {
      this.#environment.checker.observeVote(
        message.from,
        message.term,
        message.to,
        "granted in a message",
      );
    }
  }

  #logged(event: string, detail?: Record<string, unknown>): void {
    if (event === "storage-failed") {
      this.#environment.checker.fail(
        `node error: '${this.id}': ready loop failed: ${detail?.message}`,
      );
      return;
    }
    if (event === "snapshot") {
      this.#environment.trace?.(`snapshot ${this.id} at ${detail?.index}`);
      // Building a snapshot blocks the main thread now and then.
      if (this.#stalls.chance(snapshotStallProbability)) {
        this.stall(this.#stalls.between(5, 150));
      }
    }
  }

  #failed(error: unknown): void {
    const kind = error instanceof AssertionError
      ? "node assertion"
      : "node error";
    const text = error instanceof Error
      ? `${error.name}: ${error.message}`
      : String(error);
    this.#environment.checker.fail(`${kind}: '${this.id}': ${text}`);
  }

  /** Runs a runner call; a core assertion or other error is a violation. */
  #guard(call: () => void, rethrowRefusals = false): void {
    try {
      call();
      this.#environment.ran();
    } catch (error) {
      if (
        rethrowRefusals &&
        (error instanceof ProposalDroppedError ||
          error instanceof ConfChangeError)
      ) {
        throw error;
      }
      this.#failed(error);
    }
  }

  /**
   * A snapshot the node takes from its state (at start or later) is never
   * labelled below the state's applied index: its data is that state. One
   * being installed is labelled above the state until it is (the core
   * moves first; the install itself is checked in `SimKvState`). Not
   * checked when the log lost a tail the state had applied: the runner
   * drops that data until it can take a snapshot at the state's index.
   */
  #checkSnapshotLabel(status: RaftStatus): void {
    const state = this.#state;
    if (state === null) return;
    const applied = state.appliedIndex();
    if (applied > status.lastIndex || applied <= status.snapshotIndex) return;
    this.#environment.checker.fail(
      `snapshot label: '${this.id}' holds a snapshot labelled ${status.snapshotIndex} of its state at ${applied}`,
    );
  }

  #afterStep(raft: RaftNode): void {
    if (this.#runner !== null && this.#runner.core !== raft) return;
    const status = raft.status();
    const checker = this.#environment.checker;
    checker.observeProcess(this.id, status.term, status.commit, status.applied);
    if (status.snapshotIndex !== this.#snapshotSeen) {
      this.#snapshotSeen = status.snapshotIndex;
      this.#checkConfAfterSnapshot(raft);
      this.#checkSnapshotLabel(status);
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
