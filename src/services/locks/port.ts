/**
 * The port a node offers front ends for locks, semaphores and elections
 * (implemented by `node/node_locks.ts`): proposals through Raft, waits on
 * the applied state, reads and observe streams, in the protocol's wire
 * shapes (`protocol/http_api_leases.ts`). Every method validates its
 * arguments and throws `LockError` (with its protocol error code) for a
 * refusal, `KvUnavailableError` when nothing was proposed, and
 * `KvOutcomeUnknownError` when a proposal's outcome is unknown.
 *
 * @module
 */
import type {
  ElectionCampaignResponse,
  ElectionLeaderResponse,
  ElectionObserveEvent,
  LockAcquireResponse,
  LockCancelResponse,
  LockReleaseResponse,
  LockStatusResponse,
} from "../../protocol/http_api_leases.ts";

/** How a read is served: linearizable (ReadIndex) or from the local replica. */
export type LockReadConsistency = "strong" | "eventual";

/** Locks, semaphores and elections as a node serves them. */
export interface LocksPort {
  /**
   * Queues `lease` for `name` (or answers its grant or position) and waits
   * up to `waitMs` for the grant; a waiter not granted by then stays queued.
   */
  acquire(
    request: {
      readonly name: string;
      readonly lease: string;
      readonly permits: number;
      readonly waitMs: number;
    },
    signal?: AbortSignal,
  ): Promise<LockAcquireResponse>;
  /** Leaves the queue of `name`; a grant won meanwhile is released. */
  cancel(name: string, lease: string): Promise<LockCancelResponse>;
  /** Releases a lock's grant (the next waiters are granted in the same entry). */
  release(name: string, token: string): Promise<LockReleaseResponse>;
  /** The holders and waiters of `name`. */
  status(
    name: string,
    consistency: LockReadConsistency,
  ): Promise<LockStatusResponse>;
  /** Campaigns for election `name` with `value`, waiting up to `waitMs`. */
  campaign(
    request: {
      readonly name: string;
      readonly lease: string;
      readonly value: string;
      readonly waitMs: number;
    },
    signal?: AbortSignal,
  ): Promise<ElectionCampaignResponse>;
  /** Sets the value of the election `token` leads. */
  proclaim(
    name: string,
    token: string,
    value: string,
  ): Promise<ElectionLeaderResponse>;
  /** Gives up the leadership `token` holds. */
  resign(name: string, token: string): Promise<void>;
  /** The leader of election `name`, or null. */
  leader(
    name: string,
    consistency: LockReadConsistency,
  ): Promise<ElectionLeaderResponse>;
  /**
   * The leader of `name` now (unless resuming), then each change in
   * revision order; after `afterRevision`, only the changes after it (or
   * the current leader when the node no longer holds them). Resolves once
   * the stream is open: the stream bound checked and a linearizable read
   * point reached, so a refusal comes before any event.
   *
   * @throws {KvUnavailableError} When the node serves its maximum of observe
   *   streams, or no read point can be confirmed (no leader).
   */
  observe(
    name: string,
    afterRevision: number | null,
    signal: AbortSignal,
  ): Promise<AsyncIterable<ElectionObserveEvent>>;
}
