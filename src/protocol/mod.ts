/**
 * The wire protocol shared by nodes, the client module and the CLI:
 * length-prefixed MessagePack frames, the Raft message codec, envelopes for
 * the handshake and peer RPCs, typed errors and limits.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./limits.ts";
export * from "./frame.ts";
export * from "./raft_codec.ts";
export * from "./envelope.ts";
