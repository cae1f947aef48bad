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

export type {
  ClusterMember,
  ClusterStatus,
  NodeAddress,
} from "../protocol/cluster.ts";
