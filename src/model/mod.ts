/**
 * Deno KV's data model as Aspen implements it (keys, values, versionstamps,
 * limits, typed errors); the state machine is in `src/state/` and
 * `src/services/`.
 *
 * @module
 */
export type { KvKey, KvKeyPart } from "./key_codec.ts";
export { decodeKey, encodeKey } from "./key_codec.ts";
export type {
  KvApplyResult,
  KvArithmeticMutation,
  KvAtomicOperation,
  KvCheck,
  KvCommand,
  KvDeleteMutation,
  KvEnqueue,
  KvEntry,
  KvFailureReason,
  KvMutation,
  KvQueueCommand,
  KvQueueDelivery,
  KvRow,
  KvSetMutation,
  KvValue,
  ValueEncoding,
  Versionstamp,
} from "./types.ts";
export {
  isZeroVersionstamp,
  makeVersionstamp,
  VERSIONSTAMP_BYTES,
  versionstampFromString,
  versionstampIndex,
  versionstampToString,
} from "./versionstamp.ts";
export type { KvLimitName } from "./errors.ts";
export { KvInvalidError, KvLimitError, KvUnsupportedError } from "./errors.ts";
export {
  KV_LIMITS,
  validateAtomic,
  validateReadKey,
  validateReadRanges,
  validateWatchKeys,
} from "./limits.ts";
export type { KvListSelector } from "./range.ts";
export { validateQueueName } from "./queue_name.ts";
export { INTERNAL_KEY_BYTE, INTERNAL_KEYS_START } from "./reserved.ts";
