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
import { PeerUnreachableError, TransportClosedError } from "./errors.ts";
import { PendingRequests } from "./pending_requests.ts";
import { PeerLink, type QuicPeerAddress } from "./quic_peer_link.ts";
import {
  CLOSE_CODES,
  type QuicTransportOptions,
  type ResolvedQuicOptions,
  resolveQuicOptions,
} from "./quic_options.ts";
import { StreamChannel } from "./stream_channel.ts";
import type {
  MessageHandler,
  PeerTransport,
  RequestHandler,
  RequestOptions,
  SendOutcome,
  UnreachableHandler,
} from "./types.ts";
import { DEFAULT_REQUEST_TIMEOUT_MS } from "./memory_transport.ts";

/** Counters for tests and metrics. */
export interface QuicTransportStats {
  /** Inbound connections open now (authenticating or authenticated). */
  readonly connections: number;
  /** Inbound connections still authenticating. */
  readonly pendingHandshakes: number;
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
  readonly #nonces = new NonceRegistry();
  readonly #refused: Record<string, number> = {};
  #pendingHandshakes = 0;
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
      pendingHandshakes: this.#pendingHandshakes,
      refused: { ...this.#refused },
    };
  }

  /** Adds or updates where a peer listens and what it is pinned to. */
  setPeer(address: QuicPeerAddress): void {
    const link = this.#links.get(address.nodeId);
    if (link !== undefined) link.address = address;
    else {
      this.#links.set(
        address.nodeId,
        new PeerLink(address, this.#options, this.#endpoint, {
          unreachable: (peer, reason) => this.#onUnreachable(peer, reason),
          response: (id, result) => {
            this.#requestPeers.delete(id);
            this.#pending.settle(id, result);
          },
          disconnected: (peer, error) => this.#failRequests(peer, error),
        }),
      );
    }
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
    const { id, result } = this.#pending.open(to, request.method, timeoutMs);
    this.#requestPeers.set(id, to);
    link.request((channel) => channel.frame({ kind: "request", id, request }))
      .catch((error: Error) => this.#pending.fail(id, error));
    return await result.finally(() => this.#requestPeers.delete(id));
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
    try {
      for await (const incoming of listener) {
        if (this.#closed) break;
        if (this.#inbound.size >= this.#options.maxConnections) {
          incoming.refuse();
          this.#log(
            "warn",
            "maxConnections",
            `Refused connection: ${this.#inbound.size} open, 'maxConnections' is ${this.#options.maxConnections}`,
          );
          continue;
        }
        if (this.#pendingHandshakes >= this.#options.maxPendingHandshakes) {
          incoming.refuse();
          this.#log(
            "warn",
            "maxPendingHandshakes",
            `Refused connection: ${this.#pendingHandshakes} handshakes pending, 'maxPendingHandshakes' is ${this.#options.maxPendingHandshakes}`,
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

  /** Runs one inbound connection from TLS to close. Never throws. */
  async #serve(incoming: Deno.QuicIncoming): Promise<void> {
    this.#pendingHandshakes++;
    let authenticated = false;
    let connection: Deno.QuicConn | undefined;
    const timer = setTimeout(() => {
      if (authenticated) return;
      this.#log(
        "warn",
        "handshakeTimeout",
        `Closed connection: no handshake within ${this.#options.handshakeTimeoutMs} ms`,
      );
      connection?.close({
        closeCode: CLOSE_CODES.handshakeTimeout,
        reason: "Handshake timed out",
      });
    }, this.#options.handshakeTimeoutMs);
    try {
      connection = await incoming.accept();
      this.#inbound.add(connection);
      if (connection.protocol === WEBTRANSPORT_ALPN) {
        authenticated = true; // clients authenticate in their own protocol
        this.#pendingHandshakes--;
        await this.#serveWebTransport(connection);
        return;
      }
      const peer = await this.#authenticate(connection);
      authenticated = true;
      this.#pendingHandshakes--;
      if (peer !== undefined) {
        await this.#servePeer(connection, peer.peer, peer.channel);
      }
    } catch (error) {
      this.#log(
        "warn",
        "connectionFailed",
        `Connection failed: ${(error as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
      if (!authenticated) this.#pendingHandshakes--;
      if (connection !== undefined) this.#inbound.delete(connection);
    }
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
    const channel = new StreamChannel(stream, this.#options.maxFrameBytes);
    try {
      const peer = await acceptHandshake(
        channel,
        this.#options.membership,
        this.#certificate.hash,
        this.#certificateRecord,
        this.#nonces,
      );
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
      connection.close({
        closeCode: CLOSE_CODES.authenticationFailed,
        reason: `${code}: ${(error as Error).message}`.slice(0, 200),
      });
      return undefined;
    }
  }

  /** Serves an authenticated peer: its message stream and any extra streams. */
  async #servePeer(
    connection: Deno.QuicConn,
    peer: AuthenticatedPeer,
    channel: StreamChannel,
  ): Promise<void> {
    const extra = this.#acceptExtraStreams(connection, peer);
    const reason = await this.#readFrames(channel, peer);
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

  /** Accepts a client WebTransport session; streaming is served by a later issue. */
  async #serveWebTransport(connection: Deno.QuicConn): Promise<void> {
    let session: WebTransport & { url: string };
    try {
      session = await Deno.upgradeWebTransport(connection);
    } catch (error) {
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
    await session.ready;
    if (this.#options.onClientSession !== null) {
      this.#options.onClientSession(session);
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

export type { QuicPeerAddress };
