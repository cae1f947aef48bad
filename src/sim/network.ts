/**
 * The simulated network: every message is a timed delivery on the event
 * queue. Links can be cut (partitions, swizzle-clogging) and the whole
 * network can turn lossy, duplicating, slow or reordering for a while.
 *
 * @module
 */
import type { Message } from "../raft/types.ts";
import type { EventQueue } from "./event_queue.ts";
import type { SeededRandom } from "./random.ts";

/** How the network misbehaves right now; the nemesis changes it. */
export interface NetworkConditions {
  /** Probability a message is lost. */
  dropProbability: number;
  /** Probability a message is delivered twice. */
  duplicateProbability: number;
  /** Extra latency added to every message, upper bound in ms. */
  extraDelayMsMax: number;
  /** Random jitter per message, upper bound in ms (reorders messages). */
  jitterMsMax: number;
}

/** Base one-way latency, in ms: each message takes [min, max]. */
const latencyMsMin = 1;
const latencyMsMax = 3;

/** Calm conditions: no loss, no duplicates, short latency. */
export function calmConditions(): NetworkConditions {
  return {
    dropProbability: 0,
    duplicateProbability: 0,
    extraDelayMsMax: 0,
    jitterMsMax: 0,
  };
}

/** Short text of a message for traces. */
export function describeMessage(message: Message): string {
  const head =
    `${message.from}->${message.to} ${message.type} t${message.term}`;
  switch (message.type) {
    case "app":
      return `${head} i${message.index} lt${message.logTerm} n${message.entries.length} c${message.commit}`;
    case "appResp":
      return `${head} i${message.index}${
        message.reject ? ` reject hint${message.rejectHint}` : ""
      }`;
    case "vote":
    case "preVote":
      return `${head} i${message.index} lt${message.logTerm}`;
    case "voteResp":
    case "preVoteResp":
      return `${head}${message.reject ? " reject" : " grant"}`;
    case "heartbeat":
      return `${head} c${message.commit}`;
    default:
      return head;
  }
}

/** Links, conditions and in-flight deliveries between `nodeCount` nodes. */
export class SimNetwork {
  readonly #queue: EventQueue;
  readonly #random: SeededRandom;
  readonly #indexOf: ReadonlyMap<string, number>;
  readonly #nodeCount: number;
  /** cuts[from * n + to]: how many active faults cut this directed link. */
  readonly #cuts: number[];
  readonly #deliver: (message: Message) => void;
  readonly #trace: ((line: string) => void) | null;
  conditions: NetworkConditions = calmConditions();
  /** Messages sent, delivered and dropped, for reports. */
  readonly counts = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };

  /**
   * @param ids Node ids, in order.
   * @param deliver Hands a message to its destination node.
   * @param trace Receives one line per drop and delivery, when tracing.
   */
  constructor(
    queue: EventQueue,
    random: SeededRandom,
    ids: readonly string[],
    deliver: (message: Message) => void,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#random = random;
    this.#indexOf = new Map(ids.map((id, index) => [id, index]));
    this.#nodeCount = ids.length;
    this.#cuts = new Array(ids.length * ids.length).fill(0);
    this.#deliver = deliver;
    this.#trace = trace;
  }

  /** Sends a message; it arrives after a latency unless lost or its link is cut then. */
  send(message: Message): void {
    this.counts.sent++;
    const conditions = this.conditions;
    if (
      conditions.dropProbability > 0 &&
      this.#random.chance(conditions.dropProbability)
    ) {
      this.#drop(message, "lost");
      return;
    }
    this.#schedule(message);
    if (
      conditions.duplicateProbability > 0 &&
      this.#random.chance(conditions.duplicateProbability)
    ) {
      this.counts.duplicated++;
      this.#schedule(message);
    }
  }

  /**
   * Carries a peer request or its answer (`what`, for traces) from → to:
   * lost, delayed and cut like a message, never duplicated (a stream
   * delivers it once). `arrive` runs unless it is lost.
   */
  carry(from: string, to: string, what: string, arrive: () => void): void {
    this.counts.sent++;
    const conditions = this.conditions;
    const lost = conditions.dropProbability > 0 &&
      this.#random.chance(conditions.dropProbability);
    if (lost) {
      this.counts.dropped++;
      this.#trace?.(`drop ${from}->${to} ${what} (lost)`);
      return;
    }
    let latency = this.#random.between(latencyMsMin, latencyMsMax);
    if (conditions.extraDelayMsMax > 0) {
      latency += this.#random.between(0, conditions.extraDelayMsMax);
    }
    this.#queue.after(latency, () => {
      if (this.isCut(from, to)) {
        this.counts.dropped++;
        this.#trace?.(`drop ${from}->${to} ${what} (cut)`);
        return;
      }
      this.counts.delivered++;
      this.#trace?.(`deliver ${from}->${to} ${what}`);
      arrive();
    });
  }

  #schedule(message: Message): void {
    const conditions = this.conditions;
    let latency = this.#random.between(latencyMsMin, latencyMsMax);
    if (conditions.extraDelayMsMax > 0) {
      latency += this.#random.between(0, conditions.extraDelayMsMax);
    }
    if (conditions.jitterMsMax > 0) {
      latency += this.#random.between(0, conditions.jitterMsMax);
    }
    this.#queue.after(latency, () => this.#arrive(message));
  }

  #arrive(message: Message): void {
    if (this.isCut(message.from, message.to)) {
      this.#drop(message, "cut");
      return;
    }
    this.counts.delivered++;
    this.#deliver(message);
  }

  #drop(message: Message, why: string): void {
    this.counts.dropped++;
    this.#trace?.(`drop ${describeMessage(message)} (${why})`);
  }

  /** True when the directed link from → to is cut. */
  isCut(from: string, to: string): boolean {
    return (this.#cuts[this.#link(from, to)] ?? 0) > 0;
  }

  /** Cuts (or, with `delta` -1, restores) the directed link from → to. */
  cut(from: string, to: string, delta: 1 | -1 = 1): void {
    const link = this.#link(from, to);
    this.#cuts[link] = Math.max(0, (this.#cuts[link] ?? 0) + delta);
  }

  /** Restores every link and calms the network. */
  healAll(): void {
    this.#cuts.fill(0);
    this.conditions = calmConditions();
  }

  #link(from: string, to: string): number {
    const a = this.#indexOf.get(from);
    const b = this.#indexOf.get(to);
    if (a === undefined || b === undefined) {
      throw new RangeError(`Cannot find link '${from}' -> '${to}'`);
    }
    return a * this.#nodeCount + b;
  }
}
