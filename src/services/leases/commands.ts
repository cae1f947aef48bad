/**
 * The leases service's commands, their validation (before proposing and
 * again at apply), their results, and their envelope payloads: MessagePack
 * arrays. Every id and TTL is decided at proposal and carried in the
 * command: apply reads no clock and draws no random number.
 *
 * | command | layout               |
 * | ------- | -------------------- |
 * | grant   | `[1, id, ttlMs]`     |
 * | revoke  | `[2, id]`            |
 * | expire  | `[3, [id, …]]`       |
 *
 * A grant of an id that exists with the same TTL is idempotent (answers the
 * lease as it is, so a retried grant succeeds); with another TTL it is
 * refused with `leaseExists` (409 class), nothing changed.
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";

/**
 * The leases service's limits: the protocol's `COORDINATION_LIMITS` (a
 * service may not import protocol values; a test checks they agree).
 */
export const LEASE_LIMITS = {
  /** Leases the cluster holds at most. */
  leasesMax: 100_000,
  /** Keys attached to one lease at most. */
  leaseKeysMax: 10_000,
  /** Shortest TTL, ms (raised to 3 election timeouts at proposal). */
  ttlMsMin: 1_000,
  /** Longest TTL, ms (7 days). */
  ttlMsMax: 604_800_000,
  /** Leases one expire command ends at most. */
  expireIdsMax: 1_000,
  /** Ids of one keep-alive call at most. */
  keepAliveIdsMax: 1_000,
} as const;

/** A leases command. */
export type LeaseCommand =
  | { readonly type: "grant"; readonly id: string; readonly ttlMs: number }
  | { readonly type: "revoke"; readonly id: string }
  | { readonly type: "expire"; readonly ids: readonly string[] };

/** Why the leases service refuses a command (protocol error codes); nothing changed. */
export type LeaseErrorCode =
  | "invalid"
  | "limitExceeded"
  | "leaseNotFound"
  | "leaseExists";

/** A refused leases command: its protocol error code and why. */
export class LeaseError extends Error {
  /** Always `LeaseError`. */
  override name = "LeaseError";
  /** The protocol error code. */
  readonly code: LeaseErrorCode;

  /** A refusal with error `code`. */
  constructor(code: LeaseErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** The result of a leases command, identical on every replica. */
export type LeaseResult =
  | {
    readonly ok: true;
    readonly index: number;
    /** The lease granted (or already there with this TTL). */
    readonly lease: { readonly id: string; readonly ttlMs: number };
  }
  | {
    readonly ok: true;
    readonly index: number;
    /** Leases this entry ended (revoked or expired), in command order. */
    readonly ended: readonly string[];
    /** Attached user keys deleted. */
    readonly keysDeleted: number;
  }
  | {
    readonly ok: false;
    readonly index: number;
    readonly reason: LeaseErrorCode | "sessionReused" | "sessionExpired";
    readonly message: string;
  };

const CODES = { grant: 1, revoke: 2, expire: 3 } as const;
const encoder = new Encoder();
const decoder = new Decoder({
  maxArrayLength: LEASE_LIMITS.expireIdsMax,
  maxMapLength: 0,
  maxExtLength: 0,
  maxStrLength: 64,
  maxBinLength: 0,
});
const LEASE_ID_PATTERN = /^[0-9a-f]{16}$/;

/** Encodes a leases command into an envelope payload. */
export function encodeLeaseCommand(command: LeaseCommand): Uint8Array {
  switch (command.type) {
    case "grant":
      return encoder.encode([CODES.grant, command.id, command.ttlMs]);
    case "revoke":
      return encoder.encode([CODES.revoke, command.id]);
    case "expire":
      return encoder.encode([CODES.expire, command.ids]);
  }
}

function invalid(message: string): never {
  throw new LeaseError("invalid", message);
}

/**
 * Checks a lease id: 16 lowercase hex digits.
 *
 * @throws {LeaseError} `invalid` otherwise.
 */
export function validateLeaseId(id: unknown): string {
  if (typeof id !== "string" || !LEASE_ID_PATTERN.test(id)) {
    invalid("Invalid lease id: expected 16 lowercase hex digits");
  }
  return id;
}

/**
 * Checks a granted TTL: an integer in [1,000, 604,800,000] ms.
 *
 * @throws {LeaseError} `invalid` otherwise.
 */
export function validateTtlMs(ttlMs: unknown): number {
  if (
    typeof ttlMs !== "number" || !Number.isInteger(ttlMs) ||
    ttlMs < LEASE_LIMITS.ttlMsMin || ttlMs > LEASE_LIMITS.ttlMsMax
  ) {
    invalid(
      `Invalid ttlMs: expected an integer from ${LEASE_LIMITS.ttlMsMin} to ${LEASE_LIMITS.ttlMsMax}`,
    );
  }
  return ttlMs;
}

/**
 * The TTL a grant proposes for a requested `ttlMs`: validated, then raised
 * to at least three election timeouts (and never above the maximum).
 *
 * @throws {LeaseError} `invalid` for a TTL outside the limits.
 */
export function grantedTtlMs(
  ttlMs: unknown,
  electionTimeoutMs: number,
): number {
  const asked = validateTtlMs(ttlMs);
  return Math.min(
    LEASE_LIMITS.ttlMsMax,
    Math.max(asked, 3 * electionTimeoutMs),
  );
}

/**
 * Checks a whole command (also done by `decodeLeaseCommand`).
 *
 * @throws {LeaseError} `invalid` for a malformed command.
 */
export function validateLeaseCommand(command: LeaseCommand): LeaseCommand {
  switch (command.type) {
    case "grant":
      validateLeaseId(command.id);
      validateTtlMs(command.ttlMs);
      return command;
    case "revoke":
      validateLeaseId(command.id);
      return command;
    case "expire":
      if (
        !Array.isArray(command.ids) ||
        command.ids.length > LEASE_LIMITS.expireIdsMax
      ) {
        invalid(
          `Invalid expire: expected at most ${LEASE_LIMITS.expireIdsMax} ids`,
        );
      }
      command.ids.forEach(validateLeaseId);
      return command;
  }
}

/**
 * Decodes and validates an envelope payload.
 *
 * @throws {LeaseError} `invalid` for a payload that is not a valid command.
 */
export function decodeLeaseCommand(payload: Uint8Array): LeaseCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(payload);
  } catch (error) {
    throw new LeaseError("invalid", "Cannot decode leases command", {
      cause: error,
    });
  }
  if (!Array.isArray(raw)) invalid("Cannot decode leases command: not a list");
  const [code, a, b] = raw;
  let command: LeaseCommand;
  if (code === CODES.grant && raw.length === 3) {
    command = { type: "grant", id: a, ttlMs: b };
  } else if (code === CODES.revoke && raw.length === 2) {
    command = { type: "revoke", id: a };
  } else if (code === CODES.expire && raw.length === 2 && Array.isArray(a)) {
    command = { type: "expire", ids: a };
  } else {
    invalid("Cannot decode leases command: unknown layout");
  }
  return validateLeaseCommand(command);
}
