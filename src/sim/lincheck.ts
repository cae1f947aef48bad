/**
 * A linearizability checker: Wing and Gong's search with Lowe's memoization,
 * plus Porcupine's partitioning of a history into independent sub-histories.
 *
 * Operations whose outcome is unknown (`output` undefined, `return` Infinity)
 * are optional: the search may linearize them anywhere after their call, or
 * never, and the model accepts any output for them. The check ends as soon as
 * every operation with a known outcome is linearized, so unknown operations
 * never force work of their own.
 *
 * Partitions are searched round-robin with a step budget that doubles each
 * round, so one bad partition is found fast even next to a slow one, and the
 * whole check stops at the caller's timeout with the verdict "undecided".
 *
 * @example
 * ```ts
 * import { checkOperations, registerModel } from "./lincheck.ts";
 * import assert from "node:assert/strict";
 *
 * const result = checkOperations(registerModel, [
 *   { clientId: 1, input: { op: "write", value: 1 }, output: { ok: true }, call: 0, return: 2 },
 *   { clientId: 2, input: { op: "read" }, output: { value: 1 }, call: 1, return: 3 },
 * ]);
 * assert.equal(result.verdict, "linearizable");
 * ```
 *
 * @module
 */
import { PartitionSearch } from "./lincheck_search.ts";

export {
  type KvInput,
  kvModel,
  type KvOutput,
  type KvState,
  type RegisterInput,
  registerModel,
  type RegisterOutput,
} from "./lincheck_models.ts";

/** One completed, failed-to-answer or still pending call of a client. */
export interface Operation<I, O> {
  readonly clientId: number;
  readonly input: I;
  /** undefined = outcome unknown (may or may not have taken effect) */
  readonly output: O | undefined;
  /** Logical time of invocation. */
  readonly call: number;
  /** Logical time of response; Infinity when unknown. */
  readonly return: number;
}

/** A sequential specification of the object under test. */
export interface Model<S, I, O> {
  init(): S;
  /** Returns the next state if `output` is a legal result of applying `input` in `state`, else undefined. output undefined = unknown: accept. */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** Canonical string (or number) of a state, for memoization. */
  key(state: S): string;
  /** Optional: split into independent sub-histories (e.g. by key); each sub-history checked from init(). */
  partition?(ops: readonly Operation<I, O>[]): Operation<I, O>[][];
  describe(input: I, output: O | undefined): string;
}

/** "undecided" = the timeout came before a verdict. */
export type CheckVerdict = "linearizable" | "not linearizable" | "undecided";

/** The verdict, and for a violation where it was found. */
export interface CheckResult {
  verdict: CheckVerdict;
  /** for "not linearizable": the partition (e.g. key) and its operations, described */
  detail?: { partition: string; operations: string[] };
}

/** Options of {@linkcode checkOperations}. */
export interface CheckOptions {
  /** Wall-clock budget in milliseconds; default: no limit. */
  timeoutMs?: number;
  /** Clock in milliseconds; default `performance.now()`. Injected by tests. */
  now?: () => number;
}

/** Search steps given to each partition in the first round; doubles each round. */
const roundStepsInitial = 4_096;
/** Cap of a round's steps, so partitions keep taking turns on long checks. */
const roundStepsMax = 4_194_304;

/**
 * Checks whether a concurrent history is linearizable with respect to a model.
 *
 * @param model The sequential specification; its `partition`, if any, splits
 * the history into sub-histories that are checked independently.
 * @param ops The history, in any order.
 * @param options `timeoutMs`: stop with "undecided" after this much wall time.
 * @returns The verdict; for "not linearizable" the partition and the
 * operations (called up to the point no linearization gets past) described.
 * @throws {RangeError} When an operation's times are not a finite call at or
 * before its return, or the timeout is negative.
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  const timeoutMs = options.timeoutMs ?? Infinity;
  if (!(timeoutMs >= 0)) {
    throw new RangeError(
      `Cannot check operations as 'timeoutMs' must be at least 0: current value is ${timeoutMs}`,
    );
  }
  ops.forEach(validateOperation);
  const now = options.now ?? (() => performance.now());
  const deadline = now() + timeoutMs;
  const isExpired = () => now() >= deadline;

  const partitions = model.partition === undefined
    ? [ops]
    : model.partition(ops);
  let pending = partitions
    .filter((partition) => partition.length > 0)
    .map((partition, index, all) =>
      new PartitionSearch(
        model,
        partition,
        partitionLabel(partition, index, all.length),
      )
    );
  let roundSteps = roundStepsInitial;
  while (pending.length > 0) {
    const unfinished: typeof pending = [];
    for (const search of pending) {
      if (isExpired()) return { verdict: "undecided" };
      const status = search.run(roundSteps, isExpired);
      if (status === "not linearizable") {
        return { verdict: status, detail: search.describeViolation() };
      }
      if (status === "running") unfinished.push(search);
    }
    pending = unfinished;
    roundSteps = Math.min(roundSteps * 2, roundStepsMax);
  }
  return { verdict: "linearizable" };
}

function validateOperation<I, O>(op: Operation<I, O>, index: number): void {
  if (!Number.isFinite(op.call)) {
    throw new RangeError(
      `Cannot check operation ${index} as 'call' must be finite: current value is ${op.call}`,
    );
  }
  if (!(op.return >= op.call)) {
    throw new RangeError(
      `Cannot check operation ${index} as 'return' must be at least 'call' (${op.call}): current value is ${op.return}`,
    );
  }
}

/**
 * Names a partition for reports: by its key when every input carries the same
 * string `key` (as kvModel's do), else by its position.
 */
function partitionLabel<I, O>(
  partition: readonly Operation<I, O>[],
  index: number,
  count: number,
): string {
  const keys = new Set(partition.map((op) => {
    const input: unknown = op.input;
    return typeof input === "object" && input !== null && "key" in input &&
        typeof input.key === "string"
      ? input.key
      : undefined;
  }));
  const [key] = keys;
  if (keys.size === 1 && key !== undefined) return `key ${JSON.stringify(key)}`;
  return count === 1 ? "all operations" : `partition ${index + 1} of ${count}`;
}
