/**
 * The leases service's leader task: the {@linkcode LeaseKeeper}. Expiry is
 * decided by the leader alone, on its monotonic clock; deadlines live only
 * in its memory:
 *
 * - on becoming leader (the task starts once per term) every lease's
 *   deadline is set to now + TTL + one election timeout before any expiry,
 *   so a lease never expires earlier than a holder acknowledged by an
 *   earlier leader can believe (frequent leader changes only extend);
 * - a lease granted later in the term gets now + TTL when the keeper first
 *   sees it applied;
 * - once deadlines pass, it proposes `expire` (≤ 1,000 ids per entry);
 * - a keep-alive (not a log entry) confirms leadership (a ReadIndex round),
 *   checks the lease is in applied state, sets its deadline to now + TTL
 *   and answers the TTL as `remainingMs`.
 *
 * The in-flight guard: while an expire proposal naming an id is in flight,
 * a keep-alive of that id waits for its outcome; applied, the lease is gone
 * (`leaseNotFound`); outcome unknown (the proposal failed but may still
 * commit), the id stays refused (`leaseNotFound`, which a holder treats as
 * lost) until the term ends, when the keeper stops and every keep-alive is
 * refused as not leader. So no keep-alive is acknowledged for a lease whose
 * expiry may commit later. The unsafe behaviours stay reachable only through
 * {@linkcode LeaseKnobs} (the simulator's planted bugs).
 *
 * @module
 */
import type { Clock } from "../../base/clock.ts";
import {
  type LeaderTask,
  LeaderTaskBusyError,
  type LeaderTaskContext,
} from "../../state/leader_task.ts";
import { KvNotLeaderError } from "../kv/api.ts";
import {
  LEASE_LIMITS,
  type LeaseCommand,
  LeaseError,
  type LeaseResult,
  validateLeaseId,
} from "./commands.ts";
import type { LeaseInfo, LeaseReads } from "./reads.ts";

/** Testing knobs of the keeper: planted bugs of the simulator. */
export interface LeaseKnobs {
  /** Planted bug: a new leader starts deadlines at now (no TTL, no extension) and expires at once. */
  readonly expireWithoutExtension?: boolean;
  /** Planted bug: acknowledge keep-alives of ids whose expire proposal is in flight or unknown. */
  readonly keepAliveDuringExpiry?: boolean;
}

/** Options of {@linkcode LeaseKeeper}. */
export interface LeaseKeeperOptions {
  /** Reads of the local replica's applied state. */
  readonly reads: LeaseReads;
  /** True while this node leads. */
  readonly isLeader: () => boolean;
  /** Confirms leadership with a quorum and waits until the read point applied (ReadIndex). */
  readonly confirmLeadership: () => Promise<void>;
  /** One election timeout (the longest), ms. */
  readonly electionTimeoutMs: number;
  /** Pause between expiry passes, ms. Default 100. */
  readonly intervalMs?: number;
  /** Planted bugs (the simulator's). */
  readonly knobs?: LeaseKnobs;
}

/** One lease's answer to a keep-alive. */
export type KeepAliveAnswer =
  | {
    readonly id: string;
    readonly ttlMs: number;
    readonly remainingMs: number;
  }
  | { readonly id: string; readonly error: "leaseNotFound" };

/** Counters of the keeper, for metrics. */
export interface LeaseKeeperStats {
  /** Keep-alives acknowledged (per id). */
  readonly keepAlives: number;
  /** Keep-alives refused (per id: not found, or expiry in flight). */
  readonly keepAlivesRefused: number;
  /** Leases ended by this node's expire proposals. */
  readonly expired: number;
}

/** Holds the leases' deadlines while this node leads and expires what passes them. */
export class LeaseKeeper implements LeaderTask<LeaseCommand, LeaseResult> {
  /** The task's name. */
  readonly name = "leases.keeper";
  readonly #options: LeaseKeeperOptions & { readonly intervalMs: number };
  readonly #knobs: LeaseKnobs;
  #context: LeaderTaskContext<LeaseCommand, LeaseResult> | null = null;
  /** Monotonic deadline of each lease known in this term. */
  readonly #deadlines = new Map<string, number>();
  /** Ids of expire proposals in flight, with the settled promise of each. */
  readonly #inFlight = new Map<string, Promise<void>>();
  /** Ids whose expire proposal's outcome is unknown: refused for the rest of the term. */
  readonly #unknown = new Set<string>();
  #dirty = true;
  #running = false;
  #keepAlives = 0;
  #refused = 0;
  #expired = 0;

  /** @throws {RangeError} For a non-positive interval or election timeout. */
  constructor(options: LeaseKeeperOptions) {
    const intervalMs = options.intervalMs ?? 100;
    for (
      const [name, value] of [
        ["intervalMs", intervalMs],
        ["electionTimeoutMs", options.electionTimeoutMs],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create lease keeper as '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.#options = { ...options, intervalMs };
    this.#knobs = options.knobs ?? {};
  }

  /** True while the service host runs this task (this node leads). */
  get started(): boolean {
    return this.#context !== null;
  }

  /** The keeper's counters. */
  stats(): LeaseKeeperStats {
    return {
      keepAlives: this.#keepAlives,
      keepAlivesRefused: this.#refused,
      expired: this.#expired,
    };
  }

  /** Starts a term: every lease's deadline is extended before any expiry. */
  start(context: LeaderTaskContext<LeaseCommand, LeaseResult>): void {
    this.#clear();
    this.#context = context;
    const now = context.clock.monotonicMs();
    const extension = this.#options.electionTimeoutMs;
    for (const lease of this.#options.reads.all()) {
      this.#deadlines.set(
        lease.id,
        this.#knobs.expireWithoutExtension
          ? now
          : now + lease.ttlMs + extension,
      );
    }
    this.#dirty = false;
    context.scheduler.every(this.#options.intervalMs, () => void this.pass());
    context.onApplied(() => {
      this.#dirty = true;
    });
  }

  /** Ends the term: forgets every deadline; later keep-alives are refused as not leader. */
  stop(): void {
    this.#context = null;
    this.#clear();
  }

  #clear(): void {
    this.#deadlines.clear();
    this.#inFlight.clear();
    this.#unknown.clear();
    this.#dirty = true;
  }

  #clock(): Clock {
    const context = this.#context;
    if (context === null || !this.#options.isLeader()) {
      throw new KvNotLeaderError(
        "Cannot keep leases: this node is not the leader",
      );
    }
    return context.clock;
  }

  /** Brings the deadlines in line with the applied leases (new ones: now + TTL). */
  #reconcile(now: number): void {
    if (!this.#dirty) return;
    this.#dirty = false;
    const live = new Set<string>();
    for (const lease of this.#options.reads.all()) {
      live.add(lease.id);
      if (!this.#deadlines.has(lease.id)) {
        this.#deadlines.set(lease.id, now + lease.ttlMs);
      }
    }
    for (const id of this.#deadlines.keys()) {
      if (!live.has(id)) this.#deadlines.delete(id);
    }
  }

  /** One expiry pass: proposes `expire` for up to 1,000 leases past their deadline. */
  async pass(): Promise<void> {
    const context = this.#context;
    if (context === null || this.#running) return;
    this.#running = true;
    try {
      const now = context.clock.monotonicMs();
      this.#reconcile(now);
      const due: string[] = [];
      for (const [id, deadline] of this.#deadlines) {
        // An id of unknown outcome is proposed again: expiring twice is a no-op.
        if (deadline > now || this.#inFlight.has(id)) continue;
        due.push(id);
        if (due.length >= LEASE_LIMITS.expireIdsMax) break;
      }
      if (due.length === 0) return;
      let settle!: () => void;
      const settled = new Promise<void>((resolve) => settle = resolve);
      // Marked before the proposal leaves: a keep-alive from now on waits.
      for (const id of due) this.#inFlight.set(id, settled);
      try {
        const result = await context.propose({ type: "expire", ids: due });
        if (this.#context !== context) return;
        for (const id of due) this.#deadlines.delete(id);
        if (result.ok && "ended" in result) {
          this.#expired += result.ended.length;
        }
      } catch (error) {
        if (this.#context !== context) return;
        // Busy: never proposed, the next pass retries. Otherwise the entry
        // may still commit: refuse keep-alives of these ids for the term.
        if (!(error instanceof LeaderTaskBusyError)) {
          for (const id of due) this.#unknown.add(id);
        }
      } finally {
        for (const id of due) {
          if (this.#inFlight.get(id) === settled) this.#inFlight.delete(id);
        }
        settle();
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * Keeps leases alive: confirms leadership, then for each id in applied
   * state sets its deadline to now + TTL (answers per id, in order).
   *
   * @throws {KvNotLeaderError} When this node does not lead (or stops leading).
   * @throws {LeaseError} `invalid` for a bad id or more than 1,000 ids.
   */
  async keepAlive(ids: readonly string[]): Promise<KeepAliveAnswer[]> {
    if (ids.length < 1 || ids.length > LEASE_LIMITS.keepAliveIdsMax) {
      throw new LeaseError(
        "invalid",
        `Invalid ids: expected 1 to ${LEASE_LIMITS.keepAliveIdsMax}`,
      );
    }
    ids.forEach(validateLeaseId);
    this.#clock();
    const context = this.#context;
    await this.#options.confirmLeadership();
    if (!this.#knobs.keepAliveDuringExpiry) {
      // Hold the ids whose expiry is in flight until its outcome is known.
      const waits = ids.flatMap((id) => {
        const wait = this.#inFlight.get(id);
        return wait === undefined ? [] : [wait];
      });
      if (waits.length > 0) await Promise.all(waits);
    }
    const clock = this.#clock();
    if (this.#context !== context) {
      throw new KvNotLeaderError(
        "Cannot keep leases: this node stopped leading",
      );
    }
    const now = clock.monotonicMs();
    return ids.map((id): KeepAliveAnswer => {
      const lease = this.#options.reads.get(id);
      const blocked = !this.#knobs.keepAliveDuringExpiry &&
        (this.#unknown.has(id) || this.#inFlight.has(id));
      if (lease === null || blocked) {
        this.#refused++;
        return { id, error: "leaseNotFound" };
      }
      this.#deadlines.set(id, now + lease.ttlMs);
      this.#keepAlives++;
      return { id, ttlMs: lease.ttlMs, remainingMs: lease.ttlMs };
    });
  }

  /**
   * Lease `id` with the leader's view of its time left (after a ReadIndex
   * round), or null when it does not exist.
   *
   * @throws {KvNotLeaderError} When this node does not lead.
   */
  async timeToLive(
    id: string,
  ): Promise<(LeaseInfo & { remainingMs: number }) | null> {
    validateLeaseId(id);
    this.#clock();
    await this.#options.confirmLeadership();
    const now = this.#clock().monotonicMs();
    this.#reconcile(now);
    const lease = this.#options.reads.get(id);
    if (lease === null) return null;
    const deadline = this.#deadlines.get(id) ?? now + lease.ttlMs;
    return { ...lease, remainingMs: Math.max(0, Math.round(deadline - now)) };
  }
}
