/**
 * Aspen's durable Raft log: the {@linkcode LogStore} port, the in-memory
 * reference, the SQLite adapter and their typed errors.
 *
 * @module
 */
export type { LogStore, SaveRequest, SnapshotMeta } from "./log_store.ts";
export { EMPTY_HARD_STATE, EMPTY_SNAPSHOT_META } from "./log_store.ts";
export { MemoryLogStore } from "./memory_log_store.ts";
export type {
  SqliteDurability,
  SqliteLogStoreOptions,
} from "./sqlite_log_store.ts";
export { SqliteLogStore } from "./sqlite_log_store.ts";
export {
  LogCompactedError,
  LogUnavailableError,
  StorageCorruptedError,
  StorageFullError,
  StorageIoError,
  StorageReadOnlyError,
} from "./errors.ts";
