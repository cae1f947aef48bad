/**
 * A bounded send queue for one peer. It never grows past its capacity:
 * heartbeats coalesce (a newer one replaces the queued one of the same type),
 * and when full, new messages are dropped so Raft can be told the peer is
 * unreachable and fall back to probing.
 *
 * @module
 */
import type { Message } from "../raft/types.ts";
import type { SendOutcome } from "./types.ts";

/** Default number of messages one peer queue holds. */
export const DEFAULT_PEER_QUEUE_CAPACITY = 1024;

function isCoalescable(message: Message): boolean {
  return message.type === "heartbeat" || message.type === "heartbeatResp";
}

/**
 * A newer heartbeat may replace a queued one unless that would lose a
 * ReadIndex context: an acknowledgement of a later context also confirms
 * every earlier read (etcd's `readOnly.advance`), but an empty one confirms
 * none.
 */
function mayReplace(queued: Message, newer: Message): boolean {
  if (queued.type !== newer.type) return false;
  if (queued.type !== "heartbeat" && queued.type !== "heartbeatResp") {
    return false;
  }
  const newerContext = (newer as { context: Uint8Array }).context;
  return queued.context.length === 0 || newerContext.length > 0;
}

/** Bounded FIFO of messages for one peer. */
export class PeerQueue {
  /** Most messages held at once. */
  readonly capacity: number;
  #messages: (Message | undefined)[] = [];
  #head = 0;
  /** Position of the queued heartbeat / heartbeatResp, by type. */
  #coalescable = new Map<string, number>();

  /** @param capacity Most messages held at once; at least 1. Default 1024. */
  constructor(capacity: number = DEFAULT_PEER_QUEUE_CAPACITY) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create peer queue as 'capacity' must be a positive integer: current value is ${capacity}`,
      );
    }
    this.capacity = capacity;
  }

  /** Messages waiting. */
  get length(): number {
    return this.#messages.length - this.#head;
  }

  /** Adds `message`, coalescing heartbeats; drops it when full. */
  push(message: Message): SendOutcome {
    if (isCoalescable(message)) {
      const at = this.#coalescable.get(message.type);
      const queued = at === undefined ? undefined : this.#messages[at];
      if (
        at !== undefined && at >= this.#head && queued !== undefined &&
        mayReplace(queued, message)
      ) {
        this.#messages[at] = message;
        return "coalesced";
      }
    }
    if (this.length >= this.capacity) return "dropped";
    if (isCoalescable(message)) {
      this.#coalescable.set(message.type, this.#messages.length);
    }
    this.#messages.push(message);
    return "queued";
  }

  /** Removes and returns up to `countMax` messages, oldest first. */
  drain(countMax: number = Number.MAX_SAFE_INTEGER): Message[] {
    const end = Math.min(this.#messages.length, this.#head + countMax);
    const batch = this.#messages.slice(this.#head, end) as Message[];
    this.#head = end;
    if (this.#head === this.#messages.length) {
      this.#messages = [];
      this.#head = 0;
      this.#coalescable.clear();
    }
    return batch;
  }

  /** Empties the queue and returns how many messages it dropped. */
  clear(): number {
    const dropped = this.length;
    this.#messages = [];
    this.#head = 0;
    this.#coalescable.clear();
    return dropped;
  }
}
