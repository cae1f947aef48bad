/**
 * What a leader knows of each follower: how far its log matches, where to
 * send next, and how much is in flight. Flow control lives here: a follower
 * in `probe` gets one AppendEntries until it answers; in `replicate` the
 * leader pipelines up to a bounded count and byte size of messages.
 *
 * @module
 */
import { assert } from "../base/assert.ts";
import type { LogIndex } from "./types.ts";

/** Replication state of one follower. */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** A bounded ring of in-flight AppendEntries, by last index and bytes. */
export class Inflights {
  readonly #capacity: number;
  readonly #bytesMax: number;
  #indexes: number[] = [];
  #bytes: number[] = [];
  #start = 0;
  #count = 0;
  #bytesTotal = 0;

  /**
   * @param capacity Messages in flight at most (≥ 1).
   * @param bytesMax Bytes in flight at most; 0 means unbounded.
   */
  constructor(capacity: number, bytesMax: number) {
    assert(
      capacity >= 1,
      `Inflights capacity must be at least 1: current value is ${capacity}`,
    );
    this.#capacity = capacity;
    this.#bytesMax = bytesMax;
    this.#indexes = new Array(capacity).fill(0);
    this.#bytes = new Array(capacity).fill(0);
  }

  /** Number of messages in flight. */
  get count(): number {
    return this.#count;
  }

  /** Bytes in flight. */
  get bytes(): number {
    return this.#bytesTotal;
  }

  /** True when no more messages may be sent. */
  full(): boolean {
    return this.#count === this.#capacity ||
      (this.#bytesMax > 0 && this.#bytesTotal >= this.#bytesMax);
  }

  /** Records a message whose last entry is `index`. */
  add(index: LogIndex, bytes: number): void {
    assert(!this.full(), "Cannot add to full inflights");
    if (this.#count > 0) {
      const last = this
        .#indexes[(this.#start + this.#count - 1) % this.#capacity]!;
      assert(
        index > last,
        `Inflight indexes must increase: ${index} after ${last}`,
      );
    }
    const slot = (this.#start + this.#count) % this.#capacity;
    this.#indexes[slot] = index;
    this.#bytes[slot] = bytes;
    this.#count++;
    this.#bytesTotal += bytes;
  }

  /** Frees every message whose last index is ≤ `index`. */
  freeLE(index: LogIndex): void {
    while (this.#count > 0 && this.#indexes[this.#start]! <= index) {
      this.#bytesTotal -= this.#bytes[this.#start]!;
      this.#start = (this.#start + 1) % this.#capacity;
      this.#count--;
    }
    if (this.#count === 0) this.#start = 0;
  }

  /** Frees the oldest message (a heartbeat answer shows the pipe drained). */
  freeFirstOne(): void {
    if (this.#count === 0) return;
    this.freeLE(this.#indexes[this.#start]! as LogIndex);
  }

  /** Forgets everything in flight. */
  reset(): void {
    this.#start = 0;
    this.#count = 0;
    this.#bytesTotal = 0;
  }
}

/** A leader's view of one follower (or of itself). */
export class Progress {
  /** Highest index known to match the leader's log (and be durable there). */
  match: LogIndex;
  /** Next index to send. */
  next: LogIndex;
  state: ProgressState = "probe";
  /** In probe: one message was sent and no answer came yet. */
  probeSent = false;
  /** Heard from since the last CheckQuorum round. */
  recentActive = false;
  readonly inflights: Inflights;
  /** The leader clock (`sentAt`) of the newest heartbeat this peer acknowledged with a vote guard covering the lease. */
  lastAckedAt = -Infinity;
  /** In snapshot: the snapshot index being sent. */
  snapshotIndex = 0 as LogIndex;
  /** In snapshot: offset of the next chunk to send. */
  snapshotOffset = 0;
  /** In snapshot: the offset the follower should acknowledge next (-1 = nothing in flight). */
  snapshotAwaitedOffset = -1;
  /** In snapshot: ticks since the last acknowledged chunk. */
  snapshotElapsedTicks = 0;

  constructor(match: LogIndex, next: LogIndex, inflights: Inflights) {
    this.match = match;
    this.next = next;
    this.inflights = inflights;
  }

  /** Switches to sending the snapshot at `index`, from its first chunk. */
  becomeSnapshot(index: LogIndex): void {
    this.state = "snapshot";
    this.probeSent = false;
    this.inflights.reset();
    this.snapshotIndex = index;
    this.snapshotOffset = 0;
    this.snapshotAwaitedOffset = -1;
    this.snapshotElapsedTicks = 0;
  }

  /** Switches to probing from `match + 1`. */
  becomeProbe(): void {
    this.state = "probe";
    this.probeSent = false;
    this.next = (this.match + 1) as LogIndex;
    this.inflights.reset();
  }

  /** Switches to pipelined replication from `match + 1`. */
  becomeReplicate(): void {
    this.state = "replicate";
    this.probeSent = false;
    this.next = (this.match + 1) as LogIndex;
    this.inflights.reset();
  }

  /** True when nothing more may be sent until an answer arrives. */
  isPaused(): boolean {
    if (this.state === "snapshot") return true;
    return this.state === "probe" ? this.probeSent : this.inflights.full();
  }

  /** Records an acknowledgement up to `index`; returns whether `match` grew. */
  maybeUpdate(index: LogIndex): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = (index + 1) as LogIndex;
    return updated;
  }

  /**
   * Handles a rejection of the message that probed `rejected`; `probeNext` is
   * where the follower's hint says to try. Returns false for stale rejections.
   */
  maybeDecrTo(rejected: LogIndex, probeNext: LogIndex): boolean {
    if (rejected === this.match && probeNext < this.match) {
      // The follower lost entries it had acknowledged (a corrupt tail dropped
      // at its restart) or this is a stale reject: either way, forget its
      // match and probe from its hint. A lower match only delays commits.
      this.state = "probe";
      this.inflights.reset();
      this.match = 0 as LogIndex;
      this.next = (probeNext + 1) as LogIndex;
      this.probeSent = false;
      return true;
    }
    if (this.state === "replicate") {
      // Stale: the follower already matched beyond the rejected probe.
      if (rejected <= this.match) return false;
      this.next = (this.match + 1) as LogIndex;
      return true;
    }
    // In probe only the answer to the latest probe (next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(
      Math.min(rejected, probeNext + 1),
      this.match + 1,
    ) as LogIndex;
    this.probeSent = false;
    return true;
  }
}
