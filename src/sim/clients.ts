/**
 * Simulated clients: each issues one operation at a time on a small key
 * space and records a history for the linearizability checker. They speak
 * Aspen's real KV commands (`encodeKvEntry` of src/services/entries.ts)
 * through the node runner's own paths: a write is proposed on the node the
 * client talks to (a follower forwards it to its leader) and answered with
 * the real apply result; a read is a ReadIndex on that node, then a read of
 * its applied state. Compare-and-set and append are what a Deno KV client
 * does: a strong read, then an atomic operation checked against the
 * versionstamp read, again from the read when the check fails.
 *
 * A write whose attempt may have applied (no answer, outcome unknown) is
 * never retried as a new write: it is recorded as unknown at its deadline.
 * A refusal (nothing appended) is retried. Stock-client and client-module
 * writes (puts and deletes) are resent like their real clients do, with the
 * same bytes or the same session, and the state machine deduplicates them.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { ProposalDroppedError } from "../raft/errors.ts";
import { encodeKey } from "../model/key_codec.ts";
import { versionstampIndex } from "../model/versionstamp.ts";
import type {
  KvAtomicOperation,
  KvCheck,
  KvMutation,
  Versionstamp,
} from "../model/types.ts";
import { encodeKvEntry as encodeCommand } from "../services/entries.ts";
import { decodeApplyResult } from "../services/replicated_state.ts";
import type { EventQueue } from "./event_queue.ts";
import type { KvInput, KvOutput, Operation } from "./lincheck.ts";
import type { SeededRandom } from "./random.ts";
import type { SimNode } from "./sim_node.ts";
import { valueKey } from "./sim_state.ts";

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
   * node dies or the answer is late). Default false.
   */
  readonly resends?: boolean;
  /**
   * Planted bug `mark-before-delivery`: the entry node proposes a stock
   * write's delivery mark before its answer reached the client, so an
   * answer then lost (the node killed with the bytes still in it) is marked
   * delivered, and the client's resend applies as a new write. The KV
   * Connect server proposes a mark only once the node outlived its answer
   * (`_delivery_marks.ts`), which these clients model by proposing none for
   * a lost answer. Default false.
   */
  readonly markBeforeDelivery?: boolean;
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
/** A read attempt without an answer in this time is tried again, in ms. */
const readRetryMsMin = 150;
const readRetryMsMax = 400;

/** What the strong read before a checked write saw. */
interface ReadValue {
  readonly value: string | null;
  readonly versionstamp: Versionstamp | null;
}

interface PendingOperation {
  readonly client: SimClient;
  readonly seq: number;
  readonly input: KvInput;
  readonly call: number;
  /** Bumped by every attempt; answers of earlier attempts are ignored. */
  attempt: number;
  done: boolean;
  /** How its attempts identify it (plain: each attempt is a new write). */
  readonly mode: WriteMode;
  /** Some attempt may have applied without the client knowing. */
  mayHaveApplied: boolean;
  /** An attempt's write is in flight (its answer may still come). */
  writing: boolean;
  /** A stock write's entry node: when it dies, the client resends. */
  readonly entry: SimNode | null;
}

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

function u64(value: number): { encoding: "le64"; data: Uint8Array } {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, BigInt(value), true);
  return { encoding: "le64", data };
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
  readonly #clients: SimClient[] = [];
  /** Nodes regular clients cannot reach now (probe clients still can). */
  readonly #blocked = new Set<SimNode>();
  /** Ids of probe clients; the fresh writer takes `clients + 1`. */
  #nextProbeId: number;
  #clock = 0;
  /** Ids of acknowledged writes, to check they survive. */
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
   * `done` gets how many were acknowledged.
   */
  writeFresh(
    count: number,
    deadlineMs: number,
    budgetMs: number,
    done: (acknowledged: number) => void,
    members: () => readonly SimNode[],
  ): void {
    // It talks to the cluster's current members (as a client configured
    // with their addresses would), not to removed nodes or spares that
    // never joined: those never learn a leader and let a write wait out
    // its node's request deadline.
    const pin = (): number | null => {
      const up = members().filter((node) => node.available);
      if (up.length === 0) return null;
      return this.#nodes.indexOf(client.random.pick(up));
    };
    const client = this.#newClient(this.#options.clients + 1, Infinity, pin);
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

  /** The history: finished operations, and pending ones that may have applied as unknown. */
  history(): KvOperation[] {
    const out = [...this.#history];
    for (const op of this.#pending) {
      if (!op.mayHaveApplied && !op.writing) continue;
      out.push(unknownOperation(op));
    }
    return out;
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
    const mode = this.#chooseMode(client, input);
    const op: PendingOperation = {
      client,
      seq: ++client.seq,
      input,
      call: ++this.#clock,
      attempt: 0,
      done: false,
      mode,
      mayHaveApplied: false,
      writing: false,
      entry: mode === "stock"
        ? this.#nodes[client.modes.nextInt(this.#nodes.length)]!
        : null,
    };
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

  /** Id of the write `op` makes (every attempt of an exactly-once write is the same write). */
  #writeId(op: PendingOperation): string {
    return op.mode === "plain"
      ? `${op.client.id}:${op.seq}:${op.attempt}`
      : `${op.client.id}:${op.seq}`;
  }

  #attempt(op: PendingOperation): void {
    if (op.done) return;
    // A plain write that may have applied is never sent again.
    if (op.mode === "plain" && op.mayHaveApplied) return;
    switch (op.input.op) {
      case "get":
        this.#attemptRead(op);
        return;
      case "append":
      case "cas":
        this.#readThenWrite(op);
        return;
      default:
        this.#write(op, null);
    }
  }

  /** The node an attempt goes to, or null (then retried shortly). */
  #target(op: PendingOperation, queues: boolean): SimNode | null {
    const index = this.#reachable(op.client, queues);
    return index === null ? null : this.#nodes[index]!;
  }

  /** Compare-and-set and append: a strong read, then a checked write. */
  #readThenWrite(op: PendingOperation): void {
    const node = this.#target(op, true);
    if (node === null) {
      this.#retry(op, this.#unreachableDelay(op.client));
      return;
    }
    const attempt = ++op.attempt;
    const input = op.input;
    this.#strongRead(node, input.key).then(
      (read) => {
        if (op.done || op.attempt !== attempt) return;
        if (input.op === "cas" && read.value !== input.expected) {
          // Linearized at the read: the value differs from the expected one.
          this.#complete(op, { ok: false }, null);
          return;
        }
        this.#write(op, read);
      },
      (error) => {
        if (op.done || op.attempt !== attempt) return;
        this.#refused(op, error);
      },
    );
  }

  async #strongRead(node: SimNode, key: string): Promise<ReadValue> {
    const { entry } = await node.read(valueKey(key));
    return {
      value: entry === null ? null : decoder.decode(entry.value.data),
      versionstamp: entry?.versionstamp ?? null,
    };
  }

  /** The atomic operation of a write; `read` is what a checked write saw. */
  #operation(
    op: PendingOperation,
    read: ReadValue | null,
    atMs: number,
  ): KvAtomicOperation {
    const input = op.input;
    const key = valueKey(input.key);
    let checks: KvCheck[] = [];
    let main: KvMutation;
    switch (input.op) {
      case "delete":
        main = { type: "delete", key };
        break;
      case "append":
        checks = [{ key, versionstamp: read?.versionstamp ?? null }];
        main = setBytes(key, (read?.value ?? "") + input.value);
        break;
      case "cas":
        checks = [{ key, versionstamp: read?.versionstamp ?? null }];
        main = setBytes(key, input.value);
        break;
      default:
        main = setBytes(key, input.op === "put" ? input.value : "");
    }
    const seq = op.seq;
    const id = this.#writeId(op);
    const client = `sim-${op.client.id}`;
    return {
      checks,
      mutations: [
        main,
        { type: "sum", key: encodeKey(["sum", input.key]), value: u64(seq) },
        { type: "max", key: encodeKey(["max"]), value: u64(seq) },
        { type: "min", key: encodeKey(["min"]), value: u64(seq) },
        {
          type: "setSuffixVersionstampedKey",
          key: encodeKey(["log", input.key]),
          value: { encoding: "bytes", data: encoder.encode(id) },
        },
      ],
      enqueues: [],
      ...(op.mode === "session" ? { session: { clientId: client, seq } } : {}),
      ...(op.mode === "stock"
        ? {
          resend: {
            clientId: client,
            digest: this.#stockDigest(op),
            mergeable: true,
            atMs,
          },
        }
        : {}),
    };
  }

  /** A stock write's body digest: the same for every attempt. */
  #stockDigest(op: PendingOperation): Uint8Array {
    return sha256(encoder.encode(`sim-${op.client.id}:${op.seq}`));
  }

  #write(op: PendingOperation, read: ReadValue | null): void {
    if (op.done) return;
    const node = this.#target(op, false);
    if (node === null || !node.available) {
      // Connection refused or no answer: the proposal never happened.
      this.#retry(op, this.#unreachableDelay(op.client));
      return;
    }
    const attempt = ++op.attempt;
    const id = this.#writeId(op);
    const data = encodeCommand({
      type: "atomic",
      operation: this.#operation(op, read, node.process.clock.wallMs()),
    });
    op.writing = true;
    this.#trace?.(`client ${op.client.id} write ${op.seq} to ${node.id}`);
    node.submit(data).then(
      (answer) => {
        if (op.done || op.attempt !== attempt) return;
        op.writing = false;
        const result = decodeApplyResult(answer);
        if (!result.ok && result.reason === "sessionExpired") {
          // Its first result was evicted: the client is told "outcome unknown".
          this.#unknown(op);
          return;
        }
        if (!result.ok && result.reason === "checkFailed") {
          // Someone wrote since the read: read again.
          this.#retry(op, 0);
          return;
        }
        if (!result.ok) {
          this.#fail(op, `apply failed: ${result.reason}: ${result.message}`);
          return;
        }
        if (op.mode !== "plain" && op.client.modes.chance(lostAnswerChance)) {
          // Applied, but the answer is lost on the way (the entry node
          // died after forwarding, a connection reset): the client resends.
          op.mayHaveApplied = true;
          this.#trace?.(
            `client ${op.client.id} lost the answer of ${op.mode} write ${op.seq}`,
          );
          const resendMs = op.client.modes.between(20, lostAnswerResendMsMax);
          if (op.mode === "stock" && this.#options.markBeforeDelivery) {
            this.#markThenRetry(op, node, result.versionstamp, resendMs);
            return;
          }
          this.#retry(op, resendMs);
          return;
        }
        this.#complete(op, { ok: true }, id);
      },
      (error) => {
        if (op.done || op.attempt !== attempt) return;
        op.writing = false;
        if (error instanceof ProposalDroppedError) {
          this.#dropped(op, error);
          return;
        }
        // Proposed, fate unknown (timeout, lost leadership, node died).
        op.mayHaveApplied = true;
        this.#trace?.(
          `client ${op.client.id} write ${op.seq} outcome unknown: ${
            (error as Error).name
          }`,
        );
        if (op.mode !== "plain") {
          this.#retry(op, op.client.random.between(1, 20));
        }
      },
    );
    this.#watchForResend(op, node, attempt);
  }

  /** The planted bug: the lost answer was marked delivered first. */
  #markThenRetry(
    op: PendingOperation,
    node: SimNode,
    versionstamp: Versionstamp,
    resendMs: number,
  ): void {
    const mark = encodeCommand({
      type: "resendDelivered",
      marks: [{
        clientId: `sim-${op.client.id}`,
        digest: this.#stockDigest(op),
        index: versionstampIndex(versionstamp),
      }],
    });
    const retry = () => {
      if (!op.done) this.#retry(op, resendMs);
    };
    node.submit(mark).then(retry, retry);
  }

  #fail(op: PendingOperation, why: string): void {
    // A write the state machine refused for a reason the workload never
    // causes: record nothing, the run's checker reports it.
    // An earlier attempt may still have applied: then it ends as unknown.
    this.#trace?.(`client ${op.client.id} ${why}`);
    op.writing = false;
    this.#expire(op);
  }

  /**
   * Watches an exactly-once write's attempt: when the node it waits on dies
   * or its answer is late (session writes), the attempt is abandoned, not
   * known to have failed, and resent.
   */
  #watchForResend(op: PendingOperation, node: SimNode, attempt: number): void {
    if (op.mode === "plain") return;
    // A stock client loses its answer when its entry node dies, whichever
    // node the write went through.
    const watched = op.entry ?? node;
    const incarnation = watched.incarnation;
    const sentAt = this.#queue.now;
    const check = () => {
      if (op.done || op.attempt !== attempt || !op.writing) return;
      const died = watched.incarnation !== incarnation;
      const late = op.mode === "session" &&
        this.#queue.now - sentAt >= sessionResendMs;
      if (!died && !late) {
        this.#queue.after(resendCheckMs, check);
        return;
      }
      op.writing = false;
      this.#trace?.(
        `client ${op.client.id} resends ${op.mode} write ${op.seq} (${
          died ? "node died" : "late"
        })`,
      );
      if (late && !died) {
        op.client.leaderGuess = op.client.random.nextInt(this.#nodes.length);
      }
      // Its first attempt may still apply: the resend must not apply again.
      op.mayHaveApplied = true;
      op.attempt++;
      this.#retry(op, op.client.random.between(1, 20));
    };
    this.#queue.after(resendCheckMs, check);
  }

  /** A read: ReadIndex on the node the client talks to, retried when unanswered. */
  #attemptRead(op: PendingOperation): void {
    const client = op.client;
    const random = client.random;
    // A paused or stalled node still accepts the read (it queues in its socket).
    const node = this.#target(op, true);
    if (node === null) {
      this.#retry(op, this.#unreachableDelay(client));
      return;
    }
    const attempt = ++op.attempt;
    const input = op.input;
    node.read(valueKey(input.key)).then(
      ({ entry, applied }) => {
        if (op.done) return;
        this.#trace?.(
          `client ${client.id} read ${input.key} served by ${node.id} at applied ${applied}`,
        );
        this.#complete(op, {
          value: entry === null ? null : decoder.decode(entry.value.data),
        }, null);
      },
      (error) => {
        if (op.done || op.attempt !== attempt) return;
        this.#refused(op, error);
      },
    );
    this.#queue.after(random.between(readRetryMsMin, readRetryMsMax), () => {
      if (op.done || op.attempt !== attempt) return;
      // No answer: the node may have lost its leader; sometimes try another.
      if (random.chance(0.5)) {
        client.leaderGuess = random.nextInt(this.#nodes.length);
      }
      this.#attempt(op);
    });
  }

  /** A read failed: nothing changed, so it is tried again. */
  #refused(op: PendingOperation, error: unknown): void {
    if (error instanceof ProposalDroppedError) {
      this.#dropped(op, error);
      return;
    }
    const client = op.client;
    this.#guessAnother(client);
    this.#retry(op, client.random.between(5, 20));
  }

  /** Points a client at a node other than the one it talked to. */
  #guessAnother(client: SimClient): void {
    const count = this.#nodes.length;
    client.leaderGuess = (client.leaderGuess + 1 +
      client.random.nextInt(count - 1)) % count;
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

  #dropped(op: PendingOperation, error: ProposalDroppedError): void {
    const client = op.client;
    const random = client.random;
    if (error.reason === "notLeader" && error.leader !== null) {
      const leader = this.#nodes.findIndex((node) => node.id === error.leader);
      if (leader >= 0) client.leaderGuess = leader;
      this.#retry(op, random.between(1, 3));
      return;
    }
    // No leader known there (a removed node or a spare never added never
    // learns one): like a real client, try another node.
    if (error.reason === "noLeader") this.#guessAnother(client);
    this.#retry(op, random.between(20, 60));
  }

  #retry(op: PendingOperation, delayMs: number): void {
    this.#queue.after(delayMs, () => this.#attempt(op));
  }

  #complete(op: PendingOperation, output: KvOutput, id: string | null): void {
    op.done = true;
    this.#pending.delete(op);
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
    // An operation that never took effect is left out of the history.
    if (op.mayHaveApplied || op.writing) {
      this.#history.push(unknownOperation(op));
      this.counts.unknown++;
      this.#trace?.(
        `client ${op.client.id} unknown ${JSON.stringify(op.input)}`,
      );
    } else {
      this.counts.dropped++;
    }
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

function setBytes(key: Uint8Array, value: string): KvMutation {
  return {
    type: "set",
    key,
    value: { encoding: "bytes", data: encoder.encode(value) },
  };
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
