/**
 * Types of Aspen's replicated KV state machine. Keys and values are bytes
 * exactly as Deno KV (and KV Connect) carries them; the server never
 * re-encodes them.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";

/** How a value's bytes are to be read, as KV Connect's `ValueEncoding`. */
export type ValueEncoding = "v8" | "bytes" | "le64";

/** A value: opaque bytes plus their encoding, stored and returned as received. */
export interface KvValue {
  readonly encoding: ValueEncoding;
  /** V8-serialized bytes, raw bytes, or exactly 8 little-endian bytes for `le64`. */
  readonly data: Uint8Array;
}

/**
 * A versionstamp: 10 bytes, the commit's log index (8 bytes big-endian)
 * followed by a 2-byte big-endian counter. All zero means "absent".
 */
export type Versionstamp = Uint8Array;

/** One stored key with its value, versionstamp and expiry deadline. */
export interface KvRow {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly encoding: ValueEncoding;
  readonly versionstamp: Versionstamp;
  /** Unix time in ms at or after which an expiry command deletes the key; null for never. */
  readonly expireAtMs: number | null;
}

/** A read result, shaped as KV Connect's `KvEntry`. */
export interface KvEntry {
  readonly key: Uint8Array;
  readonly value: KvValue;
  readonly versionstamp: Versionstamp;
}

/** Passes when the key's versionstamp equals `versionstamp`; null (or all zero) means the key must be absent. */
export interface KvCheck {
  readonly key: Uint8Array;
  readonly versionstamp: Versionstamp | null;
}

/** Sets `key` (or `key` + versionstamp suffix) to `value`, with an optional absolute deadline. */
export interface KvSetMutation {
  readonly type: "set" | "setSuffixVersionstampedKey";
  readonly key: Uint8Array;
  readonly value: KvValue;
  /** Absolute expiry deadline in Unix ms, computed by the proposer; absent for never. */
  readonly expireAtMs?: number | null;
  /**
   * Attach the key to this lease (16 hex digits, `set` only): deleted when
   * the lease ends. A set without it detaches the key from any lease.
   */
  readonly lease?: string;
}

/**
 * A check of an atomic operation beyond the versionstamp check: a lease
 * that must exist, or a fence token that must hold its lock or election.
 * `position` is its place in the request's list of checks (what
 * `failedChecks` reports).
 */
export type KvCoordinationCheck =
  | {
    readonly kind: "lease";
    readonly lease: string;
    readonly position: number;
  }
  | {
    readonly kind: "fence";
    readonly name: string;
    readonly token: string;
    readonly position: number;
  };

/** Deletes `key`; deleting an absent key succeeds. */
export interface KvDeleteMutation {
  readonly type: "delete";
  readonly key: Uint8Array;
}

/**
 * `sum` (wrapping), `min` or `max` of u64 values (`le64`). `sumMin`,
 * `sumMax` and `sumClamp` belong to the V8-number sum KV Connect can carry,
 * which Aspen refuses as unsupported.
 */
export interface KvArithmeticMutation {
  readonly type: "sum" | "min" | "max";
  readonly key: Uint8Array;
  readonly value: KvValue;
  readonly sumMin?: Uint8Array | null;
  readonly sumMax?: Uint8Array | null;
  readonly sumClamp?: boolean;
}

/** A mutation of an atomic operation. */
export type KvMutation =
  | KvSetMutation
  | KvDeleteMutation
  | KvArithmeticMutation;

/** A message to enqueue as part of an atomic operation. */
export interface KvEnqueue {
  /** The V8-serialized value handed to the listener (and written to `keysIfUndelivered`). */
  readonly payload: Uint8Array;
  /** Absolute delivery time in Unix ms. */
  readonly deadlineMs: number;
  /** Keys that receive the payload (as a V8 value) when every delivery failed. */
  readonly keysIfUndelivered: readonly Uint8Array[];
  /** Retry delays in ms; null for Deno's default schedule. */
  readonly backoffSchedule: readonly number[] | null;
  /** The queue's name (an Aspen extension); absent or "" for the default queue. */
  readonly queue?: string;
}

/** A queue message leased to a consumer, as a lease command returns it. */
export interface KvQueueDelivery {
  /** The message id: 10 bytes, the versionstamp of its enqueue with the enqueue's position as counter. */
  readonly id: Uint8Array;
  /** The queue's name ("" for the default queue). */
  readonly queue: string;
  /** The V8-serialized payload. */
  readonly payload: Uint8Array;
  /** Deliveries so far, this one included (1 for the first); nack quotes it. */
  readonly delivery: number;
  /** Unix ms at which the lease ends and the delivery counts as failed. */
  readonly leaseDeadlineMs: number;
}

/**
 * Commands of the queue, proposed by the leader's dispatcher (lease,
 * expireLeases) or by consumers (ack, nack) and operators (configure).
 * Every timestamp is the proposer's clock, carried in the command.
 */
export type KvQueueCommand =
  | {
    /** Leases up to `countMax` messages of `queue` ready at `timestampMs`, oldest ready first. */
    readonly type: "queueLease";
    readonly queue: string;
    readonly timestampMs: number;
    readonly leaseDeadlineMs: number;
    readonly countMax: number;
  }
  | {
    /** Deletes the messages (delivered successfully); unknown ids are ignored. */
    readonly type: "queueAck";
    readonly ids: readonly Uint8Array[];
  }
  | {
    /** Fails deliveries still leased under `delivery`: retry after the next backoff step, or dead-letter. */
    readonly type: "queueNack";
    readonly timestampMs: number;
    readonly messages: readonly {
      readonly id: Uint8Array;
      readonly delivery: number;
    }[];
  }
  | {
    /** Fails up to `countMax` deliveries whose lease ended at or before `timestampMs`. */
    readonly type: "queueExpireLeases";
    readonly timestampMs: number;
    readonly countMax: number;
  }
  | {
    /** Sets how many messages of `queue` may be leased at once; null for no limit. */
    readonly type: "queueConfigure";
    readonly queue: string;
    readonly concurrencyMax: number | null;
  };

/** One atomic operation: all checks pass and every mutation applies, or nothing does. */
export interface KvAtomicOperation {
  readonly checks: readonly KvCheck[];
  /** Lease and fence checks (an Aspen extension; absent: none). */
  readonly coordinationChecks?: readonly KvCoordinationCheck[];
  /**
   * The request positions of `checks` when coordination checks are mixed
   * in (absent: check `i` is at position `i`).
   */
  readonly checkPositions?: readonly number[];
  readonly mutations: readonly KvMutation[];
  readonly enqueues: readonly KvEnqueue[];
  /**
   * Who sent it and its sequence number, so a retry applies once and gets
   * the first result (Raft thesis §6.3). Absent: no deduplication.
   */
  readonly session?: KvSession;
  /**
   * A stock client's write (no session of its own): who sent it (the client
   * id of its KV Connect data-path token) and a digest of its request bytes,
   * so a resend of an applied write is answered with the first result (see
   * `_resends.ts`). Absent: no resend matching.
   */
  readonly resend?: KvResend;
  /**
   * Publishes and acks committed with the rest (pub/sub, issue 18; an
   * Aspen extension; absent: none): all of it or none of it applies.
   */
  readonly pubsub?: KvPubsubStep;
}

/** One message an atomic operation publishes. */
export interface KvPubsubPublish {
  readonly topic: string;
  /** Idempotent publish: with `sequence`. */
  readonly producerId: string | null;
  readonly value: Uint8Array;
  readonly encoding: "v8" | "bytes";
  readonly key: string | null;
  readonly headers: readonly (readonly [string, string])[];
  readonly partition: number | null;
  readonly sequence: number | null;
  /** Absolute, from the proposer's clock; null: now. */
  readonly deliverAtMs: number | null;
}

/** One delivered message an atomic operation acks (generation-checked). */
export interface KvPubsubAck {
  readonly topic: string;
  readonly group: string;
  readonly memberId: string;
  readonly generation: number;
  readonly partition: number;
  readonly offset: number;
}

/** The pub/sub part of an atomic operation. */
export interface KvPubsubStep {
  /** The proposer's clock, Unix ms (publish times, ack bookkeeping). */
  readonly nowMs: number;
  readonly publishes: readonly KvPubsubPublish[];
  readonly acks: readonly KvPubsubAck[];
}

/** A client session's identity for exactly-once writes. */
export interface KvSession {
  /** At most 64 characters, unique per client instance (e.g. a UUID). */
  readonly clientId: string;
  /** The write's number within the session; a retry sends the same. */
  readonly seq: number;
}

/** Identity of a stock client's write, for matching a resend of it. */
export interface KvResend {
  /** The data-path token's client id, at most 64 characters. */
  readonly clientId: string;
  /** SHA-256 of the request body (32 bytes). */
  readonly digest: Uint8Array;
  /**
   * True when the entry node cannot tell this from a resend of an earlier
   * identical write whose answer was lost (it holds no answer it delivered
   * for it, and none is in flight): then an applied record of the same
   * client and digest answers it. False: it applies as a new write.
   */
  readonly mergeable: boolean;
  /** The entry node's clock when it proposed, Unix ms (ages the record). */
  readonly atMs: number;
}

/**
 * The answer of a stock write was delivered: its resend record (client id,
 * digest) written at `index` no longer answers a mergeable write, since a
 * later identical write is then a new write, not a resend.
 */
export interface KvResendMark {
  readonly clientId: string;
  readonly digest: Uint8Array;
  /** Log index of the write whose record is marked (its versionstamp's). */
  readonly index: number;
}

/** A state-machine command, as carried (MessagePack-encoded) in a log entry. */
export type KvCommand =
  | { readonly type: "atomic"; readonly operation: KvAtomicOperation }
  | {
    /** Stock writes whose answers were delivered (see `KvResendMark`). */
    readonly type: "resendDelivered";
    readonly marks: readonly KvResendMark[];
  }
  | {
    readonly type: "expire";
    /** The proposer's clock reading in Unix ms: keys with a deadline at or before it go. */
    readonly timestampMs: number;
    /** At most this many keys are deleted (earliest deadline first, then key order). */
    readonly keyCountMax: number;
  }
  | KvQueueCommand;

/** Why a command did not apply. Decided at apply time, identically on every replica. */
export type KvFailureReason =
  /** A check's versionstamp did not match. */
  | "checkFailed"
  /** A set named a lease that does not exist: nothing applied. */
  | "leaseNotFound"
  /** A sum/min/max met a value or operand that is not a u64. */
  | "typeMismatch"
  /** The command bytes do not decode to a valid command. */
  | "invalidCommand"
  /** The command exceeds one of the limits. */
  | "limitExceeded"
  /** A publish named a topic that does not exist: nothing applied. */
  | "topicNotFound"
  /** An ack named a group that does not exist: nothing applied. */
  | "groupNotFound"
  /** An ack's member does not own the partition in its generation: nothing applied. */
  | "staleGeneration"
  /** An ack's message is already finished or not delivered to the member: nothing applied. */
  | "messageFinished"
  /** A publish's sequence left its producer's dedup window: nothing applied. */
  | "sequenceTooOld"
  /** Valid in Deno KV but not (yet) in Aspen: V8-number sums. */
  | "unsupported"
  /** A session (client id, seq) already carried another write: nothing changed. */
  | "sessionReused"
  /**
   * A retry at or below its client's eviction horizon whose first result is
   * no longer kept: it may have applied; it is not applied again.
   */
  | "sessionExpired";

/** The result of applying one log entry to the state machine. */
export type KvApplyResult =
  | {
    readonly ok: true;
    readonly index: LogIndex;
    readonly versionstamp: Versionstamp;
    /** Keys an expiry command deleted (0 for atomic operations). */
    readonly expiredKeyCount: number;
    /** queueLease: the messages leased (absent for other commands). */
    readonly queueDeliveries?: readonly KvQueueDelivery[];
    /** queueAck, queueNack, queueExpireLeases: messages acted on (absent for other commands). */
    readonly queueMessageCount?: number;
  }
  | {
    readonly ok: false;
    readonly index: LogIndex;
    readonly reason: KvFailureReason;
    /** Deno-style detail, e.g. `Failed to perform 'sum' mutation on a non-U64 value in the database`. */
    readonly message: string;
    /** For `checkFailed`: indexes of the failing checks, as KV Connect's `failed_checks`. */
    readonly failedChecks: readonly number[];
    /** Machine-readable facts of a pub/sub refusal (`staleGeneration`: generation, assignment). */
    readonly details?: Readonly<Record<string, unknown>>;
  };
