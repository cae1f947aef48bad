/**
 * Range selectors and cursors with Deno KV's exact rules: a list by prefix
 * covers `[prefix 00, prefix ff)`, start/end must lie inside the prefix, and
 * a cursor is the base64url (padded) of the boundary key's bytes after the
 * selector's common prefix.
 *
 * @module
 */
import { KvInvalidError } from "./errors.ts";
import { compareBytes, concatBytes, startsWith } from "../base/bytes.ts";
import { fromBase64Url, toBase64Url } from "../base/base64.ts";

/** What to list: a prefix (optionally narrowed by start or end), or start and end. */
export interface KvListSelector {
  readonly prefix?: Uint8Array;
  readonly start?: Uint8Array;
  readonly end?: Uint8Array;
}

/** A resolved selector: the byte range and the prefix cursors are relative to. */
export interface ResolvedSelector {
  /** Inclusive. */
  readonly start: Uint8Array;
  /** Exclusive. */
  readonly end: Uint8Array;
  readonly commonPrefix: Uint8Array;
  /** The bounds the caller gave, which a cursor may not leave. */
  readonly startBound: Uint8Array | null;
  readonly endBound: Uint8Array | null;
}

const ZERO = new Uint8Array([0]);
const FF = new Uint8Array([0xff]);

function commonPrefixOf(a: Uint8Array, b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return a.subarray(0, i);
}

/**
 * Resolves a selector into a byte range.
 *
 * @throws {KvInvalidError} With Deno's message when the selector is not valid.
 */
export function resolveSelector(selector: KvListSelector): ResolvedSelector {
  const { prefix, start, end } = selector;
  if (prefix !== undefined) {
    if (start !== undefined && end !== undefined) {
      throw new KvInvalidError("Invalid range");
    }
    if (
      start !== undefined &&
      (!startsWith(start, prefix) || start.length === prefix.length)
    ) {
      throw new KvInvalidError(
        "Start key is not in the keyspace defined by prefix",
      );
    }
    if (
      end !== undefined &&
      (!startsWith(end, prefix) || end.length === prefix.length)
    ) {
      throw new KvInvalidError(
        "End key is not in the keyspace defined by prefix",
      );
    }
    return {
      start: start ?? concatBytes(prefix, ZERO),
      end: end ?? concatBytes(prefix, FF),
      commonPrefix: prefix,
      startBound: start ?? null,
      endBound: end ?? null,
    };
  }
  if (start === undefined) throw new KvInvalidError("Invalid range");
  if (end === undefined) {
    const onlyStart = concatBytes(start, ZERO);
    return {
      start,
      end: onlyStart,
      commonPrefix: commonPrefixOf(start, onlyStart),
      startBound: start,
      endBound: onlyStart,
    };
  }
  if (compareBytes(start, end) > 0) {
    throw new KvInvalidError("Start key is greater than end key");
  }
  return {
    start,
    end,
    commonPrefix: commonPrefixOf(start, end),
    startBound: start,
    endBound: end,
  };
}

/**
 * Narrows a resolved selector to what follows (or, in reverse, precedes)
 * a cursor.
 *
 * @throws {KvInvalidError} `invalid cursor` or `cursor out of bounds`, as Deno.
 */
export function applyCursor(
  selector: ResolvedSelector,
  cursor: string,
  reverse: boolean,
): { start: Uint8Array; end: Uint8Array } {
  const suffix = fromBase64Url(cursor);
  if (suffix === null) throw new KvInvalidError("invalid cursor");
  const boundary = concatBytes(selector.commonPrefix, suffix);
  const start = reverse ? selector.start : concatBytes(boundary, ZERO);
  const end = reverse ? boundary : selector.end;
  if (
    selector.startBound !== null && compareBytes(start, selector.startBound) < 0
  ) {
    throw new KvInvalidError("cursor out of bounds");
  }
  if (selector.endBound !== null && compareBytes(end, selector.endBound) > 0) {
    throw new KvInvalidError("cursor out of bounds");
  }
  return { start, end };
}

/**
 * The cursor that resumes a list after `boundaryKey`.
 *
 * @throws {KvInvalidError} When the key is outside the selector's common prefix.
 */
export function encodeCursor(
  selector: ResolvedSelector,
  boundaryKey: Uint8Array,
): string {
  if (!startsWith(boundaryKey, selector.commonPrefix)) {
    throw new KvInvalidError("Invalid boundary key");
  }
  return toBase64Url(boundaryKey.subarray(selector.commonPrefix.length));
}
