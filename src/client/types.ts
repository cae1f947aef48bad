/**
 * Types of the Aspen client: the shapes of `Deno.Kv`'s entries, results and
 * options, plus connection options.
 *
 * @module
 */
import type { KvKey, KvKeyPart } from "../model/key_codec.ts";

export type { KvKey, KvKeyPart };

/** Read consistency: "strong" (linearizable, default) or "eventual" (the node's replica). */
export type KvConsistencyLevel = "strong" | "eventual";

/** A key's value and versionstamp, as `Deno.KvEntry`. */
export interface KvEntry<T> {
  /** The key. */
  readonly key: KvKey;
  /** The value. */
  readonly value: T;
  /** 20 lowercase hex characters. */
  readonly versionstamp: string;
}

/** An entry that may be absent (value and versionstamp null), as `Deno.KvEntryMaybe`. */
export type KvEntryMaybe<T> = KvEntry<T> | {
  /** The key. */
  readonly key: KvKey;
  /** Null: the key is absent. */
  readonly value: null;
  /** Null: the key is absent. */
  readonly versionstamp: null;
};

/** A committed write, as `Deno.KvCommitResult`. */
export interface KvCommitResult {
  /** The write applied. */
  readonly ok: true;
  /** The commit's versionstamp: 20 lowercase hex characters. */
  readonly versionstamp: string;
}

/** An atomic operation whose check failed, as `Deno.KvCommitError`. */
export interface KvCommitError {
  /** A check failed: nothing changed. */
  readonly ok: false;
}

/** A check of an atomic operation, as `Deno.AtomicCheck`: versionstamp null means absent. */
export interface AtomicCheck {
  /** The key. */
  readonly key: KvKey;
  /** The versionstamp the key must have; null: it must be absent. */
  readonly versionstamp: string | null;
}

/** What to list, as `Deno.KvListSelector`. */
export type KvListSelector =
  | { readonly prefix: KvKey }
  | { readonly prefix: KvKey; readonly start: KvKey }
  | { readonly prefix: KvKey; readonly end: KvKey }
  | { readonly start: KvKey; readonly end: KvKey };

/** Options of `list`, as `Deno.KvListOptions`. */
export interface KvListOptions {
  /** Most entries in total. Default: all. */
  readonly limit?: number;
  /** Resume after this cursor. */
  readonly cursor?: string;
  /** Last key first. Default false. */
  readonly reverse?: boolean;
  /** Read consistency. Default "strong". */
  readonly consistency?: KvConsistencyLevel;
  /** Entries per request, 1 to 1000. Default: `limit` if smaller, else 100. */
  readonly batchSize?: number;
}

/** Options of `get` and `getMany`. */
export interface KvGetOptions {
  /** Read consistency. Default "strong". */
  readonly consistency?: KvConsistencyLevel;
}

/** Options of `set`. */
export interface KvSetOptions {
  /** Milliseconds after which the key may be deleted. */
  readonly expireIn?: number;
  /**
   * Attach the key to this lease (16 hex digits, or an open lease): the key
   * is deleted when the lease ends. A later set without `lease` detaches
   * it. An unknown lease fails with `LeaseNotFoundError`, nothing applied.
   */
  readonly lease?: string | { readonly id: string };
}

/** Options of `enqueue`, as Deno KV's (plus `queue`). */
export interface KvEnqueueOptions {
  /** Milliseconds before the first delivery, up to 30 days. Default 0. */
  readonly delay?: number;
  /** Keys that receive the value when every delivery failed. */
  readonly keysIfUndelivered?: readonly KvKey[];
  /** Retry delays in ms. Default Deno's `[100, 1000, 5000, 30000, 60000]`. */
  readonly backoffSchedule?: readonly number[];
  /** The queue (an Aspen extension). Default: the default queue. */
  readonly queue?: string;
}

/** Options of `listenQueue` (an Aspen extension: Deno's takes none). */
export interface KvListenQueueOptions {
  /** The queue. Default: the default queue. */
  readonly queue?: string;
  /** Handlers running at once in this listener, 1 to 100. Default 10. */
  readonly concurrency?: number;
  /** Milliseconds a delivery is leased; a handler still running then is retried elsewhere. Default 30,000. */
  readonly leaseMs?: number;
}

/** Options of `watch`, as Deno KV's. */
export interface KvWatchOptions {
  /**
   * Deno yields only changed snapshots unless `raw`; Aspen's server sends
   * only changes, so `raw` also lets through a snapshot repeated after a
   * reconnect.
   */
  readonly raw?: boolean;
}

/** A queue's length, leased count and concurrency limit (an Aspen extension). */
export interface KvQueueInfo {
  /** The queue ("" for the default queue). */
  readonly queue: string;
  /** Messages in the queue, leased ones included. */
  readonly length: number;
  /** Messages leased to consumers right now. */
  readonly leasedCount: number;
  /** Most messages leased at once; null for no limit. */
  readonly concurrencyMax: number | null;
}

/** A waiting message, as `peekQueue` shows it (an Aspen extension). */
export interface KvQueueMessage<T = unknown> {
  /** The message id: 20 hex characters. */
  readonly id: string;
  /** The queue ("" for the default queue). */
  readonly queue: string;
  /** The enqueued value. */
  readonly value: T;
  /** Unix ms from which it may be delivered. */
  readonly readyAtMs: number;
  /** Deliveries so far. */
  readonly delivery: number;
}

/** Options of `connect`. */
export interface ConnectOptions {
  /** Bearer token of the cluster. */
  readonly token?: string;
  /** Milliseconds one request may take before it is abandoned. Default 10,000. */
  readonly timeoutMs?: number;
  /** Body format: "json" (default) or "msgpack". */
  readonly format?: "json" | "msgpack";
  /** Most attempts of one request across nodes. Default: 2 per node, at least 3. */
  readonly attemptsMax?: number;
  /** The `fetch` to use. Default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /**
   * The cluster id (base32) every node must belong to; a ticket sets it. A
   * node of another cluster is refused with a `WrongClusterError`.
   */
  readonly clusterId?: string;
}

// --- Leases, locks, elections ------------------------------------------------

/** A granted lease: its id and the TTL the cluster granted (maybe raised). */
export interface LeaseGrant {
  /** 16 lowercase hex digits. */
  readonly id: string;
  /** The granted TTL, ms. */
  readonly ttlMs: number;
}

/** Options of `leases.grant`. */
export interface LeaseGrantOptions {
  /** The id to use (16 lowercase hex digits). Default: chosen by the leader. */
  readonly id?: string;
}

/** One lease's answer to a keep-alive: renewed, or gone. */
export type LeaseKeepAliveResult =
  | {
    /** The lease id. */
    readonly id: string;
    /** Its TTL, ms. */
    readonly ttlMs: number;
    /** The leader's view of the time left, ms. */
    readonly remainingMs: number;
  }
  | {
    /** The lease id. */
    readonly id: string;
    /** The lease does not exist (never granted, revoked or expired). */
    readonly error: "leaseNotFound";
  };

/** Options of `leases.timeToLive`. */
export interface LeaseTimeToLiveOptions {
  /** List the attached keys too. Default false. */
  readonly keys?: boolean;
}

/** A lease's TTL and time left, as the leader sees it. */
export interface LeaseTimeToLive {
  /** The lease id. */
  readonly id: string;
  /** Its TTL, ms. */
  readonly ttlMs: number;
  /** The leader's view of the time left, ms. */
  readonly remainingMs: number;
  /** The attached keys, when asked. */
  readonly keys?: readonly KvKey[];
}

/** Options of `leases.list`. */
export interface LeaseListOptions {
  /** Resume after this cursor (from the previous page). */
  readonly cursor?: string;
  /** Leases in this page, 1 to 1,000. Default 100. */
  readonly limit?: number;
}

/** One lease in a list. */
export interface LeaseInfo {
  /** The lease id. */
  readonly id: string;
  /** Its TTL, ms. */
  readonly ttlMs: number;
  /** Revision (log index) of its grant. */
  readonly revision: number;
  /** Keys attached. */
  readonly keyCount: number;
}

/** One page of `leases.list`: ids in order; cursor null at the end. */
export interface LeaseListPage {
  /** The leases of this page. */
  readonly leases: readonly LeaseInfo[];
  /** The cursor of the next page, or null at the end. */
  readonly cursor: string | null;
}

/** Options of `leases.open`. */
export interface LeaseOpenOptions {
  /** TTL asked for, ms (1,000 to 604,800,000; the cluster may raise it). */
  readonly ttlMs: number;
  /** The id to use. Default: chosen by the leader. */
  readonly id?: string;
}

/**
 * A lease this client keeps alive (`leases.open`): a keep-alive every TTL/3;
 * `signal` aborts (reason a `LeaseLostError`) when the lease is gone, or at
 * the send time of the last acknowledged keep-alive + TTL − 10% when none
 * was acknowledged since, so the holder stops before the cluster can expire
 * the lease.
 */
export interface OpenLease {
  /** The lease id. */
  readonly id: string;
  /** The granted TTL, ms. */
  readonly ttlMs: number;
  /** Aborted once the lease is (or may be) lost, or closed. */
  readonly signal: AbortSignal;
  /** Stops the keep-alives; revokes the lease (its keys and holds go) if `open` granted it. */
  close(): Promise<void>;
  /** Same as `close`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of `locks.acquire`. */
export interface LockAcquireOptions {
  /**
   * The holding lease: an id or an open lease (whose `signal` the grant's
   * then follows). Default: the client's own lease (TTL 10,000 ms, kept
   * alive, shared by every grant of this client that names none).
   */
  readonly lease?: string | OpenLease;
  /** 1 to 10,000; the first acquire of a name fixes it. Default 1 (a lock). */
  readonly permits?: number;
  /** Longest wait, ms; then `AcquireTimeoutError`. Default: no limit. */
  readonly timeoutMs?: number;
  /** Stops waiting (the waiter leaves the queue) when aborted. */
  readonly signal?: AbortSignal;
}

/** A held lock or semaphore permit. */
export interface LockGrant {
  /** The lock name. */
  readonly name: string;
  /** The fencing token: 20 hex digits, strictly increasing per name. */
  readonly token: string;
  /** The holding lease id. */
  readonly lease: string;
  /** Revision of the grant. */
  readonly revision: number;
  /**
   * Aborted when the holding lease is (or may be) lost; never aborted for a
   * lease given as a bare id, which this client does not keep alive.
   */
  readonly signal: AbortSignal;
  /** Releases the grant (the next waiters are granted in the same entry). */
  release(): Promise<void>;
  /** Same as `release` (ignoring `NotHolderError`), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Holders and waiters of a lock or semaphore. */
export interface LockStatus {
  /** The lock name. */
  readonly name: string;
  /** Its permits; 0 for a name never acquired. */
  readonly permits: number;
  /** The current holders. */
  readonly holders: readonly {
    /** The holder's token. */
    readonly token: string;
    /** The holder's lease. */
    readonly lease: string;
    /** Revision of the grant. */
    readonly revision: number;
  }[];
  /** The waiters, first in line first. */
  readonly waiters: readonly {
    /** The waiter's lease. */
    readonly lease: string;
    /** Revision it queued at. */
    readonly revision: number;
  }[];
}

/** Options of `elections.campaign`. */
export interface CampaignOptions {
  /** The holding lease, as for `locks.acquire`. Default: the client's own lease. */
  readonly lease?: string | OpenLease;
  /** Longest wait, ms; then `AcquireTimeoutError`. Default: no limit. */
  readonly timeoutMs?: number;
  /** Stops waiting when aborted. */
  readonly signal?: AbortSignal;
}

/** A won election. */
export interface Leadership {
  /** The election name. */
  readonly name: string;
  /** The leader's fencing token. */
  readonly token: string;
  /** The holding lease id. */
  readonly lease: string;
  /** The value campaigned with. */
  readonly value: string;
  /** Revision of the grant. */
  readonly revision: number;
  /** Aborted when the holding lease is (or may be) lost (as `LockGrant.signal`). */
  readonly signal: AbortSignal;
  /** Resigns (the next candidate is elected in the same entry). */
  resign(): Promise<void>;
}

/** The leader of an election. */
export interface ElectionLeader {
  /** The leader's value. */
  readonly value: string;
  /** The leader's token. */
  readonly token: string;
  /** The leader's lease. */
  readonly lease: string;
  /** Revision of the grant or of the last proclaim. */
  readonly revision: number;
}

/** One observation of an election: its leader (null: none) at a revision. */
export interface ElectionObservation {
  /** The leader, or null when nobody leads. */
  readonly leader: ElectionLeader | null;
  /** Revision of this state. */
  readonly revision: number;
}

/** Options of `elections.observe`. */
export interface ObserveOptions {
  /** Ends the iteration when aborted. */
  readonly signal?: AbortSignal;
}

export type {
  ClusterMember,
  ClusterStatus,
  NodeAddress,
} from "../protocol/cluster.ts";
