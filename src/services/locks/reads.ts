/**
 * The locks service's reads from the applied state: a name's holders and
 * waiters, and an election's leader.
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import { LOCK_LIMITS, validateLockName } from "./commands.ts";
import {
  decodeHolder,
  decodeLeader,
  decodeName,
  decodeWaiter,
  holderRange,
  leaderKey,
  type LeaderRecord,
  type LockKind,
  nameKey,
  tokenOfHolderKey,
  waiterRange,
} from "./keys.ts";

/** A name's holders (token order) and waiters (FIFO). */
export interface LockStatus {
  readonly name: string;
  /** Null when nobody holds or waits. */
  readonly kind: LockKind | null;
  /** 0 when nobody holds or waits. */
  readonly permits: number;
  readonly holders: readonly {
    readonly token: string;
    readonly lease: string;
    readonly revision: number;
  }[];
  readonly waiters: readonly {
    readonly lease: string;
    readonly revision: number;
  }[];
}

/** Reads of the locks over one store. */
export class LockReads {
  readonly store: StateStore;

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
