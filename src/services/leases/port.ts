/**
 * The leases port: what a node offers the front ends for leases (the HTTP
 * routes `/v1/leases/*`). Implemented by `src/node/node_leases.ts`.
 *
 * @module
 */
import type { KeepAliveAnswer } from "./leader.ts";
import type { LeaseInfo } from "./reads.ts";

/** Leases as a node serves them. */
export interface LeasesPort {
  /**
   * Grants a lease (id given, or random from this proposer); the TTL is
   * raised to at least three election timeouts.
   *
   * @throws {LeaseError} `invalid`, `limitExceeded` or `leaseExists`.
   */
  grant(ttlMs: number, id?: string): Promise<{ id: string; ttlMs: number }>;
  /**
   * Keeps leases alive on the leader.
   *
   * @throws {KvNotLeaderError} On a follower (the front end forwards).
   */
  keepAlive(ids: readonly string[]): Promise<KeepAliveAnswer[]>;
  /**
   * Revokes a lease, deleting its keys and holds.
   *
   * @throws {LeaseError} `leaseNotFound`.
   */
  revoke(id: string): Promise<{ keysDeleted: number }>;
  /**
   * A lease with the leader's remaining time and, if asked, its keys
   * (encoded); null when it does not exist.
   *
   * @throws {KvNotLeaderError} On a follower (the front end forwards).
   */
  timeToLive(
    id: string,
    keys: boolean,
  ): Promise<
    (LeaseInfo & { remainingMs: number; keys?: Uint8Array[] }) | null
  >;
  /** A page of leases in id order (after a ReadIndex). */
  list(
    cursor: string | null,
    limit: number,
  ): Promise<{ leases: LeaseInfo[]; cursor: string | null }>;
}
