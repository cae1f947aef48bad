/**
 * One simulated server process as the real runner sees it: a Clock and a
 * Scheduler (src/base/clock.ts ports) on the simulator's event queue, running
 * at the node's own (possibly skewed) rate, and a gate every input goes
 * through. While the process is paused (SIGSTOP) or its event loop stalls,
 * inputs are held and run when it runs again; ticks that fall due meanwhile
 * are lost, as with setInterval. A crash ends the incarnation: its timers and
 * held inputs never run.
 *
 * @module
 */
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";
import type { EventQueue } from "./event_queue.ts";

/** Inputs held for a paused process, at most (the rest are lost, like a full socket). */
const heldInputsMax = 10_000;
/** Client requests held for a paused process, at most. */
const heldRequestsMax = 1_000;
/** Wall clock of every node at simulated time 0 (a fixed date: runs are reproducible). */
const wallEpochMs = 1_750_000_000_000;

/** A simulated process's clock, timers and input gate. */
export class SimProcess {
  readonly #queue: EventQueue;
  readonly #nominalTickMs: number;
  #tickPeriodMs: number;
  #clockBase = 0;
  #clockSetAt = 0;
  /** Delay of the first periodic timer of an incarnation (ticks start out of phase). */
  #phaseMs: number;
  /** Bumped by every crash: timers and inputs of an earlier incarnation never run. */
  incarnation = 0;
  /** True while the process exists (started and not crashed). */
  running = false;
  #pausedByNemesis = false;
  #stalled = false;
  #held: (() => void)[] = [];
  #heldRequests: (() => void)[] = [];
  /** Called whenever an input ran (the simulator then lets promise jobs settle). */
  readonly #ran: () => void;
  /** Called when an input threw (a core assertion is a violation). */
  readonly #failed: (error: unknown) => void;
  readonly #trace: ((line: string) => void) | null;
  readonly #id: string;

  readonly clock: Clock = {
    monotonicMs: () => this.clockMs(),
    // Whole milliseconds, as Date.now() gives.
    wallMs: () => wallEpochMs + Math.floor(this.clockMs()),
  };

  readonly scheduler: Scheduler = {
    after: (delayMs, callback) => this.#after(delayMs, callback),
    every: (periodMs, callback) => this.#every(periodMs, callback),
  };

  constructor(
    id: string,
    queue: EventQueue,
    tickMs: number,
    phaseMs: number,
    ran: () => void,
    failed: (error: unknown) => void,
    trace: ((line: string) => void) | null,
  ) {
    this.#failed = failed;
    this.#id = id;
    this.#queue = queue;
    this.#nominalTickMs = tickMs;
    this.#tickPeriodMs = tickMs;
    this.#phaseMs = phaseMs;
    this.#ran = ran;
    this.#trace = trace;
  }

  /** True while the process does not run: paused by the nemesis, or stalled. */
  get paused(): boolean {
    return this.#pausedByNemesis || this.#stalled;
  }

  /**
   * Simulated ms per tick of this node's clock (skew changes it). The
   * node's monotonic clock and its timers run at nominal tick / period.
   */
  get tickPeriodMs(): number {
    return this.#tickPeriodMs;
  }

  set tickPeriodMs(period: number) {
    this.#clockBase = this.clockMs();
    this.#clockSetAt = this.#queue.now;
    this.#tickPeriodMs = period;
  }

  /** This node's monotonic clock now: it runs on while the process is paused or stalled. */
  clockMs(): number {
    const elapsed = this.#queue.now - this.#clockSetAt;
    return this.#clockBase +
      (elapsed * this.#nominalTickMs) / this.#tickPeriodMs;
  }

  /** Starts a new incarnation. */
  start(): void {
    this.running = true;
    this.#pausedByNemesis = false;
    this.#stalled = false;
  }

  /** Kills the process: held inputs and timers are gone. */
  crash(): void {
    this.running = false;
    this.#pausedByNemesis = false;
    this.#stalled = false;
    this.#held = [];
    this.#heldRequests = [];
    this.incarnation++;
  }

  /**
   * Runs `input` now, or holds it while the process is paused; drops it when
   * the process is down or the hold is full.
   *
   * @param request A client request: held apart and run first on resume
   *   (the worst order for a lease: the socket hands them over before the
   *   peers' messages).
   * @param sync The input starts no promise job (a Raft message: the
   *   runner steps its core and schedules its ready loop), so the simulator
   *   need not let jobs settle after it.
   * @returns False when the input was dropped.
   */
  input(run: () => void, request = false, sync = false): boolean {
    if (!this.running) return false;
    if (this.paused) {
      const held = request ? this.#heldRequests : this.#held;
      if (held.length >= (request ? heldRequestsMax : heldInputsMax)) {
        return false;
      }
      held.push(run);
      return true;
    }
    this.#run(run, sync);
    return true;
  }

  #run(run: () => void, sync = false): void {
    try {
      run();
    } catch (error) {
      this.#failed(error);
    }
    if (!sync) this.#ran();
  }

  /** The nemesis stops the process (SIGSTOP). */
  pause(): void {
    if (this.running) this.#pausedByNemesis = true;
  }

  /** The nemesis lets it run again (unless it is also stalled). */
  resume(): void {
    if (!this.#pausedByNemesis) return;
    this.#pausedByNemesis = false;
    this.#drain();
  }

  /**
   * The event loop stops for `ms` without anyone pausing the process.
   *
   * @returns False when the process is down, paused or already stalled.
   */
  stall(ms: number): boolean {
    if (!this.running || this.paused) return false;
    this.#stalled = true;
    const incarnation = this.incarnation;
    this.#trace?.(`stall ${this.#id} ${ms}ms`);
    this.#queue.after(ms, () => {
      if (incarnation !== this.incarnation || !this.#stalled) return;
      this.#stalled = false;
      this.#trace?.(`unstall ${this.#id}`);
      this.#drain();
    });
    return true;
  }

  #drain(): void {
    while (this.running && !this.paused) {
      const next = this.#heldRequests.shift() ?? this.#held.shift();
      if (next === undefined) return;
      this.#run(next);
    }
  }

  /** Simulated ms for `ms` of this node's timers. */
  #simulatedMs(ms: number): number {
    return Math.max(
      0,
      Math.ceil((ms * this.#tickPeriodMs) / this.#nominalTickMs),
    );
  }

  #after(delayMs: number, callback: () => void): Scheduled {
    const incarnation = this.incarnation;
    let cancelled = false;
    this.#queue.after(this.#simulatedMs(delayMs), () => {
      if (cancelled || incarnation !== this.incarnation) return;
      this.input(() => {
        if (!cancelled) callback();
      });
    });
    return { cancel: () => cancelled = true };
  }

  #every(periodMs: number, callback: () => void): Scheduled {
    const incarnation = this.incarnation;
    let cancelled = false;
    // Whole milliseconds between runs, carrying the fraction of a skewed period.
    let carryMs = 0;
    const next = (extraMs: number) => {
      carryMs += (periodMs * this.#tickPeriodMs) / this.#nominalTickMs;
      const delayMs = Math.max(1, Math.floor(carryMs));
      carryMs -= delayMs;
      this.#queue.after(delayMs + extraMs, () => {
        if (cancelled || incarnation !== this.incarnation) return;
        // Due while the process does not run: lost, not replayed.
        // A tick steps the core and schedules the ready loop: no promise job.
        if (!this.paused) this.#run(callback, true);
        next(0);
      });
    };
    const phase = this.#phaseMs;
    this.#phaseMs = 0;
    next(phase);
    return { cancel: () => cancelled = true };
  }
}
