/**
 * The client's own lease for locks and elections that name none: TTL
 * 10,000 ms, opened on first use, kept alive, shared, and opened anew once
 * lost. Private to `src/client/`.
 *
 * @module
 */
import type { AspenLeases } from "./leases.ts";
import type { OpenLease } from "./types.ts";

/** TTL of the client's own lease, ms. */
export const OWN_LEASE_TTL_MS = 10_000;

/** The shared lease, opened lazily. */
export class OwnLease {
  readonly #leases: AspenLeases;
  #opening: Promise<OpenLease> | null = null;
  #current: OpenLease | null = null;

  constructor(leases: AspenLeases) {
    this.#leases = leases;
  }

  /** The open lease, opening one when none is or the last was lost. */
  get(): Promise<OpenLease> {
    if (this.#current !== null && !this.#current.signal.aborted) {
      return Promise.resolve(this.#current);
    }
    if (this.#opening === null) {
      this.#current = null;
      this.#opening = this.#leases.open({ ttlMs: OWN_LEASE_TTL_MS }).then(
        (lease) => {
          this.#current = lease;
          return lease;
        },
      ).finally(() => {
        this.#opening = null;
      });
    }
    return this.#opening;
  }

  /** Revokes the lease (its grants are released) if one is open. */
  async close(): Promise<void> {
    const lease = this.#current ?? await this.#opening?.catch(() => null);
    this.#current = null;
    await lease?.close();
  }
}
