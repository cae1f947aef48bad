/**
 * The state a simulated node replicates, behind one small interface with two
 * implementations: the simple string map (`map`) and Aspen's real Deno KV
 * state machine over a memory store (`kv`, issue 4). Both answer the same
 * client commands, so the history the checker sees is the same either way;
 * the KV one turns every write into atomic operations with versionstamp
 * checks, u64 sums, min/max and versionstamped keys, and is compared across
 * replicas by `stateHash`.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { encodeKey } from "../model/key_codec.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import {
  KvStateMachine as DenoKvStateMachine,
  type KvStateMachineKnobs,
} from "../services/state_machine.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { encodeKvEntry as encodeKvCommand } from "../services/entries.ts";
import { stateHash } from "../state/state_hash.ts";
import type { SnapshotChunk } from "../state/state_store.ts";
import type { KvCheck, KvMutation, Versionstamp } from "../model/types.ts";
import type { LogIndex } from "../raft/types.ts";
import {
  commandId,
  type KvCommand,
  KvStateMachine,
} from "./kv_state_machine.ts";
import type { KvOutput } from "./lincheck.ts";

/** Session results the simulator's KV replicas keep (the real table keeps 10,000). */
export const SIM_SESSION_RESULTS_MAX = 1;

/**
 * The output of a write whose first result is no longer kept (session
 * eviction horizon): compared by identity, the client records the
 * operation as unknown.
 */
export const OUTCOME_UNKNOWN: KvOutput = Object.freeze({ ok: false });

/** A node's replicated state: applied in log order, read, hashed, snapshotted. */
export interface Replica {
  /** Applies the client command of entry `index`; returns what the client is told. */
  apply(index: LogIndex, command: KvCommand): KvOutput;
  /** The value at `key` in the applied state. */
  read(key: string): string | null;
  /** Identity of the whole applied state, equal on replicas that applied the same log. */
  hash(): string;
  /** Serializes the applied state. */
  snapshot(): Uint8Array;
  /** Replaces the state with a snapshot's. */
  restore(data: Uint8Array): void;
  /** Hashing is cheap enough to compare replicas at every applied index. */
  readonly hashEveryIndex: boolean;
}

/** The simple string map the first simulator replicated. */
export class MapReplica implements Replica {
  readonly #machine = new KvStateMachine();
  readonly hashEveryIndex = true;

  apply(_index: LogIndex, command: KvCommand): KvOutput {
    return this.#machine.apply(command.op);
  }

  read(key: string): string | null {
    return this.#machine.read(key);
  }

  hash(): string {
    return this.#machine.canonical();
  }

  snapshot(): Uint8Array {
    return encode(this.#machine.entries());
  }

  restore(data: Uint8Array): void {
    this.#machine.restore(decode(data) as [string, string][]);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** A versionstamp no commit ever issues: a check against it always fails. */
const NEVER_VERSIONSTAMP: Versionstamp = new Uint8Array(10).fill(0xff);
/** Row bytes per chunk when exporting a snapshot. */
const snapshotChunkBytes = 4096;

function u64(value: number): { encoding: "le64"; data: Uint8Array } {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, BigInt(value), true);
  return { encoding: "le64", data };
}

/** Aspen's Deno KV state machine (memory store) as the replicated state. */
export class KvReplica implements Replica {
  readonly #knobs: KvStateMachineKnobs;
  #store = new MemoryStateStore();
  #machine: DenoKvStateMachine;
  readonly hashEveryIndex = false;

  /**
   * @param knobs Planted bugs of the KV state machine. The session table
   *   keeps only {@linkcode SIM_SESSION_RESULTS_MAX} results, so retries
   *   meet evicted results within a run.
   */
  constructor(knobs: KvStateMachineKnobs = {}) {
    this.#knobs = { resultsMax: SIM_SESSION_RESULTS_MAX, ...knobs };
    this.#machine = new DenoKvStateMachine(this.#store, this.#knobs);
  }

  apply(index: LogIndex, command: KvCommand): KvOutput {
    const op = command.op;
    if (op.op === "get") return { value: this.read(op.key) };
    const exact = (command.stock === true || command.session === true) &&
      (op.op === "put" || op.op === "delete");
    const key = encodeKey(["sim", op.key]);
    const current = this.#machine.get(key);
    const currentValue = current === null
      ? null
      : decoder.decode(current.value.data);
    let checks: KvCheck[] = [];
    let main: KvMutation;
    switch (op.op) {
      case "put":
        main = setBytes(key, op.value);
        break;
      case "delete":
        main = { type: "delete", key };
        break;
      case "append":
        // Read-modify-write made safe by a check on what was read.
        checks = [{ key, versionstamp: current?.versionstamp ?? null }];
        main = setBytes(key, (currentValue ?? "") + op.value);
        break;
      case "cas": {
        // The compare is the KV check itself: on a mismatch the check names a
        // versionstamp the key cannot have, and the KV machine refuses it.
        const matches = currentValue === op.expected;
        checks = [{
          key,
          versionstamp: matches
            ? current?.versionstamp ?? null
            : current === null
            ? NEVER_VERSIONSTAMP
            : null,
        }];
        main = setBytes(key, op.value);
        break;
      }
    }
    const mutations: KvMutation[] = [
      main,
      { type: "sum", key: encodeKey(["sum", op.key]), value: u64(command.seq) },
      { type: "max", key: encodeKey(["max"]), value: u64(command.seq) },
      { type: "min", key: encodeKey(["min"]), value: u64(command.seq) },
      {
        type: "setSuffixVersionstampedKey",
        key: encodeKey(["log", op.key]),
        // Every attempt of an exactly-once write is the same write.
        value: {
          encoding: "bytes",
          data: encoder.encode(
            exact ? `${command.clientId}:${command.seq}` : commandId(command),
          ),
        },
      },
    ];
    const client = `sim-${command.clientId}`;
    const result = this.#machine.apply(
      index,
      encodeKvCommand({
        type: "atomic",
        operation: {
          checks,
          mutations,
          enqueues: [],
          ...(command.session && exact
            ? { session: { clientId: client, seq: command.seq } }
            : {}),
          ...(command.stock && exact
            ? {
              resend: {
                clientId: client,
                digest: sha256(encoder.encode(`${client}:${command.seq}`)),
                mergeable: true,
                atMs: command.atMs ?? 0,
              },
            }
            : {}),
        },
      }),
    );
    // Its first result was evicted: the client is told "outcome unknown".
    if (!result.ok && result.reason === "sessionExpired") {
      return OUTCOME_UNKNOWN;
    }
    return { ok: result.ok };
  }

  read(key: string): string | null {
    const entry = this.#machine.get(encodeKey(["sim", key]));
    return entry === null ? null : decoder.decode(entry.value.data);
  }

  hash(): string {
    return stateHash(this.#store);
  }

  snapshot(): Uint8Array {
    const chunks: SnapshotChunk[] = [];
    const iterator = this.#store.exportSnapshot(snapshotChunkBytes);
    for (let next = iterator.next(); !next.done; next = iterator.next()) {
      chunks.push(next.value);
    }
    return encode(chunks);
  }

  restore(data: Uint8Array): void {
    const chunks = decode(data) as SnapshotChunk[];
    const store = new MemoryStateStore();
    const installer = store.beginInstall();
    for (const chunk of chunks) installer.write(chunk);
    installer.commit();
    this.#store = store;
    this.#machine = new DenoKvStateMachine(store, this.#knobs);
  }
}

function setBytes(key: Uint8Array, value: string): KvMutation {
  return {
    type: "set",
    key,
    value: { encoding: "bytes", data: encoder.encode(value) },
  };
}
