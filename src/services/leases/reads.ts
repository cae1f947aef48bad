/**
 * The leases service's reads from the applied state: one lease, a page of
 * leases in id order, a lease's attached keys, and every lease (the leader's
 * keeper loads them when it becomes leader).
 *
 * @module
 */
import { toHex } from "../../base/bytes.ts";
import type { StateStore } from "../../state/state_store.ts";
import { leaseRecordKey } from "./api.ts";
import { LEASE_LIMITS, LeaseError, validateLeaseId } from "./commands.ts";
import {
  attachedRange,
  decodeCount,
  decodeLeaseRecord,
  idOfRecordKey,
  LEASE_COUNT_KEY,
  LEASE_RECORDS_RANGE,
  userKeyOfAttached,
} from "./keys.ts";

/** A lease as reads answer it. */
export interface LeaseInfo {
  /** 16 hex digits. */
  readonly id: string;
  /** The granted TTL, ms. */
  readonly ttlMs: number;
  /** Revision (log index) of its grant. */
  readonly revision: number;
  /** Keys attached. */
  readonly keyCount: number;
}

/** Most leases one list page answers. */
export const LEASE_LIST_LIMIT_MAX = 1_000;

/** Reads of the leases over one store. */
export class LeaseReads {
  /** The applied state read. */
  readonly store: StateStore;

  /** Reads over `store`. */
  constructor(store: StateStore) {
    this.store = store;
  }

  /** Leases held (the count row). */
  count(): number {
    return decodeCount(this.store.get(LEASE_COUNT_KEY)?.value);
  }

  /** Lease `id`, or null when it does not exist. */
  get(id: string): LeaseInfo | null {
    const row = this.store.get(leaseRecordKey(validateLeaseId(id)));
    if (row === null) return null;
    const record = decodeLeaseRecord(row.value);
    return {
      id,
      ttlMs: record.ttlMs,
      revision: record.grantedAt,
      keyCount: record.keyCount,
    };
  }

  /**
   * Up to `limit` leases after id `cursor` (exclusive), in id order; the
   * cursor of the next page, or null at the end.
   *
   * @throws {LeaseError} `invalid` for a bad cursor or limit.
   */
  list(
    cursor: string | null,
    limit: number,
  ): { leases: LeaseInfo[]; cursor: string | null } {
    if (!Number.isInteger(limit) || limit < 1 || limit > LEASE_LIST_LIMIT_MAX) {
      throw new LeaseError(
        "invalid",
        `Invalid limit: expected 1 to ${LEASE_LIST_LIMIT_MAX}`,
      );
    }
    let start = LEASE_RECORDS_RANGE.start;
    if (cursor !== null) {
      const after = leaseRecordKey(validateLeaseId(cursor));
      start = new Uint8Array(after.length + 1);
      start.set(after);
    }
    const rows = this.store.scan({
      start,
      end: LEASE_RECORDS_RANGE.end,
      limit: limit + 1,
    });
    const leases = rows.slice(0, limit).map((row) => {
      const record = decodeLeaseRecord(row.value);
      return {
        id: idOfRecordKey(row.key),
        ttlMs: record.ttlMs,
        revision: record.grantedAt,
        keyCount: record.keyCount,
      };
    });
    return {
      leases,
      cursor: rows.length > limit ? leases[leases.length - 1]!.id : null,
    };
  }

  /** Every lease (at most the leases limit), in id order. */
  all(): LeaseInfo[] {
    return this.store.scan({
      ...LEASE_RECORDS_RANGE,
      limit: LEASE_LIMITS.leasesMax + 1,
    }).map((row) => {
      const record = decodeLeaseRecord(row.value);
      return {
        id: idOfRecordKey(row.key),
        ttlMs: record.ttlMs,
        revision: record.grantedAt,
        keyCount: record.keyCount,
      };
    });
  }

  /** The user keys (encoded) attached to lease `id`, in key order. */
  keys(id: string): Uint8Array[] {
    return this.store.scan({
      ...attachedRange(validateLeaseId(id)),
      limit: LEASE_LIMITS.leaseKeysMax,
    }).map((row) => userKeyOfAttached(row.key));
  }
}

/** A fresh random lease id (the proposer's choice), 16 hex digits. */
export function randomLeaseId(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(8)));
}
