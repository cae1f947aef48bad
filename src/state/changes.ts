/**
 * The change feed's types: what apply emits for every change it makes, and
 * the port the state host hands those changes to once the entry's state
 * transaction is done. The feed itself (bounded window, subscriptions,
 * "compacted" errors) lives in `change_feed.ts`.
 *
 * @module
 */

/**
 * A revision: the log index of the entry that made a change (monotonic
 * across the cluster; the first 8 bytes of its versionstamp).
 */
export type Revision = bigint;

/** One change made by one applied entry. */
export interface ChangeEvent {
  /** The entry's revision. */
  readonly revision: Revision;
  /** Position of this change inside its entry (0, 1, …), identical on every node. */
  readonly index: number;
  /** The service that made the change (`kv`, `queues`, …). */
  readonly service: string;
  /** What happened, per service (`set`, `delete`, …). */
  readonly kind: string;
  /** The service's key (for `kv`: the encoded Deno KV key). */
  readonly key: Uint8Array;
  /** The row before the change, when the service records it. */
  readonly before?: ChangeValue;
  /** The row after the change; absent for a delete. */
  readonly after?: ChangeValue;
  /** Why, when not a plain write: `expire` for a delete by the expiry sweep. */
  readonly cause?: string;
}

/** A row as the feed carries it (for `kv`: the stored value and its encoding). */
export interface ChangeValue {
  readonly value: Uint8Array;
  /** The service's encoding tag (for `kv`: the `ValueEncoding`, `v8|bytes|le64`). */
  readonly encoding: string;
  /** The row's versionstamp (10 bytes). */
  readonly versionstamp: Uint8Array;
  /** Expiry, ms since the epoch, when set. */
  readonly expireAtMs?: number;
}

/** Where the state host hands each applied entry's changes (after its store transaction). */
export interface ChangeSink {
  /**
   * Called once per applied entry, in log order, with every change it made
   * (possibly none: the revision still advances). Must not throw.
   */
  applied(revision: Revision, changes: readonly ChangeEvent[]): void;
  /** Called after a snapshot replaced the whole state: earlier revisions are gone. */
  reset(revision: Revision): void;
}
