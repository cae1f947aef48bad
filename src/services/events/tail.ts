/**
 * A node's decoded tail of the events history, shared by its watch
 * streams. Without it every stream scans and decodes every new revision
 * itself, so a node's watch cost grows as streams × writes (in the watch
 * bench the history reads were 14% of a follower's time with 8 streams);
 * with it each new revision is read and decoded once and every stream at
 * the tail filters the same decoded events.
 *
 * The tail holds every history row of revisions `(low, high]`, in key
 * order, where `high` was the applied head when it last grew. History rows
 * at or below the applied head never change (apply is deterministic and
 * compaction only deletes below the floor, which a read checks first), so
 * a row held stays valid; a head below `high` (a store put back) empties
 * the tail. It is bounded in rows and bytes: the oldest whole revisions go
 * first, raising `low`. A read it does not cover goes to the store.
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import { historyKey, parseHistoryKey } from "./keys.ts";
import { decodeRecord, type HistoryEvent } from "./records.ts";

/** One decoded history row. */
export interface TailRow {
  readonly revision: bigint;
  readonly index: number;
  readonly event: HistoryEvent;
  /** The stored record's length (what page byte budgets count). */
  readonly bytes: number;
}

/** Bounds of a tail. */
export interface TailLimits {
  /** Rows held at most (default 8,192). */
  readonly rowsMax?: number;
  /** Record bytes held at most (default 16 MiB). */
  readonly bytesMax?: number;
}

/** Rows one catch-up scan of the store reads. */
const FILL_SCAN_ROWS = 1_024;

/** Compares `(revision, index)` pairs. */
function compare(
  a: { readonly revision: bigint; readonly index: number },
  b: { readonly revision: bigint; readonly index: number },
): number {
  if (a.revision !== b.revision) return a.revision < b.revision ? -1 : 1;
  return a.index - b.index;
}

/** The decoded tail over one store. */
export class HistoryTail {
  readonly #store: Pick<StateStore, "scan" | "appliedIndex">;
  readonly #rowsMax: number;
  readonly #bytesMax: number;
  /** Rows of revisions `(#low, #high]`, in order, from `#first`. */
  #rows: TailRow[] = [];
  #first = 0;
  #bytes = 0;
  #low = 0n;
  #high = 0n;

  constructor(
    store: Pick<StateStore, "scan" | "appliedIndex">,
    limits: TailLimits = {},
  ) {
    this.#store = store;
    this.#rowsMax = limits.rowsMax ?? 8_192;
    this.#bytesMax = limits.bytesMax ?? 16 * 1024 * 1024;
    // Everything applied from now on is held (until trimmed).
    this.#reset(BigInt(store.appliedIndex()));
  }

  /** Rows held now (for tests and metrics). */
  get size(): number {
    return this.#rows.length - this.#first;
  }

  /**
   * Up to `limit` rows from `(fromRevision, fromIndex)` (inclusive) to
   * revision `to` (inclusive), in order, exactly as a store scan of that
   * range would give them; null when the tail cannot cover the range, and
   * the caller reads the store.
   */
  rows(
    from: { readonly revision: bigint; readonly index: number },
    to: bigint,
    limit: number,
  ): TailRow[] | null {
    if (!this.#grow(to)) return null;
    if (from.revision <= this.#low || to > this.#high) return null;
    const out: TailRow[] = [];
    let i = this.#search(from);
    for (; i < this.#rows.length && out.length < limit; i++) {
      const row = this.#rows[i]!;
      if (row.revision > to) break;
      out.push(row);
    }
    return out;
  }

  /** Brings the tail up to `to` (≤ the applied head); false if it could not. */
  #grow(to: bigint): boolean {
    const head = BigInt(this.#store.appliedIndex());
    if (head < this.#high) this.#reset(head);
    if (to <= this.#high) return true;
    // Catch up to the head in bounded scans; a gap larger than the tail
    // holds restarts it at the head.
    let next = historyKey(this.#high + 1n, 0);
    const end = historyKey(head + 1n, 0);
    for (let scans = 0;; scans++) {
      if (scans * FILL_SCAN_ROWS >= this.#rowsMax) {
        this.#reset(head);
        return to <= this.#high;
      }
      const rows = this.#store.scan({
        start: next,
        end,
        limit: FILL_SCAN_ROWS,
      });
      for (const row of rows) {
        const at = parseHistoryKey(row.key);
        this.#rows.push({
          revision: at.revision,
          index: at.index,
          event: decodeRecord(at.revision, at.index, row.value),
          bytes: row.value.length,
        });
        this.#bytes += row.value.length;
      }
      if (rows.length < FILL_SCAN_ROWS) break;
      const last = this.#rows[this.#rows.length - 1]!;
      next = historyKey(last.revision, last.index + 1);
    }
    this.#high = head;
    this.#trim();
    return true;
  }

  /** Drops the oldest whole revisions while over a bound. */
  #trim(): void {
    while (
      this.size > this.#rowsMax || this.#bytes > this.#bytesMax
    ) {
      const revision = this.#rows[this.#first]!.revision;
      while (
        this.#first < this.#rows.length &&
        this.#rows[this.#first]!.revision === revision
      ) {
        this.#bytes -= this.#rows[this.#first]!.bytes;
        this.#first++;
      }
      this.#low = revision;
    }
    if (this.#first > 4_096 && this.#first * 2 > this.#rows.length) {
      this.#rows = this.#rows.slice(this.#first);
      this.#first = 0;
    }
  }

  /** Empties the tail at `head`. */
  #reset(head: bigint): void {
    this.#rows = [];
    this.#first = 0;
    this.#bytes = 0;
    this.#low = head;
    this.#high = head;
  }

  /** The position of the first row at or after `at`. */
  #search(at: { readonly revision: bigint; readonly index: number }): number {
    let lo = this.#first;
    let hi = this.#rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compare(this.#rows[mid]!, at) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
