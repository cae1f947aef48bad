/**
 * Seeded randomness for the simulator: xoshiro128** streams, each derived
 * from the run's seed and a label with splitmix32, so that nodes, network,
 * clients and nemesis draw independently and adding draws to one stream never
 * shifts another.
 *
 * @module
 */
import type { RandomSource } from "../raft/types.ts";

/** One step of splitmix32: mixes `state` into a well-spread 32-bit value. */
function splitmix32(state: number): number {
  let z = (state + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a of a label, so streams are named rather than numbered. */
function labelHash(label: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    hash = Math.imul(hash ^ label.charCodeAt(i), 0x01000193);
  }
  return hash >>> 0;
}

/** A deterministic xoshiro128** generator; also the core's RandomSource. */
export class SeededRandom implements RandomSource {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * @param seed The run's seed (any safe integer).
   * @param label Names the stream, e.g. "node:n1" or "network".
   */
  constructor(seed: number, label: string) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(
        `Cannot seed random stream as 'seed' must be a safe integer: current value is ${seed}`,
      );
    }
    let state = splitmix32(
      (seed >>> 0) ^ splitmix32(Math.floor(seed / 2 ** 32)),
    );
    state = splitmix32(state ^ labelHash(label));
    this.#a = state = splitmix32(state);
    this.#b = state = splitmix32(state);
    this.#c = state = splitmix32(state);
    this.#d = splitmix32(state) | 1; // never the all-zero state
  }

  /** Next raw 32-bit unsigned value. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /** Integer in [0, bound). */
  nextInt(bound: number): number {
    if (!(bound >= 1) || bound > 2 ** 32) {
      throw new RangeError(
        `Cannot draw a random integer as 'bound' must be in [1, 2^32]: current value is ${bound}`,
      );
    }
    return Math.floor((this.nextUint32() / 2 ** 32) * bound);
  }

  /** Integer in [low, high], both inclusive. */
  between(low: number, high: number): number {
    return low + this.nextInt(high - low + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextUint32() / 2 ** 32 < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.nextInt(items.length)];
    if (item === undefined && items.length === 0) {
      throw new RangeError("Cannot pick from an empty array");
    }
    return item as T;
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
