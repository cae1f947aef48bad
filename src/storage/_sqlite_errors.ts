/**
 * Maps what `node:sqlite` and Deno throw onto the store's typed errors, in
 * one place (like hono's `app.onError`).
 *
 * @module
 */
import {
  StorageCorruptedError,
  StorageFullError,
  StorageIoError,
  StorageReadOnlyError,
} from "./errors.ts";

/** A typed error for a failed write; the store refuses later writes with the same class. */
export type StorageWriteError =
  | StorageFullError
  | StorageReadOnlyError
  | StorageCorruptedError
  | StorageIoError;

// Primary result codes, https://sqlite.org/rescode.html (extended codes keep them in the low byte).
const SQLITE_PERM = 3;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;

function sqliteCode(error: unknown): number | null {
  if (typeof error !== "object" || error === null) return null;
  const errcode = (error as { errcode?: unknown }).errcode;
  return typeof errcode === "number" ? errcode & 0xff : null;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The typed error for `error`, thrown while doing `action` on the file at
 * `path`, or null when it is not a storage condition (a bug: rethrow it).
 */
export function toStorageError(
  error: unknown,
  action: string,
  path: string,
): StorageWriteError | null {
  if (
    error instanceof StorageFullError ||
    error instanceof StorageReadOnlyError ||
    error instanceof StorageCorruptedError ||
    error instanceof StorageIoError
  ) {
    return error;
  }
  const code = sqliteCode(error);
  const text = describe(error);
  const detail = `Cannot ${action} the log store at '${path}'`;
  const options = { cause: error };
  if (code === SQLITE_FULL || /disk is full/i.test(text)) {
    return new StorageFullError(
      `${detail}: disk is full: ${text}`,
      path,
      options,
    );
  }
  if (
    code === SQLITE_READONLY || code === SQLITE_PERM ||
    error instanceof Deno.errors.NotCapable ||
    error instanceof Deno.errors.PermissionDenied ||
    /readonly|read-only|permission|EACCES|EROFS/i.test(text)
  ) {
    return new StorageReadOnlyError(
      `${detail}: not writable: ${text}`,
      path,
      options,
    );
  }
  if (code === SQLITE_CORRUPT || code === SQLITE_NOTADB) {
    return new StorageCorruptedError(
      `${detail}: file is corrupt: ${text}`,
      path,
      null,
      options,
    );
  }
  if (code === SQLITE_IOERR || code === SQLITE_CANTOPEN) {
    return new StorageIoError(`${detail}: I/O error: ${text}`, path, options);
  }
  return null;
}

/** A fresh error of the same class as `first`, for a write refused because `first` happened. */
export function refusal(
  first: StorageWriteError,
  path: string,
): StorageWriteError {
  const message =
    `Cannot write to the log store at '${path}' as an earlier write failed: ${first.message}`;
  const options = { cause: first };
  if (first instanceof StorageFullError) {
    return new StorageFullError(message, path, options);
  }
  if (first instanceof StorageReadOnlyError) {
    return new StorageReadOnlyError(message, path, options);
  }
  if (first instanceof StorageCorruptedError) {
    return new StorageCorruptedError(message, path, first.index, options);
  }
  return new StorageIoError(message, path, options);
}
