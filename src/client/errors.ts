/**
 * Typed errors of the Aspen client, rebuilt from the HTTP API's error body
 * by {@linkcode errorFromWire}.
 *
 * @module
 */
import type { ErrorCode, ErrorDetails } from "../protocol/http_api.ts";

/** Options of {@linkcode AspenError}. */
export interface AspenErrorOptions extends ErrorOptions {
  /** HTTP status of the reply; 0 when no reply came. */
  readonly status?: number;
  /** Context from the error body. */
  readonly details?: ErrorDetails;
  /** The node URL the failing request went to. */
  readonly url?: string | null;
}

/**
 * Base of every error the client throws for a refused or failed request.
 *
 * @example Catching any Aspen error
 * ```ts ignore
 * import { AspenError, connect } from "@aspen/aspen";
 * const client = connect("http://127.0.0.1:8080", { token: "secret" });
 * try {
 *   await client.kv.set(["a"], new Uint8Array([1]));
 * } catch (error) {
 *   if (error instanceof AspenError) console.log(error.code, error.message);
 * }
 * ```
 */
export class AspenError extends Error {
  /** The error's name. */
  override name = "AspenError";
  /** The API error code (`unavailable`, `checkFailed`, …). */
  readonly code: ErrorCode;
  /** HTTP status of the reply; 0 when no reply came. */
  readonly status: number;
  /** Context from the error body. */
  readonly details: ErrorDetails;
  /** The node URL the failing request went to. */
  readonly url: string | null;

  /** Creates an error with its code and message. */
  constructor(
    code: ErrorCode,
    message: string,
    options: AspenErrorOptions = {},
  ) {
    super(message, options);
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? {};
    this.url = options.url ?? null;
  }
}

/** An admin call reached a node that is not the leader. */
export class NotLeaderError extends AspenError {
  /** The error's name. */
  override name = "NotLeaderError";
  /** The leader's URL when the node knew it. */
  get leaderUrl(): string | null {
    const url = this.details.leaderUrl;
    return typeof url === "string" ? url : null;
  }
}

/** An atomic operation's check did not match: nothing changed. */
export class CheckFailedError extends AspenError {
  /** The error's name. */
  override name = "CheckFailedError";
  /** Indexes of the failing checks. */
  get failedChecks(): readonly number[] {
    const checks = this.details.failedChecks;
    return Array.isArray(checks) ? checks : [];
  }
}

/** A Deno KV limit or the body limit was exceeded: nothing changed. */
export class LimitExceededError extends AspenError {
  /** The error's name. */
  override name = "LimitExceededError";
}

/**
 * No answer in time. For a write, `outcomeUnknown` is true: it may or may
 * not have applied, so read before retrying.
 */
export class TimeoutError extends AspenError {
  /** The error's name. */
  override name = "TimeoutError";
  /** True when a write may have applied. */
  readonly outcomeUnknown: boolean;

  /** Creates a timeout, saying whether a write may have applied. */
  constructor(
    message: string,
    outcomeUnknown: boolean,
    options: AspenErrorOptions = {},
  ) {
    super("outcomeUnknown", message, options);
    this.outcomeUnknown = outcomeUnknown;
  }
}

/** No node could serve the request (no leader, no quorum, unreachable): nothing happened. */
export class UnavailableError extends AspenError {
  /** The error's name. */
  override name = "UnavailableError";
}

/** The bearer token was missing or wrong. */
export class AuthError extends AspenError {
  /** The error's name. */
  override name = "AuthError";
}

/** The request was malformed (key, value, selector, cursor, unknown route…). */
export class InvalidRequestError extends AspenError {
  /** The error's name. */
  override name = "InvalidRequestError";
}

/** A sum/min/max met a value that is not a u64: nothing changed. */
export class TypeMismatchError extends AspenError {
  /** The error's name. */
  override name = "TypeMismatchError";
}

/**
 * The node belongs to another cluster than the one the client was given
 * (its ticket's cluster id): the request was not applied there.
 */
export class WrongClusterError extends AspenError {
  /** The error's name. */
  override name = "WrongClusterError";
}

/** A membership change was refused (change pending, learner not caught up, unknown node). */
export class MembershipError extends AspenError {
  /** The error's name. */
  override name = "MembershipError";
}

/**
 * No lease has this id (never granted, revoked or expired): nothing changed.
 * Also what a lease-holding call throws when the lease it names is gone.
 */
export class LeaseNotFoundError extends AspenError {
  /** The error's name. */
  override name = "LeaseNotFoundError";
}

/** The token does not hold the lock or election (any more): nothing changed. */
export class NotHolderError extends AspenError {
  /** The error's name. */
  override name = "NotHolderError";
}

/** A semaphore was acquired with another number of permits than it has: nothing changed. */
export class PermitsMismatchError extends AspenError {
  /** The error's name. */
  override name = "PermitsMismatchError";
}

/** A hook with this name exists already (issue 17): nothing changed. */
export class HookExistsError extends AspenError {
  /** The error's name. */
  override name = "HookExistsError";
}

/** No hook has this id or name (issue 17): nothing changed. */
export class HookNotFoundError extends AspenError {
  /** The error's name. */
  override name = "HookNotFoundError";
}

/**
 * A webhook worker's claim on a hook moved to another worker, or its lease
 * ended (issue 17): the `begin` or `finish` was refused, nothing changed.
 * The worker must stop delivering that hook.
 */
export class ClaimLostError extends AspenError {
  /** The error's name. */
  override name = "ClaimLostError";
}

/**
 * A lease this client kept alive ended, or may have ended: the cluster
 * answered `leaseNotFound` to a keep-alive, or no keep-alive was
 * acknowledged before the holder's deadline (the send time of the last
 * acknowledged keep-alive + TTL − 10%). Whatever it guarded (a lock, an
 * election) may be held by someone else now. The reason of an open lease's
 * aborted `signal`.
 */
export class LeaseLostError extends AspenError {
  /** The error's name. */
  override name = "LeaseLostError";
  /** The lease id. */
  readonly leaseId: string;

  /** Creates the error for lease `leaseId`. */
  constructor(
    leaseId: string,
    message: string,
    options: AspenErrorOptions = {},
  ) {
    super("leaseNotFound", message, options);
    this.leaseId = leaseId;
  }
}

/**
 * A lock, semaphore or election was not granted within `timeoutMs`: the
 * waiter left the queue (any grant won meanwhile was released), nothing is
 * held. Its code is `unavailable` (the lock was not available), but it is
 * not an {@linkcode UnavailableError}: the cluster answered.
 */
export class AcquireTimeoutError extends AspenError {
  /** The error's name. */
  override name = "AcquireTimeoutError";
  /** The lock or election name. */
  readonly lockName: string;
  /** The time waited, ms. */
  readonly timeoutMs: number;

  /** Creates the error for `lockName` after `timeoutMs`. */
  constructor(
    lockName: string,
    timeoutMs: number,
    options: AspenErrorOptions = {},
  ) {
    super(
      "unavailable",
      `lock ${lockName} not acquired within ${timeoutMs} ms`,
      options,
    );
    this.lockName = lockName;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * The events asked for are below the history window (issue 17): a watch or
 * list starting, or resuming, at a revision the cluster compacted away. An
 * events watch ends with it (from a 410 or a `compacted` frame); nothing is
 * skipped silently. Start again from `compactRevision` (accepting the gap)
 * or from a snapshot of the keys.
 */
export class CompactedError extends AspenError {
  /** The error's name. */
  override name = "CompactedError";
  /** The revision the reader asked for or resumed at; null when the reply did not say. */
  readonly fromRevision: number | null;
  /** The oldest revision still held (the window's start). */
  readonly compactRevision: number;

  /** Creates the error for a start at `fromRevision` below `compactRevision`. */
  constructor(
    fromRevision: number | null,
    compactRevision: number,
    options: AspenErrorOptions = {},
  ) {
    super(
      "compacted",
      fromRevision === null
        ? `Events compacted at ${compactRevision}: the history starts there`
        : `Events compacted at ${compactRevision}: revision ${fromRevision} is no longer held`,
      { status: 410, ...options },
    );
    this.fromRevision = fromRevision;
    this.compactRevision = compactRevision;
  }
}

/** A topic of this name exists with other settings (issue 18): nothing changed. */
export class TopicExistsError extends AspenError {
  /** The error's name. */
  override name = "TopicExistsError";
}

/** No topic has this name (issue 18): nothing changed. */
export class TopicNotFoundError extends AspenError {
  /** The error's name. */
  override name = "TopicNotFoundError";
}

/** The topic has consumer groups: delete it with `force` (issue 18). Nothing changed. */
export class TopicInUseError extends AspenError {
  /** The error's name. */
  override name = "TopicInUseError";
}

/** No consumer group of this name on the topic (issue 18): nothing changed. */
export class GroupNotFoundError extends AspenError {
  /** The error's name. */
  override name = "GroupNotFoundError";
}

/** A join's options differ from the group's, fixed by its first join (issue 18): nothing changed. */
export class GroupConfigMismatchError extends AspenError {
  /** The error's name. */
  override name = "GroupConfigMismatchError";
}

/** A reset of a group that has members, without `force` (issue 18): nothing changed. */
export class GroupNotEmptyError extends AspenError {
  /** The error's name. */
  override name = "GroupNotEmptyError";
}

/**
 * A fetch or ack from a member that does not own the partition in this
 * generation (issue 18): the whole call was refused, nothing changed. The
 * cluster's current generation and assignment ride along. A consumer
 * rejoins on it by itself; what reaches the caller is an ack of a message
 * whose partition moved to another member.
 */
export class StaleGenerationError extends AspenError {
  /** The error's name. */
  override name = "StaleGenerationError";
  /** The group's current generation (-1 when the reply did not say). */
  get generation(): number {
    const generation = this.details.generation;
    return typeof generation === "number" ? generation : -1;
  }
  /** Partition → owning member id, as the cluster sees it now. */
  get assignment(): Readonly<Record<string, string>> {
    const assignment = this.details.assignment;
    if (!isObject(assignment)) return {};
    const owners: Record<string, string> = {};
    for (const [partition, member] of Object.entries(assignment)) {
      if (typeof member === "string") owners[partition] = member;
    }
    return owners;
  }
}

/** A producer's sequence at or below its highest that left the dedup window (issue 18): nothing published. */
export class SequenceTooOldError extends AspenError {
  /** The error's name. */
  override name = "SequenceTooOldError";
}

/** An atomic step acked a message already finished or not delivered to it (issue 18): nothing changed. */
export class MessageFinishedError extends AspenError {
  /** The error's name. */
  override name = "MessageFinishedError";
}

function revisionOf(value: unknown): number | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0
    ? value
    : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Rebuilds the typed error of an error reply.
 *
 * @param status The HTTP status.
 * @param body The decoded body (`{ error: { code, message, details } }`, or anything else).
 * @param url The node the request went to.
 * @returns The matching {@linkcode AspenError} subclass.
 */
export function errorFromWire(
  status: number,
  body: unknown,
  url: string | null,
): AspenError {
  const error = isObject(body) && isObject(body.error) ? body.error : {};
  const code = typeof error.code === "string"
    ? error.code as ErrorCode
    : "internal";
  const message = typeof error.message === "string"
    ? error.message
    : `Request failed with HTTP status ${status}`;
  const details = isObject(error.details) ? error.details as ErrorDetails : {};
  const options = { status, details, url };
  switch (code) {
    case "notLeader":
      return new NotLeaderError(code, message, options);
    case "checkFailed":
      return new CheckFailedError(code, message, options);
    case "limitExceeded":
    case "bodyTooLarge":
      return new LimitExceededError(code, message, options);
    case "outcomeUnknown":
      return new TimeoutError(message, true, options);
    case "unavailable":
    case "tooManyStreams":
      return new UnavailableError(code, message, options);
    case "unauthorized":
    case "forbidden":
      return new AuthError(code, message, options);
    case "wrongCluster":
      return new WrongClusterError(code, message, options);
    case "typeMismatch":
      return new TypeMismatchError(code, message, options);
    case "leaseNotFound":
      return new LeaseNotFoundError(code, message, options);
    case "compacted":
      return new CompactedError(
        revisionOf(details.fromRevision),
        revisionOf(details.compactRevision) ?? 0,
        options,
      );
    case "notHolder":
      return new NotHolderError(code, message, options);
    case "permitsMismatch":
      return new PermitsMismatchError(code, message, options);
    case "hookExists":
      return new HookExistsError(code, message, options);
    case "hookNotFound":
      return new HookNotFoundError(code, message, options);
    case "claimLost":
      return new ClaimLostError(code, message, options);
    case "topicExists":
      return new TopicExistsError(code, message, options);
    case "topicNotFound":
      return new TopicNotFoundError(code, message, options);
    case "topicInUse":
      return new TopicInUseError(code, message, options);
    case "groupNotFound":
      return new GroupNotFoundError(code, message, options);
    case "groupConfigMismatch":
      return new GroupConfigMismatchError(code, message, options);
    case "groupNotEmpty":
      return new GroupNotEmptyError(code, message, options);
    case "staleGeneration":
      return new StaleGenerationError(code, message, options);
    case "sequenceTooOld":
      return new SequenceTooOldError(code, message, options);
    case "messageFinished":
      return new MessageFinishedError(code, message, options);
    case "changePending":
    case "notCaughtUp":
    case "unknownNode":
      return new MembershipError(code, message, options);
    case "badRequest":
    case "invalidKey":
    case "invalid":
    case "unsupported":
    case "notFound":
    case "unsupportedMediaType":
    case "invalidHost":
      return new InvalidRequestError(code, message, options);
    default:
      return new AspenError(code, message, options);
  }
}
