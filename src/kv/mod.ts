/**
 * Aspen's replicated KV state machine with Deno KV's data model.
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
export { decodeCommand, encodeCommand } from "./command.ts";
export type {
  ScanOptions,
  SnapshotChunk,
  SnapshotInstaller,
  StateBatch,
  StateStore,
} from "./state_store.ts";
export { SNAPSHOT_CHUNK_BYTES_MAX } from "./state_store.ts";
export { MemoryStateStore } from "./memory_state_store.ts";
export type { SqliteStateStoreOptions } from "./sqlite_state_store.ts";
export { SqliteStateStore } from "./sqlite_state_store.ts";
export type { KvListOptions, KvListPage } from "./state_machine.ts";
export { EXPIRE_KEYS_MAX, KvStateMachine } from "./state_machine.ts";
export type { KvListSelector } from "./range.ts";
export { stateHash } from "./state_hash.ts";
export type { KvQueueInfo, KvQueuePeek } from "./queue.ts";
export {
  DEFAULT_BACKOFF_SCHEDULE_MS,
  QUEUE_LIMITS,
  validateQueueCommand,
  validateQueueName,
} from "./queue.ts";
