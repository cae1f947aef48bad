/**
 * The simulator's coordination properties (issue 16), as pure functions over
 * what the simulation observes: each replica's lease and lock state after an
 * applied entry, and the clients' acknowledged keep-alives and revokes.
 *
 * - **permits**: no name has more holders than permits at one revision;
 * - **tokens**: every new grant's token is above every earlier token of its
 *   name (strictly increasing per name, across leaders and replicas);
 * - **FIFO**: a waiter is never passed over by a later waiter while its own
 *   lease is live in that revision's state;
 * - **live grants**: every holder's lease is in the state (a grant to a waiter
 *   whose lease is gone is etcd#11456);
 * - **attached keys**: no key is attached to a lease that is not in the state;
 * - **expiry**: a lease that ends without a revoke ends only after some
 *   node's monotonic clock advanced its TTL since the *send* time of its
 *   last keep-alive any leader acknowledged (the keeper counts TTLs on its
 *   leader's clock, and the nemesis may skew clocks beyond the drift bound).
 *
 * The checker holds no clock and reads no state itself: the simulation hands
 * it {@linkcode CoordinationView}s and client events, so hand-made histories
 * test it (`coordination_checker_test.ts`).
 *
 * @module
 */

/** One holder of a name, as the state records it. */
export interface ViewHolder {
  /** 20 hex digits: the granting entry's revision, then a counter. */
  readonly token: string;
  readonly lease: string;
  /** Revision (log index) of the grant. */
  readonly revision: number;
}

/** One queued waiter of a name. */
export interface ViewWaiter {
  readonly lease: string;
  /** Revision (log index) the waiter queued at. */
  readonly revision: number;
}

/** One name (lock, semaphore or election) in the state. */
export interface ViewLock {
  readonly permits: number;
  readonly holders: readonly ViewHolder[];
  /** In queue order (FIFO). */
  readonly waiters: readonly ViewWaiter[];
}

/** One lease in the state. */
export interface ViewLease {
  readonly ttlMs: number;
}

/** The coordination part of one replica's state at one applied revision. */
export interface CoordinationView {
  readonly revision: number;
  readonly leases: ReadonlyMap<string, ViewLease>;
  readonly locks: ReadonlyMap<string, ViewLock>;
  /** Each attached key (as printable text) and its lease. */
  readonly attached: readonly {
    readonly key: string;
    readonly lease: string;
  }[];
}

/** An empty view at revision 0. */
export function emptyView(): CoordinationView {
  return { revision: 0, leases: new Map(), locks: new Map(), attached: [] };
}

/** The revision a token was granted at (its first 16 hex digits). */
export function tokenRevision(token: string): number {
  if (!/^[0-9a-f]{20}$/.test(token)) {
    throw new TypeError(
      `Cannot read token '${token}' as it must be 20 lowercase hex digits`,
    );
  }
  return Number.parseInt(token.slice(0, 16), 16);
}

/**
 * Violations of one view on its own: more holders than permits, a holder on
 * a missing lease, a key attached to a missing lease, a name both holding
 * and queueing one lease.
 */
export function checkView(view: CoordinationView): string[] {
  const problems: string[] = [];
  const at = `at revision ${view.revision}`;
  for (const [name, lock] of view.locks) {
    if (lock.holders.length > lock.permits) {
      problems.push(
        `permits: '${name}' has ${lock.holders.length} holders ${at} but ${lock.permits} permits`,
      );
    }
    for (const holder of lock.holders) {
      if (!view.leases.has(holder.lease)) {
        problems.push(
          `live grants: '${name}' is held by token ${holder.token} of lease ${holder.lease} ${at}, but that lease is gone`,
        );
      }
    }
  }
  for (const { key, lease } of view.attached) {
    if (!view.leases.has(lease)) {
      problems.push(
        `attached keys: key ${key} is attached to lease ${lease} ${at}, but that lease is gone`,
      );
    }
  }
  return problems;
}

/**
 * Violations of one applied step, `previous` → `current` on one replica:
 * tokens granted in `current` must be above every token its name had in
 * `previous` (and than `highest`, the largest token seen per name so far,
 * when given), and no waiter passed over by a later one while its lease is
 * live at `current`.
 */
export function checkStep(
  previous: CoordinationView,
  current: CoordinationView,
  highest: ReadonlyMap<string, string> = new Map(),
): string[] {
  const problems = checkView(current);
  const at = `at revision ${current.revision}`;
  for (const [name, lock] of current.locks) {
    const before = previous.locks.get(name);
    const held = new Set(before?.holders.map((holder) => holder.token) ?? []);
    const granted = lock.holders.filter((holder) => !held.has(holder.token));
    let top = highest.get(name) ?? "";
    for (const holder of before?.holders ?? []) {
      if (holder.token > top) top = holder.token;
    }
    for (const holder of [...granted].sort(byToken)) {
      if (holder.token <= top) {
        problems.push(
          `tokens: '${name}' granted token ${holder.token} ${at}, not above its earlier token ${top}`,
        );
      }
      top = holder.token;
    }
    if (granted.length > 0 && before !== undefined) {
      problems.push(...fifoProblems(name, before, lock, granted, current));
    }
  }
  return problems;
}

/**
 * A waiter that queued before a granted waiter, still waits after the step
 * and holds a live lease was passed over.
 */
function fifoProblems(
  name: string,
  before: ViewLock,
  after: ViewLock,
  granted: readonly ViewHolder[],
  current: CoordinationView,
): string[] {
  const grantedLeases = new Set(granted.map((holder) => holder.lease));
  const waitingBefore = before.waiters.map((waiter) => waiter.lease);
  const waitingAfter = new Set(after.waiters.map((waiter) => waiter.lease));
  // A lease granted without having queued (an acquire in this very entry)
  // comes after every waiter that queued before.
  const lastGranted =
    granted.some((holder) => !waitingBefore.includes(holder.lease))
      ? waitingBefore.length
      : Math.max(
        ...waitingBefore.map((lease, i) => grantedLeases.has(lease) ? i : -1),
      );
  const problems: string[] = [];
  for (let i = 0; i < lastGranted; i++) {
    const lease = waitingBefore[i]!;
    if (grantedLeases.has(lease) || !waitingAfter.has(lease)) continue;
    if (!current.leases.has(lease)) continue;
    problems.push(
      `FIFO: '${name}' granted a later waiter at revision ${current.revision} while lease ${lease}, queued ahead of it and live, still waits`,
    );
  }
  return problems;
}

function byToken(a: ViewHolder, b: ViewHolder): number {
  return a.token < b.token ? -1 : a.token > b.token ? 1 : 0;
}

/**
 * Every simulated node's monotonic clock at one simulated moment, in ms, by
 * node id (every node slot of the run, down or not: a process's clock runs
 * on while it is down, paused or stalled).
 */
export type ClockReadings = ReadonlyMap<string, number>;

/** A keep-alive a leader acknowledged, stamped with the client's send time. */
export interface KeepAliveAck {
  readonly lease: string;
  /** Simulated time the client sent it, in ms. */
  readonly sentAtMs: number;
  /** Every node's clock when the client sent it. */
  readonly clocksAtSendMs: ClockReadings;
  /** The TTL the answer carried, in ms. */
  readonly ttlMs: number;
}

/** A lease leaving the state (expiry or revoke), first seen at `atMs`. */
export interface LeaseEnd {
  readonly lease: string;
  readonly revision: number;
  /** Simulated time the first replica applied the ending entry, in ms. */
  readonly atMs: number;
  /** Every node's clock at `atMs`. */
  readonly clocksMs: ClockReadings;
}

/**
 * Slack for floating-point rounding of the simulated clocks (a clock reads
 * base + elapsed × rate), in ms: far below anything a bug could hide in.
 */
const clockRoundingMs = 1e-6;

/**
 * How far the fastest clock advanced from `from` to `to`: the largest
 * `to − from` over the nodes, and which node that is.
 *
 * @throws {RangeError} When the two readings are not of the same nodes
 *   (the simulation reads every node slot each time), or there are none.
 */
export function clockAdvanceMs(
  from: ClockReadings,
  to: ClockReadings,
): { node: string; advancedMs: number } {
  if (from.size === 0 || from.size !== to.size) {
    throw new RangeError(
      `Cannot compare clock readings as they must be of the same nodes: current sizes are ${from.size} and ${to.size}`,
    );
  }
  let fastest: { node: string; advancedMs: number } | null = null;
  for (const [node, fromMs] of from) {
    const toMs = to.get(node);
    if (toMs === undefined) {
      throw new RangeError(
        `Cannot compare clock readings as node '${node}' has no later reading`,
      );
    }
    if (fastest === null || toMs - fromMs > fastest.advancedMs) {
      fastest = { node, advancedMs: toMs - fromMs };
    }
  }
  return fastest!;
}

/**
 * Tracks the expiry property across a run: leases a client revoked are
 * exempt (a revoke ends a lease at once); any other end must come after
 * some node's clock advanced at least `ttlMs` since the send time of the
 * lease's last acknowledged keep-alive (or of its grant's request).
 *
 * Why clocks and not simulated time: the keeper counts a TTL on its own
 * monotonic clock (`src/services/leases/leader.ts`) from a moment at or
 * after the send, and proposes `expire` only once that clock has passed
 * the deadline. The deadline in force is its leader's now + TTL after the
 * keep-alive's ReadIndex round; or a new leader's start + TTL + an election
 * timeout, and a later term's leader wins only with the vote of a node that
 * first answered the acknowledging leader's ReadIndex round (the quorums
 * meet), so it starts after that round; or, for a lease it first sees
 * applied, that pass's now + TTL, after the grant was sent. So whichever node proposed the ending entry, its clock advanced at
 * least the TTL between the send and the apply, and the fastest clock did
 * too. In simulated time that is a TTL divided by the clock's rate: the full
 * TTL at rate 1, TTL / (1 + drift) within the drift bound, less in a
 * safe-read seed, whose nemesis skews clocks beyond the bound (seeds 201
 * and 342: a leader 37% and 28% fast ends a 1,000 ms TTL after 730 and
 * 781 ms, correctly).
 */
export class LeaseExpiryChecker {
  /** Latest send time of an acknowledged keep-alive (or grant), per lease. */
  readonly #lastAck = new Map<string, KeepAliveAck>();
  readonly #revoked = new Set<string>();
  readonly #ended = new Set<string>();

  /** A grant or keep-alive sent at `sentAtMs` was acknowledged. */
  acknowledged(ack: KeepAliveAck): void {
    const last = this.#lastAck.get(ack.lease);
    if (last === undefined || last.sentAtMs < ack.sentAtMs) {
      this.#lastAck.set(ack.lease, ack);
    }
  }

  /** A client asked to revoke `lease` (whatever the outcome). */
  revoking(lease: string): void {
    this.#revoked.add(lease);
  }

  /**
   * A lease left the state.
   *
   * @returns The violation, or null.
   */
  ended(end: LeaseEnd): string | null {
    if (this.#ended.has(end.lease)) return null;
    this.#ended.add(end.lease);
    if (this.#revoked.has(end.lease)) return null;
    const ack = this.#lastAck.get(end.lease);
    if (ack === undefined) return null;
    const { node, advancedMs } = clockAdvanceMs(
      ack.clocksAtSendMs,
      end.clocksMs,
    );
    if (advancedMs + clockRoundingMs >= ack.ttlMs) return null;
    const livedMs = end.atMs - ack.sentAtMs;
    return `expiry: lease ${end.lease} ended at revision ${end.revision} (${end.atMs} ms), ${livedMs} ms after the send time of a keep-alive acknowledged at ${ack.sentAtMs} ms, against a ${ack.ttlMs} ms TTL: the fastest clock ('${node}') advanced ${
      Math.round(advancedMs * 10) / 10
    } ms in between`;
  }
}

/**
 * Leases in `previous` and not in `current`: those that ended in the step.
 */
export function endedLeases(
  previous: CoordinationView,
  current: CoordinationView,
): string[] {
  return [...previous.leases.keys()].filter((id) => !current.leases.has(id));
}

/** A `checkFence` write the cluster accepted. */
export interface FencedWrite {
  readonly name: string;
  readonly token: string;
  /** Revision (log index) the write applied at. */
  readonly revision: number;
}

/**
 * Tracks when each token held (from the views of the replica that applies
 * each revision first; a token's start is its grant's revision, its end the
 * first view without it) and checks accepted `checkFence` writes: apply
 * decides a fence on the state before the write's own entry, so a write at
 * revision R needs its token granted before R and not ended before R.
 */
export class FenceChecker {
  /** "name token" → the revision of its grant and of its end (null: holds). */
  readonly #held = new Map<string, { from: number; until: number | null }>();
  #revision = 0;

  /** The view after applying a revision; revisions seen again are ignored. */
  observe(previous: CoordinationView, current: CoordinationView): void {
    if (current.revision <= this.#revision) return;
    this.#revision = current.revision;
    const now = new Set<string>();
    for (const [name, lock] of current.locks) {
      for (const holder of lock.holders) {
        const key = `${name} ${holder.token}`;
        now.add(key);
        if (!this.#held.has(key)) {
          // The grant's own revision: right even when steps were skipped.
          this.#held.set(key, { from: holder.revision, until: null });
        }
      }
    }
    for (const [name, lock] of previous.locks) {
      for (const holder of lock.holders) {
        const key = `${name} ${holder.token}`;
        const interval = this.#held.get(key);
        if (
          !now.has(key) && interval !== undefined && interval.until === null
        ) {
          interval.until = current.revision;
        }
      }
    }
  }

  /** The violation of an accepted fenced write, or null. */
  check(write: FencedWrite): string | null {
    const interval = this.#held.get(`${write.name} ${write.token}`);
    if (write.revision > this.#revision) return null;
    if (
      interval !== undefined && interval.from < write.revision &&
      (interval.until === null || interval.until >= write.revision)
    ) {
      return null;
    }
    return `fencing: a checkFence write on '${write.name}' with token ${write.token} was accepted at revision ${write.revision}, but ${
      interval === undefined
        ? "that token never held"
        : `it held from revision ${interval.from} until ${interval.until}`
    }`;
  }
}
