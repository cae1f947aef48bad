/**
 * The coordination part of one seed's run (`--services leases,locks`): the
 * clients of `coordination_clients.ts` on every node's port, and the
 * properties of `coordination_checker.ts` checked after every entry each
 * replica applies. A broken property is the run's violation, with
 * `coordination` in front.
 *
 * @module
 */
import type { KvStateMachine } from "../services/state_machine.ts";
import type { CoordinationBinding } from "./coordination_binding.ts";
import {
  checkStep,
  checkView,
  type ClockReadings,
  type CoordinationView,
  endedLeases,
  FenceChecker,
  LeaseExpiryChecker,
} from "./coordination_checker.ts";
import {
  CoordinationClients,
  type CoordinationCounts,
  type CoordinationNode,
} from "./coordination_clients.ts";
import type { EventQueue } from "./event_queue.ts";
import type { InvariantChecker } from "./invariants.ts";
import type { SeededRandom } from "./random.ts";

/** TTL the simulated clients ask for, in ms (the protocol's least). */
const leaseTtlMs = 1_000;
/** A coordination request without an answer in this time is given up, in ms. */
const requestTimeoutMs = 500;
/** How long an acquire waits in all, in ms. */
const acquireTimeoutMs = 1_500;
/** The names the clients contend for: a lock and a semaphore of 2. */
const names = [
  { name: "lock", permits: 1 },
  { name: "semaphore", permits: 2 },
] as const;

const lockNames = names.map((entry) => entry.name);

/** Clients, views and properties of the leases and locks services in one run. */
export class CoordinationProperties {
  readonly #queue: EventQueue;
  readonly #binding: CoordinationBinding;
  readonly #checker: InvariantChecker;
  readonly #clients: CoordinationClients;
  /** Measures TTLs on the node clocks, which the keeper counts them on. */
  readonly #expiry = new LeaseExpiryChecker();
  readonly #clocks: () => ClockReadings;
  readonly #fences = new FenceChecker();
  /** Each replica's view after its last applied entry. */
  readonly #views = new Map<string, CoordinationView>();
  /**
   * Every token seen per name, with the revision it was first seen at (the
   * same on every replica: they apply one log).
   */
  readonly #granted = new Map<string, Map<string, number>>();

  /**
   * @param clocks Reads every node slot's monotonic clock (in ms, by id).
   */
  constructor(
    queue: EventQueue,
    binding: CoordinationBinding,
    ports: () => readonly (CoordinationNode | null)[],
    clocks: () => ClockReadings,
    issueUntilMs: number,
    makeRandom: (label: string) => SeededRandom,
    checker: InvariantChecker,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#binding = binding;
    this.#checker = checker;
    this.#clocks = clocks;
    this.#clients = new CoordinationClients(
      queue,
      ports,
      {
        clients: 4,
        names,
        issueUntilMs,
        ttlMs: leaseTtlMs,
        requestTimeoutMs,
        acquireTimeoutMs,
      },
      makeRandom,
      this.#expiry,
      clocks,
      trace,
    );
  }

  /** The workload's counts so far. */
  get counts(): CoordinationCounts {
    return this.#clients.counts;
  }

  /** Starts the clients. */
  start(): void {
    this.#clients.start();
  }

  /**
   * Replica `nodeId` applied an entry (or replaced its state, `reset`):
   * checks its view, and the step from its previous one when consecutive.
   */
  applied(nodeId: string, kv: KvStateMachine, reset: boolean): void {
    const current = this.#binding.view(kv, lockNames);
    const previous = this.#views.get(nodeId);
    this.#views.set(nodeId, current);
    const consecutive = !reset && previous !== undefined &&
      current.revision === previous.revision + 1;
    const problems = consecutive
      ? checkStep(previous, current, this.#highestBefore(current))
      : checkView(current);
    for (const [name, lock] of current.locks) {
      const seen = this.#granted.get(name) ?? new Map<string, number>();
      this.#granted.set(name, seen);
      for (const holder of lock.holders) {
        if (!seen.has(holder.token)) seen.set(holder.token, current.revision);
      }
    }
    if (consecutive) {
      this.#fences.observe(previous, current);
      for (const lease of endedLeases(previous, current)) {
        const problem = this.#expiry.ended({
          lease,
          revision: current.revision,
          atMs: this.#queue.now,
          clocksMs: this.#clocks(),
        });
        if (problem !== null) problems.push(problem);
      }
    }
    const first = problems[0];
    if (first !== undefined) {
      this.#checker.fail(`coordination on '${nodeId}': ${first}`);
    }
  }

  /** Per name, the largest token any replica saw at a revision before `view`'s. */
  #highestBefore(view: CoordinationView): Map<string, string> {
    const highest = new Map<string, string>();
    for (const name of view.locks.keys()) {
      let top = "";
      for (const [token, revision] of this.#granted.get(name) ?? []) {
        if (revision < view.revision && token > top) top = token;
      }
      if (top !== "") highest.set(name, top);
    }
    return highest;
  }

  /** At the end of the run: every accepted `checkFence` write held its token. */
  finish(): void {
    for (const write of this.#clients.fencedWrites) {
      const problem = this.#fences.check(write);
      if (problem !== null) {
        this.#checker.fail(`coordination: ${problem}`);
        return;
      }
    }
  }
}
