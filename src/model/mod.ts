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
export { decodeCommand, encodeCommand } from "../services/kv/commands.ts";
export type {
  ScanOptions,
  SnapshotChunk,
  SnapshotInstaller,
  StateBatch,
  StateStore,
} from "../state/state_store.ts";
export { SNAPSHOT_CHUNK_BYTES_MAX } from "../state/state_store.ts";
export { MemoryStateStore } from "../storage/memory_state_store.ts";
export type { SqliteStateStoreOptions } from "../storage/sqlite_state_store.ts";
export { SqliteStateStore } from "../storage/sqlite_state_store.ts";
export type { KvListOptions, KvListPage } from "../services/state_machine.ts";
export { EXPIRE_KEYS_MAX, KvStateMachine } from "../services/state_machine.ts";
export type { KvListSelector } from "./range.ts";
export { stateHash } from "../state/state_hash.ts";
export type { KvQueueInfo, KvQueuePeek } from "../services/queues/queue.ts";
export {
  DEFAULT_BACKOFF_SCHEDULE_MS,
  QUEUE_LIMITS,
  validateQueueCommand,
  validateQueueName,
} from "../services/queues/queue.ts";
