/**
 * The in-memory {@linkcode PeerTransport}: the reference implementation, for
 * unit tests and in-process node tests. Messages still pass through the wire
 * codec (so a message that cannot be encoded fails here as it would on QUIC)
 * and are delivered asynchronously, in order per peer pair.
 *
 * @module
 */
import type { Message, NodeId } from "../raft/types.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type PeerRequest,
  type PeerResult,
} from "../protocol/envelope.ts";
import {
  abortReason,
  PeerUnreachableError,
  RemoteError,
  RequestAbortedError,
  RequestTimeoutError,
  TransportClosedError,
} from "./errors.ts";
import { DEFAULT_PEER_QUEUE_CAPACITY, PeerQueue } from "./peer_queue.ts";
import type {
  MessageHandler,
  PeerTransport,
  RequestHandler,
  RequestOptions,
  SendOutcome,
  UnreachableHandler,
} from "./types.ts";

/** Default request timeout, in milliseconds. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** A set of in-memory transports that can reach each other. */
export class InMemoryNetwork {
  readonly #nodes = new Map<NodeId, InMemoryTransport>();
  readonly #cut = new Set<string>();

  /** Creates a transport for `id` attached to this network. */
  connect(
    id: NodeId,
    options: { queueCapacity?: number } = {},
  ): InMemoryTransport {
    if (this.#nodes.has(id)) {
      throw new RangeError(`Cannot attach node as its id is taken: '${id}'`);
    }
    const transport = new InMemoryTransport(this, id, options.queueCapacity);
    this.#nodes.set(id, transport);
    return transport;
  }

  /** Cuts (or, with `cut` false, heals) the link between `a` and `b`, both ways. */
  setLinkCut(a: NodeId, b: NodeId, cut: boolean): void {
    for (const key of [`${a}\0${b}`, `${b}\0${a}`]) {
      if (cut) this.#cut.add(key);
      else this.#cut.delete(key);
    }
  }

  /** @internal The live transport `to` as seen from `from`, if reachable. */
  reach(from: NodeId, to: NodeId): InMemoryTransport | undefined {
    if (this.#cut.has(`${from}\0${to}`)) return undefined;
    return this.#nodes.get(to);
  }

  /** @internal Detaches a closed transport. */
  detach(id: NodeId): void {
    this.#nodes.delete(id);
  }
}

/** A {@linkcode PeerTransport} over an {@linkcode InMemoryNetwork}. */
export class InMemoryTransport implements PeerTransport {
  readonly localId: NodeId;
  readonly #network: InMemoryNetwork;
  readonly #queueCapacity: number;
  readonly #queues = new Map<NodeId, PeerQueue>();
  readonly #flushScheduled = new Set<NodeId>();
  #onMessage: MessageHandler = () => {};
  #onUnreachable: UnreachableHandler = () => {};
  #onRequest: RequestHandler | undefined;
  #closed = false;

  /** Use {@linkcode InMemoryNetwork.connect}. */
  constructor(
    network: InMemoryNetwork,
    localId: NodeId,
    queueCapacity = DEFAULT_PEER_QUEUE_CAPACITY,
  ) {
    this.#network = network;
    this.localId = localId;
    this.#queueCapacity = queueCapacity;
  }

  send(to: NodeId, message: Message): SendOutcome {
    if (this.#closed) return "dropped";
    let queue = this.#queues.get(to);
    if (queue === undefined) {
      queue = new PeerQueue(this.#queueCapacity);
      this.#queues.set(to, queue);
    }
    const outcome = queue.push(message);
    if (outcome === "dropped") {
      this.#onUnreachable(to, "Send queue is full");
    } else if (!this.#flushScheduled.has(to)) {
      this.#flushScheduled.add(to);
      queueMicrotask(() => this.#flush(to));
    }
    return outcome;
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
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const peer = this.#network.reach(this.localId, to);
    if (peer === undefined) {
      throw new PeerUnreachableError(to, `Cannot reach peer: '${to}'`);
    }
    // Through the codec both ways, as on the wire.
    const wire = decodeEnvelope(
      encodeEnvelope({ kind: "request", id: 1, request }),
    );
    if (wire.kind !== "request") {
      throw new TypeError("Codec changed the envelope kind");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RequestTimeoutError(to, request.method, timeoutMs)),
        timeoutMs,
      );
    });
    const signal = options.signal;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () =>
        reject(
          new RequestAbortedError(to, request.method, abortReason(signal!)),
        );
      if (signal?.aborted) onAbort();
      else signal?.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const result = await Promise.race([
        peer.answer(wire.request, this.localId),
        timeout,
        aborted,
      ]);
      const back = decodeEnvelope(
        encodeEnvelope({ kind: "response", id: 1, result }),
      );
      if (back.kind !== "response") {
        throw new TypeError("Codec changed the envelope kind");
      }
      if (!back.result.ok) throw RemoteError.fromResult(back.result);
      return back.result.data;
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
    }
  }

  /** @internal Answers a request from `from` with this node's handler. */
  answer(request: PeerRequest, from: NodeId): Promise<PeerResult> {
    if (this.#closed || this.#onRequest === undefined) {
      return Promise.resolve({
        ok: false,
        code: "unavailable",
        message:
          `Cannot answer request as node '${this.localId}' has no request handler`,
        leader: null,
      });
    }
    return this.#onRequest(request, from);
  }

  /** @internal Delivers encoded messages to this node's handler. */
  deliver(frames: readonly Uint8Array[]): void {
    if (this.#closed) return;
    for (const frame of frames) {
      const envelope = decodeEnvelope(frame);
      if (envelope.kind === "raft") this.#onMessage(envelope.message);
    }
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const queue of this.#queues.values()) queue.clear();
      this.#network.detach(this.localId);
    }
    return Promise.resolve();
  }

  #flush(to: NodeId): void {
    this.#flushScheduled.delete(to);
    const queue = this.#queues.get(to);
    if (queue === undefined || this.#closed) return;
    const batch = queue.drain();
    const peer = this.#network.reach(this.localId, to);
    if (peer === undefined) {
      if (batch.length > 0) {
        this.#onUnreachable(to, `Cannot reach peer: '${to}'`);
      }
      return;
    }
    peer.deliver(
      batch.map((message) => encodeEnvelope({ kind: "raft", message })),
    );
  }
}
