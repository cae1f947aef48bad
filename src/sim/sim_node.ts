/**
 * One simulated server: a Raft core, its durable storage (which keeps only
 * what an fsync completed), its in-memory KV state machine, and the Ready
 * loop that ties them together in the order the core's contract demands:
 * persist, then send, then apply, then advance.
 *
 * @module
 */
import { AssertionError } from "../raft/assert.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import { RaftNode } from "../raft/raft_node.ts";
import type {
  Entry,
  HardState,
  LogIndex,
  Message,
  RaftConfig,
  Ready,
  Role,
  Term,
} from "../raft/types.ts";
import type { EventQueue } from "./event_queue.ts";
import type { InvariantChecker, TermAt } from "./invariants.ts";
import {
  commandId,
  decodeCommand,
  type KvCommand,
  KvStateMachine,
} from "./kv_state_machine.ts";
import type { KvOutput } from "./lincheck.ts";
import type { SeededRandom } from "./random.ts";

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
  /** Called when a node becomes leader. */
  leaderElected(node: SimNode): void;
  /** Called when a leader advances its commit index for the first time in its term. */
  leaderFirstCommit(node: SimNode): void;
  readonly trace: ((line: string) => void) | null;
}

/** Messages held for a paused node, at most. */
const inboxMessagesMax = 10_000;

const EMPTY_HARD_STATE: HardState = {
  term: 0 as Term,
  vote: null,
  commit: 0 as LogIndex,
};

/** A simulated server process and its disk. */
export class SimNode {
  readonly id: string;
  readonly #config: RaftConfig;
  readonly #environment: NodeEnvironment;
  readonly #disk: SeededRandom;
  raft: RaftNode | null = null;
  paused = false;
  incarnation = 0;
  /** Durable log: entry i has index i + 1. */
  readonly durableEntries: Entry[] = [];
  durableHardState: HardState = EMPTY_HARD_STATE;
  stateMachine = new KvStateMachine();
  /** Command ids applied by this process (rebuilt after a restart). */
  appliedCommands = new Set<string>();
  #pending: Ready | null = null;
  #pendingSynced = false;
  #inbox: Message[] = [];
  #role: Role = "follower";
  #term = 0 as Term;
  #commitSeen = 0 as LogIndex;
  #firstCommitTerm = -1;

  constructor(
    config: RaftConfig,
    environment: NodeEnvironment,
    disk: SeededRandom,
  ) {
    this.id = config.id;
    this.#config = config;
    this.#environment = environment;
    this.#disk = disk;
  }

  /** True when the process runs and is not paused. */
  get available(): boolean {
    return this.raft !== null && !this.paused;
  }

  /** True while a Ready waits for its fsync. */
  get syncing(): boolean {
    return this.#pending !== null;
  }

  /** Starts (or restarts) the process from what is durable. */
  start(): void {
    const hardState = this.durableHardState;
    this.#environment.checker.observeStart(this.id, hardState);
    this.stateMachine = new KvStateMachine();
    this.appliedCommands = new Set();
    this.#role = "follower";
    this.#term = hardState.term;
    this.#commitSeen = 0 as LogIndex;
    this.#guard(() => {
      this.raft = new RaftNode(this.#config, {
        hardState,
        entries: [...this.durableEntries],
        applied: 0 as LogIndex,
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
    this.#pending = null;
    this.#pendingSynced = false;
    this.#inbox = [];
    this.incarnation++;
  }

  /** Stops the process from running without killing it. */
  pause(): void {
    this.paused = true;
  }

  /** Lets a paused process run again: finishes its fsync, then reads its inbox. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.#pendingSynced) this.#finishPending();
    const inbox = this.#inbox;
    this.#inbox = [];
    for (const message of inbox) this.receive(message);
    this.#pump();
  }

  /** One tick of logical time. */
  tick(): void {
    const raft = this.raft;
    if (raft === null || this.paused) return;
    this.#guard(() => raft.tick());
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
    this.#guard(() => raft.step(message));
    this.#pump();
  }

  /**
   * Proposes a command on this node.
   *
   * @returns The index and term the entry got.
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

  /** Term of the entry at `index` in the running process's log, or undefined. */
  termAt(index: LogIndex): Term | undefined {
    const raft = this.raft;
    if (raft === null || index < 1 || index > raft.status().lastIndex) {
      return undefined;
    }
    return raft.entries(index, (index + 1) as LogIndex)[0]?.term;
  }

  /** Term of the durable entry at `index`, or undefined. */
  durableTermAt: TermAt = (index) =>
    index === 0 ? 0 as Term : this.durableEntries[index - 1]?.term;

  /** Runs a core call; a core assertion or other error is a violation. */
  #guard(call: () => void, rethrowDropped = false): void {
    try {
      call();
    } catch (error) {
      if (rethrowDropped && error instanceof ProposalDroppedError) throw error;
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
      if (next.entries.length > 0 || next.hardState !== null) {
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
    const first = ready.entries[0];
    if (first !== undefined) {
      this.durableEntries.length = Math.min(
        this.durableEntries.length,
        first.index - 1,
      );
      this.durableEntries.push(...ready.entries);
      checker.observeDurableAppend(this.id, ready.entries, this.durableTermAt);
    }
    if (ready.hardState !== null) {
      this.durableHardState = ready.hardState;
      checker.observeDurableHardState(this.id, ready.hardState);
    }
  }

  /** The durable part is done: send, apply, advance. */
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
    for (const entry of ready.committedEntries) this.#apply(entry);
    const raft = this.raft;
    if (raft !== null) this.#guard(() => raft.advance());
  }

  #apply(entry: Entry): void {
    this.#environment.checker.observeApplied(this.id, entry);
    if (entry.type !== "normal") return;
    const command = decodeCommand(entry.data);
    if (command === null) {
      this.#environment.applied(this, entry, null, null);
      return;
    }
    const output = this.stateMachine.apply(command.op);
    this.appliedCommands.add(commandId(command));
    this.#environment.applied(this, entry, command, output);
  }

  #afterStep(): void {
    const raft = this.raft;
    if (raft === null) return;
    const status = raft.status();
    const checker = this.#environment.checker;
    checker.observeProcess(this.id, status.term, status.commit, status.applied);
    if (status.commit > this.#commitSeen) {
      checker.observeCommitted(
        this.id,
        status.term,
        raft.entries(
          (this.#commitSeen + 1) as LogIndex,
          (status.commit + 1) as LogIndex,
        ),
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
      this.#role = status.role;
      this.#term = status.term;
      if (elected) this.#environment.leaderElected(this);
      checker.observeRole(this.id, status.role, status.term, (index) => {
        if (index < 1 || index > raft.status().lastIndex) {
          return index === 0 ? 0 as Term : undefined;
        }
        return raft.entries(index, (index + 1) as LogIndex)[0]?.term;
      });
    }
  }
}
