/**
 * Reads the node URLs out of a client ticket (`aspen` + base32 MessagePack,
 * see `src/cluster/ticket.ts`) without the node-side identity code, so the
 * client stays free of Deno APIs.
 *
 * @module
 */
import { decode } from "../deps/msgpack.ts";
import { decodeBase32, encodeBase32 } from "../base/base32.ts";

const TICKET_PREFIX = "aspen";
const TICKET_VERSION = 1;

/** True when `text` looks like a ticket rather than a URL. */
export function isTicket(text: string): boolean {
  return text.trim().startsWith(TICKET_PREFIX) && !text.includes(":");
}

/**
 * The HTTP URLs a ticket lists, in order.
 *
 * @throws {TypeError} When `text` is not a readable ticket or lists no URL.
 */
export function ticketUrls(text: string): string[] {
  const fail = (why: string): never => {
    throw new TypeError(`Cannot read ticket: ${why}`);
  };
  let payload: unknown;
  try {
    payload = decode(decodeBase32(text.trim().slice(TICKET_PREFIX.length)));
  } catch (error) {
    return fail(`it is not base32 MessagePack: ${(error as Error).message}`);
  }
  if (!Array.isArray(payload) || payload[0] !== TICKET_VERSION) {
    return fail(
      `unsupported ticket version (this client reads ${TICKET_VERSION})`,
    );
  }
  const nodes: unknown = payload[3];
  if (!Array.isArray(nodes)) return fail("it lists no nodes");
  const urls: string[] = [];
  for (const node of nodes) {
    const httpUrls: unknown = Array.isArray(node) ? node[1] : undefined;
    if (!Array.isArray(httpUrls)) return fail("a node has no URL list");
    for (const url of httpUrls) if (typeof url === "string") urls.push(url);
  }
  if (urls.length === 0) return fail("it lists no HTTP URL");
  return urls;
}

/**
 * The cluster id (base32) a ticket names.
 *
 * @throws {TypeError} When `text` is not a readable ticket.
 */
export function ticketClusterId(text: string): string {
  let payload: unknown;
  try {
    payload = decode(decodeBase32(text.trim().slice(TICKET_PREFIX.length)));
  } catch (error) {
    throw new TypeError(
      `Cannot read ticket: it is not base32 MessagePack: ${
        (error as Error).message
      }`,
    );
  }
  const id = Array.isArray(payload) ? payload[2] : undefined;
  if (!(id instanceof Uint8Array)) {
    throw new TypeError("Cannot read ticket: it names no cluster id");
  }
  return encodeBase32(id);
}
