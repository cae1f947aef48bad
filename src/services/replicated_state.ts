/**
 * The built-in services' state host as today's Raft runner sees it: every
 * committed entry is applied in order and its result returned encoded
 * (MessagePack), and the whole state can be exported as a Raft snapshot and
 * installed from one. The host itself (`state/host.ts`) already implements
 * the structured-result port (`apply(entry): unknown`, `encodeResult`,
 * `decodeResult`); this adapter keeps the byte-result runner working.
 *
 * @module
 */
import type { Entry, LogIndex, Snapshot } from "../raft/types.ts";
import type { SnapshotChunk } from "../state/state_store.ts";
import type { KvApplyResult } from "../model/types.ts";
import type { NodeAddress } from "../protocol/cluster.ts";
import type { KvStateMachine } from "./state_machine.ts";
import { encodeClusterEntry } from "./entries.ts";
import {
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_FULL,
  JOIN_TOKEN_USED,
  JOIN_TOKENS_MAX,
  REVOKED_MAX,
} from "./cluster/api.ts";
import { Decoder, Encoder } from "@msgpack/msgpack";

export {
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_FULL,
  JOIN_TOKEN_USED,
  JOIN_TOKENS_MAX,
  REVOKED_MAX,
};

// Results are small: one encoder and decoder serve them all (msgpack's
// encode() and decode() build a new one per call).
const resultEncoder = new Encoder();
const resultDecoder = new Decoder();

/** A cluster entry: records where a member can be reached. */
export function encodeMemberCommand(address: NodeAddress): Uint8Array {
  return encodeClusterEntry({ type: "member", address });
}

/** A cluster entry: revokes a removed member's credential on every node, for good. */
export function encodeRevokeCommand(nodeId: string): Uint8Array {
  return encodeClusterEntry({ type: "revoke", nodeId });
}

/**
 * A cluster entry: uses a join token once. `nowMs` is the proposing
 * leader's clock (tokens expired by it are forgotten, identically on every
 * replica). Its result is {@linkcode JOIN_TOKEN_FRESH} the first time only.
 */
export function encodeJoinTokenCommand(
  nonce: string,
  expiresAtMs: number,
  nowMs: number,
): Uint8Array {
  return encodeClusterEntry({ type: "joinToken", nonce, expiresAtMs, nowMs });
}

/**
 * What applying one entry answers its proposer: the service's structured
 * result (a KV `KvApplyResult`, a join token's outcome number, …), or
 * undefined for blank and configuration entries.
 */
export type KvStateResult = unknown;

/** Encodes an apply result for a waiting (possibly remote) proposer. */
export function encodeApplyResult(result: unknown): Uint8Array {
  return resultEncoder.encode(result ?? null);
}

/**
 * A proposal's result: decoded when it arrives as bytes (today's runner),
 * as is when structured (the runner of the structured-result port).
 */
export function decodeProposalResult(result: unknown): unknown {
  return result instanceof Uint8Array
    ? (result.length === 0 ? undefined : resultDecoder.decode(result))
    : result;
}

/**
 * Decodes a KV apply result (bytes or structured).
 *
 * @throws {TypeError} When it is not a result.
 */
export function decodeApplyResult(result: unknown): KvApplyResult {
  const value = decodeProposalResult(result) as KvApplyResult;
  if (
    typeof value !== "object" || value === null || typeof value.ok !== "boolean"
  ) {
    throw new TypeError(
      "Cannot decode apply result: expected an object with 'ok'",
    );
  }
  return value;
}

/** Adapts a {@linkcode KvStateMachine} (its state host) to the runner. */
export class KvReplicatedState {
  readonly kv: KvStateMachine;

  constructor(kv: KvStateMachine) {
    this.kv = kv;
  }

  /** The members' addresses as replicated so far. */
  members(): NodeAddress[] {
    return this.kv.cluster.members();
  }

  /** Calls `listener` whenever the replicated member list changes. */
  onMembers(listener: (members: NodeAddress[]) => void): void {
    this.kv.cluster.onMembers(listener);
  }

  /** Node ids whose credentials are revoked (removed members), as replicated so far. */
  revoked(): string[] {
    return this.kv.cluster.revoked();
  }

  /** Calls `listener` whenever the revoked set changes (or a snapshot is installed). */
  onRevoked(listener: (revoked: string[]) => void): void {
    this.kv.cluster.onRevoked(listener);
  }

  appliedIndex(): LogIndex {
    return this.kv.appliedIndex();
  }

  /**
   * Applies one entry and returns its structured result (undefined for blank
   * and configuration entries); it is encoded only for a forwarded proposal.
   */
  apply(entry: Entry): unknown {
    return this.kv.host.apply(entry);
  }

  /** See `StateHost.checkProposal`: refuses what apply would treat as an invariant. */
  checkProposal(data: Uint8Array): void {
    this.kv.host.checkProposal(data);
  }

  /** Encodes a result for the answer to a forwarded proposal. */
  encodeResult(result: unknown): Uint8Array {
    return encodeApplyResult(result);
  }

  /** Decodes a forwarded proposal's answer (see {@linkcode encodeResult}). */
  decodeResult(bytes: Uint8Array): unknown {
    const value = resultDecoder.decode(bytes);
    return value === null ? undefined : value;
  }

  /** The whole state at the applied index, as the store's snapshot chunks. */
  exportChunks(): SnapshotChunk[] {
    return this.kv.host.exportChunks();
  }

  /** The whole state, as MessagePack of the store's snapshot chunks. */
  snapshotData(): Uint8Array {
    return this.kv.host.snapshotData();
  }

  installSnapshot(snapshot: Snapshot): void {
    this.kv.host.installSnapshot(snapshot);
  }

  sync(): void {
    this.kv.host.sync();
  }

  /** Applies several entries in one state-store transaction. */
  batch<T>(work: () => T): T {
    return this.kv.host.batch(work);
  }
}
