/**
 * Checks and wire conversions of `client.pubsub`: names, messages to
 * publish (values as Deno KV encodes them), deliveries back to JS values.
 * The cluster validates everything again; these checks fail fast, before
 * anything is sent. Private to `src/client/`.
 *
 * @module
 */
import {
  PUBSUB_LIMITS,
  type WireDelivery,
  type WireMessageValue,
  type WirePublishMessage,
} from "../protocol/http_api_pubsub.ts";
import { CONSISTENCY_PARAMETER } from "../protocol/http_api.ts";
import { valueFromWire, valueToWire } from "./_values.ts";
import { KvU64 } from "./kv_u64.ts";
import type { PublishMessage, PubsubReadConsistency } from "./_pubsub_types.ts";

const encoder = new TextEncoder();

/**
 * Checks a topic or group name: 1 to 128 of `[A-Za-z0-9._-]`.
 *
 * @throws {TypeError} When it is not one.
 */
export function checkPubsubName(name: string, what: string): void {
  if (typeof name !== "string" || !PUBSUB_LIMITS.namePattern.test(name)) {
    throw new TypeError(
      `Invalid ${what} name '${name}': expected 1 to 128 of [A-Za-z0-9._-]`,
    );
  }
}

/**
 * Checks a member id: 1 to 64 of `[A-Za-z0-9._-]`.
 *
 * @throws {TypeError} When it is not one.
 */
export function checkMemberId(id: string): void {
  if (typeof id !== "string" || !PUBSUB_LIMITS.memberIdPattern.test(id)) {
    throw new TypeError(
      `Invalid member id '${id}': expected 1 to 64 of [A-Za-z0-9._-]`,
    );
  }
}

/**
 * Checks that `value` is a whole number in `[min, max]`.
 *
 * @throws {RangeError} When it is not.
 */
export function checkRange(
  value: number | undefined,
  what: string,
  min: number,
  max: number,
): void {
  if (value === undefined) return;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Invalid '${what}': must be a whole number from ${min} to ${max}: current value is ${value}`,
    );
  }
}

/** A random member id: 16 lowercase hex digits. */
export function randomMemberId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A message's value as the wire carries it: V8-serialized, or raw bytes.
 *
 * @throws {TypeError} For a `KvU64` (not a message encoding) or a value V8 cannot serialize.
 */
export function messageValueToWire(value: unknown): WireMessageValue {
  if (value instanceof KvU64) {
    throw new TypeError(
      "Invalid message value: a KvU64 is not a message encoding (publish its bigint or bytes)",
    );
  }
  const wire = valueToWire(value);
  return { encoding: wire.encoding as "v8" | "bytes", data: wire.data };
}

function checkHeaders(headers: Readonly<Record<string, string>>): void {
  const entries = Object.entries(headers);
  if (entries.length > PUBSUB_LIMITS.headersMax) {
    throw new RangeError(
      `Invalid headers: at most ${PUBSUB_LIMITS.headersMax}: received ${entries.length}`,
    );
  }
  for (const [name, value] of entries) {
    if (typeof value !== "string") {
      throw new TypeError(
        `Invalid header '${name}': expected a string value: received ${typeof value}`,
      );
    }
    const bytes = encoder.encode(name).length;
    if (bytes < 1 || bytes > PUBSUB_LIMITS.headerNameBytesMax) {
      throw new RangeError(
        `Invalid header name '${name}': must be 1 to ${PUBSUB_LIMITS.headerNameBytesMax} bytes`,
      );
    }
    if (name.toLowerCase().startsWith(PUBSUB_LIMITS.reservedHeaderPrefix)) {
      throw new TypeError(
        `Invalid header name '${name}': names starting with '${PUBSUB_LIMITS.reservedHeaderPrefix}' are reserved`,
      );
    }
  }
}

/**
 * The wire form of one message to publish.
 *
 * @throws {TypeError} For a value, key or header of the wrong shape.
 * @throws {RangeError} For a key, header, partition or delay out of range.
 */
export function publishMessageToWire(
  message: PublishMessage,
): WirePublishMessage {
  const { key, headers, partition, sequence, delayMs, deliverAtMs } = message;
  if (key !== undefined) {
    if (typeof key !== "string") {
      throw new TypeError(`Invalid key: expected a string: received ${key}`);
    }
    const bytes = encoder.encode(key).length;
    if (bytes > PUBSUB_LIMITS.keyBytesMax) {
      throw new RangeError(
        `Invalid key: must be at most ${PUBSUB_LIMITS.keyBytesMax} UTF-8 bytes: received ${bytes}`,
      );
    }
  }
  if (headers !== undefined) checkHeaders(headers);
  checkRange(partition, "partition", 0, PUBSUB_LIMITS.partitionsMax - 1);
  checkRange(delayMs, "delayMs", 0, PUBSUB_LIMITS.delayMsMax);
  checkRange(deliverAtMs, "deliverAtMs", 0, Number.MAX_SAFE_INTEGER);
  if (delayMs !== undefined && deliverAtMs !== undefined) {
    throw new TypeError(
      "Invalid message: give 'delayMs' or 'deliverAtMs', not both",
    );
  }
  if (sequence !== undefined && !Number.isSafeInteger(sequence)) {
    throw new RangeError(
      `Invalid 'sequence': must be a safe integer: current value is ${sequence}`,
    );
  }
  return {
    value: messageValueToWire(message.value),
    ...(key === undefined ? {} : { key }),
    ...(headers === undefined ? {} : { headers: { ...headers } }),
    ...(partition === undefined ? {} : { partition }),
    ...(sequence === undefined ? {} : { sequence }),
    ...(delayMs === undefined ? {} : { delayMs }),
    ...(deliverAtMs === undefined ? {} : { deliverAtMs }),
  };
}

/**
 * Checks a batch: 1 to 1,000 messages, each with a `sequence` exactly when
 * a `producerId` is given.
 *
 * @throws {RangeError} For an empty or too long batch.
 * @throws {TypeError} For a producer id or sequences that do not match.
 */
export function checkBatch(
  messages: readonly PublishMessage[],
  producerId: string | undefined,
): void {
  const max = PUBSUB_LIMITS.batchMessagesMax;
  if (messages.length < 1 || messages.length > max) {
    throw new RangeError(
      `Cannot publish as a batch must hold 1 to ${max} messages: current count is ${messages.length}`,
    );
  }
  if (producerId !== undefined) {
    if (
      typeof producerId !== "string" || producerId.length < 1 ||
      producerId.length > PUBSUB_LIMITS.producerIdCharsMax
    ) {
      throw new TypeError(
        `Invalid producerId '${producerId}': expected 1 to ${PUBSUB_LIMITS.producerIdCharsMax} characters`,
      );
    }
  }
  const sequenced = messages.filter((m) => m.sequence !== undefined).length;
  if (producerId !== undefined && sequenced !== messages.length) {
    throw new TypeError(
      "Cannot publish as every message needs a 'sequence' when a 'producerId' is given",
    );
  }
  if (producerId === undefined && sequenced > 0) {
    throw new TypeError(
      "Cannot publish as a 'sequence' needs a 'producerId'",
    );
  }
}

/** A delivery's parts as the consumer hands them out (value decoded). */
export interface DecodedDelivery {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: unknown;
  readonly headers: Readonly<Record<string, string>>;
  readonly publishedAtMs: number;
  readonly delivery: number;
  readonly deadlineMs: number;
}

/**
 * A delivery with its value decoded.
 *
 * @throws {TypeError} When its V8 bytes do not decode.
 */
export function deliveryFromWire(wire: WireDelivery): DecodedDelivery {
  return {
    partition: wire.partition,
    offset: wire.offset,
    key: wire.key ?? null,
    value: valueFromWire(wire.value),
    headers: { ...wire.headers },
    publishedAtMs: wire.publishedAtMs,
    delivery: wire.delivery,
    deadlineMs: wire.deadlineMs,
  };
}

/**
 * A read route with its consistency (`strong` is the node's default).
 *
 * @throws {TypeError} For a consistency other than `strong` or `eventual`.
 */
export function readPath(
  route: string,
  consistency: PubsubReadConsistency | undefined,
): string {
  if (consistency === undefined || consistency === "strong") return route;
  if (consistency !== "eventual") {
    throw new TypeError(
      `Invalid consistency '${consistency}': expected 'strong' or 'eventual'`,
    );
  }
  return `${route}?${CONSISTENCY_PARAMETER}=eventual`;
}
