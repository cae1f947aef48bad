/**
 * An ordered map from byte strings to values: a list of sorted blocks found
 * by binary search, so an insert moves at most one block's entries (not the
 * whole map). Blocks are copy-on-write, which makes {@linkcode
 * SortedBytesMap.snapshot} O(blocks) and gives readers a consistent view
 * while writes continue.
 *
 * @module
 */
import { assert } from "./assert.ts";
import { compareBytes } from "./bytes.ts";

/** Entries per block before it splits in two. */
const BLOCK_ENTRIES_MAX = 512;

interface Block<V> {
  keys: Uint8Array[];
  values: V[];
  /** True when a snapshot also references this block: copy before writing. */
  shared: boolean;
}

/** Index of the first key ≥ `key` in a sorted array (keys.length if none). */
function lowerBound(keys: readonly Uint8Array[], key: Uint8Array): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareBytes(keys[middle]!, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** A read-only ordered view. */
export class SortedBytesView<V> {
  protected blocks: Block<V>[];
  protected count: number;

  constructor(blocks: Block<V>[], count: number) {
    this.blocks = blocks;
    this.count = count;
  }

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** Index of the block that holds, or would hold, `key`. */
  protected blockIndex(key: Uint8Array): number {
    let low = 0;
    let high = this.blocks.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const keys = this.blocks[middle]!.keys;
      if (compareBytes(keys[keys.length - 1]!, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The value stored at `key`, or undefined. */
  get(key: Uint8Array): V | undefined {
    if (this.blocks.length === 0) return undefined;
    const block = this.blocks[this.blockIndex(key)]!;
    const i = lowerBound(block.keys, key);
    if (i < block.keys.length && compareBytes(block.keys[i]!, key) === 0) {
      return block.values[i];
    }
    return undefined;
  }

  /**
   * Entries with `start ≤ key < end` in key order (or reverse), at most `limit`.
   */
  *range(
    start: Uint8Array,
    end: Uint8Array,
    reverse = false,
  ): Generator<[Uint8Array, V]> {
    if (this.blocks.length === 0 || compareBytes(start, end) >= 0) return;
    if (!reverse) {
      let b = this.blockIndex(start);
      let i = lowerBound(this.blocks[b]!.keys, start);
      for (; b < this.blocks.length; b++, i = 0) {
        const block = this.blocks[b]!;
        for (; i < block.keys.length; i++) {
          if (compareBytes(block.keys[i]!, end) >= 0) return;
          yield [block.keys[i]!, block.values[i]!];
        }
      }
      return;
    }
    let b = this.blockIndex(end);
    let i = lowerBound(this.blocks[b]!.keys, end) - 1;
    for (; b >= 0; b--) {
      const block = this.blocks[b]!;
      if (i === Infinity) i = block.keys.length - 1;
      for (; i >= 0; i--) {
        if (compareBytes(block.keys[i]!, start) < 0) return;
        yield [block.keys[i]!, block.values[i]!];
      }
      i = Infinity;
    }
  }

  /** Every entry in key order. */
  *entries(): Generator<[Uint8Array, V]> {
    for (const block of this.blocks) {
      for (let i = 0; i < block.keys.length; i++) {
        yield [block.keys[i]!, block.values[i]!];
      }
    }
  }
}

/** A mutable ordered map from byte strings to values. */
export class SortedBytesMap<V> extends SortedBytesView<V> {
  constructor() {
    super([], 0);
  }

  /** A consistent read-only view of the current entries; later writes do not show in it. */
  snapshot(): SortedBytesView<V> {
    for (const block of this.blocks) block.shared = true;
    return new SortedBytesView(this.blocks.slice(), this.count);
  }

  /** The block at `b`, copied first if a snapshot shares it. */
  private writable(b: number): Block<V> {
    const block = this.blocks[b]!;
    if (!block.shared) return block;
    const copy = {
      keys: block.keys.slice(),
      values: block.values.slice(),
      shared: false,
    };
    this.blocks[b] = copy;
    return copy;
  }

  /** Inserts or replaces the value at `key`. */
  set(key: Uint8Array, value: V): void {
    if (this.blocks.length === 0) {
      this.blocks.push({ keys: [key], values: [value], shared: false });
      this.count = 1;
      return;
    }
    const b = this.blockIndex(key);
    const block = this.writable(b);
    const i = lowerBound(block.keys, key);
    if (i < block.keys.length && compareBytes(block.keys[i]!, key) === 0) {
      block.values[i] = value;
      return;
    }
    block.keys.splice(i, 0, key);
    block.values.splice(i, 0, value);
    this.count++;
    if (block.keys.length > BLOCK_ENTRIES_MAX) {
      const half = block.keys.length >>> 1;
      const upper = {
        keys: block.keys.splice(half),
        values: block.values.splice(half),
        shared: false,
      };
      this.blocks.splice(b + 1, 0, upper);
    }
  }

  /** Removes `key`; returns whether it was present. */
  delete(key: Uint8Array): boolean {
    if (this.blocks.length === 0) return false;
    const b = this.blockIndex(key);
    const found = this.blocks[b]!;
    const i = lowerBound(found.keys, key);
    if (i >= found.keys.length || compareBytes(found.keys[i]!, key) !== 0) {
      return false;
    }
    const block = this.writable(b);
    block.keys.splice(i, 1);
    block.values.splice(i, 1);
    this.count--;
    if (block.keys.length === 0) this.blocks.splice(b, 1);
    assert(this.count >= 0, "SortedBytesMap count must stay non-negative");
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.blocks = [];
    this.count = 0;
  }
}
