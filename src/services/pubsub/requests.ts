/**
 * The pub/sub port's requests turned into the service's commands, with
 * what the proposer decides filled in: defaults (partitions, dedup window,
 * group options and the dead-letter topic `<topic>.dlq.<group>`), times
 * (`delayMs` → `deliverAtMs` from the node's clock) and shapes (headers as
 * ordered pairs, start and reset targets as tagged unions). Every command
 * is then checked by the service's own validator, so a bad request is a
 * typed `PubsubError` before anything is proposed. The node's port and the
 * KV front end's atomic step (its publishes) use them.
 *
 * @module
 */
import {
  type AckOp,
  type GroupOptions,
  type GroupStart,
  type PublishMessage,
  PUBSUB_SERVICE_LIMITS,
  type PubsubCommand,
  PubsubError,
  type ResetTarget,
  type Retention,
  validateInteger,
  validateName,
  validatePubsubCommand,
} from "./commands.ts";
import type { PortAck, PortMessage } from "./port.ts";
import type {
  WireGroupOptions,
  WireGroupStart,
  WireResetTarget,
  WireRetention,
} from "../../protocol/http_api_pubsub.ts";

/** Partitions of a topic created without a count. */
export const PARTITIONS_DEFAULT = 1;

function invalid(message: string): never {
  throw new PubsubError("invalid", message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `retention` of a create: absent fields are unbounded (null). */
export function retentionOf(given: WireRetention | undefined): Retention {
  if (given === undefined) {
    return { maxMessages: null, maxBytes: null, maxAgeMs: null };
  }
  const wire: unknown = given;
  if (!isObject(wire)) invalid("Invalid retention: expected an object");
  for (const name of Object.keys(wire)) {
    if (!["maxMessages", "maxBytes", "maxAgeMs"].includes(name)) {
      invalid(`Invalid retention: unknown field '${name.slice(0, 64)}'`);
    }
  }
  return {
    maxMessages: (wire.maxMessages ?? null) as number | null,
    maxBytes: (wire.maxBytes ?? null) as number | null,
    maxAgeMs: (wire.maxAgeMs ?? null) as number | null,
  };
}

/** The `topicCreate` command of a create request. */
export function topicCreateCommand(
  request: {
    readonly name: string;
    readonly partitions?: number;
    readonly retention?: WireRetention;
    readonly dedupWindowMs?: number;
  },
  nowMs: number,
): Extract<PubsubCommand, { type: "topicCreate" }> {
  return checked({
    type: "topicCreate",
    name: request.name,
    partitions: request.partitions ?? PARTITIONS_DEFAULT,
    retention: retentionOf(request.retention),
    dedupWindowMs: request.dedupWindowMs ??
      PUBSUB_SERVICE_LIMITS.dedupWindowMsDefault,
    nowMs,
  });
}

/**
 * One message of a publish: headers as pairs in the order given, and a
 * `delayMs` turned into an absolute `deliverAtMs` (giving both is refused).
 */
export function publishMessage(
  message: PortMessage,
  nowMs: number,
): PublishMessage {
  const raw: unknown = message;
  if (!isObject(raw)) invalid("Invalid message: expected an object");
  if (message.delayMs !== undefined && message.deliverAtMs !== undefined) {
    invalid("Invalid message: give delayMs or deliverAtMs, not both");
  }
  let deliverAtMs = message.deliverAtMs ?? null;
  if (message.delayMs !== undefined) {
    deliverAtMs = nowMs +
      validateInteger(
        "delayMs",
        message.delayMs,
        0,
        PUBSUB_SERVICE_LIMITS.delayMsMax,
      );
  }
  const headers = message.headers ?? {};
  if (!isObject(headers)) {
    invalid("Invalid message headers: expected an object");
  }
  return {
    value: message.value,
    encoding: message.encoding,
    key: message.key ?? null,
    headers: Object.entries(headers),
    partition: message.partition ?? null,
    sequence: message.sequence ?? null,
    deliverAtMs,
  };
}

/** The `publish` command of a batch. */
export function publishCommand(
  topic: string,
  messages: readonly PortMessage[],
  producerId: string | undefined,
  nowMs: number,
): Extract<PubsubCommand, { type: "publish" }> {
  if (!Array.isArray(messages)) invalid("Invalid messages: expected a list");
  if (messages.length > PUBSUB_SERVICE_LIMITS.batchMessagesMax) {
    // Before converting a huge list: the limit is the refusal.
    throw new PubsubError(
      "limitExceeded",
      `A publish carries 1 to ${PUBSUB_SERVICE_LIMITS.batchMessagesMax} messages`,
    );
  }
  return checked({
    type: "publish",
    topic,
    producerId: producerId ?? null,
    messages: messages.map((message) => publishMessage(message, nowMs)),
    nowMs,
  });
}

function startOf(given: WireGroupStart | undefined): GroupStart {
  const wire: unknown = given;
  if (wire === undefined || wire === "all") return { kind: "all" };
  if (wire === "new") return { kind: "new" };
  if (isObject(wire)) {
    const keys = Object.keys(wire);
    if (keys.length === 1 && keys[0] === "offsets" && isObject(wire.offsets)) {
      return {
        kind: "offsets",
        offsets: wire.offsets as Record<string, number>,
      };
    }
    if (keys.length === 1 && keys[0] === "timeMs") {
      return { kind: "time", timeMs: wire.timeMs as number };
    }
  }
  return invalid(
    "Invalid options.start: expected 'all', 'new', {offsets} or {timeMs}",
  );
}

const OPTION_FIELDS = [
  "start",
  "ackDeadlineMs",
  "maxDeliveries",
  "maxAckPending",
  "deadLetterTopic",
];

/** The dead-letter topic a group gets unless configured. */
export function defaultDeadLetterTopic(topic: string, group: string): string {
  return `${topic}.dlq.${group}`;
}

/**
 * A group's options with defaults filled in; null when none were given
 * (the group's own, or the service's defaults for a new group).
 *
 * @throws {PubsubError} `invalid` for a bad option, or when the default
 * dead-letter topic name would pass 128 characters (name one instead).
 */
export function groupOptions(
  topic: string,
  group: string,
  given: WireGroupOptions | undefined,
): GroupOptions | null {
  if (given === undefined) return null;
  const raw: unknown = given;
  if (!isObject(raw)) invalid("Invalid options: expected an object");
  const wire = given;
  for (const name of Object.keys(wire)) {
    if (!OPTION_FIELDS.includes(name)) {
      invalid(`Invalid options: unknown field '${name.slice(0, 64)}'`);
    }
  }
  const limits = PUBSUB_SERVICE_LIMITS;
  const deadLetterTopic = wire.deadLetterTopic ??
    defaultDeadLetterTopic(topic, group);
  if (
    wire.deadLetterTopic === undefined &&
    !limits.namePattern.test(deadLetterTopic)
  ) {
    invalid(
      `Invalid options: the default dead-letter topic '${
        deadLetterTopic.slice(0, 40)
      }…' is longer than 128 characters; name one with deadLetterTopic`,
    );
  }
  return {
    start: startOf(wire.start),
    ackDeadlineMs: wire.ackDeadlineMs ?? limits.ackDeadlineMsDefault,
    maxDeliveries: wire.maxDeliveries ?? limits.maxDeliveriesDefault,
    maxAckPending: wire.maxAckPending ?? limits.maxAckPendingDefault,
    deadLetterTopic,
  };
}

/** One ack (a `delayMs` counts for a nack only; default 0). */
export function ackOp(ack: PortAck): AckOp {
  const raw: unknown = ack;
  if (!isObject(raw)) invalid("Invalid ack: expected an object");
  return {
    partition: ack.partition,
    offset: ack.offset,
    action: ack.action,
    delayMs: ack.delayMs ?? 0,
  };
}

/** A reset's target as the service takes it. */
export function resetTarget(given: WireResetTarget): ResetTarget {
  const wire: unknown = given;
  if (wire === "earliest" || wire === "latest") return { kind: wire };
  if (isObject(wire)) {
    const keys = Object.keys(wire);
    if (keys.length === 1 && keys[0] === "offset") {
      return { kind: "offset", offset: wire.offset as number };
    }
    if (keys.length === 1 && keys[0] === "timeMs") {
      return { kind: "time", timeMs: wire.timeMs as number };
    }
  }
  return invalid(
    "Invalid reset target: expected 'earliest', 'latest', {offset} or {timeMs}",
  );
}

/** Checks a topic or group name of a read. @throws {PubsubError} `invalid`. */
export function checkedName(field: string, name: unknown): string {
  return validateName(field, name);
}

/**
 * Checks a command with the service's validator (as apply does).
 *
 * @throws {PubsubError} `invalid` or `limitExceeded`.
 */
export function checked<C extends PubsubCommand>(command: C): C {
  validatePubsubCommand(command);
  return command;
}
