/**
 * The locks service's commands, their validation (before proposing and again
 * at apply), their results, and their envelope payloads: MessagePack arrays.
 * No command carries a time: nothing here depends on a clock.
 *
 * | command  | layout                           |
 * | -------- | -------------------------------- |
 * | acquire  | `[1, name, lease, permits]`      |
 * | cancel   | `[2, name, lease]`               |
 * | release  | `[3, name, token]`               |
 * | campaign | `[4, name, lease, value]`        |
 * | proclaim | `[5, name, token, value]`        |
 * | resign   | `[6, name, token]`               |
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";

/**
 * The locks service's limits: the protocol's `COORDINATION_LIMITS` (a
 * service may not import protocol values; a test checks they agree), plus
 * the names one lease may hold or wait on.
 */
export const LOCK_LIMITS = {
  /** Names (locks, semaphores, elections) with a holder or a waiter, cluster-wide. */
  namesMax: 100_000,
  /** Bytes of a name (UTF-8), at least 1. */
  nameBytesMax: 256,
  /** Waiters queued per name. */
  waitersMax: 10_000,
  /** Permits of one semaphore. */
  permitsMax: 10_000,
  /** Bytes of an election value (UTF-8). */
  valueBytesMax: 64 * 1024,
  /**
   * Names one lease holds or waits on at once: bounds the work of the entry
   * that ends a lease (1,000 leases × 64 names).
   */
  namesPerLeaseMax: 64,
} as const;

/** A locks command. */
export type LockCommand =
  | {
    readonly type: "acquire";
    readonly name: string;
    readonly lease: string;
    readonly permits: number;
  }
  | { readonly type: "cancel"; readonly name: string; readonly lease: string }
  | { readonly type: "release"; readonly name: string; readonly token: string }
  | {
    readonly type: "campaign";
    readonly name: string;
    readonly lease: string;
    readonly value: string;
  }
  | {
    readonly type: "proclaim";
    readonly name: string;
    readonly token: string;
    readonly value: string;
  }
  | { readonly type: "resign"; readonly name: string; readonly token: string };

/** Why the locks service refuses a command (protocol error codes); nothing changed. */
export type LockErrorCode =
  | "invalid"
  | "limitExceeded"
  | "leaseNotFound"
  | "notHolder"
  | "permitsMismatch";

/** A refused locks command: its protocol error code and why. */
export class LockError extends Error {
  /** Always `LockError`. */
  override name = "LockError";
  /** The protocol error code. */
  readonly code: LockErrorCode;

  /** A refusal with protocol error `code`. */
  constructor(code: LockErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** A grant: the token holding `name` for `lease` since `revision`. */
export interface LockGrant {
  /** The grant's versionstamp, 20 hex digits. */
  readonly token: string;
  /** The lease it lives on. */
  readonly lease: string;
  /** Revision (log index) of the grant. */
  readonly revision: number;
}

/** The result of a locks command, identical on every replica. */
export type LockResult =
  | {
    readonly ok: true;
    readonly index: number;
    readonly granted: true;
    readonly grant: LockGrant;
    /** An election's value (its leader's, when already elected). */
    readonly value?: string;
  }
  | {
    readonly ok: true;
    readonly index: number;
    readonly granted: false;
    /** Waiters ahead of this one (0: next in line). */
    readonly position: number;
  }
  | {
    readonly ok: true;
    readonly index: number;
    readonly removed: "waiter" | "grant" | null;
  }
  | { readonly ok: true; readonly index: number; readonly released: true }
  | {
    readonly ok: true;
    readonly index: number;
    readonly leader: {
      readonly token: string;
      readonly lease: string;
      readonly value: string;
      readonly revision: number;
    };
  }
  | {
    readonly ok: false;
    readonly index: number;
    readonly reason: LockErrorCode | "sessionReused" | "sessionExpired";
    readonly message: string;
  };

const COMMAND_CODES = {
  acquire: 1,
  cancel: 2,
  release: 3,
  campaign: 4,
  proclaim: 5,
  resign: 6,
} as const;

const encoder = new Encoder();
const decoder = new Decoder({
  maxArrayLength: 8,
  maxMapLength: 0,
  maxExtLength: 0,
  maxStrLength: LOCK_LIMITS.valueBytesMax * 4,
  maxBinLength: 0,
});
const textEncoder = new TextEncoder();
const LEASE_ID_PATTERN = /^[0-9a-f]{16}$/;
const TOKEN_PATTERN = /^[0-9a-f]{20}$/;

/** Encodes a locks command into an envelope payload. */
export function encodeLockCommand(command: LockCommand): Uint8Array {
  const code = COMMAND_CODES[command.type];
  switch (command.type) {
    case "acquire":
      return encoder.encode([
        code,
        command.name,
        command.lease,
        command.permits,
      ]);
    case "cancel":
      return encoder.encode([code, command.name, command.lease]);
    case "release":
    case "resign":
      return encoder.encode([code, command.name, command.token]);
    case "campaign":
      return encoder.encode([code, command.name, command.lease, command.value]);
    case "proclaim":
      return encoder.encode([code, command.name, command.token, command.value]);
  }
}

function invalid(message: string): never {
  throw new LockError("invalid", message);
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string") {
    invalid(`Cannot decode command: ${what} must be a string`);
  }
  return value;
}

/**
 * Checks a lock or election name: 1–256 UTF-8 bytes, no control characters.
 *
 * @throws {LockError} `invalid` otherwise.
 */
export function validateLockName(name: unknown): string {
  if (typeof name !== "string") invalid("Invalid name: expected a string");
  const bytes = textEncoder.encode(name).length;
  if (bytes < 1 || bytes > LOCK_LIMITS.nameBytesMax) {
    invalid(
      `Invalid name: expected 1 to ${LOCK_LIMITS.nameBytesMax} UTF-8 bytes: received ${bytes}`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    invalid("Invalid name: control characters are not allowed");
  }
  return name;
}

/** Checks a lease id (16 lowercase hex digits). @throws {LockError} `invalid` otherwise. */
export function validateLeaseId(lease: unknown): string {
  if (typeof lease !== "string" || !LEASE_ID_PATTERN.test(lease)) {
    invalid("Invalid lease: expected 16 lowercase hex digits");
  }
  return lease;
}

/** Checks a token (20 lowercase hex digits). @throws {LockError} `invalid` otherwise. */
export function validateToken(token: unknown): string {
  if (typeof token !== "string" || !TOKEN_PATTERN.test(token)) {
    invalid("Invalid token: expected 20 lowercase hex digits");
  }
  return token;
}

/** Checks a permit count (1–10,000). @throws {LockError} `invalid` otherwise. */
export function validatePermits(permits: unknown): number {
  if (
    typeof permits !== "number" || !Number.isSafeInteger(permits) ||
    permits < 1 || permits > LOCK_LIMITS.permitsMax
  ) {
    invalid(
      `Invalid permits: expected an integer from 1 to ${LOCK_LIMITS.permitsMax}: received ${
        String(permits)
      }`,
    );
  }
  return permits;
}

/** Checks an election value (≤ 64 KiB of UTF-8). @throws {LockError} `invalid` or `limitExceeded`. */
export function validateValue(value: unknown): string {
  if (typeof value !== "string") invalid("Invalid value: expected a string");
  const bytes = textEncoder.encode(value).length;
  if (bytes > LOCK_LIMITS.valueBytesMax) {
    throw new LockError(
      "limitExceeded",
      `Value too large (max ${LOCK_LIMITS.valueBytesMax} bytes): received ${bytes}`,
    );
  }
  return value;
}

/**
 * Validates a command, before proposing and again at apply.
 *
 * @throws {LockError} `invalid` or `limitExceeded`.
 */
export function validateLockCommand(command: LockCommand): LockCommand {
  validateLockName(command.name);
  switch (command.type) {
    case "acquire":
      validateLeaseId(command.lease);
      validatePermits(command.permits);
      break;
    case "cancel":
      validateLeaseId(command.lease);
      break;
    case "campaign":
      validateLeaseId(command.lease);
      validateValue(command.value);
      break;
    case "proclaim":
      validateToken(command.token);
      validateValue(command.value);
      break;
    case "release":
    case "resign":
      validateToken(command.token);
      break;
  }
  return command;
}

/**
 * Decodes and validates a locks payload, refusing anything that is not
 * exactly a valid command (so every replica refuses the same bytes).
 *
 * @throws {LockError} When the bytes are not a valid command.
 */
export function decodeLockCommand(data: Uint8Array): LockCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(data);
  } catch (cause) {
    throw new LockError(
      "invalid",
      `Cannot decode command: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (!Array.isArray(raw)) invalid("Cannot decode command: expected an array");
  const [code, name, second, third] = raw;
  const arity = (n: number) => {
    if (raw.length !== n) {
      invalid(`Cannot decode command: command ${code} must have ${n} fields`);
    }
  };
  const nameText = text(name, "name");
  let command: LockCommand;
  switch (code) {
    case COMMAND_CODES.acquire:
      arity(4);
      command = {
        type: "acquire",
        name: nameText,
        lease: text(second, "lease"),
        permits: third as number,
      };
      break;
    case COMMAND_CODES.cancel:
      arity(3);
      command = {
        type: "cancel",
        name: nameText,
        lease: text(second, "lease"),
      };
      break;
    case COMMAND_CODES.release:
    case COMMAND_CODES.resign:
      arity(3);
      command = {
        type: code === COMMAND_CODES.release ? "release" : "resign",
        name: nameText,
        token: text(second, "token"),
      };
      break;
    case COMMAND_CODES.campaign:
      arity(4);
      command = {
        type: "campaign",
        name: nameText,
        lease: text(second, "lease"),
        value: text(third, "value"),
      };
      break;
    case COMMAND_CODES.proclaim:
      arity(4);
      command = {
        type: "proclaim",
        name: nameText,
        token: text(second, "token"),
        value: text(third, "value"),
      };
      break;
    default:
      return invalid(`Cannot decode command: unknown command ${String(code)}`);
  }
  return validateLockCommand(command);
}
