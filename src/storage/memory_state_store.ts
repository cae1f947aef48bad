/**
 * The reference {@linkcode StateStore}: everything in memory, in sorted
 * copy-on-write blocks, so snapshots are cheap and consistent.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import { type LogIndex, logIndex } from "../raft/types.ts";
import type { KvRow } from "../model/types.ts";
import { SortedBytesMap, type SortedBytesView } from "../base/sorted_map.ts";
import { concatBytes } from "../base/bytes.ts";
import { chunkRows, ChunkSequence } from "../state/snapshot.ts";
import {
  type ScanOptions,
  SNAPSHOT_CHUNK_BYTES_MAX,
  type SnapshotChunk,
  type SnapshotInstaller,
  type StateBatch,
  type StateStore,
} from "../state/state_store.ts";

/** The expiry index key: 8-byte big-endian deadline, then the row key. */
function expiryKey(deadlineMs: number, key: Uint8Array): Uint8Array {
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(deadlineMs));
  return concatBytes(prefix, key);
}

interface MemoryState {
  rows: SortedBytesMap<KvRow>;
  expiry: SortedBytesMap<true>;
  meta: Map<string, Uint8Array>;
  appliedIndex: LogIndex;
}

function emptyState(): MemoryState {
  return {
    rows: new SortedBytesMap(),
    expiry: new SortedBytesMap(),
    meta: new Map(),
    appliedIndex: logIndex(0),
  };
}

function putRow(state: MemoryState, row: KvRow): void {
  const previous = state.rows.get(row.key);
  if (previous !== undefined && previous.expireAtMs !== null) {
    state.expiry.delete(expiryKey(previous.expireAtMs, previous.key));
  }
  // Copy: the row may be a view into a larger buffer (a decoded log entry).
  // One buffer holds the three copies (an allocation costs more than the
  // bytes); each field is a view of its own part of it.
  const keyBytes = row.key.length;
  const valueEnd = keyBytes + row.value.length;
  const copy = new Uint8Array(valueEnd + row.versionstamp.length);
  copy.set(row.key, 0);
  copy.set(row.value, keyBytes);
  copy.set(row.versionstamp, valueEnd);
  const stored: KvRow = {
    key: copy.subarray(0, keyBytes),
    value: copy.subarray(keyBytes, valueEnd),
    encoding: row.encoding,
    versionstamp: copy.subarray(valueEnd),
    expireAtMs: row.expireAtMs,
  };
  state.rows.set(stored.key, stored);
  if (stored.expireAtMs !== null) {
    state.expiry.set(expiryKey(stored.expireAtMs, stored.key), true);
  }
}

/** An in-memory {@linkcode StateStore}. */
export class MemoryStateStore implements StateStore {
  private state: MemoryState = emptyState();
  private installing = false;

  get(key: Uint8Array): KvRow | null {
    return this.state.rows.get(key) ?? null;
  }

  scan(options: ScanOptions): KvRow[] {
    assert(options.limit >= 1, "scan() needs a positive limit");
    const out: KvRow[] = [];
    for (
      const [, row] of this.state.rows.range(
        options.start,
        options.end,
        options.reverse,
      )
    ) {
      out.push(row);
      if (out.length >= options.limit) break;
    }
    return out;
  }

  apply(batch: StateBatch): void {
    const state = this.state;
    assert(
      batch.appliedIndex > state.appliedIndex,
      `apply() must move the applied index forward: ${batch.appliedIndex} after ${state.appliedIndex}`,
    );
    for (const key of batch.deletes) {
      const previous = state.rows.get(key);
      if (previous === undefined) continue;
      if (previous.expireAtMs !== null) {
        state.expiry.delete(expiryKey(previous.expireAtMs, key));
      }
      state.rows.delete(key);
    }
    for (const row of batch.puts) putRow(state, row);
    for (const [name, value] of batch.meta ?? []) {
      state.meta.set(name, value.slice());
    }
    state.appliedIndex = batch.appliedIndex;
  }

  appliedIndex(): LogIndex {
    return this.state.appliedIndex;
  }

  meta(name: string): Uint8Array | null {
    return this.state.meta.get(name) ?? null;
  }

  expiredKeys(timestampMs: number, limit: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    if (timestampMs < 0 || limit <= 0) return out;
    const end = expiryKey(timestampMs + 1, new Uint8Array(0));
    for (const [composite] of this.state.expiry.range(new Uint8Array(0), end)) {
      out.push(composite.slice(8));
      if (out.length >= limit) break;
    }
    return out;
  }

  exportSnapshot(
    chunkBytesMax = SNAPSHOT_CHUNK_BYTES_MAX,
  ): Iterator<SnapshotChunk> {
    const view: SortedBytesView<KvRow> = this.state.rows.snapshot();
    const meta = [...this.state.meta].map(([name, value]) =>
      [name, value] as const
    );
    const rows = (function* () {
      for (const [, row] of view.entries()) yield row;
    })();
    return chunkRows(this.state.appliedIndex, meta, rows, chunkBytesMax);
  }

  beginInstall(): SnapshotInstaller {
    if (this.installing) {
      throw new RangeError(
        "Cannot begin snapshot install: another install is in progress",
      );
    }
    this.installing = true;
    const staged = emptyState();
    const sequence = new ChunkSequence();
    const finish = () => {
      this.installing = false;
    };
    return {
      write: (chunk) => {
        sequence.accept(chunk);
        for (const row of chunk.rows) putRow(staged, row);
        for (const [name, value] of chunk.meta) {
          staged.meta.set(name, value.slice());
        }
      },
      commit: () => {
        staged.appliedIndex = sequence.finish();
        this.state = staged;
        finish();
      },
      abort: finish,
    };
  }

  /** Runs `work`: a memory store applies each batch at once anyway. */
  batch<T>(work: () => T): T {
    return work();
  }

  /** Nothing to do: a memory store is never durable. */
  sync(): void {}

  close(): void {
    this.state = emptyState();
  }
}
