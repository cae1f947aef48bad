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
import type { KvStateMachine } from "./state_machine.ts";
import type { SnapshotChunk } from "./state_store.ts";
import type { KvApplyResult } from "../model/types.ts";
import type { NodeAddress } from "../node/node_api.ts";

/**
 * First byte of a system entry (cluster bookkeeping, not a KV command). KV
 * commands are MessagePack maps, which never start with 0x00.
 */
const SYSTEM_MARKER = 0x00;
/** State-store metadata holding the members' addresses (JSON), carried by snapshots. */
const MEMBERS_META = "cluster.members";

/** State-store metadata holding the revoked node ids (JSON), carried by snapshots. */
const REVOKED_META = "cluster.revoked";
/** State-store metadata holding the join tokens used and not yet expired (JSON). */
const JOIN_TOKENS_META = "cluster.joinTokens";
/** Most revoked node ids kept; more revocations are refused (a bound, not expected). */
export const REVOKED_MAX = 10_000;
/** Most unexpired join tokens recorded as used; a join beyond it is refused until some expire. */
export const JOIN_TOKENS_MAX = 10_000;

function systemCommand(command: Record<string, unknown>): Uint8Array {
  const body = encode(command);
  const out = new Uint8Array(body.length + 1);
  out[0] = SYSTEM_MARKER;
  out.set(body, 1);
  return out;
}

/** A system entry: records where a member can be reached. */
export function encodeMemberCommand(address: NodeAddress): Uint8Array {
  return systemCommand({ type: "member", address });
}

/** A system entry: revokes a removed member's credential on every node, for good. */
export function encodeRevokeCommand(nodeId: string): Uint8Array {
  return systemCommand({ type: "revoke", nodeId });
}

/**
 * A system entry: uses a join token once. `nowMs` is the proposing leader's
 * clock (tokens expired by it are forgotten, identically on every replica).
 * Applying it answers {@linkcode JOIN_TOKEN_FRESH} the first time only.
 */
export function encodeJoinTokenCommand(
  nonce: string,
  expiresAtMs: number,
  nowMs: number,
): Uint8Array {
  return systemCommand({ type: "joinToken", nonce, expiresAtMs, nowMs });
}

/** Apply output of a join token's first use. */
export const JOIN_TOKEN_FRESH = 1;
/** Apply output of a join token used before. */
export const JOIN_TOKEN_USED = 2;
/** Apply output when too many unexpired tokens are recorded. */
export const JOIN_TOKEN_FULL = 3;

interface UsedToken {
  readonly nonce: string;
  readonly expiresAtMs: number;
}

/**
 * What applying one entry answers its proposer: a KV command's result, a
 * join token's outcome ({@linkcode JOIN_TOKEN_FRESH} ...), or null.
 */
export type KvStateResult = KvApplyResult | number | null;

/**
 * The KV command's result in `result`.
 *
 * @throws {TypeError} When `result` is not one (the entry was no KV command).
 */
export function applyResultOf(result: KvStateResult): KvApplyResult {
  if (
    typeof result !== "object" || result === null ||
    typeof result.ok !== "boolean"
  ) {
    throw new TypeError(
      "Cannot read apply result: expected an object with 'ok'",
    );
  }
  return result;
}

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
  readonly #memberListeners = new Set<(members: NodeAddress[]) => void>();
  readonly #revokedListeners = new Set<(revoked: string[]) => void>();

  constructor(kv: KvStateMachine) {
    this.kv = kv;
  }

  /** The members' addresses as replicated so far. */
  members(): NodeAddress[] {
    const raw = this.kv.store.meta(MEMBERS_META);
    return raw === null
      ? []
      : JSON.parse(new TextDecoder().decode(raw)) as NodeAddress[];
  }

  /** Calls `listener` whenever the replicated member list changes. */
  onMembers(listener: (members: NodeAddress[]) => void): void {
    this.#memberListeners.add(listener);
  }

  /** Node ids whose credentials are revoked (removed members), as replicated so far. */
  revoked(): string[] {
    return this.#metaList<string>(REVOKED_META);
  }

  /** Calls `listener` whenever the revoked set changes (or a snapshot is installed). */
  onRevoked(listener: (revoked: string[]) => void): void {
    this.#revokedListeners.add(listener);
  }

  #metaList<T>(name: string): T[] {
    const raw = this.kv.store.meta(name);
    return raw === null ? [] : JSON.parse(new TextDecoder().decode(raw)) as T[];
  }

  #applyRevoke(nodeId: string, meta: Map<string, Uint8Array>): boolean {
    const revoked = this.revoked();
    if (revoked.includes(nodeId) || revoked.length >= REVOKED_MAX) return false;
    meta.set(
      REVOKED_META,
      new TextEncoder().encode(JSON.stringify([...revoked, nodeId])),
    );
    return true;
  }

  #applyJoinToken(
    command: { nonce?: unknown; expiresAtMs?: unknown; nowMs?: unknown },
    meta: Map<string, Uint8Array>,
  ): number {
    const { nonce, expiresAtMs, nowMs } = command;
    if (
      typeof nonce !== "string" || typeof expiresAtMs !== "number" ||
      typeof nowMs !== "number"
    ) return JOIN_TOKEN_USED;
    const live = this.#metaList<UsedToken>(JOIN_TOKENS_META).filter((t) =>
      t.expiresAtMs > nowMs
    );
    let outcome = JOIN_TOKEN_FRESH;
    if (live.some((t) => t.nonce === nonce)) outcome = JOIN_TOKEN_USED;
    else if (live.length >= JOIN_TOKENS_MAX) outcome = JOIN_TOKEN_FULL;
    else live.push({ nonce, expiresAtMs });
    meta.set(JOIN_TOKENS_META, new TextEncoder().encode(JSON.stringify(live)));
    return outcome;
  }

  #applySystem(entry: Entry): number | null {
    let command: {
      type?: string;
      address?: NodeAddress;
      nodeId?: unknown;
      nonce?: unknown;
      expiresAtMs?: unknown;
      nowMs?: unknown;
    };
    try {
      command = decode(entry.data.subarray(1)) as typeof command;
    } catch {
      command = {};
    }
    let meta: Map<string, Uint8Array> | undefined;
    let members: NodeAddress[] | null = null;
    let revokedChanged = false;
    let output: number | null = null;
    if (command.type === "revoke" && typeof command.nodeId === "string") {
      meta = new Map();
      revokedChanged = this.#applyRevoke(command.nodeId, meta);
    } else if (command.type === "joinToken") {
      meta = new Map();
      output = this.#applyJoinToken(command, meta);
    } else if (
      command.type === "member" && typeof command.address?.nodeId === "string"
    ) {
      const address = command.address;
      members = [
        ...this.members().filter((m) => m.nodeId !== address.nodeId),
        address,
      ];
      meta = new Map([[
        MEMBERS_META,
        new TextEncoder().encode(JSON.stringify(members)),
      ]]);
    }
    // An unknown system entry changes nothing, identically on every replica.
    this.kv.store.apply({
      puts: [],
      deletes: [],
      appliedIndex: entry.index,
      ...(meta ? { meta } : {}),
    });
    if (members !== null) {
      for (const listener of this.#memberListeners) listener(members);
    }
    if (revokedChanged) {
      const revoked = this.revoked();
      for (const listener of this.#revokedListeners) listener(revoked);
    }
    return output;
  }

  appliedIndex(): LogIndex {
    return this.kv.appliedIndex();
  }

  /** Applies one entry; its result is encoded only for a forwarded proposal. */
  apply(entry: Entry): KvStateResult {
    if (entry.type === "normal" && entry.data[0] === SYSTEM_MARKER) {
      return this.#applySystem(entry);
    }
    if (entry.type === "normal" && entry.data.byteLength > 0) {
      return this.kv.apply(entry.index, entry.data);
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
    return null;
  }

  encodeResult(result: KvStateResult): Uint8Array {
    return encode(result);
  }

  /**
   * Decodes a forwarded proposal's answer.
   *
   * @throws {TypeError} When the bytes are not a result.
   */
  decodeResult(bytes: Uint8Array): KvStateResult {
    const value = decode(bytes);
    if (value === null || typeof value === "number") return value;
    return decodeApplyResult(bytes);
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
      const members = this.members();
      if (members.length > 0) {
        for (const listener of this.#memberListeners) listener(members);
      }
      const revoked = this.revoked();
      for (const listener of this.#revokedListeners) listener(revoked);
    } catch (error) {
      installer.abort();
      throw error;
    }
  }

  sync(): void {
    this.kv.store.sync();
  }

  /** Applies several entries in one state-store transaction. */
  batch<T>(work: () => T): T {
    return this.kv.store.batch(work);
  }
}
