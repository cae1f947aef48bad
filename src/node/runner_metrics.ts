/**
 * The runner's counters and its per-peer round-trip and contact times
 * (the node exposes them on /metrics and in its status).
 *
 * @module
 */
import type { Message, NodeId } from "../raft/types.ts";
import { Histogram } from "../base/histogram.ts";

/** Upper bounds (ms) of the fsync latency histogram buckets. */
const SAVE_BUCKETS_MS = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000];
/** Heartbeats remembered for timing their answers, at most. */
const heartbeatsTimedMax = 4096;

/** Counters the node exposes on /metrics. */
export interface RunnerMetrics {
  proposals: number;
  readyBatches: number;
  entriesPersisted: number;
  entriesApplied: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  /** Fsync (save) durations in milliseconds: a cumulative histogram. */
  readonly saveMs: Histogram;
  /** Last heartbeat round trip per peer, in milliseconds (includes the peer's handling). */
  readonly peerRttMs: Map<NodeId, number>;
  /** When a message from each peer last arrived (the clock's monotonic ms). */
  readonly peerContactAt: Map<NodeId, number>;
}

/** Fresh counters. */
export function newRunnerMetrics(): RunnerMetrics {
  return {
    proposals: 0,
    readyBatches: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    saveMs: new Histogram(SAVE_BUCKETS_MS),
    peerRttMs: new Map(),
    peerContactAt: new Map(),
  };
}

/** Times heartbeats and records when each peer was last heard from. */
export class PeerTiming {
  readonly #metrics: RunnerMetrics;
  /** When each heartbeat left, by "peer/sentTick", to time its answer (bounded). */
  readonly #heartbeatSentAt = new Map<string, number>();

  constructor(metrics: RunnerMetrics) {
    this.#metrics = metrics;
  }

  /** A message is sent at `now` (monotonic ms). */
  sent(message: Message, now: number): void {
    if (message.type !== "heartbeat") return;
    if (this.#heartbeatSentAt.size > heartbeatsTimedMax) {
      this.#heartbeatSentAt.clear();
    }
    this.#heartbeatSentAt.set(`${message.to}/${message.sentAt}`, now);
  }

  /** A message arrived at `now` (monotonic ms). */
  received(message: Message, now: number): void {
    this.#metrics.peerContactAt.set(message.from, now);
    if (message.type !== "heartbeatResp") return;
    const key = `${message.from}/${message.sentAt}`;
    const sentAt = this.#heartbeatSentAt.get(key);
    if (sentAt === undefined) return;
    this.#heartbeatSentAt.delete(key);
    this.#metrics.peerRttMs.set(message.from, now - sentAt);
  }

  /**
   * Whether `peer` was heard from within `timeoutMs` before `now`, and how
   * long ago (ms; null when never).
   */
  contact(
    peer: NodeId,
    now: number,
    timeoutMs: number,
  ): { reachable: boolean; lastContactMs: number | null } {
    const at = this.#metrics.peerContactAt.get(peer);
    if (at === undefined) return { reachable: false, lastContactMs: null };
    const ago = Math.max(0, now - at);
    return { reachable: ago <= timeoutMs, lastContactMs: Math.round(ago) };
  }
}
