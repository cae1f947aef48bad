/**
 * The KV service's reads from the applied state, with Deno KV's limits:
 * point reads, raw ranges (KV Connect) and list pages (selectors and
 * cursors). Reads never reach the reserved `ff` key space.
 *
 * @module
 */
import type { KvEntry, KvRow } from "../../model/types.ts";
import type { StateStore } from "../../state/state_store.ts";
import { compareBytes } from "../../base/bytes.ts";
import { validateReadKey, validateReadRanges } from "../../model/limits.ts";
import {
  INTERNAL_KEY_BYTE,
  INTERNAL_KEYS_START,
} from "../../model/reserved.ts";
import {
  applyCursor,
  encodeCursor,
  type KvListSelector,
  resolveSelector,
} from "../../model/range.ts";

/** Options of {@linkcode KvReads.list}. */
export interface KvListOptions {
  /** Entries returned at most, 1..1000. */
  readonly limit: number;
  readonly reverse?: boolean;
  /** A cursor from a previous page of the same selector. */
  readonly cursor?: string;
}

/** One page of {@linkcode KvReads.list}. */
export interface KvListPage {
  readonly entries: KvEntry[];
  /** Resumes after the last entry; null when the page is empty. */
  readonly cursor: string | null;
}

function toEntry(row: KvRow): KvEntry {
  return {
    key: row.key,
    value: { encoding: row.encoding, data: row.value },
    versionstamp: row.versionstamp,
  };
}

/** Deno KV reads over one store. */
export class KvReads {
  readonly store: StateStore;

  constructor(store: StateStore) {
    this.store = store;
  }

  /**
   * The entry at `key`, or null.
   *
   * @throws {KvLimitError} When the key is longer than 2049 bytes.
   */
  get(key: Uint8Array): KvEntry | null {
    validateReadKey(key);
    if (key[0] === INTERNAL_KEY_BYTE) return null;
    const row = this.store.get(key);
    return row === null ? null : toEntry(row);
  }

  /**
   * The entries at `keys`, in order, null where absent.
   *
   * @throws {KvLimitError} For more than 10 keys (each is a range) or a key over 2049 bytes.
   */
  getMany(keys: readonly Uint8Array[]): (KvEntry | null)[] {
    validateReadRanges(keys.map(() => 1));
    for (const key of keys) validateReadKey(key);
    return keys.map((key) => this.get(key));
  }

  /**
   * A raw range read as KV Connect sends it: `[start, end)`.
   *
   * @throws {KvLimitError} When a key is over 2049 bytes or the limit over 1000.
   */
  readRange(
    start: Uint8Array,
    end: Uint8Array,
    limit: number,
    reverse = false,
  ): KvEntry[] {
    validateReadRanges([limit]);
    validateReadKey(start);
    validateReadKey(end);
    // Internal rows sort after every Deno KV key: reads stop there.
    const userEnd = compareBytes(end, INTERNAL_KEYS_START) > 0
      ? INTERNAL_KEYS_START
      : end;
    if (compareBytes(start, userEnd) >= 0) return [];
    return this.store.scan({ start, end: userEnd, limit, reverse }).map(
      toEntry,
    );
  }

  /**
   * One page of a Deno KV list, with Deno's selector and cursor rules.
   *
   * @throws {KvInvalidError} For an invalid selector or cursor (Deno's messages).
   * @throws {KvLimitError} For a limit over 1000 or a key over 2049 bytes.
   */
  list(selector: KvListSelector, options: KvListOptions): KvListPage {
    const resolved = resolveSelector(selector);
    const reverse = options.reverse ?? false;
    const { start, end } = options.cursor === undefined
      ? resolved
      : applyCursor(resolved, options.cursor, reverse);
    const entries = this.readRange(start, end, options.limit, reverse);
    const last = entries[entries.length - 1];
    return {
      entries,
      cursor: last === undefined ? null : encodeCursor(resolved, last.key),
    };
  }
}
