/**
 * The port between Aspen's KV front ends (HTTP API, KV Connect, the client
 * module's server side) and whatever serves the data: a single in-process
 * state machine for tests, or the Raft-replicated node runtime.
 *
 * @module
 */
import {
  KvInvalidError,
  KvLimitError,
  KvUnsupportedError,
} from "../../model/errors.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvEntry,
  KvFailureReason,
  KvQueueDelivery,
  KvResendMark,
  Versionstamp,
} from "../../model/types.ts";
import type { KvQueueInfo, KvQueuePeek } from "../queues/api.ts";

/** One range of a read: keys in [start, end), at most `limit`, optionally reversed. */
export interface KvReadRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array;
  readonly limit: number;
  readonly reverse: boolean;
}

/** "strong": linearizable (ReadIndex); "eventual": the local replica as it is. */
export type KvConsistency = "strong" | "eventual";

/** A commit that applied, with the versionstamp of its log entry. */
export interface KvCommitOk {
  readonly ok: true;
  readonly versionstamp: Versionstamp;
}

/** A commit decided not to apply (a check failed, a type mismatch…): nothing changed. */
export interface KvCommitFailed {
  readonly ok: false;
  readonly reason: KvFailureReason;
  readonly message: string;
  /** Indexes of the checks that failed, when `reason` is "checkFailed". */
  readonly failedChecks: readonly number[];
  /** Facts of a pub/sub refusal (`staleGeneration`: generation and assignment). */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The decided outcome of an atomic operation. */
export type KvCommitResult = KvCommitOk | KvCommitFailed;

/**
 * The commit result of an atomic operation's apply result. Apply is the
 * authority on validity: a command it refused as malformed, over a limit or
 * unsupported comes back as the same typed error a front end's early check
 * throws (nothing applied); checks and type mismatches are decided outcomes.
 *
 * @throws {KvLimitError} When apply refused the operation as over a limit.
 * @throws {KvInvalidError} When apply refused it as malformed.
 * @throws {KvUnsupportedError} When it uses what Aspen does not support.
 */
export function commitResultOf(result: KvApplyResult): KvCommitResult {
  if (result.ok) return { ok: true, versionstamp: result.versionstamp };
  switch (result.reason) {
    case "limitExceeded":
      throw new KvLimitError("mutations", 0, result.message);
    case "invalidCommand":
      throw new KvInvalidError(result.message);
    case "unsupported":
      throw new KvUnsupportedError(result.message);
  }
  return {
    ok: false,
    reason: result.reason,
    message: result.message,
    failedChecks: result.failedChecks,
    ...(result.details === undefined ? {} : { details: result.details }),
  };
}

/**
 * Nothing was proposed (no leader, no quorum, shutting down): the request is
 * safe to retry anywhere. HTTP maps it to 503.
 */
export class KvUnavailableError extends Error {
  override name = "KvUnavailableError";
}

/**
 * The operation was proposed but its outcome is not known (deadline passed,
 * leader lost): it may or may not have applied. Never reported as failed.
 */
export class KvOutcomeUnknownError extends Error {
  override name = "KvOutcomeUnknownError";
}

/**
 * This node does not lead, so it cannot hand out queue messages (only the
 * leader's dispatcher leases them). Retry on the leader.
 */
export class KvNotLeaderError extends Error {
  override name = "KvNotLeaderError";
}

/** Options of {@linkcode KvQueues.listen}. */
export interface KvQueueListenOptions {
  /** The queue ("" for the default queue). */
  readonly queue: string;
  /** Messages handed out at most, 1..100. */
  readonly countMax: number;
  /** How long each delivery is leased before it counts as failed, in ms. */
  readonly leaseMs: number;
  /** How long to wait for a message before answering with none, in ms. */
  readonly waitMs: number;
  /** Gives up waiting (answering with none) when aborted. */
  readonly signal?: AbortSignal;
}

/** Queue delivery: leases from the leader, acks and nacks through the log. */
export interface KvQueues {
  /**
   * Waits (at most `waitMs`) until messages of the queue are ready, leases
   * them to the caller and returns them; an empty list when none came.
   *
   * @throws {KvNotLeaderError} When this node does not lead (or stops leading while waiting).
   * @throws {KvUnavailableError} When too many listeners wait already.
   */
  listen(options: KvQueueListenOptions): Promise<KvQueueDelivery[]>;
  /** Deletes delivered messages; returns how many were still queued. */
  ack(ids: readonly Uint8Array[]): Promise<number>;
  /** Fails deliveries (the handler threw): retry after the next backoff step or dead-letter. */
  nack(
    messages: readonly { id: Uint8Array; delivery: number }[],
  ): Promise<number>;
  /** Sets how many messages of `queue` may be leased at once; null for no limit. */
  configure(queue: string, concurrencyMax: number | null): Promise<void>;
  /** A queue's length, leased count and limit. */
  info(queue: string, consistency: KvConsistency): Promise<KvQueueInfo>;
  /** The waiting messages of a queue, soonest first, without leasing them. */
  peek(
    queue: string,
    limit: number,
    consistency: KvConsistency,
  ): Promise<KvQueuePeek[]>;
}

/** What serves Deno KV operations. */
export interface KvBackend {
  /** A lowercase UUID naming this database (the cluster). */
  readonly databaseId: string;

  /**
   * Reads each range from one consistent view of the state.
   *
   * @throws {KvUnavailableError} When a strong read cannot be confirmed.
   */
  read(
    ranges: readonly KvReadRange[],
    consistency: KvConsistency,
    signal?: AbortSignal,
  ): Promise<KvEntry[][]>;

  /**
   * Commits an atomic operation (already validated against the limits).
   *
   * @throws {KvUnavailableError} When nothing was proposed.
   * @throws {KvOutcomeUnknownError} When it was proposed but the outcome is unknown.
   */
  commit(
    operation: KvAtomicOperation,
    signal?: AbortSignal,
  ): Promise<KvCommitResult>;

  /**
   * Streams the values of `keys`: first their current values, then again
   * whenever any of them changes, until `signal` aborts. Each yield has one
   * slot per key (null = absent).
   */
  watch(
    keys: readonly Uint8Array[],
    signal: AbortSignal,
  ): AsyncIterable<readonly (KvEntry | null)[]>;

  /** Queue delivery, when this backend offers it (the Raft backend does). */
  readonly queues?: KvQueues;

  /**
   * Records that the answers of these stock writes were delivered, so their
   * resend records stop answering (see `src/services/kv/resends.ts`). Best effort:
   * a mark lost keeps the record answering until it ages out.
   */
  markResendsDelivered?(marks: readonly KvResendMark[]): Promise<void>;
}

export { RESEND_MARKS_MAX } from "./commands.ts";
export { RESEND_WINDOW_MS } from "./resends.ts";
