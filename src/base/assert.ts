/**
 * Invariant checks. A broken invariant is a bug in Aspen, never an operating
 * condition, so it stops the node loudly instead of being handled.
 *
 * @module
 */

/** Thrown when an internal invariant does not hold. Never caught on purpose. */
export class AssertionError extends Error {
  override name = "AssertionError";
}

/**
 * Stops with an {@linkcode AssertionError} unless `condition` holds.
 *
 * @param condition The invariant that must hold.
 * @param message What was expected, std-style.
 * @throws {AssertionError} When `condition` is false.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
