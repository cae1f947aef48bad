/**
 * Leases as a node serves them (the {@linkcode LeasesPort} of
 * `services/leases/api.ts`): grant and revoke are proposals of the
 * `leases` service (a follower's proposal is forwarded to the leader, with
 * this node's session so a retry applies at most once); keep-alive and ttl
 * are answered by this node's {@linkcode LeaseKeeper} while it leads (a
 * follower refuses them as not leader and the HTTP front end forwards them
 * to the leader); list reads the local replica after a ReadIndex.
 *
 * @module
 */
import { strongRead } from "./_strong_read.ts";
import {
  encodeLeaseCommand,
  grantedTtlMs,
  type LeaseCommand,
  LeaseError,
  type LeaseKeeper,
  LeaseReads,
  type LeaseResult,
  type LeasesPort,
  randomLeaseId,
  validateLeaseCommand,
  validateLeaseId,
} from "../services/leases/api.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { appliedThrough, proposeWithSession } from "./_session_proposal.ts";
import type { StateStore } from "../state/state_store.ts";

/** The leases service's envelope id (its line in `services/table.ts`). */
export const LEASES_SERVICE_ID = 4;

/** What {@linkcode NodeLeases} needs of its node. */
export interface NodeLeasesOptions {
  /** Proposes an entry (forwarded to the leader) and answers its apply result. */
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  /** Waits for a linearizable read point, applied on this node. */
  readonly readIndex: () => Promise<unknown>;
  /** This node's applied state. */
  readonly store: StateStore;
  /** This node's keeper (answers keep-alives and ttl while it leads). */
  readonly keeper: LeaseKeeper;
  /** One election timeout, ms (grants are raised to three). */
  readonly electionTimeoutMs: number;
}

/** The leases port over a Raft node. */
export class NodeLeases implements LeasesPort {
  readonly #options: NodeLeasesOptions;
  readonly #reads: LeaseReads;
  readonly #sessionId = `leases-${crypto.randomUUID()}`;
  #sessionSeq = 0;

  /** The port over the node parts in `options`. */
  constructor(options: NodeLeasesOptions) {
    this.#options = options;
    this.#reads = new LeaseReads(options.store);
  }

  /** Leases in this node's applied state (a metric). */
  leaseCount(): number {
    return this.#reads.count();
  }

  async grant(
    ttlMs: number,
    id?: string,
  ): Promise<{ id: string; ttlMs: number }> {
    const granted = grantedTtlMs(ttlMs, this.#options.electionTimeoutMs);
    const leaseId = id === undefined ? randomLeaseId() : validateLeaseId(id);
    const result = await this.#propose({
      type: "grant",
      id: leaseId,
      ttlMs: granted,
    });
    if (!("lease" in result)) throw this.#unexpected(result);
    return result.lease;
  }

  keepAlive(ids: readonly string[]) {
    return this.#options.keeper.keepAlive(ids);
  }

  async revoke(id: string): Promise<{ keysDeleted: number }> {
    const result = await this.#propose({ type: "revoke", id });
    if (!("keysDeleted" in result)) throw this.#unexpected(result);
    return { keysDeleted: result.keysDeleted };
  }

  async timeToLive(id: string, keys: boolean) {
    const lease = await this.#options.keeper.timeToLive(id);
    if (lease === null) return null;
    return keys ? { ...lease, keys: this.#reads.keys(id) } : lease;
  }

  async list(cursor: string | null, limit: number) {
    // Validate before the round trip.
    this.#reads.list(cursor, limit);
    await strongRead(() => this.#options.readIndex());
    return this.#reads.list(cursor, limit);
  }

  async #propose(
    command: LeaseCommand,
  ): Promise<Exclude<LeaseResult, { ok: false }>> {
    validateLeaseCommand(command);
    const data = encodeEnvelope({
      serviceId: LEASES_SERVICE_ID,
      session: { clientId: this.#sessionId, seq: this.#sessionSeq++ },
      payload: encodeLeaseCommand(command),
    });
    return await proposeWithSession<LeaseResult>({
      propose: this.#options.propose,
      data,
      what: command.type,
      caughtUp: (index) => appliedThrough(this.#options.store, index),
      refused: (reason, message) =>
        new LeaseError(reason as LeaseError["code"], message),
    });
  }

  #unexpected(result: LeaseResult): Error {
    return new TypeError(`Unexpected leases result: ${JSON.stringify(result)}`);
  }
}

/** Prometheus text of a node's leases: leases held, keep-alives answered. */
export function leaseMetrics(
  backend: { readonly leases: NodeLeases; readonly leaseKeeper: LeaseKeeper },
): string {
  const stats = backend.leaseKeeper.stats();
  return [
    "# HELP aspen_leases Leases in this node's applied state.",
    "# TYPE aspen_leases gauge",
    `aspen_leases ${backend.leases.leaseCount()}`,
    "# HELP aspen_lease_keepalives_total Keep-alives this node acknowledged (per lease) while leading.",
    "# TYPE aspen_lease_keepalives_total counter",
    `aspen_lease_keepalives_total ${stats.keepAlives}`,
    "# HELP aspen_lease_keepalives_refused_total Keep-alives this node refused (per lease): unknown, or expiry in flight.",
    "# TYPE aspen_lease_keepalives_refused_total counter",
    `aspen_lease_keepalives_refused_total ${stats.keepAlivesRefused}`,
    "# HELP aspen_leases_expired_total Leases ended by this node's expire proposals.",
    "# TYPE aspen_leases_expired_total counter",
    `aspen_leases_expired_total ${stats.expired}`,
    "",
  ].join("\n");
}
