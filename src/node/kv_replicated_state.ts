/**
 * The KV state machine as the Raft runner sees it: every committed entry is
 * applied in order (KV commands through `KvStateMachine`; blank and
 * membership entries just advance the applied index), and the whole state
 * can be exported as a Raft snapshot and installed from one.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import type { Entry, LogIndex, Snapshot } from "../raft/types.ts";
import type { KvStateMachine } from "../kv/state_machine.ts";
import type { SnapshotChunk } from "../kv/state_store.ts";
import type { KvApplyResult } from "../kv/types.ts";

const EMPTY = new Uint8Array(0);

/** Encodes an apply result for a waiting (possibly remote) proposer. */
export function encodeApplyResult(result: KvApplyResult): Uint8Array {
  return encode(result);
}

/**
 * Decodes an apply result.
 *
 * @throws {TypeError} When the bytes are not a result.
 */
export function decodeApplyResult(bytes: Uint8Array): KvApplyResult {
  const value = decode(bytes) as KvApplyResult;
  if (
    typeof value !== "object" || value === null || typeof value.ok !== "boolean"
  ) {
    throw new TypeError(
      "Cannot decode apply result: expected an object with 'ok'",
    );
  }
  return value;
}

/** Adapts a {@linkcode KvStateMachine} to the runner. */
export class KvReplicatedState {
  readonly kv: KvStateMachine;

  constructor(kv: KvStateMachine) {
    this.kv = kv;
  }

  appliedIndex(): LogIndex {
    return this.kv.appliedIndex();
  }

  apply(entry: Entry): Uint8Array {
    if (entry.type === "normal" && entry.data.byteLength > 0) {
      return encodeApplyResult(this.kv.apply(entry.index, entry.data));
    }
    // Blank and configuration entries change no key; the membership they
    // carry lives in the Raft log and snapshot metadata.
    const meta = entry.type === "confChange"
      ? new Map([["raft.conf", entry.data]])
      : undefined;
    this.kv.store.apply({
      puts: [],
      deletes: [],
      appliedIndex: entry.index,
      ...(meta ? { meta } : {}),
    });
    return EMPTY;
  }

  /** The whole state at the applied index, as the store's snapshot chunks. */
  exportChunks(): SnapshotChunk[] {
    const chunks: SnapshotChunk[] = [];
    const iterator = this.kv.store.exportSnapshot();
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      chunks.push(next.value);
    }
    return chunks;
  }

  /** The whole state, as MessagePack of the store's snapshot chunks. */
  snapshotData(): Uint8Array {
    return encode(this.exportChunks());
  }

  installSnapshot(snapshot: Snapshot): void {
    const chunks = decode(snapshot.data) as SnapshotChunk[];
    if (!Array.isArray(chunks)) {
      throw new TypeError("Cannot install snapshot: expected a list of chunks");
    }
    const installer = this.kv.store.beginInstall();
    try {
      for (const chunk of chunks) installer.write(chunk);
      installer.commit();
    } catch (error) {
      installer.abort();
      throw error;
    }
  }

  sync(): void {
    this.kv.store.sync();
  }
}
