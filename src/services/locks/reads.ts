/**
 * The locks service's reads from the applied state: a name's holders and
 * waiters, and an election's leader.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { equalBytes } from "../../base/bytes.ts";
import type { ChangeEvent } from "../../state/changes.ts";
import type { StateStore } from "../../state/state_store.ts";
import { holderKey } from "./api.ts";
import { LOCK_LIMITS, validateLockName } from "./commands.ts";
import {
  decodeHolder,
  decodeLeader,
  decodeLeaseHold,
  decodeName,
  decodeWaiter,
  holderRange,
  leaderKey,
  type LeaderRecord,
  leaseKey,
  type LockKind,
  nameKey,
  tokenOfHolderKey,
  waiterRange,
} from "./keys.ts";

/** The service name in change events (as `apply.ts` registers it). */
const LOCKS_SERVICE_NAME = "locks";

/** A name's holders (token order) and waiters (FIFO). */
export interface LockStatus {
  /** The name asked about. */
  readonly name: string;
  /** Null when nobody holds or waits. */
  readonly kind: LockKind | null;
  /** 0 when nobody holds or waits. */
  readonly permits: number;
  /** Holders, in token order. */
  readonly holders: readonly {
    readonly token: string;
    readonly lease: string;
    readonly revision: number;
  }[];
  /** Waiters, first in line first. */
  readonly waiters: readonly {
    readonly lease: string;
    readonly revision: number;
  }[];
}

/** Reads of the locks over one store. */
export class LockReads {
  /** The applied state read. */
  readonly store: StateStore;

  /** Reads over `store`. */
  constructor(store: StateStore) {
    this.store = store;
  }

  /**
   * The holders and waiters of `name`.
   *
   * @throws {LockError} `invalid` for a bad name.
   */
  status(name: string): LockStatus {
    validateLockName(name);
    const row = this.store.get(nameKey(name));
    if (row === null) {
      return { name, kind: null, permits: 0, holders: [], waiters: [] };
    }
    const record = decodeName(row.value);
    const holders = this.store.scan({
      ...holderRange(name),
      limit: LOCK_LIMITS.permitsMax,
    }).map((holder) => ({
      token: tokenOfHolderKey(holder.key),
      ...decodeHolder(holder.value),
    }));
    const waiters = this.store.scan({
      ...waiterRange(name),
      limit: LOCK_LIMITS.waitersMax,
    }).map((waiter) => {
      const { lease, revision } = decodeWaiter(waiter.value);
      return { lease, revision };
    });
    return {
      name,
      kind: record.kind,
      permits: record.permits,
      holders,
      waiters,
    };
  }

  /**
   * The leader of election `name`, or null.
   *
   * @throws {LockError} `invalid` for a bad name.
   */
  leader(name: string): LeaderRecord | null {
    validateLockName(name);
    const row = this.store.get(leaderKey(name));
    return row === null ? null : decodeLeader(row.value);
  }
}

/** What a lease has on a name: a grant, a place in the queue, or nothing. */
export type LockMembership =
  | {
    readonly kind: "holds";
    readonly token: string;
    readonly lease: string;
    readonly revision: number;
  }
  | { readonly kind: "waits"; readonly position: number }
  | null;

/**
 * What `lease` has on `name` in `store`: its grant, its queue position
 * (waiters ahead), or null.
 */
export function membershipOf(
  store: StateStore,
  name: string,
  lease: string,
): LockMembership {
  const row = store.get(leaseKey(lease, name));
  if (row === null) return null;
  const hold = decodeLeaseHold(row.value);
  if (hold.kind === "waits") {
    const ahead = store.scan({
      ...waiterRange(name, hold.seq),
      limit: LOCK_LIMITS.waitersMax,
    });
    return { kind: "waits", position: ahead.length };
  }
  const holder = store.get(holderKey(name, hold.token));
  assert(holder !== null, "A lease row that holds names a holder row");
  return {
    kind: "holds",
    token: hold.token,
    ...decodeHolder(holder.value),
  };
}

/** Whether `event` changed what `lease` has on `name` (its lease row). */
export function membershipChangeFilter(
  name: string,
  lease: string,
): (event: ChangeEvent) => boolean {
  const key = leaseKey(lease, name);
  return (event) =>
    event.service === LOCKS_SERVICE_NAME && equalBytes(event.key, key);
}

/** Whether `event` changed the leader of election `name`. */
export function leaderChangeFilter(
  name: string,
): (event: ChangeEvent) => boolean {
  const key = leaderKey(name);
  return (event) =>
    event.service === LOCKS_SERVICE_NAME && equalBytes(event.key, key);
}

/** The leader a leader-row change event sets (null for a delete). */
export function leaderOfChange(event: ChangeEvent): LeaderRecord | null {
  return event.after === undefined ? null : decodeLeader(event.after.value);
}
