/**
 * A {@linkcode PeerTransport} on the simulated network for one incarnation
 * of one node: Raft messages and peer requests (forwarded proposals) are
 * lost, delayed, duplicated (messages only), reordered and cut as the
 * network's conditions say. Everything arriving goes through the process's
 * input gate, so a paused process holds it and a crashed one drops it.
 *
 * @module
 */
import type { Message, NodeId } from "../raft/types.ts";
import type { PeerRequest, PeerResult } from "../protocol/envelope.ts";
import {
  RemoteError,
  RequestAbortedError,
  RequestTimeoutError,
  TransportClosedError,
} from "../transport/errors.ts";
import type {
  MessageHandler,
  PeerTransport,
  RequestHandler,
  RequestOptions,
  SendOutcome,
} from "../transport/types.ts";
import type { SimNetwork } from "./network.ts";
import type { SimProcess } from "./sim_process.ts";

/** The transports of every node, to hand requests to their destination. */
export interface SimTransportDirectory {
  /** The live transport of `id`, or undefined when it is down. */
  transport(id: string): SimTransport | undefined;
}

/** Default request deadline, in the node's ms (the runner passes its own). */
const requestTimeoutMsDefault = 1_000;

/** One incarnation's transport. */
export class SimTransport implements PeerTransport {
  readonly localId: NodeId;
  readonly #network: SimNetwork;
  readonly #process: SimProcess;
  readonly #incarnation: number;
  readonly #directory: SimTransportDirectory;
  #onMessage: MessageHandler | null = null;
  #onRequest: RequestHandler | null = null;
  #closed = false;
  /** Sends every outgoing message through here (the simulator observes votes). */
  readonly #sent: (message: Message) => void;

  constructor(
    id: NodeId,
    network: SimNetwork,
    process: SimProcess,
    directory: SimTransportDirectory,
    sent: (message: Message) => void,
  ) {
    this.localId = id;
    this.#network = network;
    this.#process = process;
    this.#incarnation = process.incarnation;
    this.#directory = directory;
    this.#sent = sent;
  }

  /** True while this incarnation runs and the transport is open. */
  get live(): boolean {
    return !this.#closed && this.#process.running &&
      this.#process.incarnation === this.#incarnation;
  }

  send(_to: NodeId, message: Message): SendOutcome {
    if (!this.live) return "dropped";
    this.#sent(message);
    this.#network.send(message);
    return "queued";
  }

  /** A message arrives from the network (through the process gate). */
  deliver(message: Message): void {
    const handler = this.#onMessage;
    if (handler === null || !this.live) return;
    this.#process.input(
      () => {
        if (this.live) handler(message);
      },
      false,
      true,
    );
  }

  onMessage(handler: MessageHandler): void {
    this.#onMessage = handler;
  }

  onUnreachable(): void {}

  onRequest(handler: RequestHandler): void {
    this.#onRequest = handler;
  }

  request(
    to: NodeId,
    request: PeerRequest,
    options: RequestOptions = {},
  ): Promise<Uint8Array> {
    if (!this.live) {
      return Promise.reject(
        new TransportClosedError(`Transport of '${this.localId}' is closed`),
      );
    }
    const from = this.localId;
    const process = this.#process;
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        options.signal?.removeEventListener("abort", onAbort);
        outcome();
      };
      const timeoutMs = options.timeoutMs ?? requestTimeoutMsDefault;
      const timer = process.scheduler.after(
        timeoutMs,
        () =>
          settle(() =>
            reject(
              new RequestTimeoutError(to, request.method, timeoutMs),
            )
          ),
      );
      const onAbort = () =>
        settle(() =>
          reject(
            new RequestAbortedError(to, request.method, "aborted"),
          )
        );
      if (options.signal?.aborted) {
        onAbort();
        return;
      }
      options.signal?.addEventListener("abort", onAbort);
      this.#network.carry(from, to, request.method, () => {
        const target = this.#directory.transport(to);
        if (target === undefined) return;
        target.#serve(request, from, (result) => {
          this.#network.carry(to, from, `${request.method} answer`, () => {
            if (!this.live) return;
            process.input(() =>
              settle(() => {
                if (result.ok) resolve(result.data);
                else reject(RemoteError.fromResult(result));
              })
            );
          });
        });
      });
    });
  }

  /** Runs a request that arrived, answering through `answer` unless this process dies first. */
  #serve(
    request: PeerRequest,
    from: NodeId,
    answer: (result: PeerResult) => void,
  ): void {
    const handler = this.#onRequest;
    if (handler === null || !this.live) return;
    this.#process.input(() => {
      if (!this.live) return;
      handler(request, from).then(
        (result) => {
          if (this.live) answer(result);
        },
        (error) => {
          if (!this.live) return;
          answer({
            ok: false,
            code: "unknown",
            message: (error as Error).message,
            leader: null,
          });
        },
      );
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
