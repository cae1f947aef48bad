/**
 * The queues service as the state host runs it: its commands (lease, ack,
 * nack, expireLeases, configure) applied to the entry's write context, and
 * the enqueue helper KV atomic operations reach through `api.ts` (one
 * entry, one transaction). Deterministic: every time is the proposer's,
 * inside the command.
 *
 * @module
 */
import type { LogIndex } from "../../raft/types.ts";
import type {
  KvApplyResult,
  KvEnqueue,
  KvQueueCommand,
} from "../../model/types.ts";
import { failureOf } from "../../model/errors.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import type { ServiceDefinition } from "../../state/registry.ts";
import { decodeQueueCommand } from "./commands.ts";
import { QueueWriter, validateQueueCommand } from "./queue.ts";
import { QUEUES_KEYSPACES } from "./keys.ts";

/** Stages `enqueues` of the atomic operation of entry `context.index`. */
export function enqueueInto(
  context: ApplyContext,
  enqueues: readonly KvEnqueue[],
): void {
  new QueueWriter(context.store, context.overlay, context.versionstamp)
    .enqueue(context.index, enqueues);
}

function applyQueue(
  command: KvQueueCommand,
  context: ApplyContext,
): KvApplyResult {
  const { index, versionstamp } = context;
  const writer = new QueueWriter(context.store, context.overlay, versionstamp);
  const ok = { ok: true, index, versionstamp, expiredKeyCount: 0 } as const;
  switch (command.type) {
    case "queueLease":
      return { ...ok, queueDeliveries: writer.lease(command) };
    case "queueAck":
      return { ...ok, queueMessageCount: writer.ack(command.ids) };
    case "queueNack":
      return {
        ...ok,
        queueMessageCount: writer.nack(command.timestampMs, command.messages),
      };
    case "queueExpireLeases":
      return {
        ...ok,
        queueMessageCount: writer.expireLeases(
          command.timestampMs,
          command.countMax,
        ),
      };
    case "queueConfigure":
      writer.configure(command.queue, command.concurrencyMax);
      return ok;
  }
}

/** The queues service's registration (see `services/table.ts`). */
export function queuesService(): ServiceDefinition<
  KvQueueCommand,
  KvApplyResult
> {
  return {
    name: "queues",
    keyspaces: QUEUES_KEYSPACES,
    // A dead-lettered message writes its payload to user KV keys.
    reaches: ["kv"],
    decode(payload) {
      const command = decodeQueueCommand(payload);
      validateQueueCommand(command);
      return command;
    },
    apply: applyQueue,
    failure(error: unknown, index: LogIndex): KvApplyResult {
      const { reason, message } = failureOf(error);
      return { ok: false, index, reason, message, failedChecks: [] };
    },
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index,
      reason,
      message,
      failedChecks: [],
    }),
  };
}
