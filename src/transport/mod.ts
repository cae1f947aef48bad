/**
 * Peer transport: the {@linkcode PeerTransport} port and its adapters.
 *
 * @module
 */
export type * from "./types.ts";
export * from "./errors.ts";
export * from "./peer_queue.ts";
export * from "./pending_requests.ts";
export * from "./memory_transport.ts";
