/**
 * Where the simulator meets the leases and locks services (issue 16): the
 * one file that knows their commands, leader task and state layout. The
 * rest of the simulator speaks only the HTTP protocol's types (through
 * {@linkcode CoordinationNode}) and {@linkcode CoordinationView}s.
 *
 * A binding does three things for the simulator:
 *
 * - `stateKnobs`: the apply-side planted bugs (`LockKnobs`) as the state
 *   machine's knobs, so every replica applies the same (buggy) rules;
 * - `attach`: registers the services' leader tasks (the lease keeper, on
 *   the node's simulated clock and timers) with the node incarnation's
 *   service host, with the leader-side bugs (`LeaseKnobs`), and answers
 *   the node's {@linkcode CoordinationNode}: proposals through its runner,
 *   keep-alives to its keeper;
 * - `view`: reads a replica's leases, locks (permits, holders, waiters) and
 *   attached keys into a {@linkcode CoordinationView}.
 *
 * {@linkcode COORDINATION_BINDING} is null until the services are on main:
 * then `--services` and the services' planted bugs refuse to run.
 *
 * @module
 */
import type { Clock, Scheduler } from "../base/clock.ts";
import type { RaftRunner } from "../node/raft_runner.ts";
import type { ServiceHost } from "../node/service_host.ts";
import type { KvStateResult } from "../services/replicated_state.ts";
import type { KvStateMachine } from "../services/state_machine.ts";
import type { KvStateMachineKnobs } from "../services/state_machine.ts";
import type { CoordinationView } from "./coordination_checker.ts";
import type { CoordinationNode } from "./coordination_clients.ts";
import type { ServiceBugKnobs } from "./options.ts";

/** One node incarnation, as a binding attaches the services to it. */
export interface CoordinationHost {
  readonly runner: RaftRunner<KvStateResult>;
  /** The replica's KV state machine (the services' state lives in its store). */
  readonly kv: KvStateMachine;
  /** The incarnation's service host (started by the node after `attach`). */
  readonly services: ServiceHost;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** The leader-side planted bugs. */
  readonly knobs: ServiceBugKnobs;
}

/** The simulator's view of the leases and locks services. */
export interface CoordinationBinding {
  /** The apply-side planted bugs as knobs of every replica's state machine. */
  stateKnobs(knobs: ServiceBugKnobs): KvStateMachineKnobs;
  /** Registers the leader tasks with `host.services`; returns the node's port. */
  attach(host: CoordinationHost): CoordinationNode;
  /**
   * The coordination state of a replica at its applied index: its leases,
   * the locks `names` (the names the clients use), and its attached keys.
   */
  view(kv: KvStateMachine, names: readonly string[]): CoordinationView;
}

/** The binding of the services on main, or null while they are not there. */
export const COORDINATION_BINDING: CoordinationBinding | null = null;
