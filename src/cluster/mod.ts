/**
 * Cluster identity and trust: node keys and ids, TLS certificates and their
 * signed records, the cluster key and member credentials, the peer
 * handshake, and tickets.
 *
 * @module
 */
export * from "../base/base32.ts";
export * from "./keys.ts";
export * from "./identity.ts";
export * from "./certificate.ts";
export * from "./credential.ts";
export * from "./handshake.ts";
export * from "./ticket.ts";
