/**
 * The pub/sub service's commands, results and typed refusals, and their
 * envelope payloads (MessagePack maps). Everything that depends on time or
 * chance is decided at proposal and carried in the command: `nowMs` is the
 * proposing node's clock (the leader's, for the leader's own `tick`), a new
 * member's id is drawn by the proposer. Offsets, partitions of keyed and
 * unkeyed messages, assignments, dedup, dead letters and cursors are
 * decided at apply.
 *
 * | command       | what apply does                                                  |
 * | ------------- | ---------------------------------------------------------------- |
 * | `topicCreate` | creates a topic (or answers an identical one)                    |
 * | `topicDelete` | deletes a topic, its records, schedule, producers (and groups if `force`) |
 * | `publish`     | appends a batch (or schedules its delayed messages), dedup by producer |
 * | `join`        | adds or refreshes a member (creating the group), rebalances       |
 * | `leave`       | removes a member, rebalances                                     |
 * | `fetch`       | records deliveries with deadlines and answers them               |
 * | `ack`         | acks, nacks, extends or terminates deliveries, moves cursors     |
 * | `reset`       | moves cursors (empty group, or `force`: bumps the generation)    |
 * | `pause`, `resume` | stops or restarts deliveries                                 |
 * | `tick`        | the leader's clock: due delayed messages appended, age trims, expired deadlines (failed deliveries, dead letters), ended pauses; each bounded per entry |
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";

/**
 * The service's limits: the protocol's `PUBSUB_LIMITS` (a service may not
 * import protocol values; a test checks they agree).
 */
export const PUBSUB_SERVICE_LIMITS = {
  topicsMax: 10_000,
  namePattern: /^[A-Za-z0-9._-]{1,128}$/,
  memberIdPattern: /^[A-Za-z0-9._-]{1,64}$/,
  partitionsMax: 256,
  keyBytesMax: 1_024,
  headersMax: 64,
  headerNameBytesMax: 128,
  headersBytesMax: 16_384,
  reservedHeaderPrefix: "aspen-",
  messageBytesMax: 256 * 1024,
  batchMessagesMax: 1_000,
  batchBytesMax: 1024 * 1024,
  producerIdCharsMax: 64,
  dedupWindowMsDefault: 120_000,
  dedupWindowMsMax: 7 * 86_400_000,
  producersPerTopicMax: 10_000,
  delayMsMax: 30 * 86_400_000,
  groupsPerTopicMax: 1_000,
  membersPerGroupMax: 1_000,
  ackDeadlineMsDefault: 30_000,
  ackDeadlineMsMin: 1_000,
  ackDeadlineMsMax: 43_200_000,
  maxDeliveriesDefault: 5,
  maxDeliveriesMax: 100,
  maxAckPendingDefault: 1_000,
  maxAckPendingMax: 10_000,
  fetchBatchMax: 1_000,
  acksMax: 1_000,
  nackDelayMsMax: 43_200_000,
  /** Items (releases, trimmed records, expired deadlines) one tick handles per kind. */
  tickItemsMax: 1_000,
} as const;

/** A message value's encoding: Deno KV's V8 serialization or raw bytes. */
export type MessageEncoding = "v8" | "bytes";

/** Retention of each partition; null = unbounded. */
export interface Retention {
  readonly maxMessages: number | null;
  readonly maxBytes: number | null;
  readonly maxAgeMs: number | null;
}

/** One message of a publish, validated. */
export interface PublishMessage {
  readonly value: Uint8Array;
  readonly encoding: MessageEncoding;
  readonly key: string | null;
  /** Name/value pairs in the order given. */
  readonly headers: readonly (readonly [string, string])[];
  readonly partition: number | null;
  /** With the command's `producerId`: required. */
  readonly sequence: number | null;
  /** Absolute (the proposer turned `delayMs` into it); null: now. */
  readonly deliverAtMs: number | null;
}

/** Where a new group starts. */
export type GroupStart =
  | { readonly kind: "all" }
  | { readonly kind: "new" }
  | {
    readonly kind: "offsets";
    readonly offsets: Readonly<Record<string, number>>;
  }
  | { readonly kind: "time"; readonly timeMs: number };

/** A group's options with defaults filled in (by the proposer). */
export interface GroupOptions {
  readonly start: GroupStart;
  readonly ackDeadlineMs: number;
  readonly maxDeliveries: number;
  readonly maxAckPending: number;
  readonly deadLetterTopic: string;
}

/** What a member does with a delivery. */
export type AckAction = "ack" | "nack" | "inProgress" | "terminate";

/** One ack of an `ack` command. */
export interface AckOp {
  readonly partition: number;
  readonly offset: number;
  readonly action: AckAction;
  /** `nack`: redeliver after this long (0 = now). */
  readonly delayMs: number;
}

/** Where a reset moves cursors. */
export type ResetTarget =
  | { readonly kind: "earliest" }
  | { readonly kind: "latest" }
  | { readonly kind: "offset"; readonly offset: number }
  | { readonly kind: "time"; readonly timeMs: number };

/** A pub/sub command. */
export type PubsubCommand =
  | {
    readonly type: "topicCreate";
    readonly name: string;
    readonly partitions: number;
    readonly retention: Retention;
    readonly dedupWindowMs: number;
    readonly nowMs: number;
  }
  | {
    readonly type: "topicDelete";
    readonly name: string;
    readonly force: boolean;
  }
  | {
    readonly type: "publish";
    readonly topic: string;
    readonly producerId: string | null;
    readonly messages: readonly PublishMessage[];
    readonly nowMs: number;
  }
  | {
    readonly type: "join";
    readonly topic: string;
    readonly group: string;
    readonly memberId: string;
    readonly lease: string;
    /** Null: the group's options, or the defaults for a new group. */
    readonly options: GroupOptions | null;
    readonly nowMs: number;
  }
  | {
    readonly type: "leave";
    readonly topic: string;
    readonly group: string;
    readonly memberId: string;
    readonly nowMs: number;
  }
  | {
    readonly type: "fetch";
    readonly topic: string;
    readonly group: string;
    readonly memberId: string;
    readonly generation: number;
    readonly batch: number;
    /** Null: no byte bound (at least one message is always taken). */
    readonly maxBytes: number | null;
    readonly nowMs: number;
  }
  | {
    readonly type: "ack";
    readonly topic: string;
    readonly group: string;
    readonly memberId: string;
    readonly generation: number;
    readonly acks: readonly AckOp[];
    readonly nowMs: number;
  }
  | {
    readonly type: "reset";
    readonly topic: string;
    readonly group: string;
    readonly to: ResetTarget;
    readonly partition: number | null;
    readonly force: boolean;
    readonly nowMs: number;
  }
  | {
    readonly type: "pause";
    readonly topic: string;
    readonly group: string;
    readonly untilMs: number | null;
  }
  | { readonly type: "resume"; readonly topic: string; readonly group: string }
  | { readonly type: "tick"; readonly nowMs: number };

/** Why the service refuses a command (protocol error codes); nothing changed. */
export type PubsubErrorCode =
  | "invalid"
  | "limitExceeded"
  | "topicExists"
  | "topicNotFound"
  | "topicInUse"
  | "groupNotFound"
  | "groupConfigMismatch"
  | "groupNotEmpty"
  | "staleGeneration"
  | "sequenceTooOld"
  | "messageFinished"
  | "leaseNotFound";

/** A refused pub/sub command: its protocol error code, why, and details. */
export class PubsubError extends Error {
  /** Always `PubsubError`. */
  override name = "PubsubError";
  /** The protocol error code. */
  readonly code: PubsubErrorCode;
  /** Machine-readable facts (`staleGeneration`: generation and assignment). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  /** A refusal with error `code`. */
  constructor(
    code: PubsubErrorCode,
    message: string,
    details?: Readonly<Record<string, unknown>>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

/** Where one published message went. */
export type PublishOutcome =
  | {
    readonly partition: number;
    readonly offset: number;
    readonly duplicate: boolean;
  }
  | {
    readonly scheduled: string;
    readonly deliverAtMs: number;
    readonly duplicate: boolean;
  };

/** A delivered message, as fetch answers it. */
export interface Delivery {
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: Uint8Array;
  readonly encoding: MessageEncoding;
  readonly headers: readonly (readonly [string, string])[];
  readonly publishedAtMs: number;
  readonly delivery: number;
  readonly deadlineMs: number;
}

/** What a successful command answers, by command type. */
export type PubsubAnswer =
  | { readonly type: "topicCreate"; readonly created: boolean }
  | { readonly type: "topicDelete"; readonly deleted: boolean }
  | { readonly type: "publish"; readonly records: readonly PublishOutcome[] }
  | {
    readonly type: "join";
    readonly memberId: string;
    readonly generation: number;
    readonly partitions: readonly number[];
  }
  | {
    readonly type: "leave";
    readonly generation: number;
    readonly left: boolean;
  }
  | {
    readonly type: "fetch";
    readonly generation: number;
    readonly messages: readonly Delivery[];
  }
  | {
    readonly type: "ack";
    readonly results: readonly {
      readonly partition: number;
      readonly offset: number;
      readonly ok: boolean;
    }[];
  }
  | {
    readonly type: "reset";
    readonly generation: number;
    readonly partitions: readonly {
      readonly partition: number;
      readonly cursor: number;
    }[];
  }
  | {
    readonly type: "pause";
    readonly paused: boolean;
    readonly pausedUntilMs: number | null;
  }
  | {
    readonly type: "tick";
    readonly released: number;
    readonly trimmed: number;
    readonly expired: number;
    /** More was due than one tick handles: the leader ticks again at once. */
    readonly more: boolean;
  };

/** The result of a command, identical on every replica. */
export type PubsubResult =
  | ({ readonly ok: true; readonly index: number } & {
    readonly answer: PubsubAnswer;
  })
  | {
    readonly ok: false;
    readonly index: number;
    readonly reason: PubsubErrorCode | "sessionReused" | "sessionExpired";
    readonly message: string;
    readonly details?: Readonly<Record<string, unknown>>;
  };

const encoder = new Encoder();
const decoder = new Decoder({
  maxStrLength: 1024 * 1024,
  maxBinLength: 1024 * 1024,
  maxArrayLength: 2 * PUBSUB_SERVICE_LIMITS.batchMessagesMax,
  maxMapLength: 1024,
  maxExtLength: 0,
});

/** Encodes a command into an envelope payload. */
export function encodePubsubCommand(command: PubsubCommand): Uint8Array {
  return encoder.encode(command);
}

/** The command types. */
export const PUBSUB_COMMAND_TYPES: ReadonlySet<string> = new Set([
  "topicCreate",
  "topicDelete",
  "publish",
  "join",
  "leave",
  "fetch",
  "ack",
  "reset",
  "pause",
  "resume",
  "tick",
]);

/**
 * Decodes an envelope payload and checks its shape (`validatePubsubCommand`).
 *
 * @throws {PubsubError} `invalid` for a payload that is not a valid command.
 */
export function decodePubsubCommand(payload: Uint8Array): PubsubCommand {
  let raw: unknown;
  try {
    raw = decoder.decode(payload);
  } catch (error) {
    throw new PubsubError(
      "invalid",
      "Cannot decode pub/sub command",
      undefined,
      {
        cause: error,
      },
    );
  }
  if (
    typeof raw !== "object" || raw === null || Array.isArray(raw) ||
    !PUBSUB_COMMAND_TYPES.has((raw as { type?: unknown }).type as string)
  ) {
    throw new PubsubError(
      "invalid",
      "Cannot decode pub/sub command: unknown type",
    );
  }
  return validatePubsubCommand(raw as PubsubCommand);
}

// ---------------------------------------------------------------------------
// Validation: the front end calls these on requests (typed 4xx before any
// proposal); apply calls validatePubsubCommand again so no entry can corrupt
// the state.

const utf8 = new TextEncoder();

function invalid(message: string): never {
  throw new PubsubError("invalid", message);
}

function isInteger(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= min && value <= max;
}

/** Checks an integer field in [min, max]. @throws {PubsubError} `invalid`. */
export function validateInteger(
  field: string,
  value: unknown,
  min: number,
  max: number,
): number {
  if (!isInteger(value, min, max)) {
    invalid(`Invalid ${field}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

/** Checks a topic or group name. @throws {PubsubError} `invalid`. */
export function validateName(field: string, name: unknown): string {
  if (
    typeof name !== "string" || !PUBSUB_SERVICE_LIMITS.namePattern.test(name)
  ) {
    invalid(`Invalid ${field}: expected 1 to 128 of [A-Za-z0-9._-]`);
  }
  return name;
}

/** Checks a member id. @throws {PubsubError} `invalid`. */
export function validateMemberId(id: unknown): string {
  if (
    typeof id !== "string" || !PUBSUB_SERVICE_LIMITS.memberIdPattern.test(id)
  ) {
    invalid("Invalid memberId: expected 1 to 64 of [A-Za-z0-9._-]");
  }
  return id;
}

/** Checks a lease id: 16 lowercase hex digits. @throws {PubsubError} `invalid`. */
export function validateLease(id: unknown): string {
  if (typeof id !== "string" || !/^[0-9a-f]{16}$/.test(id)) {
    invalid("Invalid lease: expected 16 lowercase hex digits");
  }
  return id;
}

function validateRetention(retention: Retention): void {
  if (typeof retention !== "object" || retention === null) {
    invalid("Invalid retention: expected an object");
  }
  const { maxMessages, maxBytes, maxAgeMs } = retention;
  if (maxMessages !== null) {
    validateInteger(
      "retention.maxMessages",
      maxMessages,
      1,
      Number.MAX_SAFE_INTEGER,
    );
  }
  if (maxBytes !== null) {
    validateInteger("retention.maxBytes", maxBytes, 1, Number.MAX_SAFE_INTEGER);
  }
  if (maxAgeMs !== null) {
    validateInteger("retention.maxAgeMs", maxAgeMs, 1, Number.MAX_SAFE_INTEGER);
  }
}

/** Bytes a message counts for in limits and retention: value, key and headers. */
export function messageBytes(message: PublishMessage): number {
  let bytes = message.value.byteLength;
  if (message.key !== null) bytes += utf8.encode(message.key).byteLength;
  for (const [name, value] of message.headers) {
    bytes += utf8.encode(name).byteLength + utf8.encode(value).byteLength;
  }
  return bytes;
}

/**
 * Checks one message (server headers allowed only when `reservedOk`, for
 * the service's own dead letters).
 *
 * @throws {PubsubError} `invalid` or `limitExceeded`.
 */
export function validateMessage(
  message: PublishMessage,
  reservedOk = false,
): PublishMessage {
  const limits = PUBSUB_SERVICE_LIMITS;
  if (typeof message !== "object" || message === null) {
    invalid("Invalid message: expected an object");
  }
  if (!(message.value instanceof Uint8Array)) invalid("Invalid message value");
  if (message.encoding !== "v8" && message.encoding !== "bytes") {
    invalid("Invalid message value encoding: expected v8 or bytes");
  }
  if (message.key !== null) {
    if (typeof message.key !== "string") {
      invalid("Invalid message key: expected a string");
    }
    if (utf8.encode(message.key).byteLength > limits.keyBytesMax) {
      throw new PubsubError(
        "limitExceeded",
        `Message key exceeds ${limits.keyBytesMax} bytes`,
      );
    }
  }
  if (!Array.isArray(message.headers)) invalid("Invalid message headers");
  if (message.headers.length > limits.headersMax) {
    throw new PubsubError(
      "limitExceeded",
      `A message has at most ${limits.headersMax} headers`,
    );
  }
  let headerBytes = 0;
  for (const pair of message.headers) {
    if (
      !Array.isArray(pair) || pair.length !== 2 ||
      typeof pair[0] !== "string" ||
      typeof pair[1] !== "string" || pair[0].length === 0
    ) {
      invalid(
        "Invalid message header: expected a non-empty name and a string value",
      );
    }
    const nameBytes = utf8.encode(pair[0]).byteLength;
    if (nameBytes > limits.headerNameBytesMax) {
      throw new PubsubError(
        "limitExceeded",
        `A header name has at most ${limits.headerNameBytesMax} bytes`,
      );
    }
    if (
      !reservedOk &&
      pair[0].toLowerCase().startsWith(limits.reservedHeaderPrefix)
    ) {
      invalid(
        `Invalid header name: '${limits.reservedHeaderPrefix}*' is reserved`,
      );
    }
    headerBytes += nameBytes + utf8.encode(pair[1]).byteLength;
  }
  if (headerBytes > limits.headersBytesMax) {
    throw new PubsubError(
      "limitExceeded",
      `Headers exceed ${limits.headersBytesMax} bytes`,
    );
  }
  if (message.partition !== null) {
    validateInteger(
      "partition",
      message.partition,
      0,
      limits.partitionsMax - 1,
    );
  }
  if (message.sequence !== null) {
    validateInteger("sequence", message.sequence, 0, Number.MAX_SAFE_INTEGER);
  }
  if (message.deliverAtMs !== null) {
    validateInteger(
      "deliverAtMs",
      message.deliverAtMs,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  }
  if (messageBytes(message) > limits.messageBytesMax) {
    throw new PubsubError(
      "limitExceeded",
      `A message exceeds ${limits.messageBytesMax} bytes`,
    );
  }
  return message;
}

function validateOptions(options: GroupOptions): void {
  const limits = PUBSUB_SERVICE_LIMITS;
  if (typeof options !== "object" || options === null) {
    invalid("Invalid options");
  }
  const start = options.start;
  if (typeof start !== "object" || start === null) {
    invalid("Invalid options.start");
  }
  if (start.kind === "offsets") {
    if (typeof start.offsets !== "object" || start.offsets === null) {
      invalid("Invalid options.start.offsets");
    }
    for (const [p, offset] of Object.entries(start.offsets)) {
      validateInteger(
        "options.start partition",
        Number(p),
        0,
        limits.partitionsMax - 1,
      );
      validateInteger(
        "options.start offset",
        offset,
        0,
        Number.MAX_SAFE_INTEGER,
      );
    }
  } else if (start.kind === "time") {
    validateInteger(
      "options.start.timeMs",
      start.timeMs,
      0,
      Number.MAX_SAFE_INTEGER,
    );
  } else if (start.kind !== "all" && start.kind !== "new") {
    invalid("Invalid options.start: expected all, new, offsets or timeMs");
  }
  validateInteger(
    "options.ackDeadlineMs",
    options.ackDeadlineMs,
    limits.ackDeadlineMsMin,
    limits.ackDeadlineMsMax,
  );
  validateInteger(
    "options.maxDeliveries",
    options.maxDeliveries,
    1,
    limits.maxDeliveriesMax,
  );
  validateInteger(
    "options.maxAckPending",
    options.maxAckPending,
    1,
    limits.maxAckPendingMax,
  );
  validateName("options.deadLetterTopic", options.deadLetterTopic);
}

function validateRef(command: { topic: string; group: string }): void {
  validateName("topic", command.topic);
  validateName("group", command.group);
}

function validateNow(nowMs: unknown): void {
  validateInteger("nowMs", nowMs, 0, Number.MAX_SAFE_INTEGER);
}

/**
 * Checks a whole command's shape and limits (also done by
 * `decodePubsubCommand`).
 *
 * @throws {PubsubError} `invalid` or `limitExceeded`.
 */
export function validatePubsubCommand(command: PubsubCommand): PubsubCommand {
  const limits = PUBSUB_SERVICE_LIMITS;
  switch (command.type) {
    case "topicCreate":
      validateName("name", command.name);
      validateInteger(
        "partitions",
        command.partitions,
        1,
        limits.partitionsMax,
      );
      validateRetention(command.retention);
      validateInteger(
        "dedupWindowMs",
        command.dedupWindowMs,
        0,
        limits.dedupWindowMsMax,
      );
      validateNow(command.nowMs);
      return command;
    case "topicDelete":
      validateName("name", command.name);
      if (typeof command.force !== "boolean") invalid("Invalid force");
      return command;
    case "publish": {
      validateName("topic", command.topic);
      validateNow(command.nowMs);
      if (command.producerId !== null) {
        if (
          typeof command.producerId !== "string" ||
          command.producerId.length === 0 ||
          command.producerId.length > limits.producerIdCharsMax
        ) {
          invalid(
            `Invalid producerId: expected 1 to ${limits.producerIdCharsMax} characters`,
          );
        }
      }
      if (
        !Array.isArray(command.messages) || command.messages.length === 0 ||
        command.messages.length > limits.batchMessagesMax
      ) {
        throw new PubsubError(
          command.messages?.length > limits.batchMessagesMax
            ? "limitExceeded"
            : "invalid",
          `A publish carries 1 to ${limits.batchMessagesMax} messages`,
        );
      }
      let bytes = 0;
      for (const message of command.messages) {
        validateMessage(message);
        if ((message.sequence === null) !== (command.producerId === null)) {
          invalid(
            "Invalid publish: with a producerId every message has a sequence, else none",
          );
        }
        if (
          message.deliverAtMs !== null &&
          message.deliverAtMs > command.nowMs + limits.delayMsMax
        ) {
          invalid(`Invalid delay: at most ${limits.delayMsMax} ms`);
        }
        bytes += messageBytes(message);
      }
      if (bytes > limits.batchBytesMax) {
        throw new PubsubError(
          "limitExceeded",
          `A publish exceeds ${limits.batchBytesMax} bytes`,
        );
      }
      return command;
    }
    case "join":
      validateRef(command);
      validateMemberId(command.memberId);
      validateLease(command.lease);
      if (command.options !== null) validateOptions(command.options);
      validateNow(command.nowMs);
      return command;
    case "leave":
      validateRef(command);
      validateMemberId(command.memberId);
      validateNow(command.nowMs);
      return command;
    case "fetch":
      validateRef(command);
      validateMemberId(command.memberId);
      validateInteger(
        "generation",
        command.generation,
        0,
        Number.MAX_SAFE_INTEGER,
      );
      validateInteger("batch", command.batch, 1, limits.fetchBatchMax);
      if (command.maxBytes !== null) {
        validateInteger(
          "maxBytes",
          command.maxBytes,
          1,
          Number.MAX_SAFE_INTEGER,
        );
      }
      validateNow(command.nowMs);
      return command;
    case "ack":
      validateRef(command);
      validateMemberId(command.memberId);
      validateInteger(
        "generation",
        command.generation,
        0,
        Number.MAX_SAFE_INTEGER,
      );
      if (
        !Array.isArray(command.acks) || command.acks.length === 0 ||
        command.acks.length > limits.acksMax
      ) {
        invalid(`An ack call carries 1 to ${limits.acksMax} acks`);
      }
      for (const ack of command.acks) {
        if (typeof ack !== "object" || ack === null) invalid("Invalid ack");
        validateInteger(
          "ack partition",
          ack.partition,
          0,
          limits.partitionsMax - 1,
        );
        validateInteger("ack offset", ack.offset, 0, Number.MAX_SAFE_INTEGER);
        if (!["ack", "nack", "inProgress", "terminate"].includes(ack.action)) {
          invalid(
            "Invalid ack action: expected ack, nack, inProgress or terminate",
          );
        }
        validateInteger("ack delayMs", ack.delayMs, 0, limits.nackDelayMsMax);
      }
      validateNow(command.nowMs);
      return command;
    case "reset": {
      validateRef(command);
      const to = command.to;
      if (typeof to !== "object" || to === null) {
        invalid("Invalid reset target");
      }
      if (to.kind === "offset") {
        validateInteger("reset offset", to.offset, 0, Number.MAX_SAFE_INTEGER);
      } else if (to.kind === "time") {
        validateInteger("reset timeMs", to.timeMs, 0, Number.MAX_SAFE_INTEGER);
      } else if (to.kind !== "earliest" && to.kind !== "latest") {
        invalid(
          "Invalid reset target: expected earliest, latest, offset or time",
        );
      }
      if (command.partition !== null) {
        validateInteger(
          "partition",
          command.partition,
          0,
          limits.partitionsMax - 1,
        );
      }
      if (typeof command.force !== "boolean") invalid("Invalid force");
      validateNow(command.nowMs);
      return command;
    }
    case "pause":
      validateRef(command);
      if (command.untilMs !== null) {
        validateInteger("untilMs", command.untilMs, 0, Number.MAX_SAFE_INTEGER);
      }
      return command;
    case "resume":
      validateRef(command);
      return command;
    case "tick":
      validateNow(command.nowMs);
      return command;
  }
}
