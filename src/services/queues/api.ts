/**
 * The queues service's facade: what front ends, the node and other
 * services (KV atomic operations carry enqueues) may use.
 *
 * @module
 */
export { enqueueInto, queuesService } from "./apply.ts";
export { QueueReads } from "./reads.ts";
export { decodeQueueCommand, encodeQueueCommand } from "./commands.ts";
export {
  DEFAULT_BACKOFF_SCHEDULE_MS,
  hasDeliverable,
  hasExpiredLease,
  type KvQueueInfo,
  type KvQueuePeek,
  QUEUE_LIMITS,
  validateQueueCommand,
  validateQueueName,
} from "./queue.ts";
export { QUEUES_KEYSPACE, QUEUES_KEYSPACES } from "./keys.ts";
