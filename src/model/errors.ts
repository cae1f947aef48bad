/**
 * Typed errors of the KV layer, raised before proposing (validation) and
 * by reads. They extend `TypeError` where Deno KV throws a `TypeError`, so
 * callers (and the HTTP layer) can map them as Deno does.
 *
 * @module
 */

/** Which Deno KV limit was exceeded. */
export type KvLimitName =
  | "writeKeyBytes"
  | "readKeyBytes"
  | "valueBytes"
  | "checks"
  | "mutations"
  | "totalMutationBytes"
  | "totalKeyBytes"
  | "ranges"
  | "entries"
  | "watchedKeys"
  | "queueDelayMs"
  | "keysIfUndelivered"
  | "backoffIntervals"
  | "backoffIntervalMs";

/** A request exceeds one of Deno KV's limits. The message is Deno's, e.g. `Value too large (max 65536 bytes)`. */
export class KvLimitError extends TypeError {
  override name = "KvLimitError";
  /** The limit that was exceeded. */
  readonly limit: KvLimitName;
  /** Its maximum. */
  readonly max: number;

  constructor(limit: KvLimitName, max: number, message: string) {
    super(message);
    this.limit = limit;
    this.max = max;
  }
}

/** A request or command has the wrong shape (empty key, bad versionstamp, bad cursor, …). */
export class KvInvalidError extends TypeError {
  override name = "KvInvalidError";
}

/** Valid in Deno KV but not supported by Aspen yet (enqueues, V8-number sums). */
export class KvUnsupportedError extends Error {
  override name = "KvUnsupportedError";
}

/**
 * The failure reason of a typed validation error (what apply reports
 * instead of throwing); rethrows anything else (a bug).
 */
export function failureOf(
  error: unknown,
): {
  reason: "limitExceeded" | "unsupported" | "invalidCommand";
  message: string;
} {
  if (error instanceof KvLimitError) {
    return { reason: "limitExceeded", message: error.message };
  }
  if (error instanceof KvUnsupportedError) {
    return { reason: "unsupported", message: error.message };
  }
  if (error instanceof KvInvalidError) {
    return { reason: "invalidCommand", message: error.message };
  }
  throw error;
}
