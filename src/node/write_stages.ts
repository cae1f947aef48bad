/**
 * Where a request's time goes, stage by stage, recorded for every request
 * into cumulative histograms (cheap enough to stay on: a few comparisons
 * per message and a bucket search per stage). The runner marks a write's
 * index as it moves through the ready loop (proposed, handed to the log
 * writer, durable, sent to and acknowledged by each follower, committed,
 * applied); the HTTP front end marks its own stages (received, body parsed,
 * answered). `/metrics` exposes them as `aspen_stage_ms{stage="…"}` and
 * `deno task bench:breakdown` prints them per workload.
 *
 * @module
 */
import { Histogram } from "../base/histogram.ts";
import type { LogIndex, NodeId } from "../raft/types.ts";

/** Upper bounds (ms) of every stage histogram: fine below 1 ms, where the floor is. */
export const STAGE_BUCKETS_MS: readonly number[] = [
  0.01,
  0.02,
  0.05,
  0.1,
  0.15,
  0.2,
  0.3,
  0.4,
  0.5,
  0.75,
  1,
  1.5,
  2,
  3,
  4,
  5,
  7.5,
  10,
  15,
  20,
  30,
  50,
  75,
  100,
  150,
  250,
  500,
  1000,
  2500,
  5000,
];

/** The stages, in the order a request meets them. */
export const STAGES = [
  // HTTP front end (any request)
  "http.parse", // received → body parsed and validated
  "http.backend", // parsed → the backend's answer (the runner's part below)
  "http.answer", // answer → response built
  "http.total", // received → response built
  // Runner, one write (an entry proposed on this node)
  "write.wait_ready", // proposed → its batch handed to the log writer
  "write.log_write", // handed to the log writer → durable (the fsync and the Worker round trip)
  "write.follower_ack", // AppendEntries sent → acknowledged, per follower
  "write.commit", // proposed → committed (quorum durable)
  "write.wait_apply", // committed → its batch's apply started
  "write.apply", // the batch's apply (one state-store transaction)
  "write.total", // proposed → answered by the runner
  // Runner, one linearizable read
  "read.confirm", // ReadIndex asked → leadership confirmed
  "read.wait_apply", // confirmed → the read index applied
  "read.total", // asked → released to the caller
  // The event loop: how late a 10 ms timer fires
  "loop.delay",
] as const;

/** One stage's name. */
export type Stage = typeof STAGES[number];

/** Writes traced at once at most; beyond, new ones are not traced (counted). */
const TRACED_MAX = 10_000;

interface WriteTrace {
  readonly index: LogIndex;
  readonly proposedAt: number;
  handedAt: number;
  durableAt: number;
  committedAt: number;
  /** Per follower: when the first append carrying this entry left, then whether it was acknowledged. */
  sentAt: Record<NodeId, number> | null;
  acked: Record<NodeId, true> | null;
}

/** Stage histograms of one node, and the write traces that feed them. */
export class StageRecorder {
  readonly #histograms = new Map<Stage, Histogram>(
    STAGES.map((stage) => [stage, new Histogram(STAGE_BUCKETS_MS)]),
  );
  /** Writes in flight on this node, by increasing index. */
  #traces: WriteTrace[] = [];
  /** Writes not traced because too many were in flight. */
  untraced = 0;

  /** Records one observation of `stage`. */
  observe(stage: Stage, ms: number): void {
    this.#histograms.get(stage)!.observe(ms);
  }

  /** The histogram of `stage`. */
  histogram(stage: Stage): Histogram {
    return this.#histograms.get(stage)!;
  }

  /** The entry at `index` was proposed on this node at `now`. */
  proposed(index: LogIndex, now: number): void {
    const last = this.#traces.at(-1);
    // A lower index means this node lost and won leadership meanwhile:
    // the traces above it describe entries that were replaced.
    if (last !== undefined && last.index >= index) this.#dropFrom(index);
    if (this.#traces.length >= TRACED_MAX) {
      this.untraced++;
      return;
    }
    this.#traces.push({
      index,
      proposedAt: now,
      handedAt: 0,
      durableAt: 0,
      committedAt: 0,
      sentAt: null,
      acked: null,
    });
  }

  /** Entries up to `last` were handed to the log writer at `now`. */
  handed(last: LogIndex, now: number): void {
    for (const trace of this.#traces) {
      if (trace.index > last) break;
      if (trace.handedAt === 0) trace.handedAt = now;
    }
  }

  /** Entries up to `last` are durable on this node at `now`. */
  durable(last: LogIndex, now: number): void {
    for (const trace of this.#traces) {
      if (trace.index > last) break;
      if (trace.durableAt === 0 && trace.handedAt !== 0) {
        trace.durableAt = now;
        this.observe("write.wait_ready", trace.handedAt - trace.proposedAt);
        this.observe("write.log_write", now - trace.handedAt);
      }
    }
  }

  /** An append carrying entries up to `last` left for `peer` at `now`. */
  sent(peer: NodeId, last: LogIndex, now: number): void {
    for (const trace of this.#traces) {
      if (trace.index > last) break;
      trace.sentAt ??= {};
      trace.sentAt[peer] ??= now;
    }
  }

  /** `peer` acknowledged entries up to `index` at `now`. */
  acknowledged(peer: NodeId, index: LogIndex, now: number): void {
    for (const trace of this.#traces) {
      if (trace.index > index) break;
      const sentAt = trace.sentAt?.[peer];
      if (sentAt === undefined || trace.acked?.[peer] === true) continue;
      trace.acked ??= {};
      trace.acked[peer] = true;
      this.observe("write.follower_ack", now - sentAt);
    }
  }

  /** The commit index reached `commit` at `now`. */
  committed(commit: LogIndex, now: number): void {
    for (const trace of this.#traces) {
      if (trace.index > commit) break;
      if (trace.committedAt === 0) {
        trace.committedAt = now;
        this.observe("write.commit", now - trace.proposedAt);
      }
    }
  }

  /**
   * A batch that started applying at `startedAt` applied entries up to
   * `last` at `now`; their traces end.
   */
  applied(last: LogIndex, startedAt: number, now: number): void {
    let done = 0;
    for (const trace of this.#traces) {
      if (trace.index > last) break;
      done++;
      if (trace.committedAt !== 0) {
        this.observe("write.wait_apply", startedAt - trace.committedAt);
      }
      this.observe("write.total", now - trace.proposedAt);
    }
    if (done > 0) {
      this.observe("write.apply", now - startedAt);
      this.#traces = done === this.#traces.length
        ? []
        : this.#traces.slice(done);
    }
  }

  /** Forgets every trace (the node stopped leading: their outcomes are unknown). */
  clear(): void {
    this.#traces = [];
  }

  /** Writes traced now. */
  get tracing(): number {
    return this.#traces.length;
  }

  /** The histograms as Prometheus text lines, `aspen_stage_ms{stage="…"}`. */
  lines(): string[] {
    const lines = [
      "# HELP aspen_stage_ms Time spent in each stage of a request, since start (see src/node/write_stages.ts).",
      "# TYPE aspen_stage_ms histogram",
    ];
    for (const [stage, histogram] of this.#histograms) {
      lines.push(...histogram.lines("aspen_stage_ms", `stage="${stage}"`));
    }
    return lines;
  }

  #dropFrom(index: LogIndex): void {
    const keep = this.#traces.findIndex((trace) => trace.index >= index);
    if (keep >= 0) this.#traces = this.#traces.slice(0, keep);
  }
}

/** Milliseconds between the event-loop probe's timers. */
export const LOOP_PROBE_MS = 10;

/**
 * Records how late a {@linkcode LOOP_PROBE_MS} timer fires into `loop.delay`
 * (the lateness every network callback on this thread also sees) until the
 * returned function is called. Real timers: the node's, not the simulator's.
 */
export function probeEventLoop(recorder: StageRecorder): () => void {
  let expected = performance.now() + LOOP_PROBE_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    const now = performance.now();
    recorder.observe("loop.delay", Math.max(0, now - expected));
    expected = now + LOOP_PROBE_MS;
    timer = setTimeout(tick, LOOP_PROBE_MS);
    Deno.unrefTimer(timer);
  };
  timer = setTimeout(tick, LOOP_PROBE_MS);
  Deno.unrefTimer(timer);
  return () => clearTimeout(timer);
}
