/**
 * Tickets: `aspen` + lowercase base32 (no padding) of a versioned
 * MessagePack payload. A client ticket names the cluster and up to 16 nodes
 * and never carries a secret; a join ticket adds a join token (a secret:
 * print it only on request).
 *
 * @module
 */
import { Encoder } from "@msgpack/msgpack";
import { decodeMsgpack } from "../protocol/fields.ts";
import { decodeBase32, encodeBase32 } from "../base/base32.ts";
import { ENCODED_PUBLIC_KEY_BYTES } from "./constants.ts";
/**
 * Bounds of a join token's size: a random token is 32 bytes; a token signed
 * by the cluster key (nonce, expiry, signature) is about 100.
 */
const JOIN_TOKEN_BYTES_MIN = 16;
const JOIN_TOKEN_BYTES_MAX = 256;
import { nodeIdFromKey } from "./identity.ts";

/** Every ticket starts with this. */
export const TICKET_PREFIX = "aspen";
/** Version of the ticket payload this code writes and reads. */
export const TICKET_VERSION = 1;
/** Most nodes one ticket lists. */
export const TICKET_NODES_MAX = 16;
/** Most addresses (URLs or QUIC addresses) per node. */
const ADDRESSES_MAX = 8;
const ADDRESS_LENGTH_MAX = 256;
const KIND_CLIENT = 0;
const KIND_JOIN = 1;
const encoder = new Encoder();

/** One node as a ticket lists it. */
export interface TicketNode {
  /** The node's Ed25519 public key; its id is derived from it. */
  readonly nodeKey: Uint8Array;
  /** HTTP URLs of its client API, e.g. `http://127.0.0.1:4000`. */
  readonly httpUrls: readonly string[];
  /** QUIC addresses, `host:port`. */
  readonly quicAddresses: readonly string[];
}

/** What a client needs to reach a cluster. Holds no secret. */
export interface ClientTicket {
  readonly kind: "client";
  /** The cluster's public key. */
  readonly clusterId: Uint8Array;
  readonly nodes: readonly TicketNode[];
}

/** A client ticket plus the join token that admits one join. */
export interface JoinTicket extends Omit<ClientTicket, "kind"> {
  readonly kind: "join";
  readonly joinToken: Uint8Array;
}

/** Either kind of ticket. */
export type Ticket = ClientTicket | JoinTicket;

/** A ticket could not be read; the message says what is wrong. */
export class TicketParseError extends Error {
  override name = "TicketParseError";
}

/** The node id of a ticket node. */
export function ticketNodeId(node: TicketNode): string {
  return nodeIdFromKey(node.nodeKey);
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new TicketParseError(`Cannot parse ticket: ${message}`);
}

function checkAddresses(list: unknown, what: string): asserts list is string[] {
  check(
    Array.isArray(list) && list.length <= ADDRESSES_MAX,
    `${what} must be a list of at most ${ADDRESSES_MAX}`,
  );
  for (const item of list) {
    check(
      typeof item === "string" && item.length > 0 &&
        item.length <= ADDRESS_LENGTH_MAX,
      `${what} holds an invalid entry`,
    );
  }
}

/**
 * Encodes a ticket as text.
 *
 * @throws {RangeError} When it lists no node or more than 16.
 */
export function formatTicket(ticket: Ticket): string {
  if (ticket.nodes.length === 0 || ticket.nodes.length > TICKET_NODES_MAX) {
    throw new RangeError(
      `Cannot format ticket as it must list 1 to ${TICKET_NODES_MAX} nodes: current count is ${ticket.nodes.length}`,
    );
  }
  const nodes = ticket.nodes.map((
    node,
  ) => [node.nodeKey, node.httpUrls, node.quicAddresses]);
  const payload = ticket.kind === "join"
    ? [TICKET_VERSION, KIND_JOIN, ticket.clusterId, nodes, ticket.joinToken]
    : [TICKET_VERSION, KIND_CLIENT, ticket.clusterId, nodes];
  return TICKET_PREFIX + encodeBase32(encoder.encode(payload));
}

/**
 * Reads a ticket.
 *
 * @throws {TicketParseError} Saying what is wrong: prefix, encoding,
 *   version, kind, cluster id, node list, or join token.
 */
export function parseTicket(text: string): Ticket {
  const trimmed = text.trim();
  check(
    trimmed.startsWith(TICKET_PREFIX),
    `it must start with '${TICKET_PREFIX}'`,
  );
  let bytes: Uint8Array;
  try {
    bytes = decodeBase32(trimmed.slice(TICKET_PREFIX.length));
  } catch (error) {
    throw new TicketParseError(
      `Cannot parse ticket: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let payload: unknown;
  try {
    payload = decodeMsgpack(bytes);
  } catch (error) {
    throw new TicketParseError(
      "Cannot parse ticket: its payload is not valid MessagePack (truncated or mistyped?)",
      {
        cause: error,
      },
    );
  }
  check(
    Array.isArray(payload) && payload.length >= 4,
    "its payload must be a list of at least 4 fields",
  );
  const [version, kind, clusterId, nodes, joinToken] = payload;
  check(
    version === TICKET_VERSION,
    `its version is unsupported: ${
      String(version)
    } (this build reads ${TICKET_VERSION})`,
  );
  check(
    kind === KIND_CLIENT || kind === KIND_JOIN,
    `its kind is unknown: ${String(kind)}`,
  );
  check(
    clusterId instanceof Uint8Array &&
      clusterId.length === ENCODED_PUBLIC_KEY_BYTES,
    "its cluster id must be 32 bytes",
  );
  check(
    Array.isArray(nodes) && nodes.length > 0 &&
      nodes.length <= TICKET_NODES_MAX,
    `it must list 1 to ${TICKET_NODES_MAX} nodes`,
  );
  const parsed: TicketNode[] = nodes.map((node: unknown, index: number) => {
    check(
      Array.isArray(node) && node.length === 3,
      `node ${index} must be [key, httpUrls, quicAddresses]`,
    );
    const [nodeKey, httpUrls, quicAddresses] = node;
    check(
      nodeKey instanceof Uint8Array &&
        nodeKey.length === ENCODED_PUBLIC_KEY_BYTES,
      `node ${index} key must be 32 bytes`,
    );
    checkAddresses(httpUrls, `node ${index} HTTP URLs`);
    checkAddresses(quicAddresses, `node ${index} QUIC addresses`);
    return { nodeKey, httpUrls, quicAddresses };
  });
  if (kind === KIND_CLIENT) {
    check(payload.length === 4, "a client ticket must not carry a join token");
    return { kind: "client", clusterId, nodes: parsed };
  }
  check(payload.length === 5, "a join ticket must carry a join token");
  check(
    joinToken instanceof Uint8Array &&
      joinToken.length >= JOIN_TOKEN_BYTES_MIN &&
      joinToken.length <= JOIN_TOKEN_BYTES_MAX,
    `its join token must be ${JOIN_TOKEN_BYTES_MIN} to ${JOIN_TOKEN_BYTES_MAX} bytes`,
  );
  return { kind: "join", clusterId, nodes: parsed, joinToken };
}
