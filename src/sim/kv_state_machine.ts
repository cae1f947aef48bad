/**
 * The simulator's replicated state machine: a string map driven by commands
 * carried in log entries as JSON. Rebuilt from the log after a crash, since it
 * lives in memory only.
 *
 * @module
 */
import type { KvInput, KvOutput } from "./lincheck.ts";

/** What a client asked for, as carried in an entry. */
export interface KvCommand {
  readonly clientId: number;
  readonly seq: number;
  /** Retry number of this operation; makes every proposed entry unique. */
  readonly attempt: number;
  readonly op: KvInput;
  /**
   * A stock client's write (put or delete): every attempt has the same
   * bytes and the KV replica matches resends by client and digest.
   */
  readonly stock?: boolean;
  /** A client-module write (put or delete): every attempt carries the same KV session. */
  readonly session?: boolean;
  /** The proposer's clock, simulated ms (ages resend records). */
  readonly atMs?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a command as an entry's data. */
export function encodeCommand(command: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

/**
 * Decodes an entry's data; the blank entry of a new leader decodes to null.
 *
 * @throws {TypeError} When the data is not a command.
 */
export function decodeCommand(data: Uint8Array): KvCommand | null {
  if (data.byteLength === 0) return null;
  const value: unknown = JSON.parse(decoder.decode(data));
  if (
    typeof value !== "object" || value === null || !("clientId" in value) ||
    !("op" in value)
  ) {
    throw new TypeError(
      `Cannot decode command: expected {clientId, seq, attempt, op}, found ${
        decoder.decode(data)
      }`,
    );
  }
  return value as KvCommand;
}

/** Identity of one proposed command ("client:seq:attempt"). */
export function commandId(command: KvCommand): string {
  return `${command.clientId}:${command.seq}:${command.attempt}`;
}

/** An in-memory key-value map. */
export class KvStateMachine {
  readonly #data = new Map<string, string>();

  /** Applies one operation and returns what the client is told. */
  apply(op: KvInput): KvOutput {
    const current = this.#data.get(op.key) ?? null;
    switch (op.op) {
      case "get":
        return { value: current };
      case "put":
        this.#data.set(op.key, op.value);
        return { ok: true };
      case "append":
        this.#data.set(op.key, (current ?? "") + op.value);
        return { ok: true };
      case "delete":
        this.#data.delete(op.key);
        return { ok: true };
      case "cas":
        if (current !== op.expected) return { ok: false };
        this.#data.set(op.key, op.value);
        return { ok: true };
    }
  }

  /** The value at `key`, or null. */
  read(key: string): string | null {
    return this.#data.get(key) ?? null;
  }

  /** Every key and value, for a snapshot. */
  entries(): [string, string][] {
    return [...this.#data];
  }

  /** Replaces the whole map with `entries` (a snapshot's). */
  restore(entries: readonly (readonly [string, string])[]): void {
    this.#data.clear();
    for (const [key, value] of entries) this.#data.set(key, value);
  }

  /** Canonical text of the whole map, sorted by key (for trace hashes). */
  canonical(): string {
    return [...this.#data].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => `${key}=${value}`).join("\n");
  }
}
