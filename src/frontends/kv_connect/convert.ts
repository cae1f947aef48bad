/**
 * Conversions between KV Connect's protobuf messages and Aspen's KV types,
 * with the protocol-level checks denokv makes (versionstamp length, mutation
 * kind, value encoding, expiry, read limits) and then Aspen's own
 * `validateAtomic` / `validateReadRanges` with Deno's limit messages.
 *
 * @module
 */
import type { KvReadRange } from "../../services/kv/api.ts";
import {
  KvInvalidError,
  KvLimitError,
  KvUnsupportedError,
} from "../../model/errors.ts";
import {
  validateAtomic,
  validateReadKey,
  validateReadRanges,
  validateWatchKeys,
} from "../../model/limits.ts";
import type {
  KvAtomicOperation,
  KvCheck,
  KvEnqueue,
  KvEntry,
  KvMutation,
  KvValue,
  ValueEncoding,
} from "../../model/types.ts";
import { VERSIONSTAMP_BYTES } from "../../model/versionstamp.ts";
import {
  KV_CONNECT_MESSAGES as M,
  KvConnectError,
  unknownValueEncoding,
} from "./errors.ts";
import {
  MutationType,
  type PbAtomicWrite,
  type PbCheck,
  type PbEnqueue,
  type PbKvEntry,
  type PbKvValue,
  type PbMutation,
  type PbSnapshotRead,
  type PbWatch,
  ValueEncodingNumber,
} from "./proto.ts";

/** Aspen's validation errors as 400 answers with their message; other errors unchanged. */
export function badRequestOf(error: unknown): unknown {
  if (
    error instanceof KvLimitError || error instanceof KvInvalidError ||
    error instanceof KvUnsupportedError
  ) {
    return new KvConnectError(400, error.message, { cause: error });
  }
  return error;
}

/** Runs `validate`, turning Aspen's validation errors into 400 answers. */
export function asBadRequest<T>(validate: () => T): T {
  try {
    return validate();
  } catch (error) {
    throw badRequestOf(error);
  }
}

const ENCODING_TO_NUMBER: Record<ValueEncoding, number> = {
  v8: ValueEncodingNumber.VE_V8,
  le64: ValueEncodingNumber.VE_LE64,
  bytes: ValueEncodingNumber.VE_BYTES,
};

function encodingOf(encoding: number): ValueEncoding {
  switch (encoding) {
    case ValueEncodingNumber.VE_V8:
      return "v8";
    case ValueEncodingNumber.VE_LE64:
      return "le64";
    case ValueEncodingNumber.VE_BYTES:
      return "bytes";
    default:
      throw unknownValueEncoding(encoding);
  }
}

/**
 * The ranges of a `SnapshotRead`.
 *
 * @throws {KvConnectError} 400 for a limit ≤ 0, more than 10 ranges, 1000 entries, or a key over 2049 bytes.
 */
export function toReadRanges(message: PbSnapshotRead): KvReadRange[] {
  for (const range of message.ranges) {
    if (range.limit <= 0) {
      throw new KvConnectError(400, M.invalidReadRangeLimit);
    }
  }
  return asBadRequest(() => {
    validateReadRanges(message.ranges.map((range) => range.limit));
    return message.ranges.map((range) => {
      validateReadKey(range.start);
      validateReadKey(range.end);
      return {
        start: range.start,
        end: range.end,
        limit: range.limit,
        reverse: range.reverse,
      };
    });
  });
}

/**
 * The keys of a `Watch`.
 *
 * @throws {KvConnectError} 400 for more than 10 keys, or an empty key or one over 2048 bytes.
 */
export function toWatchKeys(message: PbWatch): Uint8Array[] {
  return asBadRequest(() => {
    validateWatchKeys(message.keys.length);
    for (const key of message.keys) {
      if (key.length === 0) throw new KvInvalidError("Key cannot be empty");
      validateReadKey(key);
    }
    return message.keys;
  });
}

function toCheck(check: PbCheck): KvCheck {
  const { versionstamp } = check;
  if (versionstamp.length === 0) return { key: check.key, versionstamp: null };
  if (versionstamp.length !== VERSIONSTAMP_BYTES) {
    throw new KvConnectError(400, M.invalidVersionstamp);
  }
  return { key: check.key, versionstamp };
}

function toValue(value: PbKvValue | null): KvValue {
  if (value === null) throw new KvConnectError(400, M.invalidMutationKind);
  return { encoding: encodingOf(value.encoding), data: value.data };
}

/** `expire_at_ms`: 0 or -1 mean never (denokv), ≥ 1 is a Unix-ms deadline. */
function toExpireAtMs(expireAtMs: bigint): number | null {
  if (expireAtMs === 0n || expireAtMs === -1n) return null;
  if (expireAtMs < 0n || expireAtMs > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KvConnectError(400, M.invalidMutationExpireAt);
  }
  return Number(expireAtMs);
}

function toMutation(mutation: PbMutation): KvMutation {
  const { key } = mutation;
  const expireAtMs = toExpireAtMs(mutation.expireAtMs);
  switch (mutation.mutationType) {
    case MutationType.M_SET:
      return { type: "set", key, value: toValue(mutation.value), expireAtMs };
    case MutationType.M_SET_SUFFIX_VERSIONSTAMPED_KEY:
      return {
        type: "setSuffixVersionstampedKey",
        key,
        value: toValue(mutation.value),
        expireAtMs,
      };
    case MutationType.M_DELETE:
      return { type: "delete", key };
    case MutationType.M_SUM:
      return {
        type: "sum",
        key,
        value: toValue(mutation.value),
        sumMin: mutation.sumMin.length > 0 ? mutation.sumMin : null,
        sumMax: mutation.sumMax.length > 0 ? mutation.sumMax : null,
        sumClamp: mutation.sumClamp,
      };
    case MutationType.M_MIN:
      return { type: "min", key, value: toValue(mutation.value) };
    case MutationType.M_MAX:
      return { type: "max", key, value: toValue(mutation.value) };
    default:
      throw new KvConnectError(400, M.invalidMutationKind);
  }
}

function toEnqueue(enqueue: PbEnqueue): KvEnqueue {
  const { deadlineMs } = enqueue;
  if (deadlineMs < 0n || deadlineMs > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new KvConnectError(400, M.invalidMutationEnqueueDeadline);
  }
  return {
    payload: enqueue.payload,
    deadlineMs: Number(deadlineMs),
    keysIfUndelivered: enqueue.keysIfUndelivered,
    backoffSchedule: enqueue.backoffSchedule.length === 0
      ? null
      : enqueue.backoffSchedule,
  };
}

/**
 * The validated atomic operation of an `AtomicWrite`.
 *
 * @param message The decoded request.
 * @param nowMs The server's clock, to bound enqueue delays.
 * @throws {KvConnectError} 400 for a bad versionstamp, mutation kind, encoding, expiry, a limit, or an unsupported feature.
 */
export function toAtomicOperation(
  message: PbAtomicWrite,
  nowMs: number,
): KvAtomicOperation {
  const operation: KvAtomicOperation = {
    checks: message.checks.map(toCheck),
    mutations: message.mutations.map(toMutation),
    enqueues: message.enqueues.map(toEnqueue),
  };
  asBadRequest(() => validateAtomic(operation, nowMs));
  return operation;
}

/** The protobuf form of an entry. */
export function toPbEntry(entry: KvEntry): PbKvEntry {
  return {
    key: entry.key,
    value: entry.value.data,
    encoding: ENCODING_TO_NUMBER[entry.value.encoding],
    versionstamp: entry.versionstamp,
  };
}
