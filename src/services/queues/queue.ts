/**
 * The queue part of the state machine: enqueues of atomic operations and the
 * queue commands (lease, ack, nack, expireLeases, configure), applied to an
 * overlay over the store, plus the reads the dispatcher and the API need.
 * Everything depends on the command and the stored rows only; the times
 * come from the proposer, inside the command.
 *
 * A message's life: enqueued (ready at its deadline) → leased by the
 * leader's dispatcher for one delivery → acked (deleted), or failed (nack or
 * lease end) → ready again after the next step of its backoff schedule, or,
 * after the last step, dead-lettered: its payload written as a V8 value to
 * each `keysIfUndelivered` key, and the message dropped.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import type { LogIndex } from "../../raft/types.ts";
import type {
  KvEnqueue,
  KvQueueCommand,
  KvQueueDelivery,
  KvRow,
  Versionstamp,
} from "../../model/types.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { Overlay } from "../../state/write_context.ts";
import { toHex } from "../../base/bytes.ts";
import { KvInvalidError, KvLimitError } from "../../model/errors.ts";
import {
  QUEUE_NAME_LENGTH_MAX,
  validateQueueName,
} from "../../model/queue_name.ts";
import {
  makeVersionstamp,
  VERSIONSTAMP_BYTES,
} from "../../model/versionstamp.ts";
import {
  decodeMessage,
  decodeStats,
  encodeMessage,
  encodeStats,
  idOfIndexKey,
  leaseKey,
  leaseRange,
  messageKey,
  type QueueMessageRecord,
  type QueueStatsRecord,
  readyKey,
  readyRange,
  statsKey,
} from "./keys.ts";

/** Deno KV's retry delays in ms when an enqueue names none. */
export const DEFAULT_BACKOFF_SCHEDULE_MS: readonly number[] = [
  100,
  1000,
  5000,
  30000,
  60000,
];

/** The queue's own bounds (Deno KV's enqueue limits are in `limits.ts`). */
export const QUEUE_LIMITS = {
  /** Longest queue name, in characters ([A-Za-z0-9._:-]). */
  nameLengthMax: QUEUE_NAME_LENGTH_MAX,
  /** Most messages one lease command hands out. */
  leaseCountMax: 100,
  /** Most ids of one ack or nack. */
  idsPerCommandMax: 100,
  /** Most expired leases one command fails. */
  expireLeasesMax: 1000,
  /** Largest per-queue concurrency limit. */
  concurrencyMax: 100_000,
  /** Most messages one peek returns. */
  peekCountMax: 1000,
} as const;

const TIME_MS_MAX = Number.MAX_SAFE_INTEGER;

/** What a queue holds, as `queueInfo` reports it. */
export interface KvQueueInfo {
  readonly queue: string;
  /** Messages in the queue, leased ones included. */
  readonly length: number;
  /** Messages leased to a consumer right now. */
  readonly leasedCount: number;
  /** Most messages leased at once; null for no limit. */
  readonly concurrencyMax: number | null;
}

/** A waiting message, as `peekQueue` shows it (not leased by peeking). */
export interface KvQueuePeek {
  readonly id: Uint8Array;
  readonly queue: string;
  readonly payload: Uint8Array;
  /** Unix ms from which it may be delivered. */
  readonly readyAtMs: number;
  /** Deliveries so far. */
  readonly delivery: number;
}

export { validateQueueName };

function count(value: number, name: string, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new KvInvalidError(
      `Invalid queue command: '${name}' must be an integer from ${min} to ${max}: received ${value}`,
    );
  }
}

function ids(list: readonly Uint8Array[]): void {
  if (list.length > QUEUE_LIMITS.idsPerCommandMax) {
    throw new KvLimitError(
      "mutations",
      QUEUE_LIMITS.idsPerCommandMax,
      `Too many message ids (max ${QUEUE_LIMITS.idsPerCommandMax})`,
    );
  }
  for (const id of list) {
    if (!(id instanceof Uint8Array) || id.length !== VERSIONSTAMP_BYTES) {
      throw new KvInvalidError("Invalid message id: expected 10 bytes");
    }
  }
}

/**
 * Validates a queue command, before proposing and again at apply time.
 *
 * @throws {KvInvalidError} For a bad name, count or id.
 * @throws {KvLimitError} For too many ids.
 */
export function validateQueueCommand(command: KvQueueCommand): void {
  switch (command.type) {
    case "queueLease":
      validateQueueName(command.queue);
      count(command.timestampMs, "timestampMs", 0, TIME_MS_MAX);
      count(command.leaseDeadlineMs, "leaseDeadlineMs", 0, TIME_MS_MAX);
      count(command.countMax, "countMax", 1, QUEUE_LIMITS.leaseCountMax);
      return;
    case "queueAck":
      ids(command.ids);
      return;
    case "queueNack":
      count(command.timestampMs, "timestampMs", 0, TIME_MS_MAX);
      ids(command.messages.map((m) => m.id));
      for (const m of command.messages) {
        count(m.delivery, "delivery", 1, TIME_MS_MAX);
      }
      return;
    case "queueExpireLeases":
      count(command.timestampMs, "timestampMs", 0, TIME_MS_MAX);
      count(command.countMax, "countMax", 1, QUEUE_LIMITS.expireLeasesMax);
      return;
    case "queueConfigure":
      validateQueueName(command.queue);
      if (command.concurrencyMax !== null) {
        count(
          command.concurrencyMax,
          "concurrencyMax",
          1,
          QUEUE_LIMITS.concurrencyMax,
        );
      }
      return;
  }
}

/** Pending writes of one queue command over the store. */
export class QueueWriter {
  readonly #store: StateStore;
  readonly #overlay: Overlay;
  readonly #versionstamp: Versionstamp;

  constructor(store: StateStore, overlay: Overlay, versionstamp: Versionstamp) {
    this.#store = store;
    this.#overlay = overlay;
    this.#versionstamp = versionstamp;
  }

  #read(key: Uint8Array): KvRow | null {
    const pending = this.#overlay.get(toHex(key));
    return pending !== undefined ? pending.row : this.#store.get(key);
  }

  #put(key: Uint8Array, value: Uint8Array, encoding: KvRow["encoding"]): void {
    const row: KvRow = {
      key,
      value,
      encoding,
      versionstamp: this.#versionstamp,
      expireAtMs: null,
    };
    this.#overlay.set(toHex(key), { key, row });
  }

  #delete(key: Uint8Array): void {
    this.#overlay.set(toHex(key), { key, row: null });
  }

  #message(id: Uint8Array): QueueMessageRecord | null {
    const row = this.#read(messageKey(id));
    return row === null ? null : decodeMessage(row.value);
  }

  #stats(queue: string): QueueStatsRecord {
    const row = this.#read(statsKey(queue));
    return row === null
      ? { length: 0, leasedCount: 0, concurrencyMax: null }
      : decodeStats(row.value);
  }

  #changeStats(queue: string, change: Partial<QueueStatsRecord>): void {
    const next = { ...this.#stats(queue), ...change };
    assert(
      next.length >= 0 && next.leasedCount >= 0 &&
        next.leasedCount <= next.length,
      `Queue '${queue}' counters stay consistent: length ${next.length}, leased ${next.leasedCount}`,
    );
    if (
      next.length === 0 && next.concurrencyMax === null
    ) this.#delete(statsKey(queue));
    else this.#put(statsKey(queue), encodeStats(next), "bytes");
  }

  #writeMessage(id: Uint8Array, message: QueueMessageRecord): void {
    this.#put(messageKey(id), encodeMessage(message), "bytes");
  }

  /** Stores the enqueues of the atomic operation applied at `index`. */
  enqueue(index: LogIndex, enqueues: readonly KvEnqueue[]): void {
    enqueues.forEach((enqueue, position) => {
      const id = makeVersionstamp(index, position);
      const queue = enqueue.queue ?? "";
      this.#writeMessage(id, {
        queue,
        payload: enqueue.payload,
        readyAtMs: enqueue.deadlineMs,
        delivery: 0,
        backoffSchedule: enqueue.backoffSchedule ?? DEFAULT_BACKOFF_SCHEDULE_MS,
        keysIfUndelivered: enqueue.keysIfUndelivered,
        leaseDeadlineMs: null,
      });
      this.#put(
        readyKey(queue, enqueue.deadlineMs, id),
        new Uint8Array(0),
        "bytes",
      );
      const stats = this.#stats(queue);
      this.#changeStats(queue, { length: stats.length + 1 });
    });
  }

  /** Leases ready messages of one queue, within its concurrency limit. */
  lease(
    command: Extract<KvQueueCommand, { type: "queueLease" }>,
  ): KvQueueDelivery[] {
    const { queue, timestampMs, leaseDeadlineMs } = command;
    const stats = this.#stats(queue);
    const room = stats.concurrencyMax === null
      ? command.countMax
      : Math.min(command.countMax, stats.concurrencyMax - stats.leasedCount);
    if (room <= 0) return [];
    const { start, end } = readyRange(queue, 0, timestampMs + 1);
    const ready = this.#store.scan({ start, end, limit: room });
    const deliveries: KvQueueDelivery[] = [];
    for (const row of ready) {
      const id = idOfIndexKey(row.key);
      const message = this.#message(id);
      assert(message !== null, "A ready row names a stored message");
      const delivery = message.delivery + 1;
      this.#delete(row.key);
      this.#put(leaseKey(leaseDeadlineMs, id), new Uint8Array(0), "bytes");
      this.#writeMessage(id, { ...message, delivery, leaseDeadlineMs });
      deliveries.push({
        id,
        queue,
        payload: message.payload,
        delivery,
        leaseDeadlineMs,
      });
    }
    if (deliveries.length > 0) {
      this.#changeStats(queue, {
        leasedCount: stats.leasedCount + deliveries.length,
      });
    }
    return deliveries;
  }

  /** Deletes delivered messages; returns how many existed. */
  ack(messageIds: readonly Uint8Array[]): number {
    let acked = 0;
    for (const id of messageIds) {
      const message = this.#message(id);
      if (message === null) continue;
      this.#delete(messageKey(id));
      const stats = this.#stats(message.queue);
      if (message.leaseDeadlineMs !== null) {
        this.#delete(leaseKey(message.leaseDeadlineMs, id));
      } else this.#delete(readyKey(message.queue, message.readyAtMs, id));
      this.#changeStats(message.queue, {
        length: stats.length - 1,
        leasedCount: stats.leasedCount -
          (message.leaseDeadlineMs !== null ? 1 : 0),
      });
      acked++;
    }
    return acked;
  }

  /** Fails deliveries still leased under the quoted delivery number. */
  nack(
    timestampMs: number,
    messages: readonly { id: Uint8Array; delivery: number }[],
  ): number {
    let failed = 0;
    for (const { id, delivery } of messages) {
      const message = this.#message(id);
      if (
        message === null || message.leaseDeadlineMs === null ||
        message.delivery !== delivery
      ) continue;
      this.#fail(id, message, timestampMs);
      failed++;
    }
    return failed;
  }

  /** Fails deliveries whose lease ended at or before `timestampMs`. */
  expireLeases(timestampMs: number, countMax: number): number {
    const { start, end } = leaseRange(timestampMs + 1);
    const rows = this.#store.scan({ start, end, limit: countMax });
    for (const row of rows) {
      const id = idOfIndexKey(row.key);
      const message = this.#message(id);
      assert(
        message !== null && message.leaseDeadlineMs !== null,
        "A lease row names a leased message",
      );
      this.#fail(id, message, timestampMs);
    }
    return rows.length;
  }

  /** Sets a queue's concurrency limit. */
  configure(queue: string, concurrencyMax: number | null): void {
    this.#changeStats(queue, { concurrencyMax });
  }

  /** A failed delivery: retry after the next backoff step, or dead-letter. */
  #fail(id: Uint8Array, message: QueueMessageRecord, timestampMs: number) {
    assert(message.leaseDeadlineMs !== null, "Only a leased message fails");
    this.#delete(leaseKey(message.leaseDeadlineMs, id));
    const stats = this.#stats(message.queue);
    // Delivery n failed: wait schedule[n - 1], or give up after the last step.
    const delayMs = message.backoffSchedule[message.delivery - 1];
    if (delayMs !== undefined) {
      const readyAtMs = Math.min(timestampMs + delayMs, TIME_MS_MAX);
      this.#writeMessage(id, { ...message, readyAtMs, leaseDeadlineMs: null });
      this.#put(
        readyKey(message.queue, readyAtMs, id),
        new Uint8Array(0),
        "bytes",
      );
      this.#changeStats(message.queue, { leasedCount: stats.leasedCount - 1 });
      return;
    }
    for (const key of message.keysIfUndelivered) {
      this.#put(key, message.payload, "v8");
    }
    this.#delete(messageKey(id));
    this.#changeStats(message.queue, {
      length: stats.length - 1,
      leasedCount: stats.leasedCount - 1,
    });
  }
}

/** A queue's counters and limit, from the applied state. */
export function queueInfo(store: StateStore, queue: string): KvQueueInfo {
  const row = store.get(statsKey(queue));
  const stats = row === null
    ? { length: 0, leasedCount: 0, concurrencyMax: null }
    : decodeStats(row.value);
  return { queue, ...stats };
}

/** The waiting (not leased) messages of `queue`, soonest ready first. */
export function peekQueue(
  store: StateStore,
  queue: string,
  limit: number,
): KvQueuePeek[] {
  const { start, end } = readyRange(queue, 0, TIME_MS_MAX);
  return store.scan({ start, end, limit }).map((row) => {
    const id = idOfIndexKey(row.key);
    const stored = store.get(messageKey(id));
    assert(stored !== null, "A ready row names a stored message");
    const message = decodeMessage(stored.value);
    return {
      id,
      queue,
      payload: message.payload,
      readyAtMs: message.readyAtMs,
      delivery: message.delivery,
    };
  });
}

/** True when `queue` has a message ready at `timestampMs` and room under its limit. */
export function hasDeliverable(
  store: StateStore,
  queue: string,
  timestampMs: number,
): boolean {
  const info = queueInfo(store, queue);
  if (
    info.concurrencyMax !== null && info.leasedCount >= info.concurrencyMax
  ) return false;
  const { start, end } = readyRange(queue, 0, timestampMs + 1);
  return store.scan({ start, end, limit: 1 }).length > 0;
}

/** True when some lease ended at or before `timestampMs`. */
export function hasExpiredLease(
  store: StateStore,
  timestampMs: number,
): boolean {
  const { start, end } = leaseRange(timestampMs + 1);
  return store.scan({ start, end, limit: 1 }).length > 0;
}
