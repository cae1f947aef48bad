/**
 * One outbound link to a peer: a reused QUIC connection, its authenticated
 * message stream, a second stream for snapshot chunks (so a large snapshot
 * never delays heartbeats, and its writes wait for the stream: backpressure),
 * bounded queues, and reconnection with exponential back-off and jitter.
 *
 * @module
 */
/// <reference lib="deno.unstable" />
import { initiateHandshake } from "../cluster/handshake.ts";
import type { Message, NodeId } from "../raft/types.ts";
import { PEER_ALPN } from "../protocol/limits.ts";
import { PeerQueue } from "./peer_queue.ts";
import { StreamChannel } from "./stream_channel.ts";
import { PeerUnreachableError } from "./errors.ts";
import { CLOSE_CODES, type ResolvedQuicOptions } from "./quic_options.ts";
import type { PeerResult } from "../protocol/envelope.ts";
import type { SendOutcome } from "./types.ts";

/** Where a peer listens and what it is pinned to. */
export interface QuicPeerAddress {
  readonly nodeId: NodeId;
  readonly hostname: string;
  readonly port: number;
  /** The peer's Ed25519 node key (what is pinned). */
  readonly nodeKey: Uint8Array;
  /** SHA-256 of the peer's current certificate, from its verified record. */
  readonly certificateHash: Uint8Array;
}

/** Callbacks a link reports to its transport. */
export interface LinkEvents {
  unreachable(peer: NodeId, reason: string): void;
  response(id: number, result: PeerResult): void;
  disconnected(peer: NodeId, error: Error): void;
}

/** Most messages written in one batch. */
const BATCH_MESSAGES_MAX = 256;

/** Outbound connection and queues for one peer. */
export class PeerLink {
  address: QuicPeerAddress;
  readonly #options: ResolvedQuicOptions;
  readonly #endpoint: Deno.QuicEndpoint;
  readonly #events: LinkEvents;
  readonly #queue: PeerQueue;
  readonly #snapshots: PeerQueue;
  #connection: Deno.QuicConn | undefined;
  #channel: StreamChannel | undefined;
  #snapshotChannel: Promise<StreamChannel> | undefined;
  #connecting: Promise<StreamChannel> | undefined;
  #flushing = false;
  #flushingSnapshots = false;
  #failures = 0;
  #retryAt = 0;
  #closed = false;
  /** Bumped whenever the connection is dropped, so a stale flush does not fail the next one. */
  #generation = 0;
  /** Pending re-dial of an idle link, cleared on close. */
  #redial: ReturnType<typeof setTimeout> | undefined;
  /** When the current connection was authenticated (`Date.now()`). */
  #connectedAt = 0;

  constructor(
    address: QuicPeerAddress,
    options: ResolvedQuicOptions,
    endpoint: Deno.QuicEndpoint,
    events: LinkEvents,
  ) {
    this.address = address;
    this.#options = options;
    this.#endpoint = endpoint;
    this.#events = events;
    this.#queue = new PeerQueue(options.queueCapacity);
    this.#snapshots = new PeerQueue(options.snapshotQueueCapacity);
  }

  /** Milliseconds of the next back-off: exponential, capped, with jitter in [½, 1]. */
  backoffMs(): number {
    const exponential = this.#options.reconnectBaseMs *
      2 ** Math.min(this.#failures - 1, 30);
    const capped = Math.min(this.#options.reconnectMaxMs, exponential);
    return Math.round(capped * (0.5 + this.#options.random() / 2));
  }

  /** Queues a message and starts (or continues) delivery. */
  send(message: Message): SendOutcome {
    if (this.#closed) return "dropped";
    const queue = message.type === "snap" ? this.#snapshots : this.#queue;
    const outcome = queue.push(message);
    if (outcome === "dropped") {
      this.#events.unreachable(this.address.nodeId, "Send queue is full");
      return outcome;
    }
    if (message.type === "snap") void this.#flushSnapshots();
    else void this.#flush();
    return outcome;
  }

  /** Sends a request frame once connected. */
  async request(
    frame: (channel: StreamChannel) => Uint8Array,
  ): Promise<void> {
    const channel = await this.#connect();
    await channel.writeFrames([frame(channel)]);
  }

  /** Whether the link has an authenticated connection now. */
  get connected(): boolean {
    return this.#channel !== undefined;
  }

  /** Changes whenever the connection is dropped. */
  get generation(): number {
    return this.#generation;
  }

  /** Connects now (e.g. at start-up, so a restarted peer is seen at once); failures are retried on the next send. */
  connectSoon(): void {
    if (this.#closed || this.#redial !== undefined) return;
    this.#connect().catch(() => {
      // Keep trying (with back-off) while idle: a link that is up is what
      // lets the peer notice this node's restart, and this node its.
      if (this.#closed || this.#channel !== undefined) return;
      this.#failures++;
      this.#retryAt = Date.now() + this.backoffMs();
      this.#scheduleRedial();
    });
  }

  /** Re-dials after the back-off (idle links stay connected). */
  #scheduleRedial(): void {
    if (this.#closed || this.#redial !== undefined) return;
    this.#redial = setTimeout(() => {
      this.#redial = undefined;
      this.connectSoon();
    }, Math.max(0, this.#retryAt - Date.now()));
  }

  /**
   * Drops the current connection and reconnects at once, keeping queued
   * messages and without back-off: the peer was seen opening a new
   * connection while its old one looked open, so it restarted and ours to
   * it is dead (a QUIC connection to a dead process only ends at the idle
   * timeout). Ignored for a connection younger than `minAgeMs`, so two
   * nodes can never keep resetting each other.
   *
   * @returns Whether the connection was dropped.
   */
  reset(reason: string, minAgeMs: number): boolean {
    if (this.#closed || this.#channel === undefined) return false;
    if (Date.now() - this.#connectedAt < minAgeMs) return false;
    this.#generation++;
    this.#connection?.close({ closeCode: CLOSE_CODES.normal, reason });
    this.#connection = undefined;
    this.#channel = undefined;
    this.#snapshotChannel = undefined;
    this.#connecting = undefined;
    this.#retryAt = 0;
    this.#events.disconnected(this.address.nodeId, new Error(reason));
    if (this.#queue.length > 0) void this.#flush();
    if (this.#snapshots.length > 0) void this.#flushSnapshots();
    this.connectSoon();
    return true;
  }

  /** Closes the connection; queued messages are dropped. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#redial);
    this.#redial = undefined;
    this.#queue.clear();
    this.#snapshots.clear();
    this.#connection?.close({
      closeCode: CLOSE_CODES.normal,
      reason: "Transport closed",
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    let generation = this.#generation;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        generation = this.#generation;
        const channel = await this.#connect();
        const batch = this.#queue.drain(BATCH_MESSAGES_MAX);
        const frames = batch.map((message) =>
          channel.frame({ kind: "raft", message })
        );
        await channel.writeFrames(frames);
      }
    } catch (error) {
      // A write to a connection already reset is not the new one's failure.
      if (generation === this.#generation) this.#fail(error as Error);
    } finally {
      this.#flushing = false;
    }
    if (generation !== this.#generation && this.#queue.length > 0) {
      void this.#flush();
    }
  }

  async #flushSnapshots(): Promise<void> {
    if (this.#flushingSnapshots) return;
    this.#flushingSnapshots = true;
    let generation = this.#generation;
    try {
      while (this.#snapshots.length > 0 && !this.#closed) {
        generation = this.#generation;
        const channel = await this.#snapshotStream();
        for (const message of this.#snapshots.drain(1)) {
          // One chunk per write: awaiting it is the backpressure.
          await channel.send({ kind: "raft", message });
        }
      }
    } catch (error) {
      if (generation === this.#generation) this.#fail(error as Error);
    } finally {
      this.#flushingSnapshots = false;
    }
    if (generation !== this.#generation && this.#snapshots.length > 0) {
      void this.#flushSnapshots();
    }
  }

  #snapshotStream(): Promise<StreamChannel> {
    this.#snapshotChannel ??= (async () => {
      await this.#connect();
      const stream = await this.#connection!.createBidirectionalStream();
      return new StreamChannel(stream, this.#options.maxFrameBytes);
    })();
    return this.#snapshotChannel;
  }

  #fail(error: Error): void {
    this.#generation++;
    const dropped = this.#queue.clear() + this.#snapshots.clear();
    this.#failures++;
    this.#retryAt = Date.now() + this.backoffMs();
    this.#connection?.close({
      closeCode: CLOSE_CODES.normal,
      reason: "Link failed",
    });
    this.#connection = undefined;
    this.#channel = undefined;
    this.#snapshotChannel = undefined;
    this.#connecting = undefined;
    this.#events.disconnected(this.address.nodeId, error);
    this.#events.unreachable(
      this.address.nodeId,
      `Cannot deliver ${dropped} messages: ${error.message}`,
    );
    this.#scheduleRedial();
  }

  /** The authenticated message channel, connecting (after back-off) if needed. */
  #connect(): Promise<StreamChannel> {
    if (this.#channel !== undefined) return Promise.resolve(this.#channel);
    this.#connecting ??= this.#open().then(
      (channel) => {
        this.#failures = 0;
        this.#channel = channel;
        this.#connectedAt = Date.now();
        return channel;
      },
      (error) => {
        this.#connecting = undefined;
        throw new PeerUnreachableError(
          this.address.nodeId,
          `Cannot connect to peer '${this.address.nodeId}': ${
            (error as Error).message
          }`,
          { cause: error },
        );
      },
    );
    return this.#connecting;
  }

  async #open(): Promise<StreamChannel> {
    const wait = this.#retryAt - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (this.#closed) throw new Error("Link closed");
    const options = this.#options;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("Connect or handshake timed out")),
        options.connectTimeoutMs + options.handshakeTimeoutMs,
      );
    });
    let connection: Deno.QuicConn | undefined;
    try {
      return await Promise.race([
        deadline,
        (async () => {
          connection = await Deno.connectQuic({
            hostname: this.address.hostname,
            port: this.address.port,
            alpnProtocols: [PEER_ALPN],
            endpoint: this.#endpoint,
            serverName: "localhost",
            maxIdleTimeout: options.idleTimeoutMs,
            keepAliveInterval: Math.floor(options.idleTimeoutMs / 3),
            // Pinned by hash; present at runtime though missing from the types.
            serverCertificateHashes: [{
              algorithm: "sha-256",
              value: this.address.certificateHash,
            }],
          } as Deno.ConnectQuicOptions<false>);
          this.#connection = connection;
          const stream = await connection.createBidirectionalStream();
          const channel = StreamChannel.forHandshake(
            stream,
            options.handshakeBytesMax,
          );
          await initiateHandshake(channel, options.membership, {
            expectedNodeKey: this.address.nodeKey,
            certificateHash: this.address.certificateHash,
          });
          channel.authenticated(options.maxFrameBytes);
          void this.#readResponses(channel, connection);
          return channel;
        })(),
      ]);
    } catch (error) {
      connection?.close({
        closeCode: CLOSE_CODES.authenticationFailed,
        reason: String((error as Error).message).slice(0, 200),
      });
      this.#connection = undefined;
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads responses (and a server's close) on the message stream. */
  async #readResponses(
    channel: StreamChannel,
    connection: Deno.QuicConn,
  ): Promise<void> {
    try {
      for (;;) {
        const envelope = await channel.receive();
        if (envelope.kind === "response") {
          this.#events.response(envelope.id, envelope.result);
        } else if (envelope.kind === "close") {
          throw new Error(`Peer closed: ${envelope.reason}`);
        } else {throw new Error(
            `Unexpected '${envelope.kind}' frame from server`,
          );}
      }
    } catch (error) {
      if (this.#connection === connection && !this.#closed) {
        this.#fail(error as Error);
      }
    }
  }
}
