/**
 * The state machine's commands as log-entry bytes: MessagePack arrays, with
 * KV Connect's numeric codes for mutation types and value encodings.
 *
 * | command | layout                                                             |
 * | ------- | ------------------------------------------------------------------ |
 * | atomic  | `[1, checks, mutations, enqueues]`, then `session \| nil`, then `resend` when present |
 * | expire  | `[2, timestampMs, keyCountMax]`                                    |
 * | queueLease | `[3, queue, timestampMs, leaseDeadlineMs, countMax]`            |
 * | queueAck   | `[4, ids]`                                                      |
 * | queueNack  | `[5, timestampMs, [[id, delivery], …]]`                         |
 * | queueExpireLeases | `[6, timestampMs, countMax]`                             |
 * | queueConfigure | `[7, queue, concurrencyMax \| nil]`                         |
 * | resendDelivered | `[8, [[clientId, digest, index], …]]`                      |
 *
 * - check: `[key, versionstamp | nil]`
 * - set (1), setSuffixVersionstampedKey (9): `[type, key, encoding, data, expireAtMs | nil]`
 * - delete (2): `[type, key]`
 * - sum (3): `[type, key, encoding, data, sumMin | nil, sumMax | nil, sumClamp]`
 * - max (4), min (5): `[type, key, encoding, data]`
 * - enqueue: `[payload, deadlineMs, keysIfUndelivered, backoffSchedule | nil]`,
 *   plus the queue name as a fifth field when not the default queue
 * - encodings: v8 = 1, le64 = 2, bytes = 3
 * - session: `[clientId, seq]`; resend: `[clientId, digest, mergeable, atMs]`
 *
 * @module
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import type {
  KvAtomicOperation,
  KvCheck,
  KvCommand,
  KvEnqueue,
  KvMutation,
  KvQueueCommand,
  KvResend,
  KvSession,
  ValueEncoding,
} from "../../model/types.ts";
import { KvInvalidError } from "../../model/errors.ts";

const COMMAND_ATOMIC = 1;
const COMMAND_EXPIRE = 2;
const COMMAND_QUEUE_LEASE = 3;
const COMMAND_QUEUE_ACK = 4;
const COMMAND_QUEUE_NACK = 5;
const COMMAND_QUEUE_EXPIRE_LEASES = 6;
const COMMAND_QUEUE_CONFIGURE = 7;
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
  const head = [code, key, ENCODING_CODES[value.encoding], value.data];
  if (
    mutation.type === "set" || mutation.type === "setSuffixVersionstampedKey"
  ) {
    return [...head, mutation.expireAtMs ?? null];
  }
  if (mutation.type === "sum") {
    return [
      ...head,
      mutation.sumMin ?? null,
      mutation.sumMax ?? null,
      mutation.sumClamp ?? false,
    ];
  }
  return head;
}

/**
 * Encodes a command into the bytes a log entry carries.
 *
 * @example
 * ```ts
 * import { decodeCommand, encodeCommand } from "./commands.ts";
 * import assert from "node:assert/strict";
 * const bytes = encodeCommand({ type: "expire", timestampMs: 1000, keyCountMax: 100 });
 * assert.deepEqual(decodeCommand(bytes), { type: "expire", timestampMs: 1000, keyCountMax: 100 });
 * ```
 */
export function encodeCommand(command: KvCommand): Uint8Array {
  if (command.type === "expire") {
    return encoder.encode([
      COMMAND_EXPIRE,
      command.timestampMs,
      command.keyCountMax,
    ]);
  }
  if (command.type === "resendDelivered") {
    return encoder.encode([
      COMMAND_RESEND_DELIVERED,
      command.marks.map((m) => [m.clientId, m.digest, m.index]),
    ]);
  }
  if (command.type !== "atomic") return encoder.encode(queueFields(command));
  const { checks, mutations, enqueues, session, resend } = command.operation;
  const tail: unknown[] = resend === undefined
    ? (session === undefined ? [] : [[session.clientId, session.seq]])
    : [
      session === undefined ? null : [session.clientId, session.seq],
      [resend.clientId, resend.digest, resend.mergeable, resend.atMs],
    ];
  return encoder.encode([
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
  ]);
}

function queueFields(command: KvQueueCommand): unknown[] {
  switch (command.type) {
    case "queueLease":
      return [
        COMMAND_QUEUE_LEASE,
        command.queue,
        command.timestampMs,
        command.leaseDeadlineMs,
        command.countMax,
      ];
    case "queueAck":
      return [COMMAND_QUEUE_ACK, command.ids];
    case "queueNack":
      return [
        COMMAND_QUEUE_NACK,
        command.timestampMs,
        command.messages.map((m) => [m.id, m.delivery]),
      ];
    case "queueExpireLeases":
      return [
        COMMAND_QUEUE_EXPIRE_LEASES,
        command.timestampMs,
        command.countMax,
      ];
    case "queueConfigure":
      return [COMMAND_QUEUE_CONFIGURE, command.queue, command.concurrencyMax];
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
    if (fields.length !== 5) fail(`${type} mutation must have 5 fields`);
    const expireAtMs = fields[4] === null
      ? null
      : integer(fields[4], "expireAtMs");
    return { type, key, value, expireAtMs };
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
 * Decodes a log entry's bytes into a command, refusing anything that is not
 * exactly a valid command (so every replica refuses the same bytes).
 *
 * @throws {KvInvalidError} When the bytes are not a valid command.
 */
export function decodeCommand(data: Uint8Array): KvCommand {
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
  const queueCommand = decodeQueueCommand(fields);
  if (queueCommand !== null) return queueCommand;
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
    fields[0] !== COMMAND_ATOMIC || fields.length < 4 || fields.length > 6
  ) {
    fail(`unknown command ${String(fields[0])}`);
  }
  const operation: KvAtomicOperation = {
    checks: list(fields[1], "checks").map(decodeCheck),
    mutations: list(fields[2], "mutations").map(decodeMutation),
    enqueues: list(fields[3], "enqueues").map(decodeEnqueue),
    ...(fields.length >= 5 && fields[4] !== null
      ? { session: decodeSession(fields[4]) }
      : {}),
    ...(fields.length === 6 ? { resend: decodeResend(fields[5]) } : {}),
  };
  return { type: "atomic", operation };
}

function decodeSession(raw: unknown): KvSession {
  const [clientId, seq] = list(raw, "session");
  if (
    typeof clientId !== "string" || clientId.length === 0 ||
    clientId.length > SESSION_CLIENT_ID_MAX
  ) {
    fail(`session client id must be 1 to ${SESSION_CLIENT_ID_MAX} characters`);
  }
  return { clientId, seq: integer(seq, "session seq") };
}

function decodeMarks(fields: unknown[]): KvCommand {
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

/** Longest session client id, in characters. */
export const SESSION_CLIENT_ID_MAX = 64;

function decodeQueueCommand(fields: unknown[]): KvQueueCommand | null {
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
      return null;
  }
}
