/**
 * The runner's waiters: proposals waiting to apply, reads waiting for their
 * ReadIndex to be confirmed and applied, callers waiting for a leader, and
 * proposals forwarded to the leader. One deadline covers a request end to
 * end (waiting for a leader, forwarding, applying), and a caller's
 * AbortSignal ends the wait early. The runner feeds it what each Ready says
 * (leader changes, applied entries, confirmed reads).
 *
 * @module
 */
import type { Clock, Scheduled, Scheduler } from "../base/clock.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import type { RaftNode } from "../raft/raft_node.ts";
import type { Entry, LogIndex, NodeId, Term } from "../raft/types.ts";
import type { PeerTransport } from "../transport/types.ts";
import type { StageRecorder } from "./write_stages.ts";

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** The proposal timed out after being appended: it may or may not commit. */
export class ProposalOutcomeUnknownError extends Error {
  override name = "ProposalOutcomeUnknownError";
}

/** A read or forwarded request could not be served in time (nothing changed). */
export class RequestTimeoutError extends Error {
  override name = "RequestTimeoutError";
}

/** Options of one proposal or read. */
export interface RequestOptions {
  /** Ends the wait early: before anything was proposed it fails as dropped, after as unknown. */
  readonly signal?: AbortSignal;
}

/** What the proposer needs from its runner. */
export interface ProposerHost {
  readonly id: NodeId;
  readonly core: RaftNode;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  readonly transport: PeerTransport;
  /** Milliseconds a request may take end to end. */
  readonly requestTimeoutMs: number;
  /** Identity of this process in read contexts. */
  readonly incarnation: string;
  /** Runs the ready loop soon. */
  schedule(): void;
  /** Called after every input to the core. */
  observed(): void;
  /** Called when the core appended a proposal at `index` (metrics, stage traces). */
  proposed(index: LogIndex): void;
  /** Throws when the node cannot take writes (stopped, storage failed). */
  checkWritable(): void;
  /** Decodes the answer of a proposal forwarded to the leader. */
  decodeResult(bytes: Uint8Array): unknown;
  /** Where reads' stages are recorded. */
  readonly stages: StageRecorder;
  /** The last index the state machine applied (may be ahead of the core's until its Ready advances). */
  appliedIndex(): LogIndex;
}

interface ProposalWaiter {
  readonly term: Term;
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: Scheduled;
}

interface ReadWaiter {
  index: LogIndex | null;
  /** The read context (batch) it was asked in; null until flushed to the core. */
  batch: string | null;
  /** When the read was asked, then confirmed (the clock's monotonic ms; 0 until then). */
  readonly askedAt: number;
  confirmedAt: number;
  /** The leader and term the core knew when the read was asked. */
  readonly leader: NodeId | null;
  readonly term: Term;
  readonly resolve: (index: LogIndex) => void;
  readonly reject: (error: Error) => void;
  readonly timer: Scheduled;
}

/**
 * Request deadlines, checked on each tick instead of one system timer per
 * request (arming and cancelling a timer per write measured as a few per
 * cent of a busy leader's CPU); a deadline fires at most one tick late.
 */
class Deadlines {
  readonly #pending = new Set<{ at: number; run: () => void }>();

  /** Runs `run` at the first sweep at or after `at` (monotonic ms). */
  at(at: number, run: () => void): Scheduled {
    const entry = { at, run };
    this.#pending.add(entry);
    return { cancel: () => this.#pending.delete(entry) };
  }

  /** Runs every deadline that passed by `now`. */
  sweep(now: number): void {
    for (const entry of this.#pending) {
      if (entry.at > now) continue;
      this.#pending.delete(entry);
      entry.run();
    }
  }
}

/** Proposal, read, leader and forward waiters of one runner. */
export class Proposer {
  readonly #host: ProposerHost;
  readonly #deadlines = new Deadlines();
  readonly #proposals = new Map<LogIndex, ProposalWaiter>();
  readonly #reads = new Map<string, ReadWaiter>();
  readonly #leaderWaiters = new Set<() => void>();
  /** Forwarded proposals in flight, by the leader they were sent to. */
  readonly #forwards = new Map<AbortController, NodeId>();
  #readCounter = 0;
  /** Reads not asked of the core yet: the next flush asks for all of them with one context. */
  #unsent: string[] = [];
  /** Keys of the reads asked under each context still unconfirmed, by context counter. */
  readonly #batches = new Map<string, string[]>();
  #readKeys = 0;

  constructor(host: ProposerHost) {
    this.#host = host;
  }

  /**
   * Proposes `data` on the leader (forwarding from a follower) and resolves
   * with the state machine's result once the entry is applied.
   *
   * @throws {ProposalDroppedError} When nothing was appended (safe to retry).
   * @throws {ProposalOutcomeUnknownError} When the outcome is unknown.
   */
  async propose(
    data: Uint8Array,
    options: RequestOptions = {},
  ): Promise<unknown> {
    const host = this.#host;
    host.checkWritable();
    const deadline = this.#deadline();
    await this.#leaderKnown(deadline, options.signal);
    const leader = host.core.knownLeader;
    if (!host.core.isLeader && leader !== null) {
      return host.decodeResult(
        await this.forward(leader, data, deadline, options.signal),
      );
    }
    return await this.proposeLocal(data, deadline, options.signal);
  }

  /** Proposes on this node, which must lead; `deadline` is the clock's monotonic ms. */
  proposeLocal(
    data: Uint8Array,
    deadline = this.#deadline(),
    signal?: AbortSignal,
  ): Promise<unknown> {
    const host = this.#host;
    host.checkWritable();
    if (signal?.aborted) {
      return Promise.reject(
        new ProposalDroppedError("noLeader", "The request was aborted"),
      );
    }
    const index = host.core.propose(data);
    host.observed();
    host.proposed(index);
    const term = host.core.currentTerm;
    host.schedule();
    return new Promise((resolve, reject) => {
      const fail = (message: string) => {
        // A newer proposal may hold the index now (this node lost and won
        // leadership meanwhile): only this one gives up.
        if (this.#proposals.get(index)?.timer === timer) {
          this.#proposals.delete(index);
        }
        timer.cancel();
        signal?.removeEventListener("abort", onAbort);
        reject(new ProposalOutcomeUnknownError(message));
      };
      const onAbort = () =>
        fail(`Proposal at index ${index} was aborted before it applied`);
      const timer = this.#deadlines.at(
        deadline,
        () =>
          fail(
            `Proposal at index ${index} did not apply within ${host.requestTimeoutMs} ms`,
          ),
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#proposals.set(index, {
        term,
        resolve: (result) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(result);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
        timer,
      });
    });
  }

  /**
   * Waits until this node's state reflects everything committed before the
   * call (ReadIndex), then resolves with that index.
   *
   * @throws {ProposalDroppedError} Without a leader.
   * @throws {RequestTimeoutError} When no quorum confirmed in time.
   */
  async readIndex(options: RequestOptions = {}): Promise<LogIndex> {
    const deadline = this.#deadline();
    await this.#leaderKnown(deadline, options.signal);
    return await this.#readIndexNow(deadline, options.signal);
  }

  #readIndexNow(deadline: number, signal?: AbortSignal): Promise<LogIndex> {
    const host = this.#host;
    const key = `${++this.#readKeys}`;
    const leader = host.core.knownLeader;
    const term = host.core.currentTerm;
    const askedAt = host.clock.monotonicMs();
    // Asked of the core at the next flush, with every read asked before it
    // (one context, one heartbeat round for all: etcd batches reads too).
    this.#unsent.push(key);
    host.schedule();
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        const waiter = this.#reads.get(key);
        if (waiter?.timer !== timer) return;
        this.#reads.delete(key);
        this.#pruneBatch(waiter.batch);
        timer.cancel();
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      const onAbort = () =>
        fail(new RequestTimeoutError("Read was aborted before it was served"));
      const timer = this.#deadlines.at(
        deadline,
        () =>
          fail(
            new RequestTimeoutError(
              `Read was not confirmed within ${host.requestTimeoutMs} ms`,
            ),
          ),
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#reads.set(key, {
        index: null,
        batch: null,
        askedAt,
        confirmedAt: 0,
        leader,
        term,
        resolve: (index) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(index);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
        timer,
      });
    });
  }

  /**
   * Asks the core for one read index covering every read queued since the
   * last flush (the runner calls this before each ready loop).
   */
  flushReads(): void {
    if (this.#unsent.length === 0) return;
    const keys = this.#unsent.filter((key) => this.#reads.has(key));
    this.#unsent = [];
    if (keys.length === 0) return;
    const host = this.#host;
    const batch = `${++this.#readCounter}`;
    const context = textEncoder.encode(
      `${host.id}/${host.incarnation}/${batch}`,
    );
    try {
      host.core.readIndex(context, host.clock.monotonicMs());
    } catch (error) {
      // No leader any more: nothing was asked, the reads may be retried.
      for (const key of keys) {
        const waiter = this.#reads.get(key)!;
        this.#reads.delete(key);
        waiter.timer.cancel();
        waiter.reject(error as Error);
      }
      return;
    }
    for (const key of keys) this.#reads.get(key)!.batch = batch;
    this.#batches.set(batch, keys);
    host.observed();
  }

  /** Forgets a batch none of whose reads waits any more. */
  #pruneBatch(batch: string | null): void {
    if (batch === null) return;
    const keys = this.#batches.get(batch);
    if (keys !== undefined && !keys.some((key) => this.#reads.has(key))) {
      this.#batches.delete(batch);
    }
  }

  #deadline(): number {
    return this.#host.clock.monotonicMs() + this.#host.requestTimeoutMs;
  }

  /**
   * Waits (up to `deadline`) until some leader is known. Nothing has been
   * proposed yet, so giving up is safe to report as unavailable.
   */
  async #leaderKnown(deadline: number, signal?: AbortSignal): Promise<void> {
    const host = this.#host;
    if (signal?.aborted) {
      throw new ProposalDroppedError("noLeader", "The request was aborted");
    }
    if (host.core.knownLeader !== null) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        timer.cancel();
        this.#leaderWaiters.delete(done);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = host.scheduler.after(
        Math.max(0, deadline - host.clock.monotonicMs()),
        done,
      );
      signal?.addEventListener("abort", done, { once: true });
      this.#leaderWaiters.add(done);
    });
    if (signal?.aborted) {
      throw new ProposalDroppedError("noLeader", "The request was aborted");
    }
    if (
      host.core.knownLeader === null ||
      host.clock.monotonicMs() > deadline
    ) {
      throw new ProposalDroppedError(
        "noLeader",
        `No leader known to node '${host.id}' within ${host.requestTimeoutMs} ms`,
      );
    }
  }

  /**
   * Forwards a proposal to `leader`; resolves with its encoded result.
   * Aborted as soon as this node learns of another leader (or of none).
   */
  async forward(
    leader: NodeId,
    data: Uint8Array,
    deadline = this.#deadline(),
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const host = this.#host;
    // The caller's retry then goes to the new leader without waiting out
    // the request deadline.
    const abort = new AbortController();
    const onAbort = () => abort.abort(new Error("the caller aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#forwards.set(abort, leader);
    try {
      return await host.transport.request(leader, {
        method: "forwardProposal",
        data,
      }, {
        timeoutMs: Math.max(1, deadline - host.clock.monotonicMs()),
        signal: abort.signal,
      });
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "invalid") {
        // The leader refused the bytes before proposing: nothing appended.
        throw new RangeError((error as Error).message);
      }
      if (code === "dropped") {
        throw new ProposalDroppedError(
          "notLeader",
          (error as Error).message,
          leader,
        );
      }
      // Sent but unanswered: the leader may have appended it.
      throw new ProposalOutcomeUnknownError(
        `Forwarded proposal to '${leader}' has no known outcome: ${error}`,
      );
    } finally {
      this.#forwards.delete(abort);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Fails the proposals and reads whose deadline passed by `now` (the runner calls it every tick). */
  sweepDeadlines(now: number): void {
    this.#deadlines.sweep(now);
  }

  /** A Ready changed the leader: forwards elsewhere end, leader waiters wake. */
  leaderChanged(leader: NodeId | null): void {
    for (const [abort, target] of this.#forwards) {
      if (target === leader) continue;
      this.#forwards.delete(abort);
      abort.abort(
        new Error(
          leader === null
            ? `'${target}' is no longer known as the leader`
            : `the leader changed from '${target}' to '${leader}'`,
        ),
      );
    }
    if (leader !== null) {
      for (const wake of [...this.#leaderWaiters]) wake();
      this.#leaderWaiters.clear();
    }
  }

  /** Settles the proposal waiting on `entry`, if any, with `result()`. */
  applied(entry: Entry, result: () => unknown): void {
    const waiter = this.#proposals.get(entry.index);
    if (waiter === undefined) return;
    this.#proposals.delete(entry.index);
    waiter.timer.cancel();
    if (waiter.term === entry.term) waiter.resolve(result());
    else {
      waiter.reject(
        new ProposalDroppedError(
          "notLeader",
          `Proposal at index ${entry.index} was replaced by a newer leader's entry`,
        ),
      );
    }
  }

  /** Fails every waiting proposal as outcome unknown (lost leadership, stop, storage failure). */
  failProposals(why: string): void {
    for (const [index, waiter] of this.#proposals) {
      this.#proposals.delete(index);
      waiter.timer.cancel();
      waiter.reject(
        new ProposalOutcomeUnknownError(
          why.replace("{index}", `${index}`),
        ),
      );
    }
  }

  /** Fails every waiting read (the node stops). */
  failReads(why: string): void {
    for (const waiter of this.#reads.values()) {
      waiter.timer.cancel();
      waiter.reject(new RequestTimeoutError(why));
    }
    this.#reads.clear();
    this.#batches.clear();
    this.#unsent = [];
  }

  /**
   * The leader changed: reads asked of an earlier leader and not confirmed
   * yet will never be (that leader dropped them, or this node stepped down).
   * They fail now, naming the new leader, instead of waiting for the
   * request deadline.
   */
  failUnconfirmedReads(leader: NodeId | null, term: Term): void {
    for (const [key, waiter] of this.#reads) {
      if (
        waiter.index !== null ||
        (waiter.leader === leader && waiter.term === term)
      ) continue;
      this.#reads.delete(key);
      this.#pruneBatch(waiter.batch);
      waiter.timer.cancel();
      waiter.reject(
        new ProposalDroppedError(
          leader === null ? "noLeader" : "notLeader",
          `Read was not confirmed before the leader changed (now ${
            leader ?? "unknown"
          }): retry`,
          leader,
        ),
      );
    }
  }

  /** The core confirmed the read of `context` at `index`. */
  readConfirmed(index: LogIndex, context: Uint8Array): void {
    const host = this.#host;
    const text = textDecoder.decode(context);
    const slash = text.lastIndexOf("/");
    if (text.slice(0, slash) !== `${host.id}/${host.incarnation}`) return;
    const batch = text.slice(slash + 1);
    const keys = this.#batches.get(batch);
    if (keys === undefined) return;
    this.#batches.delete(batch);
    const now = host.clock.monotonicMs();
    for (const key of keys) {
      const waiter = this.#reads.get(key);
      if (waiter === undefined) continue;
      waiter.index = index;
      waiter.confirmedAt = now;
      host.stages.observe("read.confirm", now - waiter.askedAt);
    }
    this.releaseReads(host.appliedIndex());
  }

  /** Serves the confirmed reads whose index is applied. */
  releaseReads(applied: LogIndex): void {
    if (this.#reads.size === 0) return;
    const now = this.#host.clock.monotonicMs();
    for (const [key, waiter] of this.#reads) {
      if (waiter.index !== null && waiter.index <= applied) {
        this.#reads.delete(key);
        waiter.timer.cancel();
        const stages = this.#host.stages;
        stages.observe("read.wait_apply", now - waiter.confirmedAt);
        stages.observe("read.total", now - waiter.askedAt);
        waiter.resolve(waiter.index);
      }
    }
  }
}
