/**
 * Requests waiting for their responses, keyed by request id, each with a
 * deadline. Bounded: past `pendingMax`, new requests are refused.
 *
 * @module
 */
import type { PeerResult } from "../protocol/envelope.ts";
import {
  RemoteError,
  RequestTimeoutError,
  TooManyRequestsError,
} from "./errors.ts";

interface Pending {
  readonly resolve: (data: Uint8Array) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** Default most requests in flight per transport. */
export const DEFAULT_PENDING_REQUESTS_MAX = 4096;

/** The table of requests in flight. */
export class PendingRequests {
  readonly #pending = new Map<number, Pending>();
  readonly #pendingMax: number;
  #nextId = 1;

  constructor(pendingMax: number = DEFAULT_PENDING_REQUESTS_MAX) {
    this.#pendingMax = pendingMax;
  }

  /** Requests in flight. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Registers a request and returns its id and the promise of its data.
   *
   * @throws {TooManyRequestsError} When `pendingMax` requests are in flight.
   */
  open(
    peer: string,
    method: string,
    timeoutMs: number,
  ): { id: number; result: Promise<Uint8Array> } {
    if (this.#pending.size >= this.#pendingMax) {
      throw new TooManyRequestsError(
        `Cannot send '${method}' request as too many are in flight: ${this.#pending.size} of ${this.#pendingMax}`,
      );
    }
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0x7fff_ffff ? 1 : this.#nextId + 1;
    const result = new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new RequestTimeoutError(peer, method, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
    });
    return { id, result };
  }

  /** Settles request `id` with a peer's result; ignores unknown ids. */
  settle(id: number, result: PeerResult): boolean {
    const pending = this.#take(id);
    if (pending === undefined) return false;
    if (result.ok) pending.resolve(result.data);
    else pending.reject(RemoteError.fromResult(result));
    return true;
  }

  /** Fails request `id` with `error`. */
  fail(id: number, error: Error): void {
    this.#take(id)?.reject(error);
  }

  /** Fails every request in flight with `error`. */
  failAll(error: Error): void {
    for (const id of [...this.#pending.keys()]) this.fail(id, error);
  }

  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (pending === undefined) return undefined;
    clearTimeout(pending.timer);
    this.#pending.delete(id);
    return pending;
  }
}
