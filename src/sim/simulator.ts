/**
 * Runs one seed: builds a cluster of simulated nodes, network, clients and
 * nemesis from the seed, runs the faulty phase with invariants checked after
 * every step, heals everything and demands liveness, then checks the history
 * for linearizability. The first violation ends the run.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import type { ConfState, Message, NodeId } from "../raft/types.ts";
import { ClientPool } from "./clients.ts";
import {
  COORDINATION_BINDING,
  type CoordinationBinding,
} from "./coordination_binding.ts";
import type { CoordinationCounts } from "./coordination_clients.ts";
import { CoordinationProperties } from "./coordination_run.ts";
import { EventQueue } from "./event_queue.ts";
import type { EventsSettings } from "./events_node.ts";
import { type EventsCounts, EventsProperties } from "./events_run.ts";
import { type HooksCounts, HooksProperties } from "./hooks_run.ts";
import { InvariantChecker } from "./invariants.ts";
import { checkOperations, kvModel } from "./lincheck.ts";
import { describeMessage, SimNetwork } from "./network.ts";
import { Nemesis } from "./nemesis.ts";
import {
  BUGS,
  EVENTS_BUGS,
  KV_BUG_KNOBS,
  LEASE_BUGS,
  runServices,
  SERVICE_BUG_KNOBS,
  type ServiceBugKnobs,
  type SimOptions,
  validateOptions,
} from "./options.ts";
import { SeededRandom } from "./random.ts";
import { describeConf, SimNode } from "./sim_node.ts";

/** Simulated milliseconds per tick. */
export const TICK_MS = 10;
/**
 * The clock drift bound the cores are configured with: every node's clock
 * and tick timer run between 15% slow and 15% fast. The nemesis skews
 * clocks within it (and beyond it only in safe-read seeds).
 */
export const CLOCK_DRIFT = 0.15;
/** The lease's delay margin, in simulated ms (covers the 1 ms tick jitter). */
export const MAX_DELAY_MS = 2;
/** Budget of the healed phase, in ticks: a leader, fresh commits, catch-up. */
const livenessTicksMax = 400;
/** Budget of the events watchers' catch-up after healing, in ticks. */
const catchUpTicksMax = 600;
/** Budget of the hooks' catch-up after healing, in ticks: a dead worker's lease expires first, and a hook over every key may have hundreds of events left (three proposals each). */
const hooksCatchUpTicksMax = 4_000;
/** Fresh writes demanded after healing. */
const freshWrites = 3;
/** Client operation deadline, in ms. */
const operationDeadlineMs = 1_500;
/** Spare node slots for membership changes; each joins at most once. */
const spareNodes = 3;
/** Keys the clients work on ('k0', 'k1', ...). */
const workloadKeys = 3;
/** How long a node's runner waits for a proposal or read, in its ms. */
const runnerRequestTimeoutMs = 500;

/** Per-seed choices: how reads are confirmed, what is replicated, how often logs compact. */
export interface SeedModes {
  readonly readOnly: "safe" | "lease";
  /** Always the real KV state (the string map of the first simulator is gone). */
  readonly stateMachine: "kv";
  /** Entries applied between automatic snapshots; 0 for none. */
  readonly autoCompactEntries: number;
}

/** The modes a seed runs with, drawn from its own stream unless forced. */
export function seedModes(options: SimOptions): SeedModes {
  const random = new SeededRandom(options.seed, "modes");
  const lease = random.chance(1 / 3);
  // Drawn as before, so each seed keeps its other modes.
  random.chance(1 / 4);
  const autoCompactEntries = random.pick([0, 25, 60, 150]);
  return {
    readOnly: options.readMode === "seeded"
      ? (lease || (options.bug !== null && LEASE_BUGS.has(options.bug))
        ? "lease"
        : "safe")
      : options.readMode,
    stateMachine: "kv",
    autoCompactEntries,
  };
}

/** What one seed's run found. */
export interface SeedResult {
  readonly seed: number;
  readonly nodes: number;
  /** The first violation, or null when the run passed. */
  readonly violation: string | null;
  /** Trace lines, when asked for. */
  readonly trace: readonly string[] | null;
  readonly stats: {
    readonly events: number;
    readonly simulatedMs: number;
    readonly messagesSent: number;
    readonly acknowledged: number;
    readonly unknown: number;
    readonly historyLength: number;
    readonly finalCommit: number;
    readonly modes: SeedModes;
    /** Nemesis actions by name. */
    readonly faults: Readonly<Record<string, number>>;
    /** Voters and learners of the final configuration. */
    readonly finalMembers: readonly string[];
    /** Configuration entries committed. */
    readonly confChanges: number;
    /** Snapshots nodes received from a leader and installed. */
    readonly snapshotsInstalled: number;
    /** Client reads that queued at a paused or stalled node. */
    readonly readsQueued: number;
    /** The coordination workload's counts (null: KV only). */
    readonly coordination: CoordinationCounts | null;
    /** The events watchers' counts (null: the events service not run). */
    readonly watchers: EventsCounts | null;
    /** The hooks workers' counts (null: hooks not run). */
    readonly hooks: (HooksCounts & { hooks: number; arrivals: number }) | null;
  };
}

/**
 * Runs one seed to its end or its first violation.
 *
 * @param options The seed, cluster size, faults, planted bug and budgets.
 * @returns The violation found (or null), the trace if asked, and counts.
 * @throws {RangeError} When the options are out of range.
 */
export async function runSeed(options: SimOptions): Promise<SeedResult> {
  validateOptions(options);
  const simulation = new Simulation(options);
  return await simulation.run();
}

/**
 * Promise-job hops the simulator lets run after the events of one instant
 * (the runner's ready loop resuming after an fsync, a proposal's answer
 * reaching its client, which proposes again). Plain microtask hops, not a
 * macrotask: nothing outside the simulation can run in between, so a run
 * stays a function of its seed, and a job chain longer than this just goes
 * on at the next instant (the longest measured is under 8: traces are the
 * same with 8, 16 and 32).
 */
const settleHops = 16;

class Simulation {
  readonly #options: SimOptions;
  readonly #queue = new EventQueue();
  readonly #checker: InvariantChecker;
  readonly #modes: SeedModes;
  #finalMembers: string[] = [];
  readonly #traceLines: string[] | null;
  readonly #trace: ((line: string) => void) | null;
  readonly #nodes: SimNode[];
  readonly #byId = new Map<string, SimNode>();
  readonly #network: SimNetwork;
  readonly #clients: ClientPool;
  readonly #nemesis: Nemesis;
  /** The leases and locks workload and properties, or null (KV only). */
  readonly #coordination: CoordinationProperties | null;
  /** The events watchers, reference and compaction nemesis, or null. */
  readonly #watch: EventsProperties | null;
  /** The hooks, their workers and receiver, or null. */
  readonly #hooks: HooksProperties | null;
  /** Some node ran an input since the last settle. */
  #unsettled = false;
  /** This seed's snapshot chunk size (a lagging member catches up one chunk per round trip). */
  readonly #snapshotChunkBytes: number;
  #events = 0;

  constructor(options: SimOptions) {
    this.#options = options;
    this.#traceLines = options.trace ? [] : null;
    const lines = this.#traceLines;
    const queue = this.#queue;
    this.#trace = lines === null
      ? null
      : (line) => lines.push(`${queue.now} ${line}`);
    const random = (label: string) => new SeededRandom(options.seed, label);
    const ids = Array.from(
      { length: options.nodes + spareNodes },
      (_, i) => `n${i + 1}`,
    );
    const voters = ids.slice(0, options.nodes) as NodeId[];
    const initialConf: ConfState = { voters, votersOutgoing: [], learners: [] };
    this.#checker = new InvariantChecker(initialConf);
    const modes = seedModes(options);
    this.#modes = modes;
    this.#trace?.(
      `modes reads=${modes.readOnly} state=${modes.stateMachine} compact=${modes.autoCompactEntries}`,
    );
    this.#network = new SimNetwork(
      queue,
      random("network"),
      ids,
      (message) => this.#deliver(message),
      this.#trace,
    );
    const tuning = random("tuning");
    const maxMessageBytes = tuning.pick([48, 48, 256, 4096]);
    const maxInflightMessages = tuning.pick([2, 8, 64]);
    const maxUncommittedBytes = tuning.pick([2048, 65536]);
    const snapshotChunkBytes = tuning.pick([64, 512, 65536]);
    this.#snapshotChunkBytes = snapshotChunkBytes;
    const knobs = options.bug === null ? undefined : BUGS[options.bug];
    const serviceKnobs = options.bug === null
      ? {}
      : SERVICE_BUG_KNOBS[options.bug] ?? {};
    const coordination = this.#coordinationSetup(serviceKnobs);
    const events = this.#eventsSetup(random("events:settings"));
    const kvKnobs = {
      ...(options.bug === null ? {} : KV_BUG_KNOBS[options.bug] ?? {}),
      ...(coordination?.binding.stateKnobs(serviceKnobs) ?? {}),
    };
    const tickOffsets = random("ticks");
    const settings = {
      // A spare starts with an empty log and state, and knows the
      // founding membership (as a join ticket would tell it) without being
      // in it. Core issue worked around: with 'voters: []' a spare that
      // catches up by replaying the log from index 1 has no membership
      // for the indexes before its own addLearner entry (the founding
      // configuration is not in the log), and a snapshot it takes there
      // records an empty configuration.
      voters,
      tickMs: TICK_MS,
      electionTicks: 10,
      heartbeatTicks: 2,
      maxMessageBytes,
      maxInflightMessages,
      maxUncommittedBytes,
      snapshotChunkBytes,
      readOnly: modes.readOnly,
      clockDrift: CLOCK_DRIFT,
      maxDelayMs: MAX_DELAY_MS,
      autoCompactEntries: modes.autoCompactEntries,
      requestTimeoutMs: runnerRequestTimeoutMs,
      testingKnobs: knobs,
      kvKnobs,
      coordination,
      events,
    };
    const environment = {
      queue,
      checker: this.#checker,
      network: this.#network,
      directory: { transport: (id: string) => this.#byId.get(id)?.transport },
      leaderElected: (node: SimNode) => this.#nemesis.leaderElected(node),
      campaigned: (node: SimNode) => this.#nemesis.campaigned(node),
      leaderFirstCommit: (node: SimNode) =>
        this.#nemesis.leaderFirstCommit(node),
      ran: () => {
        this.#unsettled = true;
      },
      coordinationApplied: (
        node: SimNode,
        kv: Parameters<CoordinationProperties["applied"]>[1],
        reset: boolean,
      ) => this.#coordination?.applied(node.id, kv, reset),
      eventsApplied: (
        node: SimNode,
        kv: Parameters<EventsProperties["applied"]>[1],
        reset: boolean,
      ) => this.#watch?.applied(node.id, kv, reset),
      trace: this.#trace,
    };
    this.#nodes = ids.map((id) =>
      new SimNode(id as NodeId, settings, environment, {
        raft: random(`raft:${id}`),
        disk: random(`disk:${id}`),
        phaseMs: tickOffsets.between(0, TICK_MS - 1),
      })
    );
    for (const node of this.#nodes) this.#byId.set(node.id, node);
    const clientCount = options.nodes === 3 ? 3 : 4;
    const faultyMs = options.ticks * TICK_MS;
    this.#clients = new ClientPool(
      queue,
      this.#nodes,
      {
        clients: clientCount,
        keys: workloadKeys,
        ops: options.ops,
        issueUntilMs: faultyMs,
        deadlineMs: operationDeadlineMs,
        thinkMsMax: Math.max(
          1,
          Math.floor((2 * faultyMs * clientCount) / Math.max(1, options.ops)),
        ),
        // Lost answers are a fault: without faults, every answer arrives.
        resends: options.faults.length > 0,
        markBeforeDelivery: options.bug === "mark-before-delivery",
      },
      random,
      this.#trace,
    );
    this.#coordination = coordination === null
      ? null
      : new CoordinationProperties(
        queue,
        coordination.binding,
        () => this.#nodes.map((node) => node.coordination),
        () =>
          new Map(this.#nodes.map((node) => [node.id, node.process.clockMs()])),
        faultyMs,
        random,
        this.#checker,
        this.#trace,
      );
    this.#watch = events === null ? null : new EventsProperties(
      queue,
      () => this.#nodes.map((node) => ({ id: node.id, port: node.events })),
      () => this.#leader()?.events ?? null,
      faultyMs,
      random,
      this.#checker,
      () => {
        this.#unsettled = true;
      },
      this.#trace,
    );
    const watch = this.#watch;
    this.#hooks = watch === null || events?.hooks !== true
      ? null
      : new HooksProperties(
        queue,
        () => this.#nodes,
        () => this.#leader(),
        watch.reference,
        faultyMs,
        random,
        this.#checker,
        () => {
          this.#unsettled = true;
        },
        this.#trace,
      );
    this.#nemesis = new Nemesis(
      queue,
      random("nemesis"),
      {
        nodes: this.#nodes,
        members: () => this.#members(),
        spares: ids.slice(options.nodes),
        votersMin: options.nodes - 1,
        tickMs: TICK_MS,
        clockDrift: CLOCK_DRIFT,
        readOnly: modes.readOnly,
        keys: workloadKeys,
      },
      this.#network,
      this.#clients,
      options.faults,
      this.#trace,
    );
  }

  async run(): Promise<SeedResult> {
    const faultyMs = this.#options.ticks * TICK_MS;
    for (const node of this.#nodes) node.start();
    await this.#settle();
    this.#nemesis.start(faultyMs);
    this.#clients.start();
    this.#coordination?.start();
    this.#watch?.start();
    this.#hooks?.start();
    await this.#runUntil(() => this.#queue.peekTime() > faultyMs);
    // The workers hold their proposals while the cluster must go quiet.
    this.#hooks?.pause(true);
    if (this.#checker.violation === null) await this.#livenessPhase(faultyMs);
    this.#hooks?.pause(false);
    if (this.#checker.violation === null) this.#checkDurability();
    if (this.#checker.violation === null) this.#checkLinearizability();
    if (this.#checker.violation === null) this.#coordination?.finish();
    if (this.#checker.violation === null) await this.#eventsCatchUp();
    if (this.#checker.violation === null) await this.#hooksCatchUp();
    this.#watch?.stop();
    this.#hooks?.stop();
    if (this.#checker.violation === null) this.#watch?.finish();
    if (this.#checker.violation === null) this.#hooks?.finish();
    return this.#result();
  }

  /**
   * The services a run asks for, with their binding and leader-side bugs.
   *
   * @throws {RangeError} When services are asked for and none are bound.
   */
  #coordinationSetup(
    knobs: ServiceBugKnobs,
  ): { binding: CoordinationBinding; knobs: ServiceBugKnobs } | null {
    const services = runServices(this.#options);
    if (!services.includes("leases") && !services.includes("locks")) {
      return null;
    }
    if (COORDINATION_BINDING === null) {
      throw new RangeError(
        "Cannot simulate services 'leases,locks' as the simulator has no binding to them yet: see src/sim/coordination_binding.ts",
      );
    }
    return { binding: COORDINATION_BINDING, knobs };
  }

  /**
   * With events: how every node runs the service (compaction often, few
   * revisions kept: the compaction nemesis), and the planted bug's knob.
   */
  #eventsSetup(random: SeededRandom): EventsSettings | null {
    if (!runServices(this.#options).includes("events")) return null;
    const bug = this.#options.bug;
    return {
      knobs: bug !== null && EVENTS_BUGS.has(bug)
        ? { skipOnResume: bug === "watch-skip-on-resume" }
        : {},
      compactIntervalMs: random.pick([100, 250, 500]),
      keepRevisions: random.pick([5, 20, 60]),
      hooks: runServices(this.#options).includes("hooks"),
    };
  }

  /**
   * With hooks, after healing: the workers go on until every hook is
   * caught up on the leader, within {@linkcode hooksCatchUpTicksMax}.
   */
  async #hooksCatchUp(): Promise<void> {
    const hooks = this.#hooks;
    if (hooks === null) return;
    const endMs = this.#queue.now + hooksCatchUpTicksMax * TICK_MS;
    let nextCheckMs = this.#queue.now;
    let caughtUp = false;
    await this.#runUntil(() => {
      const now = this.#queue.peekTime();
      if (now > endMs) return true;
      if (now < nextCheckMs) return false;
      nextCheckMs = now + TICK_MS;
      caughtUp = hooks.caughtUp;
      return caughtUp;
    });
    if (this.#checker.violation !== null || caughtUp) return;
    // A broken safety property says more than the stall it may cause.
    hooks.finish(false);
    if (this.#checker.violation !== null) return;
    this.#checker.fail(
      `hooks liveness: hooks not caught up on the leader ${hooksCatchUpTicksMax} ticks after healing: ${
        hooks.behind.join(", ")
      }; ${this.#describeNodes()}`,
    );
  }

  /**
   * With events, after healing: every watcher resumes on the leader until
   * its stream says `synced`, within {@linkcode catchUpTicksMax}.
   */
  async #eventsCatchUp(): Promise<void> {
    const watch = this.#watch;
    if (watch === null) return;
    watch.catchUp();
    const endMs = this.#queue.now + catchUpTicksMax * TICK_MS;
    await this.#runUntil(() =>
      watch.caughtUp || this.#queue.peekTime() > endMs
    );
    if (this.#checker.violation !== null || watch.caughtUp) return;
    this.#checker.fail(
      `events liveness: watchers not synced on the leader ${catchUpTicksMax} ticks after healing: ${
        watch.behind.join(", ")
      }; ${this.#describeNodes()}`,
    );
  }

  /** A node that leads now (the highest term), or null. */
  #leader(): SimNode | null {
    let leader: SimNode | null = null;
    let term = -1;
    for (const node of this.#nodes) {
      const status = node.available ? node.raft?.status() : undefined;
      if (status?.role === "leader" && status.term > term) {
        leader = node;
        term = status.term;
      }
    }
    return leader;
  }

  /** Lets the promise jobs the last events started run, at the time they started. */
  async #settle(): Promise<void> {
    // A job may start more jobs and run inputs (a resolved write answers a
    // client, which proposes again): settle until none ran.
    for (let rounds = 0; this.#unsettled && rounds < 100; rounds++) {
      this.#unsettled = false;
      for (let hop = 0; hop < settleHops; hop++) await null;
    }
  }

  /** Runs events until `done()` or a violation. */
  async #runUntil(done: () => boolean): Promise<void> {
    const checker = this.#checker;
    while (checker.violation === null && !done()) {
      if (!this.#queue.runNext()) return;
      this.#events++;
      // Jobs run before time moves on (events at the same instant first).
      if (this.#unsettled && this.#queue.peekTime() > this.#queue.now) {
        await this.#settle();
      }
    }
  }

  /** Nodes of the latest committed configuration and of any leader's newer one. */
  #members(): SimNode[] {
    const ids = new Set<string>();
    const add = (conf: ConfState) => {
      for (const id of conf.voters) ids.add(id);
      for (const id of conf.votersOutgoing) ids.add(id);
      for (const id of conf.learners) ids.add(id);
    };
    add(this.#checker.latestConf());
    for (const node of this.#nodes) {
      const status = node.available ? node.raft?.status() : undefined;
      if (status?.role === "leader") add(status.conf);
    }
    return this.#nodes.filter((node) => ids.has(node.id));
  }

  #deliver(message: Message): void {
    const node = this.#byId.get(message.to);
    if (node === undefined) return;
    const trace = this.#trace;
    if (trace !== null) {
      const state = node.raft === null
        ? "drop"
        : node.paused
        ? "hold"
        : "deliver";
      trace(
        `${state} ${describeMessage(message)}${
          state === "drop" ? " (down)" : ""
        }`,
      );
    }
    node.receive(message);
  }

  /** Heals every fault; demands a leader, fresh commits and full catch-up. */
  async #livenessPhase(faultyMs: number): Promise<void> {
    this.#trace?.("heal all");
    this.#nemesis.healAll();
    // A member that lost its log catches up by snapshot, one chunk per
    // round trip (under a tick once healed): the budget grows with the state
    // it must receive (the events history makes states larger), so a seed
    // with 64-byte chunks is judged on liveness, not on transfer time.
    const stateBytes = Math.max(0, ...this.#nodes.map((n) => n.stateBytes()));
    const transferTicks = Math.ceil(stateBytes / this.#snapshotChunkBytes);
    const budgetMs = (livenessTicksMax + transferTicks) * TICK_MS;
    const endMs = faultyMs + budgetMs;
    let fresh: number | null = null;
    this.#clients.writeFresh(
      freshWrites,
      operationDeadlineMs,
      budgetMs,
      (acknowledged) => {
        fresh = acknowledged;
      },
      () => this.#members(),
    );
    let nextCheckMs = this.#queue.now;
    let quiet = false;
    await this.#runUntil(() => {
      const now = this.#queue.peekTime();
      if (now > endMs) return true;
      if (now < nextCheckMs) return false;
      nextCheckMs = now + TICK_MS;
      quiet = fresh === freshWrites && this.#quiescent();
      return quiet;
    });
    if (this.#checker.violation !== null || quiet) return;
    this.#checker.fail(
      `liveness: not quiescent ${livenessTicksMax} ticks after healing: ${
        fresh === null
          ? "fresh writes unfinished"
          : `${fresh}/${freshWrites} fresh writes acknowledged`
      }; ${this.#describeNodes()}`,
    );
  }

  /**
   * One leader, every member of its (non-joint) configuration running,
   * caught up and idle. Nodes outside the final configuration (removed
   * voters, spares never added) are not waited for.
   */
  #quiescent(): boolean {
    if (this.#clients.pendingCount > 0) return false;
    let leader: SimNode | null = null;
    let leaderTerm = -1;
    for (const node of this.#nodes) {
      const status = node.available ? node.raft?.status() : undefined;
      if (status?.role === "leader" && status.term > leaderTerm) {
        leader = node;
        leaderTerm = status.term;
      }
    }
    const leaderStatus = leader?.raft?.status();
    if (leaderStatus === undefined) return false;
    const conf = leaderStatus.conf;
    if (conf.votersOutgoing.length > 0) return false;
    const members = [...conf.voters, ...conf.learners];
    for (const id of members) {
      const node = this.#byId.get(id);
      const raft = node?.raft;
      if (
        node === undefined || raft === null || raft === undefined ||
        node.paused || node.syncing
      ) return false;
      const status = raft.status();
      if (
        status.term !== leaderStatus.term ||
        status.commit !== leaderStatus.commit ||
        status.applied !== leaderStatus.commit ||
        status.lastIndex !== leaderStatus.commit ||
        status.leader !== leaderStatus.id || raft.hasReady()
      ) {
        return false;
      }
    }
    this.#finalMembers = members;
    return true;
  }

  #describeNodes(): string {
    return this.#nodes.map((node) => {
      const status = node.raft?.status();
      if (status === undefined) return `${node.id} down`;
      return `${node.id} ${status.role} t${status.term} leader=${status.leader} commit=${status.commit} applied=${status.applied} last=${status.lastIndex} (${
        describeConf(status.conf)
      })`;
    }).join(", ");
  }

  /** Every acknowledged command is in the state machine of every final member. */
  #checkDurability(): void {
    const members = this.#nodes.filter((node) =>
      this.#finalMembers.includes(node.id)
    );
    const applied = new Map(members.map((node) => [node, node.appliedIds()]));
    for (const id of this.#clients.acknowledged) {
      for (const node of members) {
        if (!applied.get(node)!.has(id)) {
          this.#checker.fail(
            `durability: acknowledged command '${id}' is missing from '${node.id}'`,
          );
          return;
        }
      }
    }
  }

  #checkLinearizability(): void {
    const history = this.#clients.history();
    const result = checkOperations(kvModel, history, {
      timeoutMs: this.#options.lincheckTimeoutMs,
    });
    if (result.verdict === "linearizable") return;
    if (result.verdict === "undecided") {
      this.#checker.fail(
        `linearizability undecided: no verdict within ${this.#options.lincheckTimeoutMs} ms on ${history.length} operations`,
      );
      return;
    }
    const detail = result.detail;
    this.#checker.fail(
      `linearizability: history is not linearizable${
        detail === undefined
          ? ""
          : ` on ${detail.partition}: ${detail.operations.join("; ")}`
      }`,
    );
  }

  #result(): SeedResult {
    const lines = this.#traceLines;
    if (lines !== null) {
      const violation = this.#checker.violation;
      if (violation !== null) lines.push(`violation ${violation}`);
      for (const node of this.#nodes) {
        lines.push(`hash ${node.id} ${nodeDigest(node)}`);
      }
    }
    let finalCommit = 0;
    for (const node of this.#nodes) {
      finalCommit = Math.max(finalCommit, node.durableHardState.commit);
    }
    return {
      seed: this.#options.seed,
      nodes: this.#options.nodes,
      violation: this.#checker.violation,
      trace: lines,
      stats: {
        events: this.#events,
        simulatedMs: this.#queue.now,
        messagesSent: this.#network.counts.sent,
        acknowledged: this.#clients.counts.acknowledged,
        unknown: this.#clients.counts.unknown,
        historyLength: this.#clients.history().length,
        finalCommit,
        modes: this.#modes,
        faults: Object.fromEntries(this.#nemesis.counts),
        finalMembers: this.#finalMembers,
        confChanges: this.#checker.confChanges,
        snapshotsInstalled: this.#nodes.reduce(
          (sum, node) => sum + node.snapshotsInstalled,
          0,
        ),
        readsQueued: this.#nodes.reduce(
          (sum, node) => sum + node.readsQueued,
          0,
        ),
        coordination: this.#coordination === null
          ? null
          : { ...this.#coordination.counts },
        watchers: this.#watch === null ? null : { ...this.#watch.counts },
        hooks: this.#hooks === null ? null : this.#hooks.counts,
      },
    };
  }
}

const encoder = new TextEncoder();

/** SHA-256 of a node's durable log, hard state and state machine. */
function nodeDigest(node: SimNode): string {
  const hardState = node.durableHardState;
  const parts = [
    `hardState ${hardState.term} ${hardState.vote} ${hardState.commit}`,
  ];
  const snapshot = node.disk.snapshotMeta;
  if (snapshot !== null) {
    parts.push(
      `snapshot ${snapshot.index} ${snapshot.term} ${
        JSON.stringify(snapshot.confState)
      }`,
    );
  }
  const image = node.disk.image;
  if (image !== null) {
    parts.push(`image ${image.index} ${bytesToHex(sha256(image.data))}`);
  }
  for (const entry of node.durableEntries) {
    parts.push(
      `${entry.index} ${entry.term} ${entry.type} ${bytesToHex(entry.data)}`,
    );
  }
  parts.push(`state ${node.appliedIndex} ${node.stateHash()}`);
  return bytesToHex(sha256(encoder.encode(parts.join("\n"))));
}
