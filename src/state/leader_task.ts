/**
 * The port of leader-side drivers: a service's `leader.ts` implements
 * {@linkcode LeaderTask}; the node's service host (`src/node/service_host.ts`)
 * starts it when the node becomes leader and stops it when the node stops
 * leading or shuts down. A task proposes time-based commands (expiries,
 * leases) only through its context, which stamps nothing itself: the task
 * reads the leader's clock and puts the time in the command, so apply stays
 * deterministic.
 *
 * @module
 */
import type { Clock, Scheduler } from "../base/clock.ts";

/** What a started task may use, valid until its `stop()`. */
export interface LeaderTaskContext<C, R> {
  /** The leader's clock. */
  readonly clock: Clock;
  /** Timers; the host cancels what is left when the task stops. */
  readonly scheduler: Scheduler;
  /** Aborted when the task is stopped (leadership lost or node shut down). */
  readonly signal: AbortSignal;
  /**
   * Proposes a command on this node and resolves with its apply result,
   * within the task's rate bound (it waits for its turn).
   *
   * @throws {LeaderTaskStoppedError} After the task stopped, or when this node no longer leads.
   * @throws {LeaderTaskBusyError} When the task has too many proposals waiting or in flight.
   */
  propose(command: C): Promise<R>;
  /** Calls `listener` after entries applied on this node, until the task stops. */
  onApplied(listener: () => void): void;
}

/** A leader-side driver of one service. */
export interface LeaderTask<C, R> {
  /** A short name for logs and metrics (e.g. "kv.expiry"). */
  readonly name: string;
  /** Starts driving; called once per leadership term. */
  start(context: LeaderTaskContext<C, R>): void;
  /** Stops driving (no proposal after it returns); idempotent. */
  stop(): void;
}

/** A task proposed after it stopped or while this node does not lead. */
export class LeaderTaskStoppedError extends Error {
  override name = "LeaderTaskStoppedError";
}

/** A task asked for more proposals at once than its bound allows. */
export class LeaderTaskBusyError extends Error {
  override name = "LeaderTaskBusyError";
}
