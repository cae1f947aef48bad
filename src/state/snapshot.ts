/**
 * Snapshot helpers shared by the state stores: chunking an ordered row
 * stream, and checking that chunks arrive in order.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";
import type { KvRow } from "../model/types.ts";
import { rowBytes, type SnapshotChunk } from "./state_store.ts";

/** Cuts an ordered stream of rows into chunks of about `chunkBytesMax` bytes. */
export function* chunkRows(
  appliedIndex: LogIndex,
  meta: readonly (readonly [string, Uint8Array])[],
  rows: Iterator<KvRow>,
  chunkBytesMax: number,
): Generator<SnapshotChunk> {
  if (!(chunkBytesMax > 0)) {
    throw new RangeError(
      `Cannot export snapshot: 'chunkBytesMax' must be positive: current value is ${chunkBytesMax}`,
    );
  }
  // Stopped early (a backup download cancelled): release the rows' reader.
  try {
    let sequence = 0;
    let pending: KvRow[] = [];
    let pendingBytes = 0;
    let next = rows.next();
    while (!next.done) {
      pending.push(next.value);
      pendingBytes += rowBytes(next.value);
      next = rows.next();
      if (pendingBytes >= chunkBytesMax && !next.done) {
        yield {
          appliedIndex,
          sequence,
          rows: pending,
          meta: sequence === 0 ? meta : [],
          last: false,
        };
        sequence++;
        pending = [];
        pendingBytes = 0;
      }
    }
    yield {
      appliedIndex,
      sequence,
      rows: pending,
      meta: sequence === 0 ? meta : [],
      last: true,
    };
  } finally {
    rows.return?.();
  }
}

/** Tracks the order of chunks an installer receives. */
export class ChunkSequence {
  private expected = 0;
  private appliedIndex: LogIndex | null = null;
  private done = false;

  /** Checks the next chunk. @throws {RangeError} When it is out of order or from another snapshot. */
  accept(chunk: SnapshotChunk): void {
    if (this.done) {
      throw new RangeError(
        "Cannot install snapshot chunk: the last chunk was already written",
      );
    }
    if (chunk.sequence !== this.expected) {
      throw new RangeError(
        `Cannot install snapshot chunk: expected sequence ${this.expected}, received ${chunk.sequence}`,
      );
    }
    if (
      this.appliedIndex !== null && chunk.appliedIndex !== this.appliedIndex
    ) {
      throw new RangeError(
        `Cannot install snapshot chunk: it belongs to index ${chunk.appliedIndex}, not ${this.appliedIndex}`,
      );
    }
    this.appliedIndex = chunk.appliedIndex;
    this.expected++;
    this.done = chunk.last;
  }

  /** The snapshot's applied index. @throws {RangeError} Unless the last chunk was accepted. */
  finish(): LogIndex {
    if (!this.done || this.appliedIndex === null) {
      throw new RangeError(
        "Cannot commit snapshot: the last chunk has not been written",
      );
    }
    return this.appliedIndex;
  }
}
