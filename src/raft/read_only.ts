/**
 * The leader's queue of ReadIndex requests waiting for a quorum to confirm
 * its leadership (a heartbeat round carrying the request's context).
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { LogIndex, NodeId } from "./types.ts";

/** One read waiting for confirmation. */
export interface ReadRequest {
  /** The commit index when the request arrived: what the read must see. */
  readonly index: LogIndex;
  readonly context: Uint8Array;
  /** Who asked: the leader itself or a follower to answer. */
  readonly from: NodeId;
  readonly acks: Set<NodeId>;
}

/** Requests pending at most; older ones are dropped (their callers time out). */
export const READ_REQUESTS_MAX = 4096;

function key(context: Uint8Array): string {
  let out = "";
  for (const byte of context) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** FIFO of pending reads, keyed by context. */
export class ReadOnlyQueue {
  #queue: ReadRequest[] = [];
  #byContext = new Map<string, ReadRequest>();

  /** Number of pending requests. */
  get size(): number {
    return this.#queue.length;
  }

  /** Adds a request; a duplicate context is ignored. Returns false when ignored. */
  add(request: ReadRequest): boolean {
    const k = key(request.context);
    if (this.#byContext.has(k)) return false;
    if (this.#queue.length >= READ_REQUESTS_MAX) {
      const dropped = this.#queue.shift()!;
      this.#byContext.delete(key(dropped.context));
    }
    this.#queue.push(request);
    this.#byContext.set(k, request);
    return true;
  }

  /** Records an acknowledgement; returns the request's acks, or undefined if unknown. */
  ack(context: Uint8Array, from: NodeId): ReadonlySet<NodeId> | undefined {
    const request = this.#byContext.get(key(context));
    if (request === undefined) return undefined;
    request.acks.add(from);
    return request.acks;
  }

  /**
   * Removes and returns every request up to and including the one with
   * `context`: a quorum confirming a later round confirms earlier ones too.
   */
  releaseThrough(context: Uint8Array): ReadRequest[] {
    const k = key(context);
    const at = this.#queue.findIndex((r) => key(r.context) === k);
    assert(at >= 0, "Cannot release a read request that is not queued");
    const released = this.#queue.splice(0, at + 1);
    for (const r of released) this.#byContext.delete(key(r.context));
    return released;
  }

  /** Context of the newest pending request, or an empty array. */
  lastContext(): Uint8Array {
    return this.#queue.at(-1)?.context ?? new Uint8Array(0);
  }

  /** Forgets everything (on losing leadership). */
  clear(): void {
    this.#queue = [];
    this.#byContext.clear();
  }
}
