/**
 * The resumable Wing–Gong–Lowe search over one partition of a history.
 *
 * Call and return events sit in a doubly linked list ordered by time (calls
 * before returns on equal times, so touching intervals count as concurrent).
 * The search walks the list: at a call it tries to apply the operation to the
 * model; on success it records (linearized set, state) as visited, lifts the
 * operation's events out of the list and starts again from the head. Reaching
 * the return of an operation that must be linearized means no order gets
 * further from here, so it backtracks. Visited (set, state) pairs are never
 * searched twice (Lowe's memoization).
 *
 * Operations with an unknown output are optional: with no return event they
 * can be linearized any time after their call, or never. With a finite return
 * they are dropped when the walk reaches that return unlinearized.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { Model, Operation } from "./lincheck.ts";

/** Outcome of a slice of search. */
export type SearchStatus = "linearizable" | "not linearizable" | "running";

/** The list's head sentinel; the list's end is `listEnd`. */
const head = 0;
const listEnd = -1;
const frameLinearize = 0;
const frameDrop = 1;
/** How many steps between two looks at the clock. */
const stepsPerClockCheck = 1_024;

interface Visited {
  readonly stateId: number;
  readonly linearized: Uint32Array;
}

/** The search over one partition; `run` advances it by a bounded slice. */
export class PartitionSearch<S, I, O> {
  readonly #model: Model<S, I, O>;
  readonly #ops: readonly Operation<I, O>[];
  readonly #label: string;
  /** Per event (index 0 is the head): its operation, and whether a return. */
  readonly #eventOp: Int32Array;
  readonly #eventIsReturn: Uint8Array;
  readonly #eventTime: Float64Array;
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  /** Per operation: its events (return is `listEnd` when it never returned). */
  readonly #callEvent: Int32Array;
  readonly #returnEvent: Int32Array;
  readonly #required: Uint8Array;
  /** Per operation: an identical earlier optional one it must not overtake. */
  readonly #twinBefore: Int32Array;
  /** Zobrist tables: hash of a linearized set is the xor of its members'. */
  readonly #zobristLow: Uint32Array;
  readonly #zobristHigh: Uint32Array;

  #requiredLeft = 0;
  readonly #linearized: Uint32Array;
  #hashLow = 0;
  #hashHigh = 0;
  readonly #visited = new Map<number, Visited[]>();
  readonly #stateIds = new Map<string, number>();
  #state: S;
  #stateId: number;
  readonly #stackOp: number[] = [];
  readonly #stackKind: number[] = [];
  readonly #stackState: S[] = [];
  readonly #stackStateId: number[] = [];
  #cursor: number;
  #status: SearchStatus = "running";
  /** Latest time of a return the search was stopped at: for reports. */
  #blockedAtTime = -Infinity;

  constructor(
    model: Model<S, I, O>,
    ops: readonly Operation<I, O>[],
    label: string,
  ) {
    this.#model = model;
    this.#ops = ops;
    this.#label = label;
    const opCount = ops.length;
    const events: { op: number; isReturn: boolean; time: number }[] = [];
    ops.forEach((op, index) => {
      events.push({ op: index, isReturn: false, time: op.call });
      if (op.return !== Infinity) {
        events.push({ op: index, isReturn: true, time: op.return });
      }
    });
    events.sort((a, b) =>
      a.time - b.time || Number(a.isReturn) - Number(b.isReturn)
    );
    const eventCount = events.length + 1;
    this.#eventOp = new Int32Array(eventCount).fill(-1);
    this.#eventIsReturn = new Uint8Array(eventCount);
    this.#eventTime = new Float64Array(eventCount);
    this.#next = new Int32Array(eventCount);
    this.#prev = new Int32Array(eventCount);
    this.#callEvent = new Int32Array(opCount);
    this.#returnEvent = new Int32Array(opCount).fill(listEnd);
    this.#required = new Uint8Array(opCount);
    events.forEach((event, index) => {
      const slot = index + 1;
      this.#eventOp[slot] = event.op;
      this.#eventIsReturn[slot] = event.isReturn ? 1 : 0;
      this.#eventTime[slot] = event.time;
      if (event.isReturn) this.#returnEvent[event.op] = slot;
      else this.#callEvent[event.op] = slot;
    });
    for (let slot = 0; slot < eventCount; slot++) {
      this.#prev[slot] = slot - 1;
      this.#next[slot] = slot + 1 < eventCount ? slot + 1 : listEnd;
    }
    ops.forEach((op, index) => {
      if (op.output !== undefined) this.#required[index] = 1;
    });
    this.#twinBefore = findTwins(ops);
    this.#requiredLeft = this.#required.reduce((sum, bit) => sum + bit, 0);
    this.#zobristLow = randomWords(opCount, 0x9e3779b9);
    this.#zobristHigh = randomWords(opCount, 0x85ebca6b);
    this.#linearized = new Uint32Array(Math.ceil(opCount / 32));
    this.#state = model.init();
    this.#stateId = this.#internState(this.#state);
    this.#cursor = this.#next[head]!;
  }

  /**
   * Advances the search by at most `stepsMax` steps.
   *
   * @param stepsMax Steps in this slice.
   * @param isExpired Looked at every few thousand steps; true ends the slice.
   * @returns "running" when the slice ended before a verdict.
   */
  run(stepsMax: number, isExpired: () => boolean): SearchStatus {
    let steps = 0;
    while (this.#status === "running" && steps < stepsMax) {
      steps++;
      if (steps % stepsPerClockCheck === 0 && isExpired()) break;
      this.#step();
    }
    return this.#status;
  }

  /** The partition and its operations called before the search got stuck. */
  describeViolation(): { partition: string; operations: string[] } {
    assert(
      this.#status === "not linearizable",
      "Expected a finished, failed search",
    );
    const involved = this.#ops
      .filter((op) => op.call <= this.#blockedAtTime)
      .sort((a, b) => a.call - b.call || a.return - b.return);
    return {
      partition: this.#label,
      operations: involved.map((op) => {
        const returned = op.return === Infinity ? "never" : String(op.return);
        const text = this.#model.describe(op.input, op.output);
        return `client ${op.clientId} [${op.call}, ${returned}] ${text}`;
      }),
    };
  }

  #step(): void {
    if (this.#requiredLeft === 0) {
      this.#status = "linearizable";
      return;
    }
    const event = this.#cursor;
    if (event === listEnd) {
      // Only a known-output operation without a return leads here.
      this.#blockedAtTime = Infinity;
      this.#backtrack();
      return;
    }
    const op = this.#eventOp[event]!;
    if (this.#eventIsReturn[event] === 1) {
      this.#blockedAtTime = Math.max(
        this.#blockedAtTime,
        this.#eventTime[event]!,
      );
      if (this.#required[op] === 1) this.#backtrack();
      else this.#drop(op);
      return;
    }
    const twin = this.#twinBefore[op]!;
    if (twin !== -1 && !this.#isLinearized(twin)) {
      this.#cursor = this.#next[event]!;
      return;
    }
    const operation = this.#ops[op]!;
    const state = this.#model.step(
      this.#state,
      operation.input,
      operation.output,
    );
    if (state !== undefined && !this.#isOverwrite(op, state)) {
      const stateId = this.#internState(state);
      this.#toggle(op);
      if (this.#markVisited(this.#contextId(op, stateId))) {
        this.#push(op, frameLinearize);
        this.#state = state;
        this.#stateId = stateId;
        this.#requiredLeft -= this.#required[op]!;
        this.#lift(op);
        this.#cursor = this.#next[head]!;
        return;
      }
      this.#toggle(op);
    }
    this.#cursor = this.#next[event]!;
  }

  /**
   * Second pruning for unknown outcomes. When the latest linearized operation
   * `a` is a never-returned optional one, and optional `b` right after it
   * ends in the same state as `b` without it (a blind write overwritten),
   * then `a` did nothing useful: the same order without `a` is searched from
   * the parent, with `a` still available. Chains of timed-out writes thus
   * collapse to their last write. Nodes reached through an optional
   * operation carry it in their memo identity ({@linkcode #contextId}), so
   * the pruning depends only on the node and memoization stays sound.
   */
  #isOverwrite(op: number, state: S): boolean {
    const top = this.#stackOp.length - 1;
    if (top < 0 || !this.#isFloating(op)) return false;
    const previous = this.#stackOp[top]!;
    if (
      this.#stackKind[top] !== frameLinearize || !this.#isFloating(previous)
    ) {
      return false;
    }
    const operation = this.#ops[op]!;
    const skipped = this.#model.step(
      this.#stackState[top]!,
      operation.input,
      operation.output,
    );
    return skipped !== undefined &&
      this.#model.key(skipped) === this.#model.key(state);
  }

  /** An optional operation without a return: free to float to any later place. */
  #isFloating(op: number): boolean {
    return this.#required[op] === 0 && this.#returnEvent[op] === listEnd;
  }

  /** Memo identity of the node reached by linearizing `op` into `stateId`. */
  #contextId(op: number, stateId: number): number {
    if (!this.#isFloating(op)) return stateId;
    return this.#internKey(`c${stateId} ${op} ${this.#stateId}`);
  }

  /**
   * An optional operation reached its return unlinearized: every earlier
   * place for it was tried, so what is left is that it never took effect.
   */
  #drop(op: number): void {
    this.#toggle(op);
    if (!this.#markVisited(this.#stateId)) {
      this.#toggle(op);
      this.#backtrack();
      return;
    }
    this.#push(op, frameDrop);
    this.#lift(op);
    // From the head, not from after the return: a visited pair must stand
    // for a fully searched subtree, or memoization would prune wrongly.
    this.#cursor = this.#next[head]!;
  }

  /** Undoes the latest linearization and moves on to the next candidate. */
  #backtrack(): void {
    for (;;) {
      const op = this.#stackOp.pop();
      if (op === undefined) {
        this.#status = "not linearizable";
        return;
      }
      const kind = this.#stackKind.pop()!;
      this.#state = this.#stackState.pop()!;
      this.#stateId = this.#stackStateId.pop()!;
      this.#unlift(op);
      this.#toggle(op);
      // A drop was the last choice at its return: keep undoing.
      if (kind === frameLinearize) {
        this.#requiredLeft += this.#required[op]!;
        this.#cursor = this.#next[this.#callEvent[op]!]!;
        return;
      }
    }
  }

  #push(op: number, kind: number): void {
    this.#stackOp.push(op);
    this.#stackKind.push(kind);
    this.#stackState.push(this.#state);
    this.#stackStateId.push(this.#stateId);
  }

  #isLinearized(op: number): boolean {
    return (this.#linearized[op >>> 5]! & (1 << (op & 31))) !== 0;
  }

  /** Flips `op` in the linearized set and its hash. */
  #toggle(op: number): void {
    this.#linearized[op >>> 5]! ^= 1 << (op & 31);
    this.#hashLow ^= this.#zobristLow[op]!;
    this.#hashHigh ^= this.#zobristHigh[op]!;
  }

  /** Records (linearized set, state); false when it was already visited. */
  #markVisited(stateId: number): boolean {
    const hash = ((this.#hashLow ^ Math.imul(stateId + 1, 0x27d4eb2d)) >>> 0) +
      (this.#hashHigh & 0x1fffff) * 0x1_0000_0000;
    const bucket = this.#visited.get(hash);
    if (bucket === undefined) {
      this.#visited.set(hash, [{
        stateId,
        linearized: this.#linearized.slice(),
      }]);
      return true;
    }
    for (const visited of bucket) {
      if (
        visited.stateId === stateId &&
        sameWords(visited.linearized, this.#linearized)
      ) {
        return false;
      }
    }
    bucket.push({ stateId, linearized: this.#linearized.slice() });
    return true;
  }

  #internState(state: S): number {
    return this.#internKey(`s${this.#model.key(state)}`);
  }

  #internKey(key: string): number {
    let id = this.#stateIds.get(key);
    if (id === undefined) {
      id = this.#stateIds.size;
      this.#stateIds.set(key, id);
    }
    return id;
  }

  /** Unlinks the call and return events of `op` (dancing links). */
  #lift(op: number): void {
    this.#unlink(this.#callEvent[op]!);
    const returnEvent = this.#returnEvent[op]!;
    if (returnEvent !== listEnd) this.#unlink(returnEvent);
  }

  /** Relinks what {@linkcode #lift} unlinked, in reverse order. */
  #unlift(op: number): void {
    const returnEvent = this.#returnEvent[op]!;
    if (returnEvent !== listEnd) this.#relink(returnEvent);
    this.#relink(this.#callEvent[op]!);
  }

  #unlink(event: number): void {
    const prev = this.#prev[event]!;
    const next = this.#next[event]!;
    this.#next[prev] = next;
    if (next !== listEnd) this.#prev[next] = prev;
  }

  #relink(event: number): void {
    const prev = this.#prev[event]!;
    const next = this.#next[event]!;
    this.#next[prev] = event;
    if (next !== listEnd) this.#prev[next] = event;
  }
}

/**
 * Symmetry reduction for unknown outcomes. Two optional operations that never
 * returned and have equal inputs are interchangeable: the earlier-called one
 * is available whenever the later one is, and neither output constrains
 * anything. So any linearization can be rewritten to place them in call
 * order, and the search only tries that order: the later one waits for its
 * twin. This keeps histories with many timed-out writes from exploding.
 *
 * @returns Per operation, the index of its earlier twin or -1.
 */
function findTwins<I, O>(ops: readonly Operation<I, O>[]): Int32Array {
  const twins = new Int32Array(ops.length).fill(-1);
  const latestByInput = new Map<string, number>();
  const order = ops.map((_, index) => index)
    .sort((a, b) => ops[a]!.call - ops[b]!.call || a - b);
  for (const index of order) {
    const op = ops[index]!;
    if (op.output !== undefined || op.return !== Infinity) continue;
    const key = plainKey(op.input);
    if (key === undefined) continue;
    const twin = latestByInput.get(key);
    if (twin !== undefined) twins[index] = twin;
    latestByInput.set(key, index);
  }
  return twins;
}

/** JSON of a plain value, or undefined when equal JSON may not mean equal. */
function plainKey(value: unknown): string | undefined {
  return isPlain(value, 0) ? JSON.stringify(value) : undefined;
}

function isPlain(value: unknown, depth: number): boolean {
  if (depth > 8) return false;
  if (
    value === null || typeof value === "string" || typeof value === "boolean"
  ) return true;
  if (typeof value === "number") {
    return Number.isFinite(value) && !Object.is(value, -0);
  }
  if (Array.isArray(value)) {
    return value.every((item) => isPlain(item, depth + 1));
  }
  if (
    typeof value !== "object" ||
    Object.getPrototypeOf(value) !== Object.prototype
  ) {
    return false;
  }
  return Object.values(value).every((item) => isPlain(item, depth + 1));
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let index = 0; index < a.length; index++) {
    if (a[index] !== b[index]) return false;
  }
  return true;
}

/** Deterministic pseudo-random words (xorshift32), for Zobrist hashing. */
function randomWords(count: number, seed: number): Uint32Array {
  const words = new Uint32Array(count);
  let x = seed >>> 0 || 1;
  for (let index = 0; index < count; index++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[index] = x >>> 0;
  }
  return words;
}
