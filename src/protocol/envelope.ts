/**
 * Envelopes: what one frame on a peer stream carries. A Raft message, a step
 * of the peer handshake, a request/response of the non-Raft RPCs (forwarding
 * to the leader, joining), a snapshot chunk, or a close with its reason.
 *
 * Wire form: a MessagePack array whose first element is the envelope's kind
 * code, then the kind's fields in schema order. A `raft` envelope continues
 * with the message's own wire array; a `request` with its method code and the
 * method's fields. Every table below is checked by the compiler against the
 * types, so a new kind or method cannot be half added.
 *
 * @module
 */
import type { Message } from "../raft/types.ts";
import { ProtocolError } from "./errors.ts";
import {
  decodeField,
  decodeMsgpack,
  encodeField,
  encoder,
  type FieldSpec,
} from "./fields.ts";
import { messageFromWire, messageToWire } from "./raft_codec.ts";
import { encodeFrame } from "./frame.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "./limits.ts";

/** Why a handshake step is taken: full membership, or only a join request. */
export type HandshakePurpose = "raft" | "join";

/** A request one peer makes of another outside Raft. */
export type PeerRequest =
  /** Forward a client write to the leader; `data` is the proposal. */
  | { readonly method: "forwardProposal"; readonly data: Uint8Array }
  /** Ask the leader for a read index; `context` identifies the read. */
  | { readonly method: "forwardReadIndex"; readonly context: Uint8Array }
  /** Ask to be admitted as a member. */
  | {
    readonly method: "join";
    readonly nodeId: string;
    readonly nodeKey: Uint8Array;
    readonly quicAddresses: readonly string[];
    readonly httpUrls: readonly string[];
  };

/** The methods of {@linkcode PeerRequest}. */
export type PeerRequestMethod = PeerRequest["method"];

/** The answer to a {@linkcode PeerRequest}. */
export type PeerResult =
  | { readonly ok: true; readonly data: Uint8Array }
  | {
    readonly ok: false;
    /** Stable error code, e.g. `notLeader`, for {@linkcode RemoteError}. */
    readonly code: string;
    readonly message: string;
    /** The leader the answering node knows of, to retry there. */
    readonly leader: string | null;
  };

/** Everything a frame can carry. */
export type Envelope =
  | { readonly kind: "raft"; readonly message: Message }
  | {
    readonly kind: "hello";
    readonly version: number;
    readonly purpose: string;
    readonly clusterId: Uint8Array;
    readonly nodeKey: Uint8Array;
    readonly nonce: Uint8Array;
  }
  | {
    readonly kind: "challenge";
    readonly nodeKey: Uint8Array;
    readonly nonce: Uint8Array;
    readonly credential: Uint8Array;
    readonly certificateRecord: Uint8Array;
    readonly signature: Uint8Array;
  }
  | {
    readonly kind: "proof";
    readonly credential: Uint8Array | null;
    readonly joinToken: Uint8Array | null;
    readonly signature: Uint8Array;
  }
  | { readonly kind: "welcome" }
  | { readonly kind: "close"; readonly code: string; readonly reason: string }
  | {
    readonly kind: "request";
    readonly id: number;
    readonly request: PeerRequest;
  }
  | {
    readonly kind: "response";
    readonly id: number;
    readonly result: PeerResult;
  }
  | {
    readonly kind: "snapshotChunk";
    readonly id: number;
    readonly offset: number;
    readonly last: boolean;
    readonly data: Uint8Array;
  };

/** The kinds of {@linkcode Envelope}. */
export type EnvelopeKind = Envelope["kind"];

type Flat = "raft" | "request" | "response";
type FieldsOfKind<Kind extends EnvelopeKind> = Exclude<
  keyof Extract<Envelope, { kind: Kind }>,
  "kind"
>;
type FieldsOfMethod<Method extends PeerRequestMethod> = Exclude<
  keyof Extract<PeerRequest, { method: Method }>,
  "method"
>;

interface Schema<Name extends string> {
  readonly code: number;
  readonly fields: readonly FieldSpec<Name>[];
}

/** Wire codes of every kind; fields for those without nested records. */
export const ENVELOPE_SCHEMAS: {
  readonly [Kind in EnvelopeKind]: Schema<
    Kind extends Flat ? never : FieldsOfKind<Kind> & string
  >;
} = {
  raft: { code: 0, fields: [] },
  hello: {
    code: 1,
    fields: [["version", "uint"], ["purpose", "text"], ["clusterId", "bytes"], [
      "nodeKey",
      "bytes",
    ], ["nonce", "bytes"]],
  },
  challenge: {
    code: 2,
    fields: [
      ["nodeKey", "bytes"],
      ["nonce", "bytes"],
      ["credential", "bytes"],
      ["certificateRecord", "bytes"],
      ["signature", "bytes"],
    ],
  },
  proof: {
    code: 3,
    fields: [["credential", "nullableBytes"], ["joinToken", "nullableBytes"], [
      "signature",
      "bytes",
    ]],
  },
  welcome: { code: 4, fields: [] },
  close: { code: 5, fields: [["code", "text"], ["reason", "text"]] },
  request: { code: 6, fields: [] },
  response: { code: 7, fields: [] },
  snapshotChunk: {
    code: 8,
    fields: [["id", "uint"], ["offset", "uint"], ["last", "bool"], [
      "data",
      "bytes",
    ]],
  },
};

/** Wire codes and fields of every request method. */
export const REQUEST_SCHEMAS: {
  readonly [Method in PeerRequestMethod]: Schema<
    FieldsOfMethod<Method> & string
  >;
} = {
  forwardProposal: { code: 1, fields: [["data", "bytes"]] },
  forwardReadIndex: { code: 2, fields: [["context", "bytes"]] },
  join: {
    code: 3,
    fields: [["nodeId", "nodeId"], ["nodeKey", "bytes"], [
      "quicAddresses",
      "textList",
    ], ["httpUrls", "textList"]],
  },
};

const OK_RESULT_FIELDS: readonly FieldSpec[] = [["data", "bytes"]];
const ERROR_RESULT_FIELDS: readonly FieldSpec[] = [["code", "text"], [
  "message",
  "text",
], ["leader", "nullableText"]];

function reverse<Key extends string>(
  table: { readonly [K in Key]: { readonly code: number } },
): Map<number, Key> {
  const byCode = new Map<number, Key>();
  for (
    const [key, { code }] of Object.entries(table) as [Key, { code: number }][]
  ) {
    if (byCode.has(code)) throw new Error(`Duplicate wire code ${code}`);
    byCode.set(code, key);
  }
  return byCode;
}
const KIND_BY_CODE = reverse<EnvelopeKind>(ENVELOPE_SCHEMAS);
const METHOD_BY_CODE = reverse<PeerRequestMethod>(REQUEST_SCHEMAS);

function pushFields(
  wire: unknown[],
  fields: readonly FieldSpec[],
  record: object,
): void {
  const values = record as Record<string, unknown>;
  for (const [name, kind] of fields) wire.push(encodeField(kind, values[name]));
}

function readFields(
  context: string,
  fields: readonly FieldSpec[],
  wire: readonly unknown[],
  offset: number,
  into: Record<string, unknown>,
): void {
  if (wire.length - offset !== fields.length) {
    throw new ProtocolError(
      "invalidField",
      `Cannot decode ${context} as it must have ${fields.length} fields: current count is ${
        wire.length - offset
      }`,
    );
  }
  for (let i = 0; i < fields.length; i++) {
    const spec = fields[i]!;
    into[spec[0]] = decodeField(context, spec, wire[offset + i]);
  }
}

/** Turns an envelope into its wire array. */
export function envelopeToWire(envelope: Envelope): unknown[] {
  const code = ENVELOPE_SCHEMAS[envelope.kind].code;
  switch (envelope.kind) {
    case "raft":
      return [code, ...messageToWire(envelope.message)];
    case "request": {
      const schema = REQUEST_SCHEMAS[envelope.request.method] as Schema<string>;
      const wire: unknown[] = [code, envelope.id, schema.code];
      pushFields(wire, schema.fields, envelope.request);
      return wire;
    }
    case "response": {
      const result = envelope.result;
      const wire: unknown[] = [code, envelope.id, result.ok];
      pushFields(
        wire,
        result.ok ? OK_RESULT_FIELDS : ERROR_RESULT_FIELDS,
        result,
      );
      return wire;
    }
    default: {
      const wire: unknown[] = [code];
      pushFields(
        wire,
        (ENVELOPE_SCHEMAS[envelope.kind] as Schema<string>).fields,
        envelope,
      );
      return wire;
    }
  }
}

/**
 * Validates a decoded wire value and builds the envelope.
 *
 * @throws {ProtocolError} On any shape, kind, type code or field error.
 */
export function envelopeFromWire(wire: unknown): Envelope {
  if (!Array.isArray(wire) || wire.length === 0) {
    throw new ProtocolError(
      "malformedPayload",
      "Cannot decode frame as it must be a non-empty MessagePack array",
    );
  }
  const code = wire[0];
  const kind = typeof code === "number" ? KIND_BY_CODE.get(code) : undefined;
  if (kind === undefined) {
    throw new ProtocolError(
      "unknownFrameKind",
      `Cannot decode frame as its kind code is unknown: current value is ${
        String(code)
      }`,
    );
  }
  switch (kind) {
    case "raft":
      return { kind, message: messageFromWire(wire, 1) };
    case "request":
      return requestFromWire(wire);
    case "response":
      return responseFromWire(wire);
    default: {
      const envelope: Record<string, unknown> = { kind };
      readFields(
        `'${kind}' frame`,
        (ENVELOPE_SCHEMAS[kind] as Schema<string>).fields,
        wire,
        1,
        envelope,
      );
      return envelope as unknown as Envelope;
    }
  }
}

function requestFromWire(wire: readonly unknown[]): Envelope {
  const id = decodeField("'request' frame", ["id", "uint"], wire[1]) as number;
  const methodCode = wire[2];
  const method = typeof methodCode === "number"
    ? METHOD_BY_CODE.get(methodCode)
    : undefined;
  if (method === undefined) {
    throw new ProtocolError(
      "unknownMessageType",
      `Cannot decode request as its method code is unknown: current value is ${
        String(methodCode)
      }`,
    );
  }
  const request: Record<string, unknown> = { method };
  readFields(
    `'${method}' request`,
    (REQUEST_SCHEMAS[method] as Schema<string>).fields,
    wire,
    3,
    request,
  );
  return { kind: "request", id, request: request as unknown as PeerRequest };
}

function responseFromWire(wire: readonly unknown[]): Envelope {
  const id = decodeField("'response' frame", ["id", "uint"], wire[1]) as number;
  const ok = decodeField(
    "'response' frame",
    ["ok", "bool"],
    wire[2],
  ) as boolean;
  const result: Record<string, unknown> = { ok };
  readFields(
    "'response' frame",
    ok ? OK_RESULT_FIELDS : ERROR_RESULT_FIELDS,
    wire,
    3,
    result,
  );
  return { kind: "response", id, result: result as unknown as PeerResult };
}

/** Encodes an envelope into MessagePack bytes (no length prefix). */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return encoder.encode(envelopeToWire(envelope));
}

/**
 * Decodes a frame payload into an envelope.
 *
 * @throws {ProtocolError} On garbage bytes or an invalid envelope.
 */
export function decodeEnvelope(payload: Uint8Array): Envelope {
  return envelopeFromWire(decodeMsgpack(payload));
}

/**
 * Encodes an envelope and its length prefix, ready to write to a stream.
 *
 * @throws {FrameTooLargeError} When the payload exceeds `maxFrameBytes`.
 */
export function encodeEnvelopeFrame(
  envelope: Envelope,
  maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Uint8Array {
  return encodeFrame(encodeEnvelope(envelope), maxFrameBytes);
}
