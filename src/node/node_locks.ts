/**
 * Locks, semaphores and elections as a node serves them (the
 * {@linkcode LocksPort} of `services/locks/api.ts`): every change is a
 * proposal of the `locks` service (a follower's proposal is forwarded to
 * the leader), decided in apply; waiting is done here, on the applied state.
 *
 * - **Waiting** (acquire, campaign with `waitMs`): after its proposal
 *   applied, a waiter follows its own lease row on the change feed (one
 *   filtered subscription, woken by the feed, no polling) until it holds,
 *   leaves the queue, or `waitMs` passes. Its answer is read from this
 *   node's state once that state has applied the proposal's entry, so a
 *   follower answers read-your-write: never older than the proposal.
 * - **Reads** (`status`, `leader`): `strong` waits for a ReadIndex
 *   (linearizable), `eventual` reads the local replica.
 * - **Observe**: the leader after a ReadIndex, then each leader-row change
 *   of the feed in revision order; resumed after a revision the feed still
 *   holds, else restarted from the current leader. At most
 *   `observeStreamsMax` streams at once.
 * - **Retries**: a proposal carries this node's session, so a retry after
 *   an unknown outcome (a leader lost mid-write) applies at most once.
 *
 * @module
 */
import { strongRead } from "./_strong_read.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import {
  encodeLockCommand,
  leaderChangeFilter,
  leaderOfChange,
  type LockCommand,
  LockError,
  type LockReadConsistency,
  LockReads,
  type LockResult,
  type LocksPort,
  membershipChangeFilter,
  membershipOf,
  validateLockCommand,
  validateLockName,
} from "../services/locks/api.ts";
import {
  type ChangeFeed,
  ChangeFeedCompactedError,
  ChangeFeedFullError,
  type ChangeSubscription,
} from "../state/change_feed.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { proposeWithSession } from "./_session_proposal.ts";
import type { StateStore } from "../state/state_store.ts";
import type {
  ElectionCampaignResponse,
  ElectionLeaderResponse,
  ElectionObserveEvent,
  LockAcquireResponse,
  LockCancelResponse,
  LockReleaseResponse,
  LockStatusResponse,
  WireElectionLeader,
} from "../protocol/http_api_leases.ts";

/** The locks service's envelope id (its line in `services/table.ts`). */
export const LOCKS_SERVICE_ID = 5;
/** Observe streams one node serves at once, by default. */
export const OBSERVE_STREAMS_MAX = 1000;
/** Longest wait for this node to apply its own proposal before answering, in ms. */
const CATCH_UP_MS_MAX = 5_000;

/** What {@linkcode NodeLocks} needs of its node. */
export interface NodeLocksOptions {
  /** Proposes an entry (forwarded to the leader) and answers its apply result. */
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  /** Waits for a linearizable read point, applied on this node. */
  readonly readIndex: () => Promise<unknown>;
  /** This node's applied state. */
  readonly store: StateStore;
  /** The change feed this node's state host emits to. */
  readonly feed: ChangeFeed;
  /** The locks service's envelope id. Default {@linkcode LOCKS_SERVICE_ID}. */
  readonly serviceId?: number;
  /** Observe streams at once at most. Default {@linkcode OBSERVE_STREAMS_MAX}. */
  readonly observeStreamsMax?: number;
}

type Granted = Extract<LockResult, { granted: true }>;
type Queued = Extract<LockResult, { granted: false }>;

function wireLeader(
  leader: {
    token: string;
    lease: string;
    value: string;
    revision: number;
  } | null,
): WireElectionLeader | null {
  return leader === null ? null : {
    value: leader.value,
    token: leader.token,
    lease: leader.lease,
    revision: leader.revision,
  };
}

/** The locks port over a Raft node. */
export class NodeLocks implements LocksPort {
  readonly #options: NodeLocksOptions;
  readonly #reads: LockReads;
  readonly #sessionId = `locks-${crypto.randomUUID()}`;
  #sessionSeq = 0;
  #observers = 0;

  /** The port over the node parts in `options`. */
  constructor(options: NodeLocksOptions) {
    this.#options = options;
    this.#reads = new LockReads(options.store);
  }

  /** Observe streams open now. */
  get observersOpen(): number {
    return this.#observers;
  }

  async acquire(
    request: { name: string; lease: string; permits: number; waitMs: number },
    signal?: AbortSignal,
  ): Promise<LockAcquireResponse> {
    const { name, lease, permits, waitMs } = request;
    const answer = await this.#acquireOrCampaign(
      { type: "acquire", name, lease, permits },
      waitMs,
      signal,
    );
    if (!answer.granted) {
      return { granted: false, name, position: answer.position };
    }
    const { token, revision } = answer.grant;
    return { granted: true, name, token, lease, revision };
  }

  async campaign(
    request: { name: string; lease: string; value: string; waitMs: number },
    signal?: AbortSignal,
  ): Promise<ElectionCampaignResponse> {
    const { name, lease, value, waitMs } = request;
    const answer = await this.#acquireOrCampaign(
      { type: "campaign", name, lease, value },
      waitMs,
      signal,
    );
    if (!answer.granted) {
      return { elected: false, name, position: answer.position };
    }
    const leader = this.#reads.leader(name);
    const { token } = answer.grant;
    // The leader row is this grant's unless the lease lost it meanwhile.
    const current = leader !== null && leader.token === token
      ? leader
      : { value: answer.value ?? value, revision: answer.grant.revision };
    return {
      elected: true,
      name,
      token,
      lease,
      value: current.value,
      revision: current.revision,
    };
  }

  async cancel(name: string, lease: string): Promise<LockCancelResponse> {
    const result = await this.#propose({ type: "cancel", name, lease });
    if (!("removed" in result)) throw this.#unexpected(result);
    return { removed: result.removed };
  }

  async release(name: string, token: string): Promise<LockReleaseResponse> {
    await this.#propose({ type: "release", name, token });
    return { released: true };
  }

  async resign(name: string, token: string): Promise<void> {
    await this.#propose({ type: "resign", name, token });
  }

  async proclaim(
    name: string,
    token: string,
    value: string,
  ): Promise<ElectionLeaderResponse> {
    const result = await this.#propose({
      type: "proclaim",
      name,
      token,
      value,
    });
    if (!("leader" in result)) throw this.#unexpected(result);
    return { leader: wireLeader(result.leader) };
  }

  async status(
    name: string,
    consistency: LockReadConsistency,
  ): Promise<LockStatusResponse> {
    validateLockName(name);
    await this.#read(consistency);
    const { permits, holders, waiters } = this.#reads.status(name);
    return { name, permits, holders, waiters };
  }

  async leader(
    name: string,
    consistency: LockReadConsistency,
  ): Promise<ElectionLeaderResponse> {
    validateLockName(name);
    await this.#read(consistency);
    return { leader: wireLeader(this.#reads.leader(name)) };
  }

  async observe(
    name: string,
    afterRevision: number | null,
    signal: AbortSignal,
  ): Promise<AsyncIterable<ElectionObserveEvent>> {
    validateLockName(name);
    const max = this.#options.observeStreamsMax ?? OBSERVE_STREAMS_MAX;
    if (this.#observers >= max) {
      throw new KvUnavailableError(
        `Cannot observe: this node serves ${max} observe streams already; retry later`,
      );
    }
    this.#observers++;
    try {
      // The first event is at least as new as every acknowledged change.
      await this.#read("strong");
    } catch (error) {
      this.#observers--;
      throw error;
    }
    let open = true;
    const release = () => {
      if (open) this.#observers--;
      open = false;
    };
    const stream = this.#observeStream(name, afterRevision, signal, release);
    // Ended before its first event, a generator never runs its finally:
    // return() releases the slot too.
    return {
      [Symbol.asyncIterator]: () => ({
        next: () => stream.next(),
        return: async () => {
          const result = await stream.return(undefined);
          release();
          return result;
        },
      }),
    };
  }

  async *#observeStream(
    name: string,
    afterRevision: number | null,
    signal: AbortSignal,
    release: () => void,
  ): AsyncGenerator<ElectionObserveEvent, undefined> {
    const { feed } = this.#options;
    const filter = leaderChangeFilter(name);
    let subscription: ChangeSubscription | null = null;
    try {
      if (afterRevision !== null) {
        try {
          subscription = feed.subscribe(BigInt(afterRevision), filter);
        } catch (error) {
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
        }
      }
      for (;;) {
        if (subscription === null) {
          // From the current state: the leader now, then what follows.
          subscription = this.#subscribe(feed.revision, filter);
          yield {
            leader: wireLeader(this.#reads.leader(name)),
            revision: Number(feed.revision),
          };
        }
        let events;
        try {
          events = subscription.take();
        } catch (error) {
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
          subscription.close();
          subscription = null;
          continue;
        }
        for (const event of events) {
          yield {
            leader: wireLeader(leaderOfChange(event)),
            revision: Number(event.revision),
          };
        }
        if (signal.aborted) return;
        await subscription.wait(signal);
        if (signal.aborted) return;
      }
    } finally {
      subscription?.close();
      release();
    }
  }

  #subscribe(
    from: bigint,
    filter: Parameters<ChangeFeed["subscribe"]>[1],
  ): ChangeSubscription {
    try {
      return this.#options.feed.subscribe(from, filter);
    } catch (error) {
      if (error instanceof ChangeFeedFullError) {
        throw new KvUnavailableError(error.message, { cause: error });
      }
      throw error;
    }
  }

  async #acquireOrCampaign(
    command: Extract<LockCommand, { type: "acquire" | "campaign" }>,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Granted | Queued> {
    const result = await this.#propose(command);
    if (!("granted" in result)) throw this.#unexpected(result);
    if (result.granted || waitMs <= 0) return result;
    const waited = await this.#waitForGrant(
      command.name,
      command.lease,
      result.index,
      waitMs,
      signal,
    );
    if (waited !== null) return { ...waited, ok: true, index: result.index };
    // The waiter left the queue (its lease ended, or a cancel): ask again,
    // which answers leaseNotFound for a lease that is gone.
    const again = await this.#propose(command);
    if (!("granted" in again)) throw this.#unexpected(again);
    return again;
  }

  /**
   * Follows `lease`'s row on `name` until it holds, leaves the queue or
   * `waitMs` passes, from this node's state once it applied `index`.
   *
   * @returns The grant or queue position; null when it left the queue.
   */
  async #waitForGrant(
    name: string,
    lease: string,
    index: number,
    waitMs: number,
    signal: AbortSignal | undefined,
  ): Promise<
    | { granted: true; grant: Granted["grant"] }
    | { granted: false; position: number }
    | null
  > {
    const { feed, store } = this.#options;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), waitMs);
    const done = signal === undefined
      ? timeout.signal
      : AbortSignal.any([signal, timeout.signal]);
    const filter = membershipChangeFilter(name, lease);
    let subscription: ChangeSubscription;
    try {
      subscription = this.#subscribe(feed.revision, filter);
    } catch (error) {
      clearTimeout(timer);
      throw error;
    }
    try {
      // Read-your-write: this node's state includes the proposal's entry.
      while (store.appliedIndex() < index && !done.aborted) {
        await subscription.wait(done);
        try {
          subscription.take();
        } catch (error) {
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
          subscription.close();
          subscription = this.#subscribe(feed.revision, filter);
        }
      }
      for (;;) {
        const membership = store.appliedIndex() < index
          ? { kind: "waits" as const, position: 0 }
          : membershipOf(store, name, lease);
        if (membership === null) return null;
        if (membership.kind === "holds") {
          const { token, revision } = membership;
          return { granted: true, grant: { token, lease, revision } };
        }
        if (done.aborted) {
          return { granted: false, position: membership.position };
        }
        await subscription.wait(done);
        try {
          subscription.take();
        } catch (error) {
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
          subscription.close();
          subscription = this.#subscribe(feed.revision, filter);
        }
      }
    } finally {
      clearTimeout(timer);
      subscription.close();
    }
  }

  /**
   * Waits (at most {@linkcode CATCH_UP_MS_MAX}) until this node applied
   * entry `index`, so what it answers next reads its own writes.
   */
  async #caughtUp(index: number): Promise<void> {
    const { feed, store } = this.#options;
    if (store.appliedIndex() >= index) return;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), CATCH_UP_MS_MAX);
    const subscription = this.#subscribe(feed.revision, () => false);
    try {
      while (store.appliedIndex() < index && !timeout.signal.aborted) {
        await subscription.wait(timeout.signal);
        try {
          subscription.take();
        } catch (error) {
          // Only the cursor moved past the window: nothing to re-read.
          if (!(error instanceof ChangeFeedCompactedError)) throw error;
          return;
        }
      }
    } finally {
      clearTimeout(timer);
      subscription.close();
    }
  }

  async #read(consistency: LockReadConsistency): Promise<void> {
    if (consistency === "eventual") return;
    await strongRead(() => this.#options.readIndex());
  }

  /**
   * Proposes `command` with this node's session, retrying dropped
   * proposals and unknown outcomes for a while.
   *
   * @throws {LockError} When apply refused the command (nothing changed).
   */
  async #propose(
    command: LockCommand,
  ): Promise<Exclude<LockResult, { ok: false }>> {
    validateLockCommand(command);
    const data = encodeEnvelope({
      serviceId: this.#options.serviceId ?? LOCKS_SERVICE_ID,
      session: { clientId: this.#sessionId, seq: this.#sessionSeq++ },
      payload: encodeLockCommand(command),
    });
    return await proposeWithSession<LockResult>({
      propose: this.#options.propose,
      data,
      what: command.type,
      caughtUp: (index) => this.#caughtUp(index),
      refused: (reason, message) =>
        new LockError(reason as LockError["code"], message),
    });
  }

  #unexpected(result: LockResult): Error {
    return new TypeError(
      `Unexpected locks result: ${JSON.stringify(result)}`,
    );
  }
}
