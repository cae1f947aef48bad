/**
 * Simulated webhook workers (`--services hooks`, issue 17), deterministic
 * like the coordination clients: each incarnation grants a lease (through
 * the leases service's port), keeps it alive every TTL/3, claims hooks
 * under it (`hookClaim`), and for each claimed hook loops: the next
 * matching event after its cursor from the node it talks to, `hookBegin`,
 * a send to the simulated {@linkcode HookReceiver} (which answers ok or
 * fails now and then: the worker reports `failed` with a retry time),
 * `hookFinish`. A request without an answer is resent (begin of the open
 * attempt and finish of a closed one change nothing); `claimLost` drops the
 * hook. Before the issue deadline an incarnation dies now and then (before
 * a send, after it, or after a finish): its state is dropped and its lease
 * left to expire, so another incarnation claims the hooks.
 *
 * A worker learns a hook's cursor and retry state only from a replica
 * that applied its claim (the answer came after the node applied it), or
 * from a replica that refused its request (`invalid`) or said the history
 * is compacted below its cursor: then it reads the record there again.
 *
 * @module
 */
import type { EventsResult, HookRecord } from "../services/events/api.ts";
import { eventId } from "../services/events/api.ts";
import type { HookCursor } from "../services/events/api.ts";
import type { CoordinationNode } from "./coordination_clients.ts";
import type { EventQueue } from "./event_queue.ts";
import type { SimHooksPort } from "./hooks_node.ts";
import type { SeededRandom } from "./random.ts";

/** One send that reached the receiver. */
export interface Arrival {
  readonly hook: string;
  readonly event: string;
  readonly attempt: number;
  readonly worker: string;
  readonly atMs: number;
}

/** The simulated webhook endpoint: records every arrival, fails some. */
export class HookReceiver {
  readonly arrivals: Arrival[] = [];
  readonly #random: SeededRandom;
  readonly #failChance: number;

  constructor(random: SeededRandom, failChance: number) {
    this.#random = random;
    this.#failChance = failChance;
  }

  /** Receives one send; true for a 2xx answer. */
  receive(arrival: Arrival): boolean {
    this.arrivals.push(arrival);
    return !this.#random.chance(this.#failChance);
  }
}

/** Counts of the workers' outcomes, for reports and tests. */
export interface HooksCounts {
  claims: number;
  begun: number;
  sent: number;
  ok: number;
  failed: number;
  resent: number;
  claimLost: number;
  resyncs: number;
  died: number;
}

/** Shape and budgets of the workers. */
export interface HookWorkersOptions {
  readonly workers: number;
  /** No incarnation dies after this, in ms. */
  readonly issueUntilMs: number;
  readonly ttlMs: number;
  /** A request without an answer in this time is resent, in ms. */
  readonly requestTimeoutMs: number;
  /** Hooks one incarnation holds at most. */
  readonly claimMax: number;
}

/** Chance an incarnation dies at each crash point (before or after a send, after a finish). */
const dieChance = 0.04;
/** Resends of one request before the incarnation gives up its hook for now. */
const resendsMax = 40;
/** A worker's pause when a hook has nothing to deliver, ms. */
const idleMs = 30;
/** How often an incarnation holding hooks claims again (free hooks of dead workers), ms. */
const claimEveryMs = 400;
/** Longest retry delay reported for a failed attempt, ms. */
const retryMsMax = 120;

type Answer<T> =
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "none" };

interface Held {
  readonly id: string;
  readonly token: number;
  /** The record as last read (selector, types). */
  readonly record: HookRecord;
  cursor: HookCursor;
  retrying: { event: string; attempt: number; atMs: number } | null;
  /**
   * The highest log index of an answer about this hook (claim, begin,
   * finish): a read of a replica behind it may miss what the worker did.
   */
  known: number;
}

interface Incarnation {
  readonly worker: string;
  readonly random: SeededRandom;
  guess: number;
  lease: string | null;
  alive: boolean;
  readonly held: Map<string, Held>;
}

/** The workers of one seed. */
export class HookWorkers {
  readonly #queue: EventQueue;
  readonly #nodes: () => readonly {
    hooks: SimHooksPort | null;
    coordination: CoordinationNode | null;
  }[];
  readonly #options: HookWorkersOptions;
  readonly #makeRandom: (label: string) => SeededRandom;
  readonly #receiver: HookReceiver;
  readonly #ran: () => void;
  readonly #trace: ((line: string) => void) | null;
  #stopped = false;
  #paused = false;
  readonly counts: HooksCounts = {
    claims: 0,
    begun: 0,
    sent: 0,
    ok: 0,
    failed: 0,
    resent: 0,
    claimLost: 0,
    resyncs: 0,
    died: 0,
  };

  constructor(
    queue: EventQueue,
    nodes: () => readonly {
      hooks: SimHooksPort | null;
      coordination: CoordinationNode | null;
    }[],
    options: HookWorkersOptions,
    makeRandom: (label: string) => SeededRandom,
    receiver: HookReceiver,
    ran: () => void,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#nodes = nodes;
    this.#options = options;
    this.#makeRandom = makeRandom;
    this.#receiver = receiver;
    this.#ran = ran;
    this.#trace = trace;
  }

  /** Starts every worker's loop. */
  start(): void {
    for (let id = 1; id <= this.#options.workers; id++) {
      const random = this.#makeRandom(`hooks:worker:${id}`);
      void this.#worker(`hw${id}`, random);
    }
  }

  /**
   * Holds (true) or lets go (false) every delivery and claim: the
   * simulator's quiescence after healing wants no proposals in flight
   * (keep-alives go on, so leases stay).
   */
  pause(paused: boolean): void {
    this.#paused = paused;
  }

  /** Stops every loop (at the end of the run). */
  stop(): void {
    this.#stopped = true;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) =>
      this.#queue.after(ms, () => {
        this.#ran();
        resolve();
      })
    );
  }

  /** One call to the incarnation's guessed node, bounded by the request timeout. */
  #call<T>(
    self: Incarnation,
    send: (node: {
      hooks: SimHooksPort;
      coordination: CoordinationNode;
    }) => Promise<T>,
  ): Promise<Answer<T>> {
    const nodes = this.#nodes();
    const node = nodes[self.guess % nodes.length];
    if (node?.hooks == null || node.coordination === null) {
      self.guess = self.random.nextInt(nodes.length);
      return this.#sleep(self.random.between(5, 20)).then(() => ({
        kind: "none",
      }));
    }
    const ports = { hooks: node.hooks, coordination: node.coordination };
    return new Promise((resolve) => {
      let settled = false;
      const finish = (answer: Answer<T>) => {
        if (settled) return;
        settled = true;
        if (answer.kind !== "ok") {
          self.guess = self.random.nextInt(nodes.length);
        }
        this.#ran();
        resolve(answer);
      };
      this.#queue.after(
        this.#options.requestTimeoutMs,
        () => finish({ kind: "none" }),
      );
      // A refusal without an answer (no leader yet) is retried after a
      // pause: an immediate retry would spin without time moving.
      send(ports).then(
        (value) => finish({ kind: "ok", value }),
        () =>
          this.#queue.after(
            self.random.between(5, 20),
            () => finish({ kind: "none" }),
          ),
      );
    });
  }

  /** Whether the incarnation dies here (only before the issue deadline). */
  #dies(self: Incarnation, where: string): boolean {
    if (this.#queue.now >= this.#options.issueUntilMs) return false;
    if (!self.random.chance(dieChance)) return false;
    self.alive = false;
    this.counts.died++;
    this.#trace?.(`hooks worker ${self.worker} died ${where}`);
    return true;
  }

  async #worker(worker: string, random: SeededRandom): Promise<void> {
    await this.#sleep(random.between(0, 100));
    while (!this.#stopped) {
      const self: Incarnation = {
        worker,
        random,
        guess: random.nextInt(Math.max(1, this.#nodes().length)),
        lease: null,
        alive: true,
        held: new Map(),
      };
      await this.#incarnation(self);
      self.alive = false;
      await this.#sleep(random.between(50, 300));
    }
  }

  async #incarnation(self: Incarnation): Promise<void> {
    while (!this.#stopped && self.alive && self.lease === null) {
      const granted = await this.#call(
        self,
        (node) => node.coordination.grant({ ttlMs: this.#options.ttlMs }),
      );
      if (granted.kind === "ok") self.lease = granted.value.id;
    }
    if (self.lease === null) return;
    this.#trace?.(`hooks worker ${self.worker} lease ${self.lease}`);
    void this.#keepAlive(self, self.lease);
    let claimedAtMs = -Infinity;
    while (!this.#stopped && self.alive) {
      if (this.#paused) {
        await this.#sleep(idleMs);
        continue;
      }
      if (
        self.held.size === 0 || this.#queue.now - claimedAtMs >= claimEveryMs
      ) {
        claimedAtMs = this.#queue.now;
        await this.#claim(self);
      }
      if (self.held.size === 0) {
        await this.#sleep(self.random.between(50, 200));
        continue;
      }
      for (const held of [...self.held.values()]) {
        if (this.#stopped || !self.alive) return;
        await this.#step(self, held);
      }
    }
  }

  /** Keeps the lease alive every TTL/3; a lost lease ends the incarnation. */
  async #keepAlive(self: Incarnation, lease: string): Promise<void> {
    const periodMs = Math.max(1, Math.floor(this.#options.ttlMs / 3));
    while (self.alive && !this.#stopped) {
      await this.#sleep(periodMs);
      if (!self.alive || this.#stopped) return;
      const answer = await this.#call(
        self,
        (node) => node.coordination.keepAlive({ ids: [lease] }),
      );
      if (answer.kind === "ok" && answer.value.leases.length === 0) {
        self.alive = false;
        this.#trace?.(`hooks worker ${self.worker} lost lease ${lease}`);
      }
    }
  }

  /** Claims free hooks; a new one's cursor and retry state come from the replica that applied the claim. */
  async #claim(self: Incarnation): Promise<void> {
    const answer = await this.#call(self, async (node) => {
      const result = await node.hooks.propose({
        type: "hookClaim",
        worker: self.worker,
        lease: self.lease!,
        max: this.#options.claimMax,
      });
      if (!result.ok) return { result, records: [] };
      const records: HookRecord[] = [];
      for (const id of result.hooks ?? []) {
        if (self.held.has(id)) continue;
        const { record } = await node.hooks.hook(id);
        if (record !== null) records.push(record);
      }
      return { result, records };
    });
    if (answer.kind !== "ok") return;
    const { result, records } = answer.value;
    if (!result.ok) {
      if (result.reason === "claimLost") self.alive = false;
      return;
    }
    const ids = new Set(result.hooks ?? []);
    for (const id of self.held.keys()) if (!ids.has(id)) self.held.delete(id);
    for (const record of records) {
      if (record.claim?.lease !== self.lease) continue;
      this.counts.claims++;
      this.#trace?.(
        `hooks worker ${self.worker} claimed ${record.name} token ${record.claim.token}`,
      );
      self.held.set(
        record.id,
        heldOf(record, record.claim.token, this.#queue.now, result.index),
      );
    }
  }

  /** Reads the hook's record again on a replica (after a refusal or a compacted read). */
  async #resync(self: Incarnation, held: Held): Promise<void> {
    this.counts.resyncs++;
    const answer = await this.#call(self, (node) => node.hooks.hook(held.id));
    if (answer.kind !== "ok" || answer.value.record === null) return;
    const { record, applied } = answer.value;
    // A replica behind the worker's last answer may miss a retry it
    // recorded (or the claim): ask again later.
    if (applied < held.known || record.claim?.token !== held.token) return;
    const fresh = heldOf(record, held.token, this.#queue.now, applied);
    this.#trace?.(
      `hooks worker ${self.worker} resynced ${record.name}: cursor ${
        JSON.stringify(fresh.cursor)
      } retrying ${JSON.stringify(record.retrying)}`,
    );
    held.cursor = fresh.cursor;
    held.retrying = fresh.retrying;
    held.known = Math.max(held.known, applied);
  }

  /** One delivery step of a held hook: the next event, begin, send, finish. */
  async #step(self: Incarnation, held: Held): Promise<void> {
    if (this.#paused) return;
    if (held.retrying !== null && held.retrying.atMs > this.#queue.now) {
      await this.#sleep(held.retrying.atMs - this.#queue.now);
      return;
    }
    const next = await this.#call(
      self,
      (node) => node.hooks.next(held.record, held.cursor),
    );
    if (next.kind !== "ok" || next.value.kind === "none") {
      await this.#sleep(idleMs);
      return;
    }
    if (next.value.kind === "compacted") {
      await this.#resync(self, held);
      await this.#sleep(idleMs);
      return;
    }
    const event = next.value.event;
    const id = eventId(event);
    const attempt = held.retrying?.event === id ? held.retrying.attempt + 1 : 1;
    const begun = await this.#request(self, held, {
      type: "hookBegin",
      id: held.id,
      token: held.token,
      attempts: [{ event: id, attempt }],
      replay: false,
      nowMs: this.#queue.now,
    });
    if (begun !== "ok") return;
    this.counts.begun++;
    if (
      this.#dies(self, `before sending ${held.record.name} ${id}#${attempt}`)
    ) {
      return;
    }
    const startedAtMs = this.#queue.now;
    this.counts.sent++;
    const ok = this.#receiver.receive({
      hook: held.id,
      event: id,
      attempt,
      worker: self.worker,
      atMs: startedAtMs,
    });
    await this.#sleep(self.random.between(1, 20));
    if (
      this.#dies(self, `after sending ${held.record.name} ${id}#${attempt}`)
    ) {
      return;
    }
    const retryAtMs = this.#queue.now + self.random.between(10, retryMsMax);
    const finished = await this.#request(self, held, {
      type: "hookFinish",
      id: held.id,
      token: held.token,
      results: [{
        event: id,
        attempt,
        replay: false,
        status: ok ? 200 : 500,
        latencyMs: this.#queue.now - startedAtMs,
        outcome: ok ? "ok" : "failed",
        error: ok ? null : "HTTP 500",
        nextAttemptAtMs: ok ? null : retryAtMs,
        disable: null,
      }],
      cancel: [],
      nowMs: this.#queue.now,
    });
    if (finished !== "ok") return;
    this.#trace?.(
      `hooks worker ${self.worker} finished ${held.record.name} ${id}#${attempt} ${
        ok ? "ok" : "failed"
      }`,
    );
    if (ok) {
      this.counts.ok++;
      held.cursor = { r: Number(event.revision), i: event.index };
      held.retrying = null;
    } else {
      this.counts.failed++;
      held.retrying = { event: id, attempt, atMs: retryAtMs };
    }
    this.#dies(self, `after finishing ${held.record.name} ${id}#${attempt}`);
  }

  /**
   * Sends a begin or finish until answered: `ok`, or `dropped` (claim
   * lost: the hook is dropped; refused otherwise: the record is read
   * again), or `none` (the incarnation ended or gave up for now).
   */
  async #request(
    self: Incarnation,
    held: Held,
    command: Parameters<SimHooksPort["propose"]>[0],
  ): Promise<"ok" | "dropped" | "none"> {
    for (let tries = 0; tries < resendsMax; tries++) {
      if (this.#stopped || !self.alive) return "none";
      if (tries > 0) this.counts.resent++;
      const answer = await this.#call(
        self,
        (node) => node.hooks.propose(command),
      );
      if (answer.kind !== "ok") continue;
      const result: EventsResult = answer.value;
      held.known = Math.max(held.known, result.index);
      if (result.ok) return "ok";
      if (result.reason === "claimLost") {
        this.counts.claimLost++;
        self.held.delete(held.id);
        this.#trace?.(
          `hooks worker ${self.worker} lost ${held.record.name}: ${result.message}`,
        );
        return "dropped";
      }
      this.#trace?.(
        `hooks worker ${self.worker} ${command.type} refused: ${result.message}`,
      );
      await this.#resync(self, held);
      return "dropped";
    }
    return "none";
  }
}

function heldOf(
  record: HookRecord,
  token: number,
  nowMs: number,
  known: number,
): Held {
  const retrying = record.retrying === null ? null : {
    event: record.retrying.event,
    attempt: record.retrying.attempt,
    atMs: Math.max(nowMs, record.retrying.nextAttemptAtMs),
  };
  return {
    id: record.id,
    token,
    record,
    cursor: record.cursor,
    retrying,
    known,
  };
}
