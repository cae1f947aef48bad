/**
 * Configuration of the QUIC transport, validated before any socket opens.
 *
 * @module
 */
import type { MembershipContext } from "../cluster/handshake.ts";
import type { NodeCertificate } from "../cluster/certificate.ts";
import {
  DEFAULT_MAX_FRAME_BYTES,
  HANDSHAKE_BYTES_MAX,
} from "../protocol/limits.ts";
import { DEFAULT_PEER_QUEUE_CAPACITY } from "./peer_queue.ts";

/** Something the transport refused or lost, for the operator's log. */
export interface TransportLogEvent {
  readonly level: "info" | "warn";
  /** Stable code, e.g. `badSignature`, `maxConnections`, `handshakeTimeout`. */
  readonly code: string;
  readonly message: string;
  /** The peer's node id or remote address, when known. */
  readonly peer?: string;
}

/** Options of {@linkcode QuicTransport.listen}. */
export interface QuicTransportOptions {
  /** Who this node is and what it trusts. */
  readonly membership: MembershipContext;
  /** TLS certificate served to peers. */
  readonly certificate: NodeCertificate;
  /** Encoded, node-key-signed record of `certificate`'s hash. */
  readonly certificateRecord: Uint8Array;
  /** Address to bind. Default `127.0.0.1`. */
  readonly hostname?: string;
  /** UDP port to bind; 0 picks one. Default 0. */
  readonly port?: number;
  /**
   * Most inbound peer (`aspen/1`) connections at once, authenticating or
   * authenticated. Client connections never take these slots. Default 64.
   */
  readonly maxPeerConnections?: number;
  /** Most inbound client (`h3`, WebTransport) connections at once. Default 256. */
  readonly maxClientConnections?: number;
  /**
   * Most inbound connections in TLS, and (separately) most peer connections
   * still authenticating. Default 32.
   */
  readonly maxPendingHandshakes?: number;
  /**
   * Most bytes a connection may send before its handshake completes (frames
   * are at most 8 KiB until then). Default 32 KiB.
   */
  readonly handshakeBytesMax?: number;
  /**
   * Milliseconds an inbound connection has for TLS plus the peer handshake
   * or the WebTransport upgrade. Default 5000.
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * Most streams of each direction a connection may have open at once (QUIC
   * buffers each one's receive window). Default 24: a client session's 16
   * streams, or a peer's message stream and snapshot streams, with margin.
   */
  readonly maxIncomingStreams?: number;
  /** Messages queued per peer before dropping. Default 1024. */
  readonly queueCapacity?: number;
  /** Snapshot chunks queued per peer before dropping. Default 16. */
  readonly snapshotQueueCapacity?: number;
  /** Largest frame payload, in bytes. Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** First reconnect delay, in milliseconds. Default 50. */
  readonly reconnectBaseMs?: number;
  /** Longest reconnect delay, in milliseconds. Default 5000. */
  readonly reconnectMaxMs?: number;
  /** Milliseconds to wait for a QUIC connection to open. Default 3000. */
  readonly connectTimeoutMs?: number;
  /** QUIC idle timeout, in milliseconds. Default 10000. */
  readonly idleTimeoutMs?: number;
  /** Extra streams (snapshots) a peer may open after authenticating. Default 4. */
  readonly maxStreamsPerConnection?: number;
  /** Where refusals and losses are reported. Default `console.warn` for warnings. */
  readonly log?: (event: TransportLogEvent) => void;
  /** Randomness for back-off jitter, in [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /**
   * Serves a client's WebTransport session on `/v1/wt` (the node's client
   * streaming). Default: none, and such sessions are closed as not served.
   */
  readonly onClientSession?: ClientSessionHandler | null;
}

/** Takes over an accepted WebTransport session of a client. */
export type ClientSessionHandler = (session: WebTransport) => void;

/** Options with every default filled in. */
export type ResolvedQuicOptions = Required<QuicTransportOptions>;

function positiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot start QUIC transport as '${name}' must be a positive integer: current value is ${value}`,
    );
  }
}

/**
 * Fills defaults and checks every bound.
 *
 * @throws {RangeError} When a bound is out of range.
 */
export function resolveQuicOptions(
  options: QuicTransportOptions,
): ResolvedQuicOptions {
  const resolved: ResolvedQuicOptions = {
    hostname: "127.0.0.1",
    port: 0,
    maxPeerConnections: 64,
    maxClientConnections: 256,
    maxPendingHandshakes: 32,
    handshakeBytesMax: HANDSHAKE_BYTES_MAX,
    maxIncomingStreams: 24,
    handshakeTimeoutMs: 5000,
    queueCapacity: DEFAULT_PEER_QUEUE_CAPACITY,
    snapshotQueueCapacity: 16,
    maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
    reconnectBaseMs: 50,
    reconnectMaxMs: 5000,
    connectTimeoutMs: 3000,
    idleTimeoutMs: 10_000,
    maxStreamsPerConnection: 4,
    log: (event) => {
      if (event.level === "warn") {
        console.warn(`aspen transport: ${event.code}: ${event.message}`);
      }
    },
    random: Math.random,
    onClientSession: null,
    ...options,
  };
  for (
    const name of [
      "maxPeerConnections",
      "maxClientConnections",
      "maxPendingHandshakes",
      "handshakeBytesMax",
      "maxIncomingStreams",
      "handshakeTimeoutMs",
      "queueCapacity",
      "snapshotQueueCapacity",
      "maxFrameBytes",
      "reconnectBaseMs",
      "reconnectMaxMs",
      "connectTimeoutMs",
      "idleTimeoutMs",
      "maxStreamsPerConnection",
    ] as const
  ) positiveInteger(name, resolved[name]);
  if (resolved.reconnectMaxMs < resolved.reconnectBaseMs) {
    throw new RangeError(
      `Cannot start QUIC transport as 'reconnectMaxMs' must be at least 'reconnectBaseMs': current value is ${resolved.reconnectMaxMs}`,
    );
  }
  return resolved;
}

/** Close codes sent on QUIC connections. */
export const CLOSE_CODES = {
  normal: 0,
  protocolError: 1,
  authenticationFailed: 2,
  overloaded: 3,
  handshakeTimeout: 4,
  notAllowed: 5,
} as const;
