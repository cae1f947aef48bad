/**
 * The QUIC {@linkcode PeerTransport}. One UDP endpoint both listens and
 * dials. Inbound connections offering ALPN `aspen/1` must authenticate
 * (see `src/cluster/handshake.ts`) before any frame reaches Raft; `h3`
 * connections become WebTransport sessions on `/v1/wt` for clients.
 * Outbound, each peer gets one reused link ({@linkcode PeerLink}).
 *
 * @module
 */
/// <reference lib="deno.unstable" />
import {
  acceptHandshake,
  type AuthenticatedPeer,
  HandshakeError,
  NonceRegistry,
} from "../cluster/handshake.ts";
import type { NodeCertificate } from "../cluster/certificate.ts";
import { shortNodeId } from "../cluster/identity.ts";
import type { Message, NodeId } from "../raft/types.ts";
import type { PeerRequest, PeerResult } from "../protocol/envelope.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  PEER_ALPN,
  WEBTRANSPORT_ALPN,
  WEBTRANSPORT_PATH,
} from "../protocol/limits.ts";
import {
  abortReason,
  PeerUnreachableError,
  RequestAbortedError,
  RequestTimeoutError,
  TransportClosedError,
} from "./errors.ts";
import { PendingRequests } from "./pending_requests.ts";
import { PeerLink, type QuicPeerAddress } from "./quic_peer_link.ts";
import {
  CLOSE_CODES,
  type QuicTransportOptions,
  type ResolvedQuicOptions,
  resolveQuicOptions,
} from "./quic_options.ts";
import { StreamChannel } from "./stream_channel.ts";
import {
  HandshakeDeadline,
  HandshakeTimeoutError,
} from "./handshake_deadline.ts";
import type {
  MessageHandler,
  PeerTransport,
  RequestHandler,
  RequestOptions,
  SendOutcome,
  UnreachableHandler,
} from "./types.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "./memory_transport.ts";

/**
 * A link younger than this is not reset at once when its peer reconnects
 * (it is probed instead), so two nodes cannot keep resetting each other.
 */
export const RESET_MIN_LINK_AGE_MS = 1000;
/** Milliseconds a probed peer has to answer before its link is reset. */
const PROBE_TIMEOUT_MS = 1000;
/**
 * The probe: a read-index request with no context, answered by the
 * transport itself (never passed to the node) to show the link is alive.
 */
const PROBE_REQUEST: PeerRequest = {
  method: "forwardReadIndex",
  context: new Uint8Array(0),
};

/** Counters for tests and metrics. */
export interface QuicTransportStats {
  /** Inbound connections open now (authenticating or authenticated). */
  readonly connections: number;
  /** Inbound connections still in TLS, authenticating or upgrading. */
  readonly pendingHandshakes: number;
  /** Inbound `aspen/1` connections (peer budget). */
  readonly peers: number;
  /** Inbound `h3` connections (client budget). */
  readonly clients: number;
  /** Inbound connections refused or closed for a reason, by code. */
  readonly refused: Readonly<Record<string, number>>;
}

/** Peer transport over QUIC with application-level authentication. */
export class QuicTransport implements PeerTransport {
  readonly localId: NodeId;
  readonly #options: ResolvedQuicOptions;
  readonly #endpoint: Deno.QuicEndpoint;
  #listener: Deno.QuicListener;
  /** The certificate peers see now, and its node-key-signed record (rotatable). */
  #certificate: NodeCertificate;
  #certificateRecord: Uint8Array;
  readonly #links = new Map<NodeId, PeerLink>();
  readonly #pending: PendingRequests = new PendingRequests();
  readonly #requestPeers = new Map<number, NodeId>();
  readonly #inbound = new Set<Deno.QuicConn>();
  /** The newest authenticated inbound Raft connection of each peer. */
  readonly #peerInbound = new Map<NodeId, Deno.QuicConn>();
  readonly #nonces = new NonceRegistry();
  readonly #refused: Record<string, number> = {};
  /** Inbound connections in TLS, before their ALPN is known. */
  #pendingTls = 0;
  /** Inbound `aspen/1` connections still authenticating. */
  #pendingPeers = 0;
  /** Inbound `h3` connections still upgrading to WebTransport. */
  #pendingClients = 0;
  /** Inbound `aspen/1` connections (the peer budget). */
  readonly #peers = new Set<Deno.QuicConn>();
  /** Inbound `h3` connections (the client budget). */
  readonly #clients = new Set<Deno.QuicConn>();
  #onMessage: MessageHandler = () => {};
  #onUnreachable: UnreachableHandler = () => {};
  #onRequest: RequestHandler | undefined;
  #closed = false;
  #acceptLoop: Promise<void>;
  /** Accept loops of listeners replaced by certificate rotations. */
  readonly #oldAcceptLoops: Promise<void>[] = [];

  private constructor(options: ResolvedQuicOptions) {
    this.#options = options;
    this.localId = options.membership.identity.nodeId;
    this.#endpoint = new Deno.QuicEndpoint({
      hostname: options.hostname,
      port: options.port,
    });
    this.#certificate = options.certificate;
    this.#certificateRecord = options.certificateRecord;
    this.#listener = this.#listen(options.certificate);
    this.#acceptLoop = this.#accept(this.#listener);
  }

  #listen(certificate: NodeCertificate): Deno.QuicListener {
    return this.#endpoint.listen({
      cert: certificate.certificatePem,
      key: certificate.privateKeyPem,
      alpnProtocols: [PEER_ALPN, WEBTRANSPORT_ALPN],
      maxIdleTimeout: this.#options.idleTimeoutMs,
      // QUIC buffers each open stream's receive window: bound the count.
      maxConcurrentBidirectionalStreams: this.#options.maxIncomingStreams,
      maxConcurrentUnidirectionalStreams: this.#options.maxIncomingStreams,
    });
  }

  /**
   * Serves a new certificate from now on, on the same UDP port: the listener
   * is replaced (connections already open keep theirs). Peers pin the new
   * hash once they learn it (the node announces it through the log).
   */
  rotateCertificate(
    certificate: NodeCertificate,
    certificateRecord: Uint8Array,
  ): Promise<void> {
    if (this.#closed) {
      throw new TransportClosedError(
        "Cannot rotate the certificate of a closed transport",
      );
    }
    // The old accept loop ends by itself once its listener stops; close()
    // waits for every loop.
    this.#listener.stop();
    this.#oldAcceptLoops.push(this.#acceptLoop);
    this.#certificate = certificate;
    this.#certificateRecord = certificateRecord;
    this.#listener = this.#listen(certificate);
    this.#acceptLoop = this.#accept(this.#listener);
    this.#log("info", "certificateRotated", "Serving a new certificate");
    return Promise.resolve();
  }

  /**
   * Binds the endpoint and starts accepting peers.
   *
   * @throws {RangeError} When an option is out of range (before binding).
   */
  static listen(options: QuicTransportOptions): Promise<QuicTransport> {
    return Promise.resolve(new QuicTransport(resolveQuicOptions(options)));
  }

  /** The bound UDP address. */
  get addr(): { hostname: string; port: number } {
    const addr = this.#endpoint.addr;
    return { hostname: addr.hostname, port: addr.port };
  }

  /** Counters of inbound connections and refusals. */
  get stats(): QuicTransportStats {
    return {
      connections: this.#inbound.size,
      pendingHandshakes: this.#pendingTls + this.#pendingPeers +
        this.#pendingClients,
      peers: this.#peers.size,
      clients: this.#clients.size,
      refused: { ...this.#refused },
    };
  }

  /** Adds or updates where a peer listens and what it is pinned to. */
  setPeer(address: QuicPeerAddress): void {
    const link = this.#links.get(address.nodeId);
    if (link !== undefined) {
      const moved = !sameAddress(link.address, address);
      link.address = address;
      // A peer that moved (new port or certificate) restarted: the open
      // connection goes to its old incarnation.
      if (moved) link.reset("Peer address changed", 0);
      return;
    }
    const created = new PeerLink(address, this.#options, this.#endpoint, {
      unreachable: (peer, reason) => this.#onUnreachable(peer, reason),
      response: (id, result) => {
        this.#requestPeers.delete(id);
        this.#pending.settle(id, result);
      },
      disconnected: (peer, error) => this.#failRequests(peer, error),
    });
    this.#links.set(address.nodeId, created);
    // Dial at once: peers that knew this node's previous incarnation see
    // the new connection and drop their dead ones (see #servePeer).
    if (!this.#closed) created.connectSoon();
  }

  /** Forgets a peer and closes its link. */
  removePeer(id: NodeId): void {
    this.#links.get(id)?.close();
    this.#links.delete(id);
  }

  send(to: NodeId, message: Message): SendOutcome {
    if (this.#closed) return "dropped";
    const link = this.#links.get(to);
    if (link === undefined) {
      this.#onUnreachable(to, `Cannot send to unknown peer: '${to}'`);
      return "dropped";
    }
    return link.send(message);
  }

  onMessage(handler: MessageHandler): void {
    this.#onMessage = handler;
  }

  onUnreachable(handler: UnreachableHandler): void {
    this.#onUnreachable = handler;
  }

  onRequest(handler: RequestHandler): void {
    this.#onRequest = handler;
  }

  async request(
    to: NodeId,
    request: PeerRequest,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    if (this.#closed) {
      throw new TransportClosedError(
        "Cannot send request as the transport is closed",
      );
    }
    const link = this.#links.get(to);
    if (link === undefined) {
      throw new PeerUnreachableError(
        to,
        `Cannot send request to unknown peer: '${to}'`,
      );
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const signal = options.signal;
    if (signal?.aborted) {
      throw new RequestAbortedError(to, request.method, abortReason(signal));
    }
    const { id, result } = this.#pending.open(to, request.method, timeoutMs);
    this.#requestPeers.set(id, to);
    const onAbort = () =>
      this.#pending.fail(
        id,
        new RequestAbortedError(to, request.method, abortReason(signal!)),
      );
    signal?.addEventListener("abort", onAbort, { once: true });
    link.request((channel) => channel.frame({ kind: "request", id, request }))
      .catch((error: Error) => this.#pending.fail(id, error));
    return await result.finally(() => {
      this.#requestPeers.delete(id);
      signal?.removeEventListener("abort", onAbort);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of this.#links.values()) link.close();
    for (const connection of this.#inbound) {
      connection.close({
        closeCode: CLOSE_CODES.normal,
        reason: "Node shutting down",
      });
    }
    this.#pending.failAll(
      new TransportClosedError(
        "Cannot complete request as the transport closed",
      ),
    );
    this.#listener.stop();
    this.#endpoint.close();
    await Promise.all([this.#acceptLoop, ...this.#oldAcceptLoops]);
  }

  #failRequests(peer: NodeId, error: Error): void {
    for (const [id, target] of this.#requestPeers) {
      if (target !== peer) continue;
      this.#requestPeers.delete(id);
      this.#pending.fail(
        id,
        new PeerUnreachableError(
          peer,
          `Lost connection to '${peer}': ${error.message}`,
        ),
      );
    }
  }

  #log(
    level: "info" | "warn",
    code: string,
    message: string,
    peer?: string,
  ): void {
    if (level === "warn") this.#refused[code] = (this.#refused[code] ?? 0) + 1;
    this.#options.log({ level, code, message, peer });
  }

  async #accept(listener: Deno.QuicListener): Promise<void> {
    const options = this.#options;
    try {
      for await (const incoming of listener) {
        if (this.#closed) break;
        // The ALPN (peer or client) is known only after TLS: until then a
        // connection counts against the shared TLS budget, and the total
        // never exceeds both class budgets together.
        const open = this.#inbound.size + this.#pendingTls;
        if (open >= options.maxPeerConnections + options.maxClientConnections) {
          incoming.refuse();
          this.#log(
            "warn",
            "maxConnections",
            `Refused connection: ${open} open, the peer and client budgets are ${options.maxPeerConnections} + ${options.maxClientConnections}`,
          );
          continue;
        }
        if (this.#pendingTls >= options.maxPendingHandshakes) {
          incoming.refuse();
          this.#log(
            "warn",
            "maxPendingHandshakes",
            `Refused connection: ${this.#pendingTls} TLS handshakes pending, 'maxPendingHandshakes' is ${options.maxPendingHandshakes}`,
          );
          continue;
        }
        void this.#serve(incoming);
      }
    } catch (error) {
      if (!this.#closed) {
        this.#log(
          "warn",
          "acceptFailed",
          `Listener stopped: ${(error as Error).message}`,
        );
      }
    }
  }

  /**
   * Runs one inbound connection from TLS to close. Never throws. Every step
   * before the connection is authenticated (TLS, the peer handshake, the
   * WebTransport upgrade) runs under one `handshakeTimeoutMs` deadline.
   */
  async #serve(incoming: Deno.QuicIncoming): Promise<void> {
    const deadline = new HandshakeDeadline(this.#options.handshakeTimeoutMs);
    let connection: Deno.QuicConn | undefined;
    let stage: "tls" | "peer" | "client" | "done" = "tls";
    this.#pendingTls++;
    try {
      connection = await deadline.race(
        incoming.accept<false>(),
        (late) =>
          late.close({
            closeCode: CLOSE_CODES.handshakeTimeout,
            reason: "Handshake timed out",
          }),
      );
      this.#pendingTls--;
      stage = "done";
      this.#inbound.add(connection);
      deadline.onExpire(connection);
      if (connection.protocol === WEBTRANSPORT_ALPN) {
        if (!this.#admit(connection, "client")) return;
        stage = "client";
        this.#clients.add(connection);
        await this.#serveWebTransport(connection, deadline);
        return;
      }
      if (!this.#admit(connection, "peer")) return;
      stage = "peer";
      this.#peers.add(connection);
      this.#pendingPeers++;
      const peer = await deadline.race(this.#authenticate(connection));
      this.#pendingPeers--;
      stage = "done";
      deadline.clear();
      if (peer !== undefined) {
        await this.#servePeer(connection, peer.peer, peer.channel);
      }
    } catch (error) {
      if (error instanceof HandshakeTimeoutError) {
        this.#log(
          "warn",
          "handshakeTimeout",
          `Closed connection: no handshake within ${this.#options.handshakeTimeoutMs} ms`,
        );
      } else {
        this.#log(
          "warn",
          "connectionFailed",
          `Connection failed: ${(error as Error).message}`,
        );
      }
    } finally {
      deadline.clear();
      if (stage === "tls") this.#pendingTls--;
      if (stage === "peer") this.#pendingPeers--;
      if (connection !== undefined) {
        this.#inbound.delete(connection);
        this.#peers.delete(connection);
        this.#clients.delete(connection);
      }
    }
  }

  /**
   * Admits a connection into its class's budget, or closes it. Peers and
   * clients never share slots, so idle clients cannot lock peers out.
   */
  #admit(connection: Deno.QuicConn, kind: "peer" | "client"): boolean {
    const options = this.#options;
    const [open, max, name] = kind === "peer"
      ? [this.#peers.size, options.maxPeerConnections, "maxPeerConnections"]
      : [
        this.#clients.size,
        options.maxClientConnections,
        "maxClientConnections",
      ];
    const pendingFull = kind === "peer" &&
      this.#pendingPeers >= options.maxPendingHandshakes;
    if (open < max && !pendingFull) return true;
    const code = pendingFull ? "maxPendingHandshakes" : name;
    const message = pendingFull
      ? `Refused peer connection: ${this.#pendingPeers} handshakes pending, 'maxPendingHandshakes' is ${options.maxPendingHandshakes}`
      : `Refused ${kind} connection: ${open} open, '${name}' is ${max}`;
    this.#log("warn", code, message);
    connection.close({
      closeCode: CLOSE_CODES.overloaded,
      reason: `${code}: ${message}`.slice(0, 200),
    });
    return false;
  }

  async #authenticate(
    connection: Deno.QuicConn,
  ): Promise<{ peer: AuthenticatedPeer; channel: StreamChannel } | undefined> {
    const remote =
      `${connection.remoteAddr.hostname}:${connection.remoteAddr.port}`;
    const streams = connection.incomingBidirectionalStreams.getReader();
    const { value: stream } = await streams.read();
    streams.releaseLock();
    if (stream === undefined) return undefined;
    // Until the peer is authenticated, frames are limited to what a
    // handshake needs: a stranger cannot make the node buffer 16 MiB frames.
    const channel = StreamChannel.forHandshake(
      stream,
      this.#options.handshakeBytesMax,
    );
    try {
      const peer = await acceptHandshake(
        channel,
        this.#options.membership,
        this.#certificate.hash,
        this.#certificateRecord,
        this.#nonces,
      );
      channel.authenticated(this.#options.maxFrameBytes);
      this.#log(
        "info",
        "authenticated",
        `Peer ${
          shortNodeId(peer.nodeId)
        } authenticated from ${remote} for ${peer.purpose}`,
        peer.nodeId,
      );
      return { peer, channel };
    } catch (error) {
      const code =
        error instanceof HandshakeError || error instanceof ProtocolError
          ? error.code
          : "handshakeFailed";
      this.#log(
        "warn",
        code,
        `Refused peer at ${remote}: ${(error as Error).message}`,
        remote,
      );
      if (error instanceof ProtocolError) {
        await channel.send({ kind: "close", code, reason: error.message })
          .catch(() => {});
      }
      channel.abort();
      connection.close({
        closeCode: CLOSE_CODES.authenticationFailed,
        reason: `${code}: ${(error as Error).message}`.slice(0, 200),
      });
      return undefined;
    }
  }

  /**
   * A peer opened a new Raft connection while its previous one still looks
   * open: it restarted (a killed process sends no close, and QUIC notices
   * only at the idle timeout) or it lost its link. Both the old inbound
   * connection and this node's outbound one to it are then likely dead:
   * drop them now and reconnect, instead of sending into them until the
   * idle timeout. A link younger than a second is probed instead and reset
   * only if the probe goes unanswered, so two nodes cannot keep resetting
   * each other and a live link is never dropped.
   */
  #peerReconnected(peer: NodeId, replaced: Deno.QuicConn): void {
    replaced.close({
      closeCode: CLOSE_CODES.normal,
      reason: "Replaced by a newer connection from the same peer",
    });
    const link = this.#links.get(peer);
    const log = (message: string) =>
      this.#log(
        "info",
        "peerReconnected",
        `Peer ${shortNodeId(peer)} opened a new connection${message}`,
        peer,
      );
    if (link?.reset("Peer reconnected (restarted?)", RESET_MIN_LINK_AGE_MS)) {
      log(": reconnecting to it");
      return;
    }
    if (link === undefined || !link.connected) return log("");
    // A young link may still lead to the peer's dead incarnation (it
    // restarted twice in quick succession): ask over it, and reconnect if
    // no answer comes. A live peer answers, so live links are never reset.
    const generation = link.generation;
    log(": probing the link to it");
    this.request(peer, PROBE_REQUEST, { timeoutMs: PROBE_TIMEOUT_MS }).catch(
      (error) => {
        if (!(error instanceof RequestTimeoutError)) return;
        if (link.generation !== generation) return;
        if (link.reset("Peer did not answer a probe (restarted?)", 0)) {
          this.#log(
            "info",
            "peerProbeFailed",
            `Peer ${
              shortNodeId(peer)
            } did not answer a probe within ${PROBE_TIMEOUT_MS} ms: reconnecting to it`,
            peer,
          );
        }
      },
    );
  }

  /** Serves an authenticated peer: its message stream and any extra streams. */
  async #servePeer(
    connection: Deno.QuicConn,
    peer: AuthenticatedPeer,
    channel: StreamChannel,
  ): Promise<void> {
    const replaced = peer.purpose === "raft"
      ? this.#peerInbound.get(peer.nodeId)
      : undefined;
    if (peer.purpose === "raft") {
      this.#peerInbound.set(peer.nodeId, connection);
    }
    if (replaced !== undefined) this.#peerReconnected(peer.nodeId, replaced);
    const extra = this.#acceptExtraStreams(connection, peer);
    const reason = await this.#readFrames(channel, peer);
    if (this.#peerInbound.get(peer.nodeId) === connection) {
      this.#peerInbound.delete(peer.nodeId);
    }
    connection.close({
      closeCode: reason.code === "normal"
        ? CLOSE_CODES.normal
        : CLOSE_CODES.notAllowed,
      reason: reason.message.slice(0, 200),
    });
    await extra;
  }

  async #acceptExtraStreams(
    connection: Deno.QuicConn,
    peer: AuthenticatedPeer,
  ): Promise<void> {
    const readers: Promise<unknown>[] = [];
    try {
      const streams = connection.incomingBidirectionalStreams.getReader();
      for (let count = 0;; count++) {
        const { value: stream, done } = await streams.read();
        if (done) break;
        if (count >= this.#options.maxStreamsPerConnection) {
          this.#log(
            "warn",
            "maxStreams",
            `Closed peer ${shortNodeId(peer.nodeId)}: too many streams`,
            peer.nodeId,
          );
          connection.close({
            closeCode: CLOSE_CODES.notAllowed,
            reason: "Too many streams",
          });
          break;
        }
        const channel = new StreamChannel(stream, this.#options.maxFrameBytes);
        readers.push(
          this.#readFrames(channel, peer).then((reason) => {
            if (reason.code !== "normal") {
              connection.close({
                closeCode: CLOSE_CODES.notAllowed,
                reason: reason.message.slice(0, 200),
              });
            }
          }),
        );
      }
    } catch {
      // The connection closed; readers end on their own.
    }
    await Promise.allSettled(readers);
  }

  /** Reads frames until the stream fails; returns why it stopped. */
  async #readFrames(
    channel: StreamChannel,
    peer: AuthenticatedPeer,
  ): Promise<{ code: string; message: string }> {
    for (;;) {
      let envelope;
      try {
        envelope = await channel.receive();
      } catch (error) {
        if (error instanceof ProtocolError && error.code !== "streamEnded") {
          this.#log(
            "warn",
            error.code,
            `Closed peer ${shortNodeId(peer.nodeId)}: ${error.message}`,
            peer.nodeId,
          );
          await channel.send({
            kind: "close",
            code: error.code,
            reason: error.message,
          }).catch(() => {});
          return { code: error.code, message: error.message };
        }
        return { code: "normal", message: "Stream ended" };
      }
      // A peer revoked after its handshake (a removed member) is cut off at
      // its next frame: the revoked set is read per frame, not only at connect.
      const refusal = this.#options.membership.revoked.has(peer.nodeId)
        ? { code: "revoked", message: "Its credential is revoked" }
        : this.#dispatch(envelope, peer, channel);
      if (refusal !== undefined) {
        this.#log(
          "warn",
          refusal.code,
          `Closed peer ${shortNodeId(peer.nodeId)}: ${refusal.message}`,
          peer.nodeId,
        );
        await channel.send({
          kind: "close",
          ...{ code: refusal.code, reason: refusal.message },
        }).catch(() => {});
        return refusal;
      }
    }
  }

  /** Routes one frame from an authenticated peer; returns a refusal to close with. */
  #dispatch(
    envelope: Awaited<ReturnType<StreamChannel["receive"]>>,
    peer: AuthenticatedPeer,
    channel: StreamChannel,
  ): { code: string; message: string } | undefined {
    if (envelope.kind === "raft") {
      if (peer.purpose !== "raft") {
        return {
          code: "joinTokenForRaft",
          message:
            "Cannot accept Raft traffic on a connection admitted by a join token",
        };
      }
      if (
        envelope.message.from !== peer.nodeId ||
        envelope.message.to !== this.localId
      ) {
        return {
          code: "spoofedMessage",
          message:
            "Cannot accept a message whose from or to is not this connection's",
        };
      }
      this.#onMessage(envelope.message);
      return undefined;
    }
    if (envelope.kind === "request") {
      if (peer.purpose === "join" && envelope.request.method !== "join") {
        return {
          code: "joinTokenForRaft",
          message:
            `Cannot accept '${envelope.request.method}' on a connection admitted by a join token`,
        };
      }
      void this.#answer(envelope.id, envelope.request, peer, channel);
      return undefined;
    }
    if (envelope.kind === "close") {
      return { code: "normal", message: `Peer closed: ${envelope.reason}` };
    }
    return {
      code: "unexpectedFrame",
      message: `Cannot accept a '${envelope.kind}' frame after the handshake`,
    };
  }

  async #answer(
    id: number,
    request: PeerRequest,
    peer: AuthenticatedPeer,
    channel: StreamChannel,
  ): Promise<void> {
    let result: PeerResult;
    if (
      request.method === "forwardReadIndex" && request.context.length === 0
    ) {
      await channel.send({
        kind: "response",
        id,
        result: { ok: true, data: new Uint8Array(0) },
      }).catch(() => {});
      return;
    }
    try {
      result = this.#onRequest === undefined
        ? {
          ok: false,
          code: "unavailable",
          message: "Cannot answer requests: no handler",
          leader: null,
        }
        : await this.#onRequest(request, peer.nodeId);
    } catch (error) {
      result = {
        ok: false,
        code: "internal",
        message: String((error as Error).message).slice(0, 1000),
        leader: null,
      };
    }
    await channel.send({ kind: "response", id, result }).catch(() => {});
  }

  /**
   * Upgrades a client connection to a WebTransport session on `/v1/wt` and
   * hands it over; the upgrade and the session's readiness run under the
   * handshake deadline.
   */
  async #serveWebTransport(
    connection: Deno.QuicConn,
    deadline: HandshakeDeadline,
  ): Promise<void> {
    let session: WebTransport & { url: string };
    this.#pendingClients++;
    try {
      try {
        session = await deadline.race(
          Deno.upgradeWebTransport(connection),
          (late) => late.close(),
        );
      } catch (error) {
        if (error instanceof HandshakeTimeoutError) throw error;
        this.#log(
          "warn",
          "webTransportFailed",
          `WebTransport upgrade failed: ${(error as Error).message}`,
        );
        connection.close({
          closeCode: CLOSE_CODES.protocolError,
          reason: "WebTransport upgrade failed",
        });
        return;
      }
      deadline.onExpire(session);
      const path = new URL(session.url).pathname;
      if (path !== WEBTRANSPORT_PATH) {
        this.#log(
          "warn",
          "webTransportPath",
          `Refused WebTransport session for path '${path}'`,
        );
        session.close({
          closeCode: 404,
          reason: `No WebTransport endpoint at '${path}'`,
        });
        return;
      }
      await deadline.race(session.ready);
    } finally {
      this.#pendingClients--;
    }
    deadline.clear();
    if (this.#options.onClientSession !== null) {
      this.#options.onClientSession(session);
      // The session keeps its client slot until it ends.
      await Promise.race([session.closed, connection.closed]).catch(() => {});
      return;
    }
    // Not served here: answer the first stream with a framed close, then end the session.
    const streams = session.incomingBidirectionalStreams.getReader();
    const { value: stream } = await streams.read();
    if (stream !== undefined) {
      const channel = new StreamChannel(stream, this.#options.maxFrameBytes);
      await channel.send({
        kind: "close",
        code: "unavailable",
        reason: "Client streaming is not served yet",
      }).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    session.close({
      closeCode: 0,
      reason: "Client streaming is not served yet",
    });
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function sameAddress(a: QuicPeerAddress, b: QuicPeerAddress): boolean {
  return a.hostname === b.hostname && a.port === b.port &&
    sameBytes(a.nodeKey, b.nodeKey) &&
    sameBytes(a.certificateHash, b.certificateHash);
}

export type { QuicPeerAddress };
