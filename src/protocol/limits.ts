/**
 * Limits of the wire protocol, in one place so server, client and CLI agree.
 *
 * @module
 */

/** Bytes of the big-endian length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4;
/** Default maximum payload of one frame, in bytes (16 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/**
 * Largest frame before a peer is authenticated, in bytes: a handshake step
 * (keys, nonces, a credential, a certificate record) is well under 2 KiB.
 */
export const HANDSHAKE_FRAME_BYTES_MAX = 8 * 1024;
/**
 * Most bytes read from a connection before its handshake completes; with
 * `maxPendingHandshakes` this bounds the memory of pending handshakes.
 */
export const HANDSHAKE_BYTES_MAX = 32 * 1024;
/** Largest value a 4-byte length prefix can carry. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;
/** Longest node id accepted on the wire, in characters. */
export const NODE_ID_LENGTH_MAX = 128;
/** Most entries one AppendEntries may carry on the wire. */
export const ENTRIES_PER_MESSAGE_MAX = 65_536;
/** Longest free-text field (reasons, error messages, methods), in characters. */
export const TEXT_LENGTH_MAX = 4096;
/** Version of the peer wire protocol, announced in the handshake. */
export const PROTOCOL_VERSION = 1;
/** ALPN for peer (node to node) connections. */
export const PEER_ALPN = "aspen/1";
/** ALPN for WebTransport sessions (clients). */
export const WEBTRANSPORT_ALPN = "h3";
/** Path of the client WebTransport endpoint. */
export const WEBTRANSPORT_PATH = "/v1/wt";
