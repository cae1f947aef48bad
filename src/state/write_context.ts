/**
 * What one applied entry may change: the staged rows (an overlay over the
 * store, applied in one store batch), the metadata, and the causes of its
 * changes. A service's apply writes only here; the host checks every staged
 * key against the service's keyspaces before the batch (an invariant).
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";
import type { KvRow, Versionstamp } from "../model/types.ts";
import type { StateStore } from "./state_store.ts";
import { toHex } from "../base/bytes.ts";

/** Pending rows of one entry: a row to write, or null to delete. */
export type Overlay = Map<string, { key: Uint8Array; row: KvRow | null }>;

/** Everything a service's apply sees and writes. */
export interface ApplyContext {
  /** The entry's log index. */
  readonly index: LogIndex;
  /** The entry's versionstamp (its index, 10 bytes). */
  readonly versionstamp: Versionstamp;
  /** The state before this entry; staged rows are in {@linkcode overlay}. */
  readonly store: StateStore;
  /** Rows staged by this entry. */
  readonly overlay: Overlay;
  /** Metadata staged by this entry, by name. */
  readonly meta: Map<string, Uint8Array>;
  /** Why a staged key changed, when not a plain write (e.g. `expire`), by hex key. */
  readonly causes: Map<string, string>;
  /** Runs `effect` on this node after the entry's store transaction (local only, e.g. listeners). */
  after(effect: () => void): void;
}

/** A fresh context for entry `index`. */
export function newApplyContext(
  index: LogIndex,
  versionstamp: Versionstamp,
  store: StateStore,
  effects: (() => void)[],
): ApplyContext {
  return {
    index,
    versionstamp,
    store,
    overlay: new Map(),
    meta: new Map(),
    causes: new Map(),
    after: (effect) => effects.push(effect),
  };
}

/** The staged row at `key`: from the overlay, else from the store. */
export function readThrough(
  context: Pick<ApplyContext, "store" | "overlay">,
  key: Uint8Array,
): KvRow | null {
  const pending = context.overlay.get(toHex(key));
  return pending !== undefined ? pending.row : context.store.get(key);
}

/**
 * Writers of internal (byte-valued, never expiring) rows into `overlay`,
 * all with the versionstamp of the write they belong to.
 */
export function internalRowWriter(overlay: Overlay, stamp: Versionstamp): {
  put(key: Uint8Array, value: Uint8Array): void;
  remove(key: Uint8Array): void;
} {
  return {
    put(key, value) {
      const row: KvRow = {
        key,
        value,
        encoding: "bytes",
        versionstamp: stamp,
        expireAtMs: null,
      };
      overlay.set(toHex(key), { key, row });
    },
    remove(key) {
      overlay.set(toHex(key), { key, row: null });
    },
  };
}
