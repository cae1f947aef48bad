/**
 * Deno KV's limits (those of the Deno 2.9.6 client, plus the KV Connect
 * server's queue limits) and the validation run before proposing.
 *
 * @module
 */
import type {
  KvAtomicOperation,
  KvEnqueue,
  KvMutation,
  KvPubsubStep,
} from "./types.ts";
import { KvInvalidError, KvLimitError, KvUnsupportedError } from "./errors.ts";
import { VERSIONSTAMP_BYTES } from "./versionstamp.ts";
import { INTERNAL_KEY_BYTE } from "./reserved.ts";
import { validateQueueName } from "./queue_name.ts";

/** Deno KV's limits. Sizes in bytes, durations in ms. */
export const KV_LIMITS = {
  writeKeyBytesMax: 2048,
  /** One more than a write key: range selectors append `00` or `ff`. */
  readKeyBytesMax: 2049,
  valueBytesMax: 65536,
  checksMax: 100,
  /** Mutations plus enqueues of one atomic operation. */
  mutationsMax: 1000,
  totalMutationBytesMax: 800 * 1024,
  totalKeyBytesMax: 80 * 1024,
  readRangesMax: 10,
  readEntriesMax: 1000,
  watchedKeysMax: 10,
  queueDelayMsMax: 30 * 24 * 60 * 60 * 1000,
  /**
   * The KV Connect server's limits (denokv); the Deno 2.9.6 client itself
   * already refuses more than 5 backoff intervals and does not bound
   * keysIfUndelivered.
   */
  keysIfUndeliveredMax: 10,
  backoffIntervalsMax: 10,
  backoffIntervalMsMax: 60 * 60 * 1000,
} as const;

/** Size Deno counts for a value: its bytes, or 8 for a u64. */
function valueSize(mutation: KvMutation): number {
  if (mutation.type === "delete") return 0;
  const { data } = mutation.value;
  if (data.length > KV_LIMITS.valueBytesMax) {
    throw new KvLimitError(
      "valueBytes",
      KV_LIMITS.valueBytesMax,
      `Value too large (max ${KV_LIMITS.valueBytesMax} bytes)`,
    );
  }
  return mutation.value.encoding === "le64" ? 8 : data.length;
}

function writeKeySize(key: Uint8Array): number {
  if (!(key instanceof Uint8Array)) {
    throw new KvInvalidError("Key must be a Uint8Array");
  }
  if (key.length === 0) throw new KvInvalidError("key cannot be empty");
  if (key[0] === INTERNAL_KEY_BYTE) {
    // No Deno KV key encoding starts with 0xff: Aspen keeps queue state there.
    throw new KvInvalidError(
      "Invalid key: keys starting with byte 0xff are reserved",
    );
  }
  if (key.length > KV_LIMITS.writeKeyBytesMax) {
    throw new KvLimitError(
      "writeKeyBytes",
      KV_LIMITS.writeKeyBytesMax,
      `Key too large for write (max ${KV_LIMITS.writeKeyBytesMax} bytes)`,
    );
  }
  return key.length;
}

function isDeadline(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

function validateMutationShape(mutation: KvMutation, index: number): void {
  if (mutation.type === "delete") return;
  const { value } = mutation;
  if (
    typeof value !== "object" || value === null ||
    !(value.data instanceof Uint8Array) ||
    !["v8", "bytes", "le64"].includes(value.encoding)
  ) {
    throw new KvInvalidError(
      `Invalid mutation '${mutation.type}' at index ${index}: value must be { encoding, data }`,
    );
  }
  if (value.encoding === "le64" && value.data.length !== 8) {
    throw new KvInvalidError(
      `Invalid mutation '${mutation.type}' at index ${index}: a le64 value must be 8 bytes, received ${value.data.length}`,
    );
  }
  if (
    mutation.type === "set" || mutation.type === "setSuffixVersionstampedKey"
  ) {
    const { expireAtMs } = mutation;
    if (
      expireAtMs !== undefined && expireAtMs !== null && !isDeadline(expireAtMs)
    ) {
      throw new KvInvalidError(
        `Invalid mutation '${mutation.type}' at index ${index}: 'expireAtMs' must be a non-negative integer: received ${expireAtMs}`,
      );
    }
    const { lease } = mutation;
    if (
      lease !== undefined &&
      (mutation.type !== "set" || typeof lease !== "string" ||
        !LEASE_ID.test(lease))
    ) {
      throw new KvInvalidError(
        `Invalid mutation '${mutation.type}' at index ${index}: 'lease' must be 16 lowercase hex digits on a set`,
      );
    }
  }
}

const LEASE_ID = /^[0-9a-f]{16}$/;
const FENCE_TOKEN = /^[0-9a-f]{20}$/;
const FENCE_NAME_BYTES_MAX = 256;
const nameEncoder = new TextEncoder();

/** Checks the lease and fence checks of an atomic operation and their positions. */
/**
 * The pub/sub step's shape (the pub/sub service checks names, headers and
 * limits at apply, and the front end before proposing).
 */
function pubsubShape(step: KvPubsubStep): KvPubsubStep {
  if (
    !Number.isSafeInteger(step.nowMs) || !Array.isArray(step.publishes) ||
    !Array.isArray(step.acks)
  ) {
    throw new KvInvalidError("Invalid pub/sub step");
  }
  for (const publish of step.publishes) {
    if (
      typeof publish.topic !== "string" ||
      !(publish.value instanceof Uint8Array) ||
      (publish.key !== null && typeof publish.key !== "string") ||
      !Array.isArray(publish.headers) ||
      (publish.headers as readonly unknown[]).some((h) =>
        !Array.isArray(h) || typeof h[0] !== "string" ||
        typeof h[1] !== "string"
      )
    ) {
      throw new KvInvalidError("Invalid publish");
    }
  }
  for (const ack of step.acks) {
    if (
      typeof ack.topic !== "string" || typeof ack.group !== "string" ||
      typeof ack.memberId !== "string" ||
      !Number.isSafeInteger(ack.generation) ||
      !Number.isSafeInteger(ack.partition) || !Number.isSafeInteger(ack.offset)
    ) {
      throw new KvInvalidError("Invalid ack");
    }
  }
  return step;
}

function validateCoordinationChecks(operation: KvAtomicOperation): void {
  const coordination = operation.coordinationChecks ?? [];
  const total = operation.checks.length + coordination.length;
  const positions = [
    ...(operation.checkPositions ?? operation.checks.map((_, i) => i)),
    ...coordination.map((c) => c.position),
  ];
  if (
    (operation.checkPositions !== undefined &&
      operation.checkPositions.length !== operation.checks.length) ||
    new Set(positions).size !== total ||
    positions.some((p) => !Number.isSafeInteger(p) || p < 0 || p >= total)
  ) {
    throw new KvInvalidError("Invalid check positions");
  }
  for (const check of coordination) {
    if (check.kind === "lease") {
      if (typeof check.lease !== "string" || !LEASE_ID.test(check.lease)) {
        throw new KvInvalidError(
          "Invalid lease check: expected 16 lowercase hex digits",
        );
      }
    } else if (check.kind === "fence") {
      const bytes = typeof check.name === "string"
        ? nameEncoder.encode(check.name).length
        : 0;
      if (
        bytes < 1 || bytes > FENCE_NAME_BYTES_MAX ||
        // deno-lint-ignore no-control-regex
        /[\u0000-\u001f\u007f]/.test(check.name) ||
        typeof check.token !== "string" || !FENCE_TOKEN.test(check.token)
      ) {
        throw new KvInvalidError(
          "Invalid fence check: expected a name of 1 to 256 UTF-8 bytes without control characters and a token of 20 lowercase hex digits",
        );
      }
    } else {
      throw new KvInvalidError("Invalid check");
    }
  }
}

function validateEnqueue(
  enqueue: KvEnqueue,
  nowMs: number | undefined,
): number {
  if (!isDeadline(enqueue.deadlineMs)) {
    throw new KvInvalidError(
      `Invalid enqueue: 'deadlineMs' must be a non-negative integer: received ${enqueue.deadlineMs}`,
    );
  }
  if (
    nowMs !== undefined &&
    enqueue.deadlineMs - nowMs > KV_LIMITS.queueDelayMsMax
  ) {
    throw new KvLimitError(
      "queueDelayMs",
      KV_LIMITS.queueDelayMsMax,
      `Delay cannot be greater than 30 days: received ${
        enqueue.deadlineMs - nowMs
      }`,
    );
  }
  if (enqueue.keysIfUndelivered.length > KV_LIMITS.keysIfUndeliveredMax) {
    throw new KvLimitError(
      "keysIfUndelivered",
      KV_LIMITS.keysIfUndeliveredMax,
      `Too many keysIfUndelivered (max ${KV_LIMITS.keysIfUndeliveredMax})`,
    );
  }
  for (const key of enqueue.keysIfUndelivered) writeKeySize(key);
  if (enqueue.queue !== undefined) validateQueueName(enqueue.queue);
  const schedule = enqueue.backoffSchedule ?? [];
  if (schedule.length > KV_LIMITS.backoffIntervalsMax) {
    throw new KvLimitError(
      "backoffIntervals",
      KV_LIMITS.backoffIntervalsMax,
      `Invalid backoffSchedule, max ${KV_LIMITS.backoffIntervalsMax} intervals allowed`,
    );
  }
  schedule.forEach((interval, i) => {
    if (
      !Number.isInteger(interval) || interval < 0 ||
      interval > KV_LIMITS.backoffIntervalMsMax
    ) {
      throw new KvLimitError(
        "backoffIntervalMs",
        KV_LIMITS.backoffIntervalMsMax,
        `Invalid backoffSchedule, interval at index ${i} is invalid`,
      );
    }
  });
  if (enqueue.payload.length > KV_LIMITS.valueBytesMax) {
    throw new KvLimitError(
      "valueBytes",
      KV_LIMITS.valueBytesMax,
      `enqueue payload too large (max ${KV_LIMITS.valueBytesMax} bytes)`,
    );
  }
  return enqueue.payload.length + 4 * schedule.length;
}

/**
 * Validates an atomic operation before it is proposed, with Deno KV's rules
 * and messages, counting sizes exactly as Deno does (check and mutation keys,
 * then each value plus its key again). The state machine runs it again
 * (without `nowMs`) at apply time, so a command that slipped past is refused
 * identically on every replica.
 *
 * @param operation The operation to check.
 * @param nowMs The proposer's clock, to bound enqueue delays; omitted at apply time.
 * @throws {KvLimitError} When a limit is exceeded.
 * @throws {KvInvalidError} When the operation has the wrong shape.
 * @throws {KvUnsupportedError} For V8-number sums, which Aspen does not support yet.
 */
export function validateAtomic(
  operation: KvAtomicOperation,
  nowMs?: number,
): void {
  const { checks, mutations, enqueues } = operation;
  if (
    checks.length + (operation.coordinationChecks?.length ?? 0) >
      KV_LIMITS.checksMax
  ) {
    throw new KvLimitError(
      "checks",
      KV_LIMITS.checksMax,
      `Too many checks (max ${KV_LIMITS.checksMax})`,
    );
  }
  const pubsub = operation.pubsub;
  const pubsubCount = pubsub === undefined
    ? 0
    : pubsubShape(pubsub).publishes.length + pubsub.acks.length;
  if (
    mutations.length + enqueues.length + pubsubCount > KV_LIMITS.mutationsMax
  ) {
    throw new KvLimitError(
      "mutations",
      KV_LIMITS.mutationsMax,
      `Too many mutations (max ${KV_LIMITS.mutationsMax})`,
    );
  }
  for (const check of checks) {
    const { versionstamp } = check;
    if (
      versionstamp !== null &&
      (!(versionstamp instanceof Uint8Array) ||
        versionstamp.length !== VERSIONSTAMP_BYTES)
    ) {
      throw new KvInvalidError("Invalid check");
    }
  }
  validateCoordinationChecks(operation);
  mutations.forEach(validateMutationShape);
  let totalMutationBytes = 0;
  let totalKeyBytes = 0;
  for (const check of checks) totalMutationBytes += writeKeySize(check.key);
  for (const mutation of mutations) {
    totalMutationBytes += writeKeySize(mutation.key);
  }
  for (const mutation of mutations) {
    if (mutation.type === "delete") continue;
    const keyBytes = writeKeySize(mutation.key);
    totalMutationBytes += valueSize(mutation) + keyBytes;
    totalKeyBytes += keyBytes;
  }
  for (const enqueue of enqueues) {
    totalMutationBytes += validateEnqueue(enqueue, nowMs);
  }
  for (const publish of pubsub?.publishes ?? []) {
    totalMutationBytes += publish.value.length +
      nameEncoder.encode(publish.key ?? "").length;
    for (const [name, value] of publish.headers) {
      totalMutationBytes += nameEncoder.encode(name).length +
        nameEncoder.encode(value).length;
    }
  }
  if (totalMutationBytes > KV_LIMITS.totalMutationBytesMax) {
    throw new KvLimitError(
      "totalMutationBytes",
      KV_LIMITS.totalMutationBytesMax,
      `Total mutation size too large (max ${KV_LIMITS.totalMutationBytesMax} bytes)`,
    );
  }
  if (totalKeyBytes > KV_LIMITS.totalKeyBytesMax) {
    throw new KvLimitError(
      "totalKeyBytes",
      KV_LIMITS.totalKeyBytesMax,
      `Total key size too large (max ${KV_LIMITS.totalKeyBytesMax} bytes)`,
    );
  }
  for (const mutation of mutations) {
    if (mutation.type === "sum" && mutation.value.encoding === "v8") {
      throw new KvUnsupportedError(
        "Cannot sum V8 numbers: only KvU64 (le64) sums are supported",
      );
    }
  }
}

/**
 * Validates a key used for reading.
 *
 * @throws {KvLimitError} When it exceeds 2049 bytes.
 */
export function validateReadKey(key: Uint8Array): void {
  if (key.length > KV_LIMITS.readKeyBytesMax) {
    throw new KvLimitError(
      "readKeyBytes",
      KV_LIMITS.readKeyBytesMax,
      `Key too large for read (max ${KV_LIMITS.readKeyBytesMax} bytes)`,
    );
  }
}

/**
 * Validates the shape of one snapshot read: number of ranges and the sum of
 * their limits, as Deno does.
 *
 * @throws {KvLimitError} When there are more than 10 ranges or 1000 entries.
 * @throws {KvInvalidError} When a limit is not a positive integer.
 */
export function validateReadRanges(limits: readonly number[]): void {
  if (limits.length > KV_LIMITS.readRangesMax) {
    throw new KvLimitError(
      "ranges",
      KV_LIMITS.readRangesMax,
      `Too many ranges (max ${KV_LIMITS.readRangesMax})`,
    );
  }
  let entries = 0;
  for (const limit of limits) {
    if (!Number.isSafeInteger(limit) || limit <= 0) {
      throw new KvInvalidError("limit must be greater than 0");
    }
    entries += limit;
  }
  if (entries > KV_LIMITS.readEntriesMax) {
    throw new KvLimitError(
      "entries",
      KV_LIMITS.readEntriesMax,
      `Too many entries (max ${KV_LIMITS.readEntriesMax})`,
    );
  }
}

/**
 * Validates the number of keys of one watch.
 *
 * @throws {KvLimitError} When there are more than 10.
 */
export function validateWatchKeys(keyCount: number): void {
  if (keyCount > KV_LIMITS.watchedKeysMax) {
    throw new KvLimitError(
      "watchedKeys",
      KV_LIMITS.watchedKeysMax,
      `Too many keys (max ${KV_LIMITS.watchedKeysMax})`,
    );
  }
}
