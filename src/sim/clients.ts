/**
 * Simulated clients: each issues one operation at a time on a small key
 * space and records a history for the linearizability checker. Writes go
 * through the log on the node the client believes leads; reads use ReadIndex
 * on the node the client talks to and are served from that node's state
 * machine once it has applied the confirmed index.
 *
 * An operation completes when its entry (index, term) is applied on the node
 * it was proposed to. A different entry applied there means the attempt
 * definitely failed, so it is retried; an operation that never took effect is
 * left out of the history. At its deadline an operation whose attempt may
 * still take effect is recorded as unknown, never as failed.
 *
 * @module
 */
import { ProposalDroppedError } from "../raft/errors.ts";
import type { Entry, LogIndex, Term } from "../raft/types.ts";
import type { EventQueue } from "./event_queue.ts";
import { COMPACTED } from "./invariants.ts";
import {
  commandId,
  encodeCommand,
  type KvCommand,
} from "./kv_state_machine.ts";
import type { KvInput, KvOutput, Operation } from "./lincheck.ts";
import type { SeededRandom } from "./random.ts";
import type { SimNode } from "./sim_node.ts";
import { OUTCOME_UNKNOWN } from "./replica.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One entry of the history handed to the checker. */
export type KvOperation = Operation<KvInput, KvOutput>;

/** Budgets and shape of the client workload. */
export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  /** Operations issued in total by the regular clients. */
  readonly ops: number;
  /** Simulated time after which no new operation starts, in ms. */
  readonly issueUntilMs: number;
  /** Time an operation may take before it is recorded as unknown, in ms. */
  readonly deadlineMs: number;
  /** Upper bound of a client's pause between operations, in ms. */
  readonly thinkMsMax: number;
  /**
   * Puts and deletes are sometimes sent like a stock `Deno.openKv` client
   * (resent with the same bytes and no session when the node they wait on
   * dies) or like the client module (resent with the same session when the
   * node dies or the answer is late). Only with the KV replica, which
   * deduplicates them. Default false.
   */
  readonly resends?: boolean;
}

/** How a write identifies itself across attempts. */
type WriteMode = "plain" | "stock" | "session";

/** A session write without an answer in this time is resent, in ms. */
const sessionResendMs = 300;
/** How often a waiting exactly-once write checks whether to resend, in ms. */
const resendCheckMs = 50;
/** Chance that the answer of an applied exactly-once write is lost. */
const lostAnswerChance = 0.15;
/** Longest wait before resending a write whose answer was lost, in ms. */
const lostAnswerResendMsMax = 600;

interface PendingOperation {
  readonly client: SimClient;
  readonly seq: number;
  readonly input: KvInput;
  readonly call: number;
  attempt: number;
  /** Where the current attempt's entry must be applied, if it was proposed. */
  waiting: { node: number; index: LogIndex; term: Term; id: string } | null;
  /** Read contexts of this operation's attempts (any of them may answer). */
  readContexts: string[];
  done: boolean;
  /** How its attempts identify it (plain: each attempt is a new write). */
  readonly mode: WriteMode;
  /** An attempt was resent without knowing its fate: it may yet apply. */
  abandoned: boolean;
  /**
   * A stock write's entry node: the node the client talks to, which
   * forwards to the leader; when it dies the client resends.
   */
  readonly entry: SimNode | null;
}

/** A read attempt without an answer in this time is tried again, in ms. */
const readRetryMsMin = 150;
const readRetryMsMax = 400;

interface SimClient {
  readonly id: number;
  readonly random: SeededRandom;
  leaderGuess: number;
  /**
   * A probe client's node, chosen per attempt instead of `leaderGuess`
   * (null: none now, try again shortly); null for regular clients.
   */
  readonly pin: (() => number | null) | null;
  /** A probe client's only operation: reads or writes of one key. */
  readonly probe: { readonly op: "get" | "put"; readonly key: string } | null;
  seq: number;
  /** Values this client saw per key, for plausible compare-and-sets. */
  readonly seen: Map<string, string | null>;
  /** Operations left for this client; Infinity never. */
  remaining: number;
  /** Called when an operation ends (acknowledged, unknown or dropped). */
  onDone: ((acknowledged: boolean) => void) | null;
  /** Draws each write's {@linkcode WriteMode} (its own stream). */
  readonly modes: SeededRandom;
}

/** All clients, their pending operations, and the recorded history. */
export class ClientPool {
  readonly #queue: EventQueue;
  readonly #nodes: readonly SimNode[];
  readonly #options: WorkloadOptions;
  readonly #trace: ((line: string) => void) | null;
  readonly #makeRandom: (label: string) => SeededRandom;
  readonly #history: KvOperation[] = [];
  readonly #pending = new Set<PendingOperation>();
  /** Per node: log index → operations waiting for that index to be applied. */
  readonly #waiters: Map<LogIndex, PendingOperation[]>[];
  /** Read context → the operation it answers. */
  readonly #reads = new Map<string, PendingOperation>();
  readonly #clients: SimClient[] = [];
  /** Nodes regular clients cannot reach now (probe clients still can). */
  readonly #blocked = new Set<SimNode>();
  /** Ids of probe clients; the fresh writer takes `clients + 1`. */
  #nextProbeId: number;
  #clock = 0;
  /** Ids of acknowledged commands, to check they survive. */
  readonly acknowledged: string[] = [];
  readonly counts = { acknowledged: 0, unknown: 0, dropped: 0 };

  constructor(
    queue: EventQueue,
    nodes: readonly SimNode[],
    options: WorkloadOptions,
    makeRandom: (label: string) => SeededRandom,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#nodes = nodes;
    this.#options = options;
    this.#makeRandom = makeRandom;
    this.#trace = trace;
    this.#waiters = nodes.map(() => new Map());
    this.#nextProbeId = options.clients + 2;
  }

  /** Starts the regular clients; they share the operation budget. */
  start(): void {
    const { clients, ops } = this.#options;
    for (let id = 1; id <= clients; id++) {
      const share = Math.floor(ops / clients) + (id <= ops % clients ? 1 : 0);
      const client = this.#newClient(id, share);
      this.#queue.after(
        client.random.between(0, this.#options.thinkMsMax),
        () => this.#next(client),
      );
    }
  }

  /**
   * Issues fresh writes one after another from a new client, each with
   * `deadlineMs`, until `count` are acknowledged or `budgetMs` has passed;
   * `done` gets how many were acknowledged. A write whose attempt is stranded
   * (say, on a removed leader that never learns its entry lost) ends as
   * unknown at its deadline and the next write starts.
   */
  writeFresh(
    count: number,
    deadlineMs: number,
    budgetMs: number,
    done: (acknowledged: number) => void,
  ): void {
    const client = this.#newClient(this.#options.clients + 1, Infinity);
    const endMs = this.#queue.now + budgetMs;
    let acknowledged = 0;
    client.onDone = (ok) => {
      if (ok) acknowledged++;
      if (acknowledged === count || this.#queue.now >= endMs) {
        done(acknowledged);
        return;
      }
      this.#startOperation(
        client,
        Math.min(deadlineMs, endMs - this.#queue.now),
        true,
      );
    };
    this.#startOperation(client, Math.min(deadlineMs, budgetMs), true);
  }

  /** Number of operations not yet finished. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The history: finished operations, and pending ones as unknown. */
  history(): KvOperation[] {
    const out = [...this.#history];
    for (const op of this.#pending) {
      if (op.waiting === null && !op.abandoned) continue;
      out.push(unknownOperation(op));
    }
    return out;
  }

  /** A node applied `entry`: settles every operation waiting on its index. */
  applied(
    node: SimNode,
    entry: Entry,
    command: KvCommand | null,
    output: KvOutput | null,
  ): void {
    const nodeIndex = this.#nodes.indexOf(node);
    const waiting = this.#waiters[nodeIndex]?.get(entry.index);
    if (waiting === undefined) return;
    this.#waiters[nodeIndex]!.delete(entry.index);
    for (const op of waiting) {
      const target = op.waiting;
      if (op.done || target === null) continue;
      op.waiting = null;
      if (
        command !== null && output !== null && entry.term === target.term &&
        commandId(command) === target.id
      ) {
        if (output === OUTCOME_UNKNOWN) this.#unknown(op);
        else if (
          op.mode !== "plain" && op.client.modes.chance(lostAnswerChance)
        ) {
          // Applied, but the answer is lost on the way (the entry node
          // died after forwarding, a connection reset): the client resends.
          op.abandoned = true;
          this.#trace?.(
            `client ${op.client.id} lost the answer of ${op.mode} write ${op.seq}`,
          );
          this.#retry(op, op.client.modes.between(20, lostAnswerResendMsMax));
        } else this.#complete(op, output, target.id);
      } else {
        // Another entry holds the index: this attempt can never take effect.
        this.#retry(op, 0);
      }
    }
  }

  /**
   * The node's log no longer holds an attempt's (index, term): the entry was
   * overwritten or lost before it was ever sent, so it can never commit
   * (leader completeness and log matching). The attempt is retried.
   */
  checkLost(node: SimNode): void {
    const nodeIndex = this.#nodes.indexOf(node);
    const waiters = this.#waiters[nodeIndex];
    if (waiters === undefined || waiters.size === 0 || node.raft === null) {
      return;
    }
    for (const [index, list] of waiters) {
      const term = node.termAt(index);
      // Inside a snapshot: applied there, or not, unknown; it stays waiting
      // and ends as unknown at its deadline unless its entry is applied.
      if (term === COMPACTED) continue;
      // Dropped with a corrupt tail after it may have been sent: it may still
      // commit from another log, so it stays waiting too (corrupt-tail fault).
      const recover = node.durableRecover;
      if (term === undefined && recover !== null && index <= recover.index) {
        continue;
      }
      const lost = list.filter((op) => op.waiting?.term !== term);
      if (lost.length === 0) continue;
      const kept = list.filter((op) => !lost.includes(op));
      if (kept.length === 0) waiters.delete(index);
      else waiters.set(index, kept);
      for (const op of lost) {
        if (op.done || op.waiting === null) continue;
        op.waiting = null;
        this.#retry(op, 0);
      }
    }
  }

  #newClient(
    id: number,
    operations: number,
    pin: SimClient["pin"] = null,
    probe: SimClient["probe"] = null,
  ): SimClient {
    const random = this.#makeRandom(`client:${id}`);
    const client: SimClient = {
      id,
      random,
      leaderGuess: random.nextInt(this.#nodes.length),
      pin,
      probe,
      seq: 0,
      seen: new Map(),
      remaining: operations,
      onDone: null,
      modes: this.#makeRandom(`modes:${id}`),
    };
    this.#clients.push(client);
    return client;
  }

  #next(client: SimClient): void {
    if (client.remaining <= 0) return;
    if (this.#queue.now >= this.#options.issueUntilMs) return;
    this.#startOperation(client, this.#options.deadlineMs, false);
  }

  #startOperation(client: SimClient, deadlineMs: number, writeOnly: boolean) {
    client.remaining--;
    const input = this.#chooseInput(client, writeOnly);
    const op: PendingOperation = {
      client,
      seq: ++client.seq,
      input,
      call: ++this.#clock,
      attempt: 0,
      waiting: null,
      readContexts: [],
      done: false,
      mode: this.#chooseMode(client, input),
      abandoned: false,
      entry: null,
    };
    if (op.mode === "stock") {
      (op as { entry: SimNode | null }).entry = this
        .#nodes[client.modes.nextInt(this.#nodes.length)]!;
    }
    this.#pending.add(op);
    this.#queue.after(deadlineMs, () => this.#expire(op));
    this.#attempt(op);
  }

  #chooseInput(client: SimClient, writeOnly: boolean): KvInput {
    const random = client.random;
    const value = `${client.id}.${client.seq}`;
    const probe = client.probe;
    if (probe !== null) {
      return probe.op === "get"
        ? { op: "get", key: probe.key }
        : { op: "put", key: probe.key, value };
    }
    const key = `k${random.nextInt(this.#options.keys)}`;
    if (writeOnly) return { op: "put", key, value };
    const roll = random.nextInt(100);
    if (roll < 35) return { op: "get", key };
    if (roll < 60) return { op: "put", key, value };
    if (roll < 72) return { op: "append", key, value: `+${value}` };
    if (roll < 90) {
      const seen = client.seen.get(key);
      const expected = seen !== undefined && random.chance(0.7)
        ? seen
        : random.chance(0.5)
        ? null
        : `${random.between(1, this.#options.clients)}.${random.between(1, 5)}`;
      return { op: "cas", key, expected, value };
    }
    return { op: "delete", key };
  }

  #chooseMode(client: SimClient, input: KvInput): WriteMode {
    if (
      this.#options.resends !== true ||
      (input.op !== "put" && input.op !== "delete")
    ) {
      return "plain";
    }
    const roll = client.modes.nextInt(100);
    return roll < 40 ? "stock" : roll < 80 ? "session" : "plain";
  }

  /**
   * Watches an exactly-once write's attempt: when the node it waits on dies
   * (stock and session writes) or its answer is late (session writes), the
   * attempt is abandoned, not known to have failed, and resent.
   */
  #watchForResend(op: PendingOperation, node: SimNode): void {
    if (op.mode === "plain") return;
    const attempt = op.attempt;
    // A stock client loses its answer when its entry node dies, whichever
    // node the write was forwarded to.
    const watched = op.entry ?? node;
    const incarnation = watched.incarnation;
    const sentAt = this.#queue.now;
    const check = () => {
      if (op.done || op.attempt !== attempt || op.waiting === null) return;
      const died = watched.incarnation !== incarnation;
      const late = op.mode === "session" &&
        this.#queue.now - sentAt >= sessionResendMs;
      if (!died && !late) {
        this.#queue.after(resendCheckMs, check);
        return;
      }
      const waiting = op.waiting;
      const list = this.#waiters[waiting.node]?.get(waiting.index);
      if (list !== undefined) {
        const kept = list.filter((other) => other !== op);
        if (kept.length === 0) {
          this.#waiters[waiting.node]!.delete(waiting.index);
        } else this.#waiters[waiting.node]!.set(waiting.index, kept);
      }
      op.waiting = null;
      this.#trace?.(
        `client ${op.client.id} resends ${op.mode} write ${op.seq} (${
          died ? "node died" : "late"
        })`,
      );
      if (late && !died) {
        op.client.leaderGuess = op.client.random.nextInt(this.#nodes.length);
      }
      // Its first attempt may still apply: the resend must not apply again.
      op.abandoned = true;
      this.#retry(op, op.client.random.between(1, 20));
    };
    this.#queue.after(resendCheckMs, check);
  }

  #attempt(op: PendingOperation): void {
    if (op.done) return;
    if (op.input.op === "get") {
      this.#attemptRead(op);
      return;
    }
    const client = op.client;
    const random = client.random;
    const nodeIndex = this.#reachable(client);
    if (nodeIndex === null) {
      // Connection refused or no answer: the proposal never happened.
      this.#retry(op, this.#unreachableDelay(client));
      return;
    }
    const node = this.#nodes[nodeIndex]!;
    op.attempt++;
    const command: KvCommand = {
      clientId: client.id,
      seq: op.seq,
      attempt: op.attempt,
      op: op.input,
      ...(op.mode === "plain" ? {} : {
        [op.mode]: true,
        atMs: this.#queue.now,
      }),
    };
    let placed: { index: LogIndex; term: Term } | null;
    try {
      placed = node.propose(encodeCommand(command));
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      this.#dropped(op, error);
      return;
    }
    if (placed === null) {
      this.#retry(op, random.between(5, 20));
      return;
    }
    const id = commandId(command);
    op.waiting = { node: nodeIndex, ...placed, id };
    const waiters = this.#waiters[nodeIndex]!;
    const list = waiters.get(placed.index);
    if (list === undefined) waiters.set(placed.index, [op]);
    else list.push(op);
    this.#watchForResend(op, node);
  }

  /** A read: ReadIndex on the node the client talks to, retried when unanswered. */
  #attemptRead(op: PendingOperation): void {
    const client = op.client;
    const random = client.random;
    // A paused or stalled node still accepts the read (it queues in its socket).
    const nodeIndex = this.#reachable(client, true);
    if (nodeIndex === null) {
      this.#retry(op, this.#unreachableDelay(client));
      return;
    }
    const node = this.#nodes[nodeIndex]!;
    const attempt = ++op.attempt;
    const context = `r${client.id}:${op.seq}:${attempt}`;
    // Registered first: a node may answer within the call (a lease read, a
    // single-voter leader), and that answer must find its operation.
    op.readContexts.push(context);
    this.#reads.set(context, op);
    try {
      node.readIndex(encoder.encode(context));
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      op.readContexts.pop();
      this.#reads.delete(context);
      this.#dropped(op, error);
      return;
    }
    if (op.done) return;
    this.#queue.after(random.between(readRetryMsMin, readRetryMsMax), () => {
      if (op.done || op.attempt !== attempt) return;
      // No answer: the node may have lost its leader; sometimes try another.
      if (random.chance(0.5)) {
        client.leaderGuess = random.nextInt(this.#nodes.length);
      }
      this.#attempt(op);
    });
  }

  /**
   * The node a client's attempt goes to, or null when it cannot reach one
   * now; a regular client that cannot reach its guess guesses again.
   */
  #reachable(client: SimClient, queues = false): number | null {
    const up = (node: SimNode) =>
      queues ? node.acceptsRequests : node.available;
    if (client.pin !== null) {
      const index = client.pin();
      return index !== null && up(this.#nodes[index]!) ? index : null;
    }
    const node = this.#nodes[client.leaderGuess]!;
    if (up(node) && !this.#blocked.has(node)) return client.leaderGuess;
    client.leaderGuess = client.random.nextInt(this.#nodes.length);
    return null;
  }

  /** Delay before trying again after no node could be reached, in ms. */
  #unreachableDelay(client: SimClient): number {
    return client.pin !== null
      ? client.random.between(2, 5)
      : client.random.between(5, 20);
  }

  /**
   * Regular clients cannot reach `node` (a client-side partition: their
   * attempts there are refused) until the returned function is called.
   * Probe clients still reach it.
   */
  block(node: SimNode): () => void {
    this.#blocked.add(node);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#blocked.delete(node);
    };
  }

  /**
   * Probes a leader that may be stale (the nemesis has cut it off): a reader
   * pinned to `stale` reads `key` again and again, and a writer writes `key`
   * `writes` times through the newest other leader. A read `stale` answers
   * after the other leader acknowledged a write is stale. The history
   * records every probe operation as it does any other.
   *
   * @returns Stops the probe: no new probe operations start.
   */
  probeStaleLeader(stale: SimNode, key: string, writes: number): () => void {
    const staleIndex = this.#nodes.indexOf(stale);
    let stopped = false;
    const loop = (client: SimClient, pauseMs: () => number) => {
      client.onDone = () => {
        if (stopped || client.remaining <= 0) return;
        this.#queue.after(pauseMs(), () => {
          if (!stopped) {
            this.#startOperation(client, this.#options.deadlineMs, false);
          }
        });
      };
      this.#startOperation(client, this.#options.deadlineMs, false);
    };
    const reader = this.#newClient(
      this.#nextProbeId++,
      Infinity,
      () => staleIndex,
      { op: "get", key },
    );
    const otherLeader = () => {
      let best: number | null = null;
      let bestTerm = -1;
      for (let index = 0; index < this.#nodes.length; index++) {
        const node = this.#nodes[index]!;
        const status = node.available ? node.raft?.status() : undefined;
        if (
          node !== stale && status?.role === "leader" && status.term > bestTerm
        ) {
          best = index;
          bestTerm = status.term;
        }
      }
      return best;
    };
    const writer = this.#newClient(
      this.#nextProbeId++,
      writes,
      otherLeader,
      { op: "put", key },
    );
    this.#trace?.(
      `client probe ${stale.id} read ${key} by ${reader.id}, write by ${writer.id}`,
    );
    loop(reader, () => reader.random.between(2, 6));
    loop(writer, () => writer.random.between(10, 40));
    return () => {
      stopped = true;
    };
  }

  /** A node may serve the read of `context` now, from its applied state. */
  readReady(node: SimNode, context: Uint8Array): void {
    const op = this.#reads.get(decoder.decode(context));
    if (op === undefined || op.done || op.input.op !== "get") return;
    this.#trace?.(
      `client ${op.client.id} read ${op.input.key} served by ${node.id} at applied ${node.appliedIndex}`,
    );
    this.#complete(op, { value: node.replica.read(op.input.key) }, null);
  }

  #dropped(op: PendingOperation, error: ProposalDroppedError): void {
    const client = op.client;
    const random = client.random;
    if (error.reason === "notLeader" && error.leader !== null) {
      const leader = this.#nodes.findIndex((node) => node.id === error.leader);
      if (leader >= 0) client.leaderGuess = leader;
      this.#retry(op, random.between(1, 3));
      return;
    }
    if (error.reason === "noLeader") {
      client.leaderGuess = random.nextInt(this.#nodes.length);
    }
    this.#retry(op, random.between(20, 60));
  }

  #retry(op: PendingOperation, delayMs: number): void {
    this.#queue.after(delayMs, () => this.#attempt(op));
  }

  #complete(op: PendingOperation, output: KvOutput, id: string | null): void {
    op.done = true;
    this.#pending.delete(op);
    for (const context of op.readContexts) this.#reads.delete(context);
    const record: KvOperation = {
      clientId: op.client.id,
      input: op.input,
      output,
      call: op.call,
      return: ++this.#clock,
    };
    this.#history.push(record);
    this.counts.acknowledged++;
    if (id !== null) this.acknowledged.push(id);
    if ("value" in output) op.client.seen.set(op.input.key, output.value);
    else if (output.ok && op.input.op === "put") {
      op.client.seen.set(op.input.key, op.input.value);
    }
    this.#trace?.(
      `client ${op.client.id} ok ${JSON.stringify(op.input)} -> ${
        JSON.stringify(output)
      }`,
    );
    this.#finished(op.client, true);
  }

  /** The cluster answered "outcome unknown" (an evicted session result). */
  #unknown(op: PendingOperation): void {
    op.done = true;
    this.#pending.delete(op);
    this.#history.push(unknownOperation(op));
    this.counts.unknown++;
    this.#trace?.(
      `client ${op.client.id} told outcome unknown ${JSON.stringify(op.input)}`,
    );
    this.#finished(op.client, false);
  }

  #expire(op: PendingOperation): void {
    if (op.done) return;
    op.done = true;
    this.#pending.delete(op);
    // A read that got no answer had no effect: it is left out of the history.
    for (const context of op.readContexts) this.#reads.delete(context);
    if (op.waiting !== null || op.abandoned) {
      this.#history.push(unknownOperation(op));
      this.counts.unknown++;
      this.#trace?.(
        `client ${op.client.id} unknown ${JSON.stringify(op.input)}`,
      );
    } else {
      this.counts.dropped++;
    }
    op.waiting = null;
    this.#finished(op.client, false);
  }

  #finished(client: SimClient, acknowledged: boolean): void {
    if (client.onDone !== null) {
      client.onDone(acknowledged);
      return;
    }
    this.#queue.after(
      client.random.between(0, this.#options.thinkMsMax),
      () => this.#next(client),
    );
  }
}

function unknownOperation(op: PendingOperation): KvOperation {
  return {
    clientId: op.client.id,
    input: op.input,
    output: undefined,
    call: op.call,
    return: Infinity,
  };
}
