/**
 * The simulator's clock and agenda: a binary heap of callbacks ordered by
 * simulated time, ties broken by insertion order, so a run is a pure function
 * of its seed.
 *
 * @module
 */

interface Scheduled {
  readonly time: number;
  readonly sequence: number;
  readonly run: () => void;
}

/** A deterministic priority queue of timed callbacks. */
export class EventQueue {
  #heap: Scheduled[] = [];
  #sequence = 0;
  #now = 0;

  /** Simulated time in milliseconds of the event being run. */
  get now(): number {
    return this.#now;
  }

  /** Number of events waiting. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `run` after `delayMs` (≥ 0) of simulated time. */
  after(delayMs: number, run: () => void): void {
    if (!(delayMs >= 0)) {
      throw new RangeError(
        `Cannot schedule an event as 'delayMs' must be at least 0: current value is ${delayMs}`,
      );
    }
    this.#push({ time: this.#now + delayMs, sequence: this.#sequence++, run });
  }

  /** Time of the next event, or Infinity when none is waiting. */
  peekTime(): number {
    return this.#heap[0]?.time ?? Infinity;
  }

  /** Runs the next event; returns false when none is waiting. */
  runNext(): boolean {
    const next = this.#pop();
    if (next === undefined) return false;
    this.#now = next.time;
    next.run();
    return true;
  }

  #push(item: Scheduled): void {
    const heap = this.#heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(item, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = item;
  }

  #pop(): Scheduled | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) {
      return top;
    }
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!)
        ? right
        : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: Scheduled, b: Scheduled): boolean {
  return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
}
