/**
 * The queues service's commands as envelope payloads: MessagePack arrays.
 * Enqueues are not here: they ride on KV atomic operations (one entry, one
 * transaction) and reach the queue through `api.ts`.
 *
 * | command           | layout                                              |
 * | ----------------- | --------------------------------------------------- |
 * | queueLease        | `[3, queue, timestampMs, leaseDeadlineMs, countMax]` |
 * | queueAck          | `[4, ids]`                                          |
 * | queueNack         | `[5, timestampMs, [[id, delivery], …]]`             |
 * | queueExpireLeases | `[6, timestampMs, countMax]`                        |
 * | queueConfigure    | `[7, queue, concurrencyMax \| nil]`                 |
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type { KvQueueCommand } from "../../model/types.ts";
import { KvInvalidError } from "../../model/errors.ts";

const COMMAND_QUEUE_LEASE = 3;
const COMMAND_QUEUE_ACK = 4;
const COMMAND_QUEUE_NACK = 5;
const COMMAND_QUEUE_EXPIRE_LEASES = 6;
const COMMAND_QUEUE_CONFIGURE = 7;
/** Upper bound on any list in a command, far above the limits, so decoding is bounded. */
const COMMAND_LIST_LENGTH_MAX = 100_000;

const encoder = new Encoder();
const decoder = new Decoder({
  maxArrayLength: COMMAND_LIST_LENGTH_MAX,
  maxMapLength: 0,
  maxExtLength: 0,
});

/** Encodes a queue command into an envelope payload. */
export function encodeQueueCommand(command: KvQueueCommand): Uint8Array {
  switch (command.type) {
    case "queueLease":
      return encoder.encode([
        COMMAND_QUEUE_LEASE,
        command.queue,
        command.timestampMs,
        command.leaseDeadlineMs,
        command.countMax,
      ]);
    case "queueAck":
      return encoder.encode([COMMAND_QUEUE_ACK, command.ids]);
    case "queueNack":
      return encoder.encode([
        COMMAND_QUEUE_NACK,
        command.timestampMs,
        command.messages.map((m) => [m.id, m.delivery]),
      ]);
    case "queueExpireLeases":
      return encoder.encode([
        COMMAND_QUEUE_EXPIRE_LEASES,
        command.timestampMs,
        command.countMax,
      ]);
    case "queueConfigure":
      return encoder.encode([
        COMMAND_QUEUE_CONFIGURE,
        command.queue,
        command.concurrencyMax,
      ]);
  }
}

function fail(detail: string): never {
  throw new KvInvalidError(`Cannot decode command: ${detail}`);
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) fail(`${what} must be an array`);
  return value;
}

function bytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${what} must be bytes`);
  return value;
}

function integer(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`${what} must be a non-negative integer`);
  }
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string") fail(`${what} must be a string`);
  return value;
}

/**
 * Decodes a queue payload, refusing anything that is not exactly a valid
 * command (so every replica refuses the same bytes).
 *
 * @throws {KvInvalidError} When the bytes are not a queue command.
 */
export function decodeQueueCommand(data: Uint8Array): KvQueueCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(data);
  } catch (cause) {
    throw new KvInvalidError(
      `Cannot decode command: ${(cause as Error).message}`,
      { cause },
    );
  }
  const fields = list(raw, "command");
  const arity = (n: number, name: string) => {
    if (fields.length !== n) fail(`${name} command must have ${n} fields`);
  };
  switch (fields[0]) {
    case COMMAND_QUEUE_LEASE:
      arity(5, "queueLease");
      return {
        type: "queueLease",
        queue: text(fields[1], "queue name"),
        timestampMs: integer(fields[2], "timestampMs"),
        leaseDeadlineMs: integer(fields[3], "leaseDeadlineMs"),
        countMax: integer(fields[4], "countMax"),
      };
    case COMMAND_QUEUE_ACK:
      arity(2, "queueAck");
      return {
        type: "queueAck",
        ids: list(fields[1], "ids").map((id) => bytes(id, "message id")),
      };
    case COMMAND_QUEUE_NACK:
      arity(3, "queueNack");
      return {
        type: "queueNack",
        timestampMs: integer(fields[1], "timestampMs"),
        messages: list(fields[2], "messages").map((raw) => {
          const [id, delivery, ...rest] = list(raw, "nacked message");
          if (rest.length > 0) fail("nacked message has extra fields");
          return {
            id: bytes(id, "message id"),
            delivery: integer(delivery, "delivery"),
          };
        }),
      };
    case COMMAND_QUEUE_EXPIRE_LEASES:
      arity(3, "queueExpireLeases");
      return {
        type: "queueExpireLeases",
        timestampMs: integer(fields[1], "timestampMs"),
        countMax: integer(fields[2], "countMax"),
      };
    case COMMAND_QUEUE_CONFIGURE:
      arity(3, "queueConfigure");
      return {
        type: "queueConfigure",
        queue: text(fields[1], "queue name"),
        concurrencyMax: fields[2] === null
          ? null
          : integer(fields[2], "concurrencyMax"),
      };
    default:
      return fail(`unknown command ${String(fields[0])}`);
  }
}
