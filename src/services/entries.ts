/**
 * Log-entry bytes of the built-in services' commands: each command's
 * payload in its service's codec, inside the entry envelope (with the
 * session, when the command carries one).
 *
 * @module
 */
import { decodeEnvelope, encodeEnvelope } from "../state/envelope.ts";
import type { KvCommand, KvSession } from "../model/types.ts";
import { decodeCommand, encodeCommandView } from "./kv/commands.ts";
import { decodeQueueCommand, encodeQueueCommand } from "./queues/api.ts";
import { type ClusterCommand, encodeClusterCommand } from "./cluster/api.ts";
import { SERVICE_IDS } from "./table.ts";
import { KvInvalidError } from "../model/errors.ts";

/**
 * The entry of a KV front-end command: atomic operations, expiry and
 * resend marks go to the `kv` service (an atomic operation's session into
 * the envelope), queue commands to the `queues` service.
 */
export function encodeKvEntry(command: KvCommand): Uint8Array {
  switch (command.type) {
    case "atomic":
    case "expire":
    case "resendDelivered":
      // The payload leaves the session out; the envelope carries it.
      return encodeEnvelope({
        serviceId: SERVICE_IDS.kv,
        session: command.type === "atomic"
          ? command.operation.session
          : undefined,
        payload: encodeCommandView(command),
      });
    default:
      return encodeEnvelope({
        serviceId: SERVICE_IDS.queues,
        payload: encodeQueueCommand(command),
      });
  }
}

/** The entry of a queue command carrying a session (exactly once, like any service's command). */
export function encodeQueueEntry(
  command: Parameters<typeof encodeQueueCommand>[0],
  session?: KvSession,
): Uint8Array {
  return encodeEnvelope({
    serviceId: SERVICE_IDS.queues,
    ...(session === undefined ? {} : { session }),
    payload: encodeQueueCommand(command),
  });
}

/** The entry of a cluster command. */
export function encodeClusterEntry(command: ClusterCommand): Uint8Array {
  return encodeEnvelope({
    serviceId: SERVICE_IDS.cluster,
    payload: encodeClusterCommand(command),
  });
}

/**
 * The command of a KV or queue entry (the inverse of
 * {@linkcode encodeKvEntry}: the envelope's session back in the operation).
 *
 * @throws {AssertionError} When the bytes are not an envelope.
 * @throws {KvInvalidError} When the payload is not a command, or the service is neither.
 */
export function decodeKvEntry(data: Uint8Array): KvCommand {
  const { serviceId, session, payload } = decodeEnvelope(data);
  if (serviceId === SERVICE_IDS.queues) return decodeQueueCommand(payload);
  if (serviceId !== SERVICE_IDS.kv) {
    throw new KvInvalidError(
      `Cannot decode command: service ${serviceId} is not kv or queues`,
    );
  }
  const command = decodeCommand(payload);
  if (command.type !== "atomic" || session === undefined) return command;
  return { type: "atomic", operation: { ...command.operation, session } };
}
