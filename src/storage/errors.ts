/**
 * Typed errors of the log store: operating conditions a caller handles
 * (compacted or missing entries, a full or read-only disk, corrupt files).
 * Broken invariants are not here: they are {@linkcode AssertionError}s.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";

/** Entries before the store's first index were asked for; they were compacted into a snapshot. */
export class LogCompactedError extends Error {
  override name = "LogCompactedError";
  /** The index asked for. */
  readonly index: LogIndex;
  /** The first index the store still holds. */
  readonly firstIndex: LogIndex;

  constructor(
    index: LogIndex,
    firstIndex: LogIndex,
    options?: ErrorOptions,
  ) {
    super(
      `Cannot read log index ${index} as it was compacted: first index is ${firstIndex}`,
      options,
    );
    this.index = index;
    this.firstIndex = firstIndex;
  }
}

/** Entries after the store's last index were asked for; they do not exist (yet). */
export class LogUnavailableError extends Error {
  override name = "LogUnavailableError";
  /** The index asked for. */
  readonly index: LogIndex;
  /** The last index the store holds. */
  readonly lastIndex: LogIndex;

  constructor(index: LogIndex, lastIndex: LogIndex, options?: ErrorOptions) {
    super(
      `Cannot read log index ${index} as it is not stored: last index is ${lastIndex}`,
      options,
    );
    this.index = index;
    this.lastIndex = lastIndex;
  }
}

/** Stored data failed a checksum or structural check; the store refuses to serve it. */
export class StorageCorruptedError extends Error {
  override name = "StorageCorruptedError";
  /** The file that is corrupt. */
  readonly path: string;
  /** The first log index found corrupt, or null when the corruption is not in an entry. */
  readonly index: LogIndex | null;

  constructor(
    message: string,
    path: string,
    index: LogIndex | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.path = path;
    this.index = index;
  }
}

/** The disk (or the configured size limit) is full. The store accepts no more writes. */
export class StorageFullError extends Error {
  override name = "StorageFullError";
  /** The file that could not grow. */
  readonly path: string;

  constructor(message: string, path: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
  }
}

/** The store cannot write: read-only file system, file mode or missing permission. */
export class StorageReadOnlyError extends Error {
  override name = "StorageReadOnlyError";
  /** The file that could not be written. */
  readonly path: string;

  constructor(message: string, path: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
  }
}

/** A write failed for another I/O reason (SQLITE_IOERR and the like). The store accepts no more writes. */
export class StorageIoError extends Error {
  override name = "StorageIoError";
  /** The file that could not be written. */
  readonly path: string;

  constructor(message: string, path: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
  }
}
