/**
 * {@linkcode KvU64}: an unsigned 64-bit integer stored as `le64`, the type
 * `sum`, `min` and `max` work on. In Deno (with `--unstable-kv`) it is the
 * platform's `Deno.KvU64` itself, so `instanceof Deno.KvU64` holds for the
 * values Aspen's client returns; elsewhere (browsers, Deno without the KV
 * API) it is {@linkcode AspenKvU64}, with the same constructor checks.
 *
 * @module
 */

const U64_MAX = (1n << 64n) - 1n;

/**
 * An unsigned 64-bit integer value, as `Deno.KvU64`.
 *
 * @example
 * ```ts
 * import { AspenKvU64 as KvU64 } from "./kv_u64.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new KvU64(42n).value, 42n);
 * assert.throws(() => new KvU64(-1n), RangeError);
 * ```
 */
export class AspenKvU64 {
  /** The integer, 0 to 2^64-1. */
  readonly value: bigint;

  /**
   * Wraps `value`.
   *
   * @throws {TypeError} When it is not a bigint.
   * @throws {RangeError} When it is outside 0 to 2^64-1.
   */
  constructor(value: bigint) {
    if (typeof value !== "bigint") {
      throw new TypeError(
        `Cannot create KvU64 as the value must be a bigint: received ${typeof value}`,
      );
    }
    if (value < 0n || value > U64_MAX) {
      throw new RangeError(
        `Cannot create KvU64 as the value must be between 0 and 2^64-1: current value is ${value}`,
      );
    }
    this.value = value;
  }

  /** The value in decimal. */
  toString(): string {
    return this.value.toString();
  }
}

/** What `Deno.KvU64` and {@linkcode AspenKvU64} have in common. */
export type KvU64 = AspenKvU64;

function platformKvU64(): typeof AspenKvU64 | undefined {
  const deno = (globalThis as { Deno?: { KvU64?: unknown } }).Deno;
  return typeof deno?.KvU64 === "function"
    ? deno.KvU64 as typeof AspenKvU64
    : undefined;
}

/**
 * The KvU64 class: `Deno.KvU64` when the platform has one, else
 * {@linkcode AspenKvU64}.
 *
 * @example
 * ```ts
 * import { KvU64 } from "./kv_u64.ts";
 * import assert from "node:assert/strict";
 * assert.equal(new KvU64(7n).value, 7n);
 * ```
 */
export const KvU64: typeof AspenKvU64 = platformKvU64() ?? AspenKvU64;
