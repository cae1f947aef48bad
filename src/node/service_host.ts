/**
 * The service host: runs the services' leader tasks (see
 * `src/state/leader_task.ts`) while this node leads. It follows leadership
 * (after every applied batch and every `checkIntervalMs`), starts each
 * registered task when this node becomes leader, stops it when the node
 * stops leading, changes term or shuts down, and gives it a context whose
 * `propose` is bounded by the task's {@linkcode ProposalRate} and refuses
 * once the task stopped, so a deposed leader proposes nothing more.
 *
 * @module
 */
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";
import {
  type LeaderTask,
  LeaderTaskBusyError,
  type LeaderTaskContext,
  LeaderTaskStoppedError,
} from "../state/leader_task.ts";
import {
  DEFAULT_PROPOSAL_RATE,
  type ProposalRate,
  TokenBucket,
  validateProposalRate,
} from "./proposal_rate.ts";
import { systemClock, systemScheduler } from "./system_clock.ts";

/** What the host needs to know of the node's Raft role (the runner, in production). */
export interface Leadership {
  /** True while this node leads. */
  isLeader(): boolean;
  /** The current term. */
  term(): number;
  /** Calls `listener` after each applied batch; returns an unsubscribe function. */
  onApplied(listener: () => void): () => void;
}

/** A task with its command codec and its bound. */
export interface LeaderTaskRegistration<C, R> {
  readonly task: LeaderTask<C, R>;
  /** Encodes a command as a log entry's data. */
  readonly encode: (command: C) => Uint8Array;
  /** Decodes the apply result of that entry. */
  readonly decode: (result: unknown) => R;
  /** The task's proposal bound. Default {@linkcode DEFAULT_PROPOSAL_RATE}. */
  readonly rate?: ProposalRate;
}

/** Options of {@linkcode ServiceHost}. */
export interface ServiceHostOptions {
  readonly leadership: Leadership;
  /** Proposes on this node, which must lead (the runner's `proposeLocal`). */
  readonly proposeLocal: (data: Uint8Array) => Promise<unknown>;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** Default: the platform's timers. */
  readonly scheduler?: Scheduler;
  /** How often leadership is checked besides after each applied batch, in ms. Default 50. */
  readonly checkIntervalMs?: number;
  /** Where task failures are reported. Default: nowhere. */
  readonly log?: (line: string) => void;
}

/** Counters of one task, for tests and metrics. */
export interface LeaderTaskStats {
  readonly running: boolean;
  /** Times the task was started. */
  readonly starts: number;
  /** Proposals sent to Raft. */
  readonly proposals: number;
  /** Proposals refused (stopped, busy). */
  readonly refused: number;
}

// deno-lint-ignore no-explicit-any
type AnyRegistration = LeaderTaskRegistration<any, any>;

/**
 * One registered task and its current run, if any. The bucket and the
 * in-flight count outlive runs, so leadership changes grant no extra burst.
 */
class TaskSlot {
  readonly registration: AnyRegistration;
  readonly rate: ProposalRate;
  readonly bucket: TokenBucket;
  run: TaskRun | null = null;
  /** Proposals waiting for a token or in flight, across runs. */
  pending = 0;
  starts = 0;
  proposals = 0;
  refused = 0;

  constructor(
    registration: AnyRegistration,
    clock: Clock,
    scheduler: Scheduler,
  ) {
    this.registration = registration;
    this.rate = validateProposalRate(
      registration.rate ?? DEFAULT_PROPOSAL_RATE,
    );
    this.bucket = new TokenBucket(this.rate, clock, scheduler);
  }
}

/** One leadership term of one task: its timers, bucket and pending proposals. */
class TaskRun {
  readonly #slot: TaskSlot;
  readonly #host: ServiceHostOptions;
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  readonly #controller = new AbortController();
  readonly #timers = new Set<Scheduled>();
  readonly #unsubscribes: (() => void)[] = [];

  constructor(
    slot: TaskSlot,
    host: ServiceHostOptions,
    clock: Clock,
    scheduler: Scheduler,
  ) {
    this.#slot = slot;
    this.#host = host;
    this.#clock = clock;
    this.#scheduler = scheduler;
  }

  get stopped(): boolean {
    return this.#controller.signal.aborted;
  }

  context(): LeaderTaskContext<unknown, unknown> {
    const scheduler: Scheduler = {
      after: (delayMs, callback) => this.#schedule(delayMs, callback, true),
      every: (periodMs, callback) => this.#schedule(periodMs, callback, false),
    };
    return {
      clock: this.#clock,
      scheduler,
      signal: this.#controller.signal,
      propose: (command) => this.#propose(command),
      onApplied: (listener) => {
        if (this.stopped) return;
        this.#unsubscribes.push(
          this.#host.leadership.onApplied(() => {
            if (!this.stopped) listener();
          }),
        );
      },
    };
  }

  #schedule(
    delayMs: number,
    callback: () => void,
    once: boolean,
  ): Scheduled {
    if (this.stopped) return { cancel: () => {} };
    const fire = () => {
      // Runs after `tracked` is set: schedulers never call back synchronously.
      if (once) this.#timers.delete(tracked);
      if (!this.stopped) callback();
    };
    const inner = once
      ? this.#scheduler.after(delayMs, fire)
      : this.#scheduler.every(delayMs, fire);
    const tracked: Scheduled = {
      cancel: () => {
        inner.cancel();
        this.#timers.delete(tracked);
      },
    };
    this.#timers.add(tracked);
    return tracked;
  }

  async #propose(command: unknown): Promise<unknown> {
    const name = this.#slot.registration.task.name;
    if (this.stopped || !this.#host.leadership.isLeader()) {
      this.#slot.refused++;
      throw new LeaderTaskStoppedError(
        `Cannot propose for '${name}': this node does not lead`,
      );
    }
    if (this.#slot.pending >= this.#slot.rate.inFlightMax) {
      this.#slot.refused++;
      throw new LeaderTaskBusyError(
        `Cannot propose for '${name}': ${this.#slot.rate.inFlightMax} proposals wait already`,
      );
    }
    this.#slot.pending++;
    try {
      await this.#slot.bucket.take();
      // Leadership may have gone while this proposal waited its turn.
      if (this.stopped || !this.#host.leadership.isLeader()) {
        this.#slot.refused++;
        throw new LeaderTaskStoppedError(
          `Cannot propose for '${name}': this node stopped leading`,
        );
      }
      const data = this.#slot.registration.encode(command);
      this.#slot.proposals++;
      return this.#slot.registration.decode(
        await this.#host.proposeLocal(data),
      );
    } finally {
      this.#slot.pending--;
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.#controller.abort();
    for (const timer of [...this.#timers]) timer.cancel();
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
    this.#slot.bucket.close(
      new LeaderTaskStoppedError(
        `Cannot propose for '${this.#slot.registration.task.name}': the task stopped`,
      ),
    );
  }
}

/** Starts and stops leader tasks as this node's leadership changes. */
export class ServiceHost {
  readonly #options: ServiceHostOptions;
  readonly #clock: Clock;
  readonly #scheduler: Scheduler;
  readonly #checkIntervalMs: number;
  readonly #slots = new Map<string, TaskSlot>();
  #running = false;
  #check: Scheduled | null = null;
  #unsubscribe: (() => void) | null = null;
  /** The term the running tasks were started in (null: none running). */
  #ledTerm: number | null = null;

  /** @throws {RangeError} For a non-positive check interval. */
  constructor(options: ServiceHostOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#checkIntervalMs = options.checkIntervalMs ?? 50;
    if (
      !Number.isSafeInteger(this.#checkIntervalMs) || this.#checkIntervalMs <= 0
    ) {
      throw new RangeError(
        `Cannot create service host as 'checkIntervalMs' must be a positive integer: current value is ${this.#checkIntervalMs}`,
      );
    }
  }

  /**
   * Registers a task (before or after {@linkcode start}).
   *
   * @throws {RangeError} For a duplicate name or a bad rate.
   */
  add<C, R>(registration: LeaderTaskRegistration<C, R>): void {
    const name = registration.task.name;
    if (this.#slots.has(name)) {
      throw new RangeError(
        `Cannot add leader task '${name}' as one of that name exists`,
      );
    }
    this.#slots.set(
      name,
      new TaskSlot(registration, this.#clock, this.#scheduler),
    );
    if (this.#ledTerm !== null) this.#startTask(this.#slots.get(name)!);
  }

  /** True between {@linkcode start} and {@linkcode stop}. */
  get running(): boolean {
    return this.#running;
  }

  /** Starts following leadership. Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#unsubscribe = this.#options.leadership.onApplied(() => this.check());
    this.#check = this.#scheduler.every(
      this.#checkIntervalMs,
      () => this.check(),
    );
    this.check();
  }

  /** Stops every task and stops following leadership. Idempotent. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#check?.cancel();
    this.#check = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    // Every task, running or not: a task may hold callers (queue listeners)
    // that wait for a start that will not come now.
    this.#stopTasks(true);
  }

  /** Compares leadership with the running tasks and starts or stops them. */
  check(): void {
    if (!this.#running) return;
    const leadership = this.#options.leadership;
    const term = leadership.isLeader() ? leadership.term() : null;
    if (term === this.#ledTerm) return;
    if (this.#ledTerm !== null) this.#stopTasks();
    if (term === null) return;
    this.#ledTerm = term;
    for (const slot of this.#slots.values()) this.#startTask(slot);
  }

  /** A task's counters. @throws {RangeError} For an unknown name. */
  stats(name: string): LeaderTaskStats {
    const slot = this.#slots.get(name);
    if (slot === undefined) {
      throw new RangeError(`Cannot read leader task '${name}': unknown`);
    }
    return {
      running: slot.run !== null,
      starts: slot.starts,
      proposals: slot.proposals,
      refused: slot.refused,
    };
  }

  /** Prometheus text of every task's counters. */
  renderMetrics(): string {
    const families: [string, string, string, (s: TaskSlot) => number][] = [
      [
        "aspen_leader_task_running",
        "gauge",
        "1 while the leader task runs (this node leads).",
        (s) => s.run === null ? 0 : 1,
      ],
      [
        "aspen_leader_task_proposals_total",
        "counter",
        "Proposals a leader task sent to Raft.",
        (s) => s.proposals,
      ],
      [
        "aspen_leader_task_refused_total",
        "counter",
        "Proposals of a leader task refused by its bound or its stop.",
        (s) => s.refused,
      ],
    ];
    const lines: string[] = [];
    for (const [name, type, help, value] of families) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [task, slot] of this.#slots) {
        lines.push(`${name}{task="${task}"} ${value(slot)}`);
      }
    }
    return lines.join("\n") + "\n";
  }

  #startTask(slot: TaskSlot): void {
    const run = new TaskRun(slot, this.#options, this.#clock, this.#scheduler);
    slot.run = run;
    slot.starts++;
    try {
      slot.registration.task.start(run.context());
    } catch (error) {
      run.stop();
      slot.run = null;
      this.#options.log?.(
        `warning: leader task '${slot.registration.task.name}' failed to start: ${
          (error as Error).message
        }`,
      );
    }
  }

  #stopTasks(all = false): void {
    this.#ledTerm = null;
    for (const slot of this.#slots.values()) {
      const run = slot.run;
      if (run === null && !all) continue;
      slot.run = null;
      run?.stop();
      try {
        slot.registration.task.stop();
      } catch (error) {
        this.#options.log?.(
          `warning: leader task '${slot.registration.task.name}' failed to stop: ${
            (error as Error).message
          }`,
        );
      }
    }
  }
}

/** The {@linkcode Leadership} of a runner (anything with Raft's status and applied events). */
export function runnerLeadership(runner: {
  status(): { readonly role: string; readonly term: number };
  onApplied(listener: () => void): () => void;
}): Leadership {
  return {
    isLeader: () => runner.status().role === "leader",
    term: () => runner.status().term,
    onApplied: (listener) => runner.onApplied(listener),
  };
}
