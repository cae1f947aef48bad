/**
 * The queues service's reads from the applied state: a queue's counters and
 * its waiting messages (the HTTP API and the dispatcher call them).
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import { KvInvalidError } from "../../model/errors.ts";
import {
  type KvQueueInfo,
  type KvQueuePeek,
  peekQueue,
  QUEUE_LIMITS,
  queueInfo,
  validateQueueName,
} from "./queue.ts";

/** Reads of the queues over one store. */
export class QueueReads {
  readonly store: StateStore;

  constructor(store: StateStore) {
    this.store = store;
  }

  /**
   * A queue's length, leased count and concurrency limit.
   *
   * @throws {KvInvalidError} For an invalid queue name.
   */
  info(queue: string): KvQueueInfo {
    return queueInfo(this.store, validateQueueName(queue));
  }

  /**
   * The waiting (not leased) messages of a queue, soonest ready first; peeking leases nothing.
   *
   * @throws {KvInvalidError} For an invalid queue name or limit.
   */
  peek(queue: string, limit: number): KvQueuePeek[] {
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
}
