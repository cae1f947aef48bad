/**
 * The replicated KV state machine: applies committed log entries (atomic
 * operations, expiry sweeps and queue commands, see `queue.ts`) to a
 * {@linkcode StateStore} and serves Deno KV reads from the applied state. Everything it decides depends only on the
 * log and the store, never on a clock, so every replica reaches
 * byte-identical state.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { LogIndex } from "../raft/types.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvEntry,
  KvFailureReason,
  KvQueueCommand,
  KvRow,
} from "../model/types.ts";
import type { StateStore } from "./state_store.ts";
import type { ChangeEvent, ChangeSink } from "./changes.ts";
import { decodeCommand } from "../services/kv/commands.ts";
import {
  KvInvalidError,
  KvLimitError,
  KvUnsupportedError,
} from "../model/errors.ts";
import {
  validateAtomic,
  validateReadKey,
  validateReadRanges,
} from "../model/limits.ts";
import { isZeroVersionstamp, makeVersionstamp } from "../model/versionstamp.ts";
import { applyMutations, type Overlay } from "../services/kv/mutations.ts";
import { compareBytes, equalBytes } from "../base/bytes.ts";
import {
  INTERNAL_KEY_BYTE,
  INTERNAL_KEYS_START,
} from "../services/queues/keys.ts";
import { type SessionKnobs, SessionTable, writeDigest } from "./sessions.ts";
import { type ResendKnobs, ResendTable } from "../services/kv/resends.ts";
import {
  type KvQueueInfo,
  type KvQueuePeek,
  peekQueue,
  QUEUE_LIMITS,
  queueInfo,
  QueueWriter,
  validateQueueCommand,
  validateQueueName,
} from "../services/queues/queue.ts";
import {
  applyCursor,
  encodeCursor,
  type KvListSelector,
  resolveSelector,
} from "../model/range.ts";

/** Keys one expiry command deletes at most, whatever it asks for. */
export const EXPIRE_KEYS_MAX = 10_000;

/** Options of {@linkcode KvStateMachine.list}. */
export interface KvListOptions {
  /** Entries returned at most, 1..1000. */
  readonly limit: number;
  readonly reverse?: boolean;
  /** A cursor from a previous page of the same selector. */
  readonly cursor?: string;
}

/** One page of {@linkcode KvStateMachine.list}. */
export interface KvListPage {
  readonly entries: KvEntry[];
  /** Resumes after the last entry; null when the page is empty. */
  readonly cursor: string | null;
}

function toEntry(row: KvRow): KvEntry {
  return {
    key: row.key,
    value: { encoding: row.encoding, data: row.value },
    versionstamp: row.versionstamp,
  };
}

function failureOf(
  error: unknown,
): { reason: KvFailureReason; message: string } {
  if (error instanceof KvLimitError) {
    return { reason: "limitExceeded", message: error.message };
  }
  if (error instanceof KvUnsupportedError) {
    return { reason: "unsupported", message: error.message };
  }
  if (error instanceof KvInvalidError) {
    return { reason: "invalidCommand", message: error.message };
  }
  throw error;
}

/** Testing knobs of {@linkcode KvStateMachine}: planted bugs for the simulator. */
export type KvStateMachineKnobs = SessionKnobs & ResendKnobs;

/** Options of {@linkcode KvStateMachine}. */
export interface KvStateMachineOptions {
  /** Where each applied entry's changes go (the node's change feed). Default: nowhere. */
  readonly changes?: ChangeSink;
}

// --- change feed (issue 14, helper "feed"): until the state host emits the
// changes itself, the state machine hands each entry's puts and deletes to
// its ChangeSink after the store transaction. User keys are service "kv";
// queue rows (0xff 0x71) are service "queues"; other internal bookkeeping
// rows (sessions, resend records) are not emitted.
const QUEUE_ROWS_BYTE = 0x71;

function changeService(key: Uint8Array): string | null {
  if (key[0] !== INTERNAL_KEY_BYTE) return "kv";
  return key[1] === QUEUE_ROWS_BYTE ? "queues" : null;
}

function emitChanges(
  sink: ChangeSink | undefined,
  index: LogIndex,
  puts: readonly KvRow[],
  deletes: readonly Uint8Array[],
): void {
  if (sink === undefined) return;
  const revision = BigInt(index);
  const changes: ChangeEvent[] = [];
  for (const row of puts) {
    const service = changeService(row.key);
    if (service === null) continue;
    changes.push({
      revision,
      index: changes.length,
      service,
      kind: "set",
      key: row.key,
      after: {
        value: row.value,
        encoding: row.encoding,
        versionstamp: row.versionstamp,
        ...(row.expireAtMs === null ? {} : { expireAtMs: row.expireAtMs }),
      },
    });
  }
  for (const key of deletes) {
    const service = changeService(key);
    if (service === null) continue;
    changes.push({
      revision,
      index: changes.length,
      service,
      kind: "delete",
      key,
    });
  }
  sink.applied(revision, changes);
}
// --- end change feed

/** Applies commands to a store and reads from it. */
export class KvStateMachine {
  readonly store: StateStore;

  readonly #sessions: SessionTable;
  readonly #resends: ResendTable;
  /** Receives each applied entry's changes (see {@linkcode KvStateMachineOptions}). */
  readonly changes: ChangeSink | undefined;

  /**
   * @param knobs Testing knobs: planted bugs of the simulator (default none).
   */
  constructor(
    store: StateStore,
    knobs: KvStateMachineKnobs = {},
    options: KvStateMachineOptions = {},
  ) {
    this.store = store;
    this.changes = options.changes;
    this.#sessions = new SessionTable(store, knobs);
    this.#resends = new ResendTable(store, knobs);
  }

  /** The index of the last applied entry. */
  appliedIndex(): LogIndex {
    return this.store.appliedIndex();
  }

  /**
   * Applies the command of log entry `index`. Never throws for a bad
   * command: anything that does not decode or validate yields a failure
   * result, identically on every replica, and the applied index moves on.
   *
   * @param index The entry's index; must follow the applied index.
   * @param data The entry's bytes (see `command.ts`).
   * @throws {AssertionError} When `index` does not follow the applied index (a bug in the caller).
   */
  apply(index: LogIndex, data: Uint8Array): KvApplyResult {
    assert(
      index > this.store.appliedIndex(),
      `apply() needs an index after the applied index: ${index} after ${this.store.appliedIndex()}`,
    );
    let result: KvApplyResult;
    try {
      const command = decodeCommand(data);
      if (command.type === "expire") {
        return this.expire(index, command.timestampMs, command.keyCountMax);
      }
      if (command.type === "resendDelivered") {
        const versionstamp = makeVersionstamp(index);
        const overlay: Overlay = new Map();
        this.#resends.markDelivered(overlay, command.marks, versionstamp);
        this.flush(index, overlay);
        return { ok: true, index, versionstamp, expiredKeyCount: 0 };
      }
      if (command.type !== "atomic") {
        validateQueueCommand(command);
        return this.queue(index, command);
      }
      validateAtomic(command.operation);
      const { session, resend } = command.operation;
      const digest = session === undefined
        ? null
        : writeDigest(command.operation);
      const known = session === undefined
        ? null
        : this.#sessions.lookup(session, digest!);
      // A retry of a write that applied before: its first result, no change.
      if (known?.kind === "applied") return this.unchanged(index, known.result);
      if (known?.kind === "reused") {
        return this.unchanged(index, {
          ok: false,
          index,
          reason: "sessionReused",
          message: `Session ${session!.clientId} seq ${
            session!.seq
          } already carried a different write`,
          failedChecks: [],
        });
      }
      if (resend !== undefined) {
        // A stock client's resend of a write that applied: its first result.
        const first = this.#resends.lookup(resend);
        if (first !== null) return this.unchanged(index, first);
      }
      if (known?.kind === "expired") {
        return this.unchanged(index, {
          ok: false,
          index,
          reason: "sessionExpired",
          message: `The result of session ${session!.clientId} seq ${
            session!.seq
          } is no longer kept (eviction horizon ${known.horizon}): it may have been applied; it is not applied again`,
          failedChecks: [],
        });
      }
      return this.atomic(index, command.operation, digest);
    } catch (error) {
      const { reason, message } = failureOf(error);
      result = { ok: false, index, reason, message, failedChecks: [] };
    }
    this.store.apply({ puts: [], deletes: [], appliedIndex: index });
    emitChanges(this.changes, index, [], []); // change feed
    return result;
  }

  /** Moves the applied index on without a change and returns `result`. */
  private unchanged(index: LogIndex, result: KvApplyResult): KvApplyResult {
    this.store.apply({ puts: [], deletes: [], appliedIndex: index });
    emitChanges(this.changes, index, [], []); // change feed
    return result;
  }

  private atomic(
    index: LogIndex,
    operation: KvAtomicOperation,
    digest: Uint8Array | null,
  ): KvApplyResult {
    const versionstamp = makeVersionstamp(index);
    const overlay: Overlay = new Map();
    const result = this.atomicInto(index, operation, overlay, versionstamp);
    // The result is recorded with the write itself, so a retry finds it.
    if (operation.session !== undefined && digest !== null) {
      this.#sessions.record(
        overlay,
        operation.session,
        digest,
        index,
        result,
        versionstamp,
      );
    }
    if (operation.resend !== undefined) {
      this.#resends.record(
        overlay,
        operation.resend,
        index,
        result,
        versionstamp,
      );
    }
    this.flush(index, overlay);
    return result;
  }

  /** Decides an atomic operation, staging its changes in `overlay` only if it applies. */
  private atomicInto(
    index: LogIndex,
    operation: KvAtomicOperation,
    overlay: Overlay,
    versionstamp: Uint8Array,
  ): KvApplyResult {
    const failedChecks: number[] = [];
    operation.checks.forEach((check, i) => {
      const current = this.store.get(check.key);
      const expectAbsent = check.versionstamp === null ||
        isZeroVersionstamp(check.versionstamp);
      const passes = current === null ? expectAbsent : !expectAbsent &&
        equalBytes(current.versionstamp, check.versionstamp!);
      if (!passes) failedChecks.push(i);
    });
    if (failedChecks.length > 0) {
      return {
        ok: false,
        index,
        reason: "checkFailed",
        message: "Check failed",
        failedChecks,
      };
    }
    const staged: Overlay = new Map();
    const mismatch = applyMutations(
      this.store,
      staged,
      operation.mutations,
      versionstamp,
    );
    if (mismatch !== null) {
      return {
        ok: false,
        index,
        reason: "typeMismatch",
        message: mismatch,
        failedChecks: [],
      };
    }
    if (operation.enqueues.length > 0) {
      new QueueWriter(this.store, staged, versionstamp).enqueue(
        index,
        operation.enqueues,
      );
    }
    for (const [k, v] of staged) overlay.set(k, v);
    return { ok: true, index, versionstamp, expiredKeyCount: 0 };
  }

  private flush(index: LogIndex, overlay: Overlay): void {
    const puts: KvRow[] = [];
    const deletes: Uint8Array[] = [];
    for (const { key, row } of overlay.values()) {
      if (row === null) deletes.push(key);
      else puts.push(row);
    }
    this.store.apply({ puts, deletes, appliedIndex: index });
    emitChanges(this.changes, index, puts, deletes); // change feed
  }

  private queue(index: LogIndex, command: KvQueueCommand): KvApplyResult {
    const versionstamp = makeVersionstamp(index);
    const overlay: Overlay = new Map();
    const writer = new QueueWriter(this.store, overlay, versionstamp);
    const ok = { ok: true, index, versionstamp, expiredKeyCount: 0 } as const;
    let result: KvApplyResult;
    switch (command.type) {
      case "queueLease":
        result = { ...ok, queueDeliveries: writer.lease(command) };
        break;
      case "queueAck":
        result = { ...ok, queueMessageCount: writer.ack(command.ids) };
        break;
      case "queueNack":
        result = {
          ...ok,
          queueMessageCount: writer.nack(command.timestampMs, command.messages),
        };
        break;
      case "queueExpireLeases":
        result = {
          ...ok,
          queueMessageCount: writer.expireLeases(
            command.timestampMs,
            command.countMax,
          ),
        };
        break;
      case "queueConfigure":
        writer.configure(command.queue, command.concurrencyMax);
        result = ok;
        break;
    }
    this.flush(index, overlay);
    return result;
  }

  private expire(
    index: LogIndex,
    timestampMs: number,
    keyCountMax: number,
  ): KvApplyResult {
    const keys = this.store.expiredKeys(
      timestampMs,
      Math.min(keyCountMax, EXPIRE_KEYS_MAX),
    );
    this.store.apply({ puts: [], deletes: keys, appliedIndex: index });
    emitChanges(this.changes, index, [], keys); // change feed
    return {
      ok: true,
      index,
      versionstamp: makeVersionstamp(index),
      expiredKeyCount: keys.length,
    };
  }

  /**
   * The entry at `key`, or null.
   *
   * @throws {KvLimitError} When the key is longer than 2049 bytes.
   */
  get(key: Uint8Array): KvEntry | null {
    validateReadKey(key);
    if (key[0] === INTERNAL_KEY_BYTE) return null;
    const row = this.store.get(key);
    return row === null ? null : toEntry(row);
  }

  /**
   * The entries at `keys`, in order, null where absent.
   *
   * @throws {KvLimitError} For more than 10 keys (each is a range) or a key over 2049 bytes.
   */
  getMany(keys: readonly Uint8Array[]): (KvEntry | null)[] {
    validateReadRanges(keys.map(() => 1));
    for (const key of keys) validateReadKey(key);
    return keys.map((key) => this.get(key));
  }

  /**
   * A raw range read as KV Connect sends it: `[start, end)`.
   *
   * @throws {KvLimitError} When a key is over 2049 bytes or the limit over 1000.
   */
  readRange(
    start: Uint8Array,
    end: Uint8Array,
    limit: number,
    reverse = false,
  ): KvEntry[] {
    validateReadRanges([limit]);
    validateReadKey(start);
    validateReadKey(end);
    // Internal rows (queue state) sort after every Deno KV key: reads stop there.
    const userEnd = compareBytes(end, INTERNAL_KEYS_START) > 0
      ? INTERNAL_KEYS_START
      : end;
    if (compareBytes(start, userEnd) >= 0) return [];
    return this.store.scan({ start, end: userEnd, limit, reverse }).map(
      toEntry,
    );
  }

  /**
   * A queue's length, leased count and concurrency limit.
   *
   * @throws {KvInvalidError} For an invalid queue name.
   */
  queueInfo(queue: string): KvQueueInfo {
    return queueInfo(this.store, validateQueueName(queue));
  }

  /**
   * The waiting (not leased) messages of a queue, soonest ready first; peeking leases nothing.
   *
   * @throws {KvInvalidError} For an invalid queue name or limit.
   */
  peekQueue(queue: string, limit: number): KvQueuePeek[] {
    if (
      !Number.isSafeInteger(limit) || limit < 1 ||
      limit > QUEUE_LIMITS.peekCountMax
    ) {
      throw new KvInvalidError(
        `Invalid limit: expected 1 to ${QUEUE_LIMITS.peekCountMax}: received ${limit}`,
      );
    }
    return peekQueue(this.store, validateQueueName(queue), limit);
  }

  /**
   * One page of a Deno KV list, with Deno's selector and cursor rules.
   *
   * @throws {KvInvalidError} For an invalid selector or cursor (Deno's messages).
   * @throws {KvLimitError} For a limit over 1000 or a key over 2049 bytes.
   */
  list(selector: KvListSelector, options: KvListOptions): KvListPage {
    const resolved = resolveSelector(selector);
    const reverse = options.reverse ?? false;
    const { start, end } = options.cursor === undefined
      ? resolved
      : applyCursor(resolved, options.cursor, reverse);
    const entries = this.readRange(start, end, options.limit, reverse);
    const last = entries[entries.length - 1];
    return {
      entries,
      cursor: last === undefined ? null : encodeCursor(resolved, last.key),
    };
  }
}
