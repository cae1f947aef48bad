/**
 * Assertions of the Deno KV conformance suite, and {@linkcode describeValue},
 * which turns any value a KV client returns into plain JSON (tagged by type)
 * so values read through different clients and runtimes compare exactly.
 *
 * Dependency-free ES: it runs in Deno and under Node (for `npm:@deno/kv`).
 *
 * @module
 */

/** A failed expectation of a conformance case. */
export class ConformanceError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ConformanceError";
  }
}

/**
 * @param {unknown} condition
 * @param {string} message
 * @returns {asserts condition}
 */
export function assert(condition, message) {
  if (!condition) throw new ConformanceError(message);
}

/** Nesting depth {@linkcode describeValue} follows before giving up. */
const DESCRIBE_DEPTH_MAX = 32;

/**
 * A JSON description of `value` that keeps what JSON loses: the type of every
 * part (bigint, Date, Uint8Array, Map, Set, KvU64, undefined, -0, NaN).
 *
 * @param {unknown} value
 * @param {(value: unknown) => boolean} isU64 Whether `value` is the client's KvU64.
 * @param {number} [depth]
 * @returns {unknown}
 */
export function describeValue(value, isU64, depth = 0) {
  if (depth > DESCRIBE_DEPTH_MAX) {
    throw new RangeError(
      `Cannot describe a value nested deeper than ${DESCRIBE_DEPTH_MAX} levels`,
    );
  }
  const inner = (/** @type {unknown} */ v) =>
    describeValue(v, isU64, depth + 1);
  if (value === null) return ["null"];
  if (value === undefined) return ["undefined"];
  switch (typeof value) {
    case "string":
    case "boolean":
      return [typeof value, value];
    case "number":
      if (Number.isNaN(value)) return ["number", "NaN"];
      if (Object.is(value, -0)) return ["number", "-0"];
      if (!Number.isFinite(value)) return ["number", String(value)];
      return ["number", value];
    case "bigint":
      return ["bigint", value.toString()];
    case "object":
      break;
    default:
      return ["unsupported", typeof value];
  }
  if (isU64(value)) {
    return ["KvU64", String(/** @type {{value: bigint}} */ (value).value)];
  }
  if (value instanceof Uint8Array) return ["Uint8Array", [...value]];
  if (value instanceof Date) return ["Date", value.getTime()];
  if (value instanceof Map) {
    return ["Map", [...value].map(([k, v]) => [inner(k), inner(v)])];
  }
  if (value instanceof Set) return ["Set", [...value].map(inner)];
  if (Array.isArray(value)) return ["Array", value.map(inner)];
  if (value instanceof RegExp) return ["RegExp", value.source, value.flags];
  const prototype = Object.getPrototypeOf(value);
  const kind = prototype === Object.prototype || prototype === null
    ? "Object"
    : `Object(${prototype?.constructor?.name ?? "?"})`;
  return [
    kind,
    Object.entries(value).map(([k, v]) => [k, inner(v)]),
  ];
}

/**
 * Asserts that `actual` and `expected` describe the same value.
 *
 * @param {unknown} actual
 * @param {unknown} expected
 * @param {string} what
 * @param {(value: unknown) => boolean} isU64
 */
export function assertSame(actual, expected, what, isU64) {
  const a = JSON.stringify(describeValue(actual, isU64));
  const e = JSON.stringify(describeValue(expected, isU64));
  assert(a === e, `${what}: expected ${e}, received ${a}`);
}

/**
 * Runs `run` (which may throw synchronously or reject) and asserts that it
 * fails with a message containing `message`.
 *
 * @param {() => unknown} run
 * @param {string} message
 * @param {string} what
 * @returns {Promise<string>} The error's message.
 */
export async function assertRejects(run, message, what) {
  let error;
  try {
    await run();
  } catch (caught) {
    error = caught;
  }
  assert(error !== undefined, `${what}: expected an error, but it succeeded`);
  const text = String(
    /** @type {{message?: unknown}} */ (error)?.message ?? error,
  );
  assert(
    text.includes(message),
    `${what}: expected an error containing '${message}', received '${text}'`,
  );
  return text;
}

/**
 * Resolves `promise`, or rejects after `ms`.
 *
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new ConformanceError(`${what}: no answer within ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
