/**
 * The KV service's commands as envelope payloads (see `state/envelope.ts`):
 * MessagePack arrays, with KV Connect's numeric codes for mutation types and
 * value encodings. A write's session travels in the envelope, not here; the
 * queue commands are the queues service's (`services/queues/commands.ts`).
 *
 * | command | layout                                                             |
 * | ------- | ------------------------------------------------------------------ |
 * | atomic  | `[1, checks, mutations, enqueues]`, then `resend`, `coordination`, `pubsub` (each nil when absent; trailing nils left out) |
 * | expire  | `[2, timestampMs, keyCountMax]`                                    |
 * | resendDelivered | `[8, [[clientId, digest, index], …]]`                      |
 *
 * - check: `[key, versionstamp | nil]`
 * - set (1), setSuffixVersionstampedKey (9): `[type, key, encoding, data, expireAtMs | nil]`,
 *   plus the lease id as a sixth field for a set with a lease
 * - coordination: `[[[0, lease, position] | [1, name, token, position], …], checkPositions | nil]`
 * - delete (2): `[type, key]`
 * - sum (3): `[type, key, encoding, data, sumMin | nil, sumMax | nil, sumClamp]`
 * - max (4), min (5): `[type, key, encoding, data]`
 * - enqueue: `[payload, deadlineMs, keysIfUndelivered, backoffSchedule | nil]`,
 *   plus the queue name as a fifth field when not the default queue
 * - encodings: v8 = 1, le64 = 2, bytes = 3
 * - resend: `[clientId, digest, mergeable, atMs]`
 * - pubsub: `[nowMs, publishes, acks]`; publish: `[topic, producerId | nil,
 *   value, encoding, key | nil, [[name, value], …], partition | nil,
 *   sequence | nil, deliverAtMs | nil]`; ack: `[topic, group, memberId,
 *   generation, partition, offset]`
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type {
  KvAtomicOperation,
  KvCheck,
  KvCommand,
  KvCoordinationCheck,
  KvEnqueue,
  KvMutation,
  KvPubsubAck,
  KvPubsubPublish,
  KvPubsubStep,
  KvQueueCommand,
  KvResend,
  ValueEncoding,
} from "../../model/types.ts";
import { KvInvalidError } from "../../model/errors.ts";
import { SESSION_CLIENT_ID_MAX } from "../../state/host.ts";

export { SESSION_CLIENT_ID_MAX };

/** A command of the KV service (the queue commands belong to the queues service). */
export type KvServiceCommand = Exclude<KvCommand, KvQueueCommand>;

const COMMAND_ATOMIC = 1;
const COMMAND_EXPIRE = 2;
const COMMAND_RESEND_DELIVERED = 8;
/** Marks one resendDelivered command carries at most. */
export const RESEND_MARKS_MAX = 1000;
const MUTATION_CODES = {
  set: 1,
  delete: 2,
  sum: 3,
  max: 4,
  min: 5,
  setSuffixVersionstampedKey: 9,
} as const;
const MUTATION_TYPES = new Map<number, KvMutation["type"]>(
  Object.entries(MUTATION_CODES).map((
    [type, code],
  ) => [code, type as KvMutation["type"]]),
);
const ENCODING_CODES = { v8: 1, le64: 2, bytes: 3 } as const;
const ENCODINGS = new Map<number, ValueEncoding>(
  Object.entries(ENCODING_CODES).map((
    [name, code],
  ) => [code, name as ValueEncoding]),
);
/** Upper bound on any list in a command, far above the limits, so decoding is bounded. */
const COMMAND_LIST_LENGTH_MAX = 100_000;

const encoder = new Encoder();
const decoder = new Decoder({
  maxArrayLength: COMMAND_LIST_LENGTH_MAX,
  maxMapLength: 0,
  maxExtLength: 0,
});

function encodeMutation(mutation: KvMutation): unknown[] {
  const code = MUTATION_CODES[mutation.type];
  if (mutation.type === "delete") return [code, mutation.key];
  const { key, value } = mutation;
  const encoding = ENCODING_CODES[value.encoding];
  // Literals, not a spread of a common head: this runs for every write.
  if (
    mutation.type === "set" || mutation.type === "setSuffixVersionstampedKey"
  ) {
    return mutation.lease === undefined
      ? [code, key, encoding, value.data, mutation.expireAtMs ?? null]
      : [
        code,
        key,
        encoding,
        value.data,
        mutation.expireAtMs ?? null,
        mutation.lease,
      ];
  }
  if (mutation.type === "sum") {
    return [
      code,
      key,
      encoding,
      value.data,
      mutation.sumMin ?? null,
      mutation.sumMax ?? null,
      mutation.sumClamp ?? false,
    ];
  }
  return [code, key, encoding, value.data];
}

/**
 * Encodes a KV command into an envelope payload (an atomic operation's
 * session is left out: the envelope carries it).
 *
 * @example
 * ```ts
 * import { decodeCommand, encodeCommand } from "./commands.ts";
 * import assert from "node:assert/strict";
 * const bytes = encodeCommand({ type: "expire", timestampMs: 1000, keyCountMax: 100 });
 * assert.deepEqual(decodeCommand(bytes), { type: "expire", timestampMs: 1000, keyCountMax: 100 });
 * ```
 */
export function encodeCommand(command: KvServiceCommand): Uint8Array {
  return encoder.encode(commandFields(command));
}

/**
 * As {@linkcode encodeCommand}, but a view into the encoder's buffer, valid
 * only until the next encode (the envelope copies it at once).
 */
export function encodeCommandView(command: KvServiceCommand): Uint8Array {
  return encoder.encodeSharedRef(commandFields(command));
}

function commandFields(command: KvServiceCommand): unknown[] {
  if (command.type === "expire") {
    return [
      COMMAND_EXPIRE,
      command.timestampMs,
      command.keyCountMax,
    ];
  }
  if (command.type === "resendDelivered") {
    return [
      COMMAND_RESEND_DELIVERED,
      command.marks.map((m) => [m.clientId, m.digest, m.index]),
    ];
  }
  const { checks, mutations, enqueues, resend, coordinationChecks } =
    command.operation;
  const resendFields = resend === undefined
    ? null
    : [resend.clientId, resend.digest, resend.mergeable, resend.atMs];
  const coordinationFields = coordinationChecks === undefined ? null : [
    coordinationChecks.map((c) =>
      c.kind === "lease"
        ? [0, c.lease, c.position]
        : [1, c.name, c.token, c.position]
    ),
    command.operation.checkPositions ?? null,
  ];
  const pubsub = command.operation.pubsub;
  const pubsubFields = pubsub === undefined ? null : [
    pubsub.nowMs,
    pubsub.publishes.map((p) => [
      p.topic,
      p.producerId,
      p.value,
      p.encoding === "v8" ? ENCODING_CODES.v8 : ENCODING_CODES.bytes,
      p.key,
      p.headers,
      p.partition,
      p.sequence,
      p.deliverAtMs,
    ]),
    pubsub.acks.map((
      a,
    ) => [a.topic, a.group, a.memberId, a.generation, a.partition, a.offset]),
  ];
  // Trailing absent fields are left out (older entries end earlier).
  const tail: unknown[] = [resendFields, coordinationFields, pubsubFields];
  while (tail.length > 0 && tail[tail.length - 1] === null) tail.pop();
  return [
    COMMAND_ATOMIC,
    checks.map((check) => [check.key, check.versionstamp]),
    mutations.map(encodeMutation),
    enqueues.map((enqueue) => [
      enqueue.payload,
      enqueue.deadlineMs,
      enqueue.keysIfUndelivered,
      enqueue.backoffSchedule,
      ...(enqueue.queue ? [enqueue.queue] : []),
    ]),
    ...tail,
  ];
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

function bytesOrNull(value: unknown, what: string): Uint8Array | null {
  return value === null ? null : bytes(value, what);
}

function integer(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    fail(`${what} must be a non-negative integer`);
  }
  return value;
}

function decodeCheck(raw: unknown): KvCheck {
  const [key, versionstamp, ...rest] = list(raw, "check");
  if (rest.length > 0) fail("check has extra fields");
  return {
    key: bytes(key, "check key"),
    versionstamp: bytesOrNull(versionstamp, "check versionstamp"),
  };
}

function decodeMutation(raw: unknown): KvMutation {
  const fields = list(raw, "mutation");
  const type = MUTATION_TYPES.get(fields[0] as number);
  if (type === undefined) fail(`unknown mutation type ${String(fields[0])}`);
  const key = bytes(fields[1], "mutation key");
  if (type === "delete") {
    if (fields.length !== 2) fail("delete mutation must have 2 fields");
    return { type, key };
  }
  const encoding = ENCODINGS.get(fields[2] as number);
  if (encoding === undefined) {
    fail(`unknown value encoding ${String(fields[2])}`);
  }
  const value = { encoding, data: bytes(fields[3], "mutation value") };
  if (type === "set" || type === "setSuffixVersionstampedKey") {
    const leased = type === "set" && fields.length === 6;
    if (fields.length !== 5 && !leased) {
      fail(`${type} mutation must have 5 fields`);
    }
    const expireAtMs = fields[4] === null
      ? null
      : integer(fields[4], "expireAtMs");
    return leased
      ? { type, key, value, expireAtMs, lease: text(fields[5], "lease") }
      : { type, key, value, expireAtMs };
  }
  if (type === "sum") {
    if (fields.length !== 7 || typeof fields[6] !== "boolean") {
      fail("sum mutation must have 7 fields ending with a boolean");
    }
    return {
      type,
      key,
      value,
      sumMin: bytesOrNull(fields[4], "sumMin"),
      sumMax: bytesOrNull(fields[5], "sumMax"),
      sumClamp: fields[6],
    };
  }
  if (fields.length !== 4) fail(`${type} mutation must have 4 fields`);
  return { type, key, value };
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string") fail(`${what} must be a string`);
  return value;
}

function decodeEnqueue(raw: unknown): KvEnqueue {
  const [payload, deadlineMs, keys, schedule, queue, ...rest] = list(
    raw,
    "enqueue",
  );
  if (rest.length > 0) fail("enqueue has extra fields");
  return {
    ...(queue === undefined ? {} : { queue: text(queue, "queue name") }),
    payload: bytes(payload, "enqueue payload"),
    deadlineMs: integer(deadlineMs, "deadlineMs"),
    keysIfUndelivered: list(keys, "keysIfUndelivered").map((key) =>
      bytes(key, "keysIfUndelivered key")
    ),
    backoffSchedule: schedule === null
      ? null
      : list(schedule, "backoffSchedule").map((interval) =>
        integer(interval, "backoff interval")
      ),
  };
}

/**
 * Decodes a KV payload into a command, refusing anything that is not
 * exactly a valid command (so every replica refuses the same bytes).
 *
 * @throws {KvInvalidError} When the bytes are not a valid command.
 */
export function decodeCommand(data: Uint8Array): KvServiceCommand {
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
  if (fields[0] === COMMAND_RESEND_DELIVERED) return decodeMarks(fields);
  if (fields[0] === COMMAND_EXPIRE) {
    if (fields.length !== 3) fail("expire command must have 3 fields");
    return {
      type: "expire",
      timestampMs: integer(fields[1], "timestampMs"),
      keyCountMax: integer(fields[2], "keyCountMax"),
    };
  }
  if (
    fields[0] !== COMMAND_ATOMIC || fields.length < 4 || fields.length > 7
  ) {
    fail(`unknown command ${String(fields[0])}`);
  }
  const operation: KvAtomicOperation = {
    checks: list(fields[1], "checks").map(decodeCheck),
    mutations: list(fields[2], "mutations").map(decodeMutation),
    enqueues: list(fields[3], "enqueues").map(decodeEnqueue),
    ...(fields.length >= 5 && fields[4] !== null
      ? { resend: decodeResend(fields[4]) }
      : {}),
    ...(fields.length >= 6 && fields[5] !== null
      ? decodeCoordination(fields[5])
      : {}),
    ...(fields.length === 7 ? { pubsub: decodePubsub(fields[6]) } : {}),
  };
  return { type: "atomic", operation };
}

function nullable<T>(
  value: unknown,
  read: (value: unknown, what: string) => T,
  what: string,
): T | null {
  return value === null ? null : read(value, what);
}

function decodePubsub(raw: unknown): KvPubsubStep {
  const [nowMs, publishes, acks, ...rest] = list(raw, "pubsub");
  if (rest.length > 0) fail("pubsub has extra fields");
  return {
    nowMs: integer(nowMs, "pubsub nowMs"),
    publishes: list(publishes, "publishes").map((entry): KvPubsubPublish => {
      const f = list(entry, "publish");
      if (f.length !== 9) fail("publish must have 9 fields");
      const encoding = f[3] === ENCODING_CODES.v8
        ? "v8"
        : f[3] === ENCODING_CODES.bytes
        ? "bytes"
        : fail("publish encoding must be v8 or bytes");
      return {
        topic: text(f[0], "publish topic"),
        producerId: nullable(f[1], text, "publish producerId"),
        value: bytes(f[2], "publish value"),
        encoding,
        key: nullable(f[4], text, "publish key"),
        headers: list(f[5], "publish headers").map((pair) => {
          const [name, value, ...more] = list(pair, "publish header");
          if (more.length > 0) fail("publish header has extra fields");
          return [text(name, "header name"), text(value, "header value")];
        }),
        partition: nullable(f[6], integer, "publish partition"),
        sequence: nullable(f[7], integer, "publish sequence"),
        deliverAtMs: nullable(f[8], integer, "publish deliverAtMs"),
      };
    }),
    acks: list(acks, "acks").map((entry): KvPubsubAck => {
      const f = list(entry, "ack");
      if (f.length !== 6) fail("ack must have 6 fields");
      return {
        topic: text(f[0], "ack topic"),
        group: text(f[1], "ack group"),
        memberId: text(f[2], "ack memberId"),
        generation: integer(f[3], "ack generation"),
        partition: integer(f[4], "ack partition"),
        offset: integer(f[5], "ack offset"),
      };
    }),
  };
}

function decodeCoordination(raw: unknown): {
  coordinationChecks: KvCoordinationCheck[];
  checkPositions?: number[];
} {
  const [checks, positions, ...rest] = list(raw, "coordination");
  if (rest.length > 0) fail("coordination has extra fields");
  const coordinationChecks = list(checks, "coordination checks").map(
    (check): KvCoordinationCheck => {
      const f = list(check, "coordination check");
      if (f[0] === 0 && f.length === 3) {
        return {
          kind: "lease",
          lease: text(f[1], "lease"),
          position: integer(f[2], "position"),
        };
      }
      if (f[0] === 1 && f.length === 4) {
        return {
          kind: "fence",
          name: text(f[1], "fence name"),
          token: text(f[2], "fence token"),
          position: integer(f[3], "position"),
        };
      }
      fail("unknown coordination check");
    },
  );
  return positions === null ? { coordinationChecks } : {
    coordinationChecks,
    checkPositions: list(positions, "check positions").map((p) =>
      integer(p, "check position")
    ),
  };
}

function decodeMarks(fields: unknown[]): KvServiceCommand {
  if (fields.length !== 2) fail("resendDelivered command must have 2 fields");
  const raw = list(fields[1], "marks");
  if (raw.length > RESEND_MARKS_MAX) {
    fail(`resendDelivered carries at most ${RESEND_MARKS_MAX} marks`);
  }
  return {
    type: "resendDelivered",
    marks: raw.map((mark) => {
      const [clientId, digest, index, ...rest] = list(mark, "mark");
      if (rest.length > 0) fail("mark has extra fields");
      if (
        typeof clientId !== "string" || clientId.length === 0 ||
        clientId.length > SESSION_CLIENT_ID_MAX
      ) {
        fail(`mark client id must be 1 to ${SESSION_CLIENT_ID_MAX} characters`);
      }
      const hash = bytes(digest, "mark digest");
      if (hash.length !== 32) fail("mark digest must be 32 bytes");
      return { clientId, digest: hash, index: integer(index, "mark index") };
    }),
  };
}

function decodeResend(raw: unknown): KvResend {
  const [clientId, digest, mergeable, atMs, ...rest] = list(raw, "resend");
  if (
    typeof clientId !== "string" || clientId.length === 0 ||
    clientId.length > SESSION_CLIENT_ID_MAX
  ) {
    fail(`resend client id must be 1 to ${SESSION_CLIENT_ID_MAX} characters`);
  }
  const hash = bytes(digest, "resend digest");
  if (hash.length !== 32) fail("resend digest must be 32 bytes");
  if (typeof mergeable !== "boolean") {
    fail("resend mergeable must be a boolean");
  }
  if (rest.length > 0) fail("resend has extra fields");
  return {
    clientId,
    digest: hash,
    mergeable,
    atMs: integer(atMs, "resend atMs"),
  };
}
