/**
 * What a watch, a list or a hook follows: a key selector (a prefix, a range
 * or every key) and type patterns (names or trailing-`*` globs). Pure.
 *
 * A prefix selects the keys strictly under it (Deno KV's `list({prefix})`:
 * the encoded key starts with the prefix's encoding and is longer); a range
 * selects `start ≤ key < end` by encoded bytes. Events without a key
 * (`leader.changed`, `member.*`, …) pass every selector: only types filter
 * them.
 *
 * @module
 */
import { compareBytes } from "../../base/bytes.ts";
import type { HistoryEvent } from "./records.ts";

/** Keys an event stream follows, encoded. */
export type KeySelector =
  | { readonly kind: "all" }
  | { readonly kind: "prefix"; readonly prefix: Uint8Array }
  | {
    readonly kind: "range";
    readonly start: Uint8Array;
    readonly end: Uint8Array;
  };

/** Types an event stream follows. */
export type TypeMatcher = (type: string) => boolean;

/** Type patterns of one stream at most. */
export const TYPE_PATTERNS_MAX = 16;

/** A name or a trailing-`*` glob. */
const PATTERN = /^(\*|[a-z]+(\.[a-z]+)*(\.\*)?)$/;

/** A refused selector or pattern (maps to 400 `invalid`). */
export class SelectorError extends Error {
  override name = "SelectorError";
}

/**
 * The matcher of `patterns` (default `kv.*`).
 *
 * @throws {SelectorError} For more than {@linkcode TYPE_PATTERNS_MAX}, none, or a malformed one.
 */
export function typeMatcher(
  patterns: readonly string[] = ["kv.*"],
): TypeMatcher {
  if (patterns.length === 0 || patterns.length > TYPE_PATTERNS_MAX) {
    throw new SelectorError(
      `Invalid types: expected 1 to ${TYPE_PATTERNS_MAX} patterns, received ${patterns.length}`,
    );
  }
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const pattern of patterns) {
    if (!PATTERN.test(pattern)) {
      throw new SelectorError(
        `Invalid type pattern '${
          pattern.slice(0, 64)
        }': expected a name like 'kv.set' or a glob like 'kv.*'`,
      );
    }
    if (pattern === "*") return () => true;
    if (pattern.endsWith(".*")) prefixes.push(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return (type) =>
    exact.has(type) || prefixes.some((prefix) => type.startsWith(prefix));
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  if (key.byteLength <= prefix.byteLength) return false;
  for (let i = 0; i < prefix.byteLength; i++) {
    if (key[i] !== prefix[i]) return false;
  }
  return true;
}

/** Whether `key` is selected. */
export function selectsKey(selector: KeySelector, key: Uint8Array): boolean {
  switch (selector.kind) {
    case "all":
      return true;
    case "prefix":
      return startsWith(key, selector.prefix);
    case "range":
      return compareBytes(selector.start, key) <= 0 &&
        compareBytes(key, selector.end) < 0;
  }
}

/** Whether an event passes both the selector and the types. */
export function matches(
  selector: KeySelector,
  types: TypeMatcher,
  event: Pick<HistoryEvent, "type" | "key">,
): boolean {
  if (!types(event.type)) return false;
  return event.key === undefined || selectsKey(selector, event.key);
}
