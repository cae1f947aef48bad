/**
 * Codec for Raft {@linkcode Message}s. The wire form is a MessagePack array
 * `[typeCode, from, to, term, ...fields]`, with fields in the order of the
 * type's schema. Adding a message type to the union means adding one row to
 * {@linkcode MESSAGE_SCHEMAS}; the compiler refuses the table until then.
 *
 * @module
 */
import type { Message, MessageType } from "../raft/types.ts";
import { ProtocolError } from "./errors.ts";
import { decodeField, encodeField, type FieldSpec } from "./fields.ts";

type BaseKey = "type" | "from" | "to" | "term";
type FieldsOf<Type extends MessageType> = Exclude<
  keyof Extract<Message, { type: Type }>,
  BaseKey
>;

/** How one message type looks on the wire. */
export interface MessageSchema<Type extends MessageType = MessageType> {
  /** Stable small integer naming the type on the wire. Never reuse one. */
  readonly code: number;
  /** Fields after `term`, in wire order. */
  readonly fields: readonly FieldSpec<FieldsOf<Type> & string>[];
}

/** Every Raft message type's wire schema. */
export const MESSAGE_SCHEMAS: {
  readonly [Type in MessageType]: MessageSchema<Type>;
} = {
  app: {
    code: 1,
    fields: [["logTerm", "uint"], ["index", "uint"], ["entries", "entries"], [
      "commit",
      "uint",
    ]],
  },
  appResp: {
    code: 2,
    fields: [["index", "uint"], ["reject", "bool"], ["rejectHint", "uint"], [
      "logTerm",
      "uint",
    ]],
  },
  vote: {
    code: 3,
    fields: [["logTerm", "uint"], ["index", "uint"], ["transfer", "bool"]],
  },
  preVote: {
    code: 4,
    fields: [["logTerm", "uint"], ["index", "uint"], ["transfer", "bool"]],
  },
  voteResp: { code: 5, fields: [["reject", "bool"]] },
  preVoteResp: { code: 6, fields: [["reject", "bool"]] },
  heartbeat: {
    code: 7,
    fields: [["commit", "uint"], ["sentAt", "uint"], ["context", "bytes"]],
  },
  heartbeatResp: {
    code: 8,
    fields: [["context", "bytes"], ["sentAt", "uint"], ["voteGuardMs", "uint"]],
  },
  snap: {
    code: 9,
    fields: [["meta", "snapshotMeta"], ["offset", "uint"], ["data", "bytes"], [
      "done",
      "bool",
    ]],
  },
  snapResp: {
    code: 10,
    fields: [["index", "uint"], ["offset", "uint"], ["reject", "bool"], [
      "done",
      "bool",
    ]],
  },
  timeoutNow: { code: 11, fields: [] },
  readIndex: { code: 12, fields: [["context", "bytes"]] },
  readIndexResp: {
    code: 13,
    fields: [["index", "uint"], ["context", "bytes"]],
  },
};

const BASE_FIELDS: readonly FieldSpec[] = [
  ["from", "nodeId"],
  ["to", "nodeId"],
  ["term", "uint"],
];
const BASE_LENGTH = 1 + BASE_FIELDS.length;

const TYPE_BY_CODE = new Map<number, MessageType>();
for (const [type, schema] of Object.entries(MESSAGE_SCHEMAS)) {
  if (TYPE_BY_CODE.has(schema.code)) {
    throw new Error(`Duplicate message code ${schema.code}`);
  }
  TYPE_BY_CODE.set(schema.code, type as MessageType);
}

/**
 * Turns a message into its wire array (not yet MessagePack bytes), so a
 * containing envelope can embed it without a second encode.
 */
export function messageToWire(message: Message): unknown[] {
  const schema = MESSAGE_SCHEMAS[message.type] as MessageSchema;
  const wire: unknown[] = [schema.code, message.from, message.to, message.term];
  const record = message as unknown as Record<string, unknown>;
  for (const [name, kind] of schema.fields) {
    wire.push(encodeField(kind, record[name]));
  }
  return wire;
}

/**
 * Validates a decoded wire array and builds the {@linkcode Message}.
 *
 * @param wire The MessagePack-decoded value.
 * @param offset Index in `wire` where the type code sits.
 * @throws {ProtocolError} `unknownMessageType` or `invalidField`.
 */
export function messageFromWire(wire: readonly unknown[], offset = 0): Message {
  const code = wire[offset];
  const type = typeof code === "number" ? TYPE_BY_CODE.get(code) : undefined;
  if (type === undefined) {
    throw new ProtocolError(
      "unknownMessageType",
      `Cannot decode Raft message as its type code is unknown: current value is ${
        String(code)
      }`,
    );
  }
  const schema = MESSAGE_SCHEMAS[type] as MessageSchema;
  const expected = BASE_LENGTH + schema.fields.length;
  if (wire.length - offset !== expected) {
    throw new ProtocolError(
      "invalidField",
      `Cannot decode Raft message '${type}' as it must have ${expected} elements: current count is ${
        wire.length - offset
      }`,
    );
  }
  const context = `Raft message '${type}'`;
  const message: Record<string, unknown> = { type };
  let at = offset + 1;
  for (const spec of BASE_FIELDS) {
    message[spec[0]] = decodeField(context, spec, wire[at++]);
  }
  for (const spec of schema.fields) {
    message[spec[0]] = decodeField(context, spec, wire[at++]);
  }
  return message as unknown as Message;
}
