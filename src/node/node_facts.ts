/**
 * Cluster facts this node turns into events (issue 17): its own snapshots
 * (`snapshot.taken`, `snapshot.installed` {node, index}) and, while it
 * leads, its followers' health (`node.unhealthy` {node, reason} when one
 * has not been heard from for 3 election timeouts or lags 10,000 entries,
 * `node.healthy` when it is back). Each fact is proposed until it applies;
 * one that finds no quorum for 10 minutes is dropped and counted in
 * `aspen_events_dropped_total`. The queue is bounded: beyond it the oldest
 * fact is dropped (and counted).
 *
 * @module
 */
import type { ClusterStatus } from "../protocol/cluster.ts";

/** How long a fact is retried, ms. */
export const FACT_RETRY_MS = 600_000;
/** Facts waiting at most. */
export const FACTS_QUEUED_MAX = 100;
/** Entries behind the leader that make a follower unhealthy. */
export const BEHIND_ENTRIES = 10_000;

/** What {@linkcode NodeFacts} needs. */
export interface NodeFactsOptions {
  readonly nodeId: string;
  /** Proposes one fact (retried by the caller's session; throws when it did not apply). */
  readonly propose: (
    event: string,
    data: Readonly<Record<string, unknown>>,
  ) => Promise<void>;
  readonly status: () => ClusterStatus;
  /** Snapshots taken and installed so far (the runner's counters). */
  readonly snapshots: () => { taken: number; installed: number };
  /** The applied index (a snapshot's index). */
  readonly appliedIndex: () => number;
  readonly electionTimeoutMs: number;
  /** Pause between checks, ms. Default 1,000. */
  readonly intervalMs?: number;
  readonly now?: () => number;
}

interface Fact {
  readonly event: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly sinceMs: number;
}

/** Watches this node and proposes its facts. */
export class NodeFacts {
  readonly #options: NodeFactsOptions;
  readonly #now: () => number;
  readonly #queue: Fact[] = [];
  /** Followers this leader reported unhealthy. */
  readonly #unhealthy = new Set<string>();
  #seen: { taken: number; installed: number };
  #timer: ReturnType<typeof setInterval> | null = null;
  #busy = false;
  /** Facts dropped (no quorum for 10 minutes, or the queue full). */
  dropped = 0;
  /** Facts recorded. */
  recorded = 0;

  constructor(options: NodeFactsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#seen = options.snapshots();
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(
      () => void this.#tick(),
      this.#options.intervalMs ?? 1_000,
    );
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  #enqueue(event: string, data: Readonly<Record<string, unknown>>): void {
    if (this.#queue.length >= FACTS_QUEUED_MAX) {
      this.#queue.shift();
      this.dropped++;
    }
    this.#queue.push({ event, data, sinceMs: this.#now() });
  }

  /** One check: new snapshots, follower health, then the queue. */
  async #tick(): Promise<void> {
    const node = this.#options.nodeId;
    const snapshots = this.#options.snapshots();
    const index = this.#options.appliedIndex();
    if (snapshots.taken > this.#seen.taken) {
      this.#enqueue("snapshot.taken", { node, index });
    }
    if (snapshots.installed > this.#seen.installed) {
      this.#enqueue("snapshot.installed", { node, index });
    }
    this.#seen = snapshots;
    this.#checkHealth();
    await this.#drain();
  }

  #checkHealth(): void {
    const status = this.#options.status();
    const leading = status.role === "leader";
    if (!leading) {
      this.#unhealthy.clear();
      return;
    }
    const unreachableMs = 3 * this.#options.electionTimeoutMs;
    for (const member of status.members) {
      if (member.id === this.#options.nodeId) continue;
      const reason = (member.lastContactMs ?? 0) > unreachableMs
        ? "unreachable"
        : (member.lag ?? 0) > BEHIND_ENTRIES
        ? "behind"
        : null;
      if (reason !== null && !this.#unhealthy.has(member.id)) {
        this.#unhealthy.add(member.id);
        this.#enqueue("node.unhealthy", { node: member.id, reason });
      } else if (reason === null && this.#unhealthy.has(member.id)) {
        this.#unhealthy.delete(member.id);
        this.#enqueue("node.healthy", { node: member.id, reason: "recovered" });
      }
    }
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        const fact = this.#queue[0]!;
        if (this.#now() - fact.sinceMs > FACT_RETRY_MS) {
          this.#queue.shift();
          this.dropped++;
          continue;
        }
        try {
          await this.#options.propose(fact.event, fact.data);
          this.#queue.shift();
          this.recorded++;
        } catch {
          return; // No quorum now: the next tick tries again.
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Prometheus text. */
  metrics(): string {
    return [
      "# HELP aspen_events_dropped_total Cluster facts dropped without quorum for 10 minutes (or beyond the queue).",
      "# TYPE aspen_events_dropped_total counter",
      `aspen_events_dropped_total ${this.dropped}`,
      "",
    ].join("\n");
  }
}
