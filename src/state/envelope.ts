/**
 * The entry envelope: every normal log entry is `{service, session?,
 * payload}`, so the state host can route it to one registered service and
 * answer retries of any service's command exactly once.
 *
 * | bytes | field                                                           |
 * | ----- | --------------------------------------------------------------- |
 * | 1     | version, {@linkcode ENVELOPE_VERSION}                           |
 * | 1     | service id (see the service table, `src/services/table.ts`)     |
 * | 1     | flags: bit 0 = a session follows                                |
 * | 2 + n | session client id: length (u16 BE), then UTF-8                  |
 * | 8     | session seq (float64 BE; the host checks it is an integer)      |
 * | rest  | the service's payload (its own command codec)                   |
 *
 * The envelope is decoded only from committed entries that this build
 * proposed, so a malformed one is a bug (an invariant), never a user error.
 *
 * @module
 */
import { AssertionError } from "../base/assert.ts";

/** The envelope's format version (first byte of every normal entry). */
export const ENVELOPE_VERSION = 1;
const FLAG_SESSION = 0x01;
const HEADER_BYTES = 3;
/** Longest session client id, in UTF-8 bytes, the envelope can carry. */
const CLIENT_ID_BYTES_MAX = 0xffff;

/** A client session: (client id, sequence number) of one command. */
export interface EnvelopeSession {
  readonly clientId: string;
  readonly seq: number;
}

/** A decoded entry envelope. */
export interface Envelope {
  readonly serviceId: number;
  readonly session?: EnvelopeSession | undefined;
  readonly payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes an envelope.
 *
 * @throws {RangeError} For a service id outside 1..255 or a client id over 65535 bytes.
 */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  const { serviceId, session, payload } = envelope;
  if (!Number.isInteger(serviceId) || serviceId < 1 || serviceId > 255) {
    throw new RangeError(
      `Cannot encode envelope: service id must be 1 to 255: received ${serviceId}`,
    );
  }
  const clientId = session === undefined
    ? null
    : encoder.encode(session.clientId);
  if (clientId !== null && clientId.length > CLIENT_ID_BYTES_MAX) {
    throw new RangeError(
      `Cannot encode envelope: session client id over ${CLIENT_ID_BYTES_MAX} bytes`,
    );
  }
  const sessionBytes = clientId === null ? 0 : 2 + clientId.length + 8;
  const out = new Uint8Array(HEADER_BYTES + sessionBytes + payload.length);
  out[0] = ENVELOPE_VERSION;
  out[1] = serviceId;
  out[2] = clientId === null ? 0 : FLAG_SESSION;
  let at = HEADER_BYTES;
  if (clientId !== null) {
    const view = new DataView(out.buffer);
    view.setUint16(at, clientId.length);
    out.set(clientId, at + 2);
    at += 2 + clientId.length;
    view.setFloat64(at, session!.seq);
    at += 8;
  }
  out.set(payload, at);
  return out;
}

function invalid(detail: string): never {
  throw new AssertionError(`Cannot decode entry envelope: ${detail}`);
}

/**
 * Decodes an envelope (the payload is a view into `data`, not a copy).
 *
 * @throws {AssertionError} When the bytes are not an envelope of this version.
 */
export function decodeEnvelope(data: Uint8Array): Envelope {
  if (data.length < HEADER_BYTES) invalid(`${data.length} bytes`);
  if (data[0] !== ENVELOPE_VERSION) invalid(`unknown version ${data[0]}`);
  const serviceId = data[1]!;
  const flags = data[2]!;
  if ((flags & ~FLAG_SESSION) !== 0) invalid(`unknown flags ${flags}`);
  if ((flags & FLAG_SESSION) === 0) {
    return { serviceId, payload: data.subarray(HEADER_BYTES) };
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length < HEADER_BYTES + 2) invalid("truncated session");
  const idBytes = view.getUint16(HEADER_BYTES);
  const seqAt = HEADER_BYTES + 2 + idBytes;
  if (data.length < seqAt + 8) invalid("truncated session");
  let clientId: string;
  try {
    clientId = decoder.decode(data.subarray(HEADER_BYTES + 2, seqAt));
  } catch {
    invalid("session client id is not UTF-8");
  }
  return {
    serviceId,
    session: { clientId, seq: view.getFloat64(seqAt) },
    payload: data.subarray(seqAt + 8),
  };
}
