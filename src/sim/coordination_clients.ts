/**
 * Simulated coordination clients (issue 16): each loops grant a lease →
 * keep it alive every TTL/3 → acquire a lock or semaphore (long-poll, then
 * cancel at its timeout) → write with `checkFence` and attach a key to the
 * lease → release, speaking the HTTP protocol's request and response types
 * (`src/protocol/http_api_leases.ts`) to a {@linkcode CoordinationNode} per
 * simulated node. Now and then a client dies (stops its keep-alives and
 * walks away, its waiter or hold left to the lease's expiry), revokes, or
 * sends a keep-alive late, so expiries race keep-alives and grants.
 *
 * The clients feed the properties of `coordination_checker.ts`: every
 * keep-alive (and grant) a leader acknowledged, stamped with the *send*
 * time and every node's clock then, every revoke asked for, and every
 * `checkFence` write accepted.
 *
 * @module
 */
import type {
  AtomicRequest,
  CommitResponse,
  ErrorCode,
} from "../protocol/http_api.ts";
import type {
  LeaseGrantRequest,
  LeaseGrantResponse,
  LeaseKeepAliveRequest,
  LeaseKeepAliveResponse,
  LeaseRevokeRequest,
  LeaseRevokeResponse,
  LockAcquireRequest,
  LockAcquireResponse,
  LockCancelRequest,
  LockCancelResponse,
  LockReleaseRequest,
  LockReleaseResponse,
} from "../protocol/http_api_leases.ts";
import type {
  ClockReadings,
  FencedWrite,
  LeaseExpiryChecker,
} from "./coordination_checker.ts";
import { tokenRevision } from "./coordination_checker.ts";
import type { EventQueue } from "./event_queue.ts";
import type { SeededRandom } from "./random.ts";

/** A typed refusal from a node (nothing changed), as the HTTP error body names it. */
export class CoordinationError extends Error {
  override name = "CoordinationError";
  /** The protocol's error code. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * What a simulated node answers for coordination, one call per HTTP route.
 * A {@linkcode CoordinationError} is a typed refusal; any other rejection
 * (the node down, a proposal's fate unknown) means no answer.
 */
export interface CoordinationNode {
  grant(request: LeaseGrantRequest): Promise<LeaseGrantResponse>;
  keepAlive(request: LeaseKeepAliveRequest): Promise<LeaseKeepAliveResponse>;
  revoke(request: LeaseRevokeRequest): Promise<LeaseRevokeResponse>;
  acquire(request: LockAcquireRequest): Promise<LockAcquireResponse>;
  cancel(request: LockCancelRequest): Promise<LockCancelResponse>;
  release(request: LockReleaseRequest): Promise<LockReleaseResponse>;
  /** `/v1/kv/atomic`; a failed check answers `{ ok: false }`. */
  commit(request: AtomicRequest): Promise<CommitResponse | { ok: false }>;
}

/** A name the clients contend for and its permits. */
export interface ContendedName {
  readonly name: string;
  readonly permits: number;
}

/** Shape and budgets of the coordination workload. */
export interface CoordinationWorkloadOptions {
  readonly clients: number;
  readonly names: readonly ContendedName[];
  /** Simulated time after which no new round starts, in ms. */
  readonly issueUntilMs: number;
  /** TTL each lease asks for, in ms. */
  readonly ttlMs: number;
  /** A request without an answer in this time is given up on, in ms. */
  readonly requestTimeoutMs: number;
  /** How long an acquire waits in all (polls, then cancels), in ms. */
  readonly acquireTimeoutMs: number;
}

/** Chance a round's client dies: its keep-alives stop, its waiter or hold stays. */
const dieChance = 0.2;
/** Chance a client revokes its lease at the end of a round. */
const revokeChance = 0.15;
/** Chance a keep-alive goes out late (up to a TTL after its period). */
const lateKeepAliveChance = 0.1;
/**
 * Chance a keep-alive goes out at its lease's edge: about a TTL after the
 * last one, where the leader's expiry of it may be in flight.
 */
const edgeKeepAliveChance = 0.15;
/** How far past the TTL an edge keep-alive may go out, in ms. */
const edgeKeepAliveMsMax = 120;
/** Longest hold between the fenced write and the release, in ms. */
const holdMsMax = 400;
/** Longest wait of one acquire poll, in ms. */
const pollWaitMsMax = 200;

/** Counts of the workload's outcomes, for reports and tests. */
export interface CoordinationCounts {
  grants: number;
  keepAlives: number;
  acquired: number;
  fencedAccepted: number;
  fencedRefused: number;
  released: number;
  revoked: number;
  died: number;
  leasesLost: number;
}

type Answer<T> =
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "refused"; readonly code: ErrorCode }
  | { readonly kind: "none" };

interface ClientState {
  readonly id: number;
  readonly random: SeededRandom;
  guess: number;
}

interface HeldLease {
  readonly id: string;
  readonly ttlMs: number;
  /** False once the client stopped keeping it alive (died or revoked). */
  alive: boolean;
  /** A keep-alive answered leaseNotFound. */
  lost: boolean;
}

/** The coordination clients of one seed. */
export class CoordinationClients {
  readonly #queue: EventQueue;
  readonly #nodes: () => readonly (CoordinationNode | null)[];
  readonly #options: CoordinationWorkloadOptions;
  readonly #makeRandom: (label: string) => SeededRandom;
  readonly #expiry: LeaseExpiryChecker;
  readonly #clocks: () => ClockReadings;
  readonly #trace: ((line: string) => void) | null;
  /** `checkFence` writes the cluster accepted. */
  readonly fencedWrites: FencedWrite[] = [];
  readonly counts: CoordinationCounts = {
    grants: 0,
    keepAlives: 0,
    acquired: 0,
    fencedAccepted: 0,
    fencedRefused: 0,
    released: 0,
    revoked: 0,
    died: 0,
    leasesLost: 0,
  };

  /**
   * @param nodes Each simulated node's port, null while it is down.
   * @param expiry Receives acknowledged keep-alives and revokes.
   * @param clocks Reads every node's monotonic clock (the keeper counts
   *   TTLs on its own), stamped on each send.
   */
  constructor(
    queue: EventQueue,
    nodes: () => readonly (CoordinationNode | null)[],
    options: CoordinationWorkloadOptions,
    makeRandom: (label: string) => SeededRandom,
    expiry: LeaseExpiryChecker,
    clocks: () => ClockReadings,
    trace: ((line: string) => void) | null,
  ) {
    this.#queue = queue;
    this.#nodes = nodes;
    this.#options = options;
    this.#makeRandom = makeRandom;
    this.#expiry = expiry;
    this.#clocks = clocks;
    this.#trace = trace;
  }

  /** Starts every client's loop. */
  start(): void {
    for (let id = 1; id <= this.#options.clients; id++) {
      const random = this.#makeRandom(`coordination:${id}`);
      const client: ClientState = {
        id,
        random,
        guess: random.nextInt(Math.max(1, this.#nodes().length)),
      };
      this.#queue.after(random.between(0, 50), () => {
        void this.#loop(client);
      });
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#queue.after(ms, resolve));
  }

  /** One call to the client's guessed node, bounded by the request timeout. */
  #call<T>(
    client: ClientState,
    send: (node: CoordinationNode) => Promise<T>,
    onLateAnswer?: (value: T) => void,
  ): Promise<Answer<T>> {
    const nodes = this.#nodes();
    const node = nodes[client.guess % nodes.length] ?? null;
    if (node === null) {
      client.guess = client.random.nextInt(nodes.length);
      return Promise.resolve({ kind: "none" });
    }
    return new Promise((resolve) => {
      let settled = false;
      const finish = (answer: Answer<T>) => {
        if (settled) return;
        settled = true;
        if (answer.kind !== "ok") {
          client.guess = client.random.nextInt(nodes.length);
        }
        resolve(answer);
      };
      this.#queue.after(
        this.#options.requestTimeoutMs,
        () => finish({ kind: "none" }),
      );
      send(node).then(
        (value) => {
          if (settled) onLateAnswer?.(value);
          finish({ kind: "ok", value });
        },
        (error) =>
          finish(
            error instanceof CoordinationError
              ? { kind: "refused", code: error.code }
              : { kind: "none" },
          ),
      );
    });
  }

  async #loop(client: ClientState): Promise<void> {
    let lease: HeldLease | null = null;
    while (this.#queue.now < this.#options.issueUntilMs) {
      if (lease === null || !lease.alive || lease.lost) {
        lease = await this.#grant(client);
        if (lease === null) continue;
      }
      const dies = client.random.chance(dieChance);
      await this.#round(client, lease, dies);
      if (dies) {
        lease.alive = false;
        lease = null;
        this.counts.died++;
        this.#trace?.(`coordination client ${client.id} died`);
        await this.#sleep(client.random.between(50, 300));
        continue;
      }
      if (client.random.chance(revokeChance)) {
        await this.#revoke(client, lease);
        lease = null;
      }
      await this.#sleep(client.random.between(0, 50));
    }
  }

  /** Grants a lease and starts keeping it alive; null when no answer came. */
  async #grant(client: ClientState): Promise<HeldLease | null> {
    const sentAtMs = this.#queue.now;
    const clocksAtSendMs = this.#clocks();
    const answer = await this.#call(
      client,
      (node) => node.grant({ ttlMs: this.#options.ttlMs }),
    );
    if (answer.kind !== "ok") {
      await this.#sleep(client.random.between(5, 30));
      return null;
    }
    const { id, ttlMs } = answer.value;
    this.counts.grants++;
    this.#expiry.acknowledged({ lease: id, sentAtMs, clocksAtSendMs, ttlMs });
    this.#trace?.(`coordination client ${client.id} lease ${id} ttl ${ttlMs}`);
    const lease: HeldLease = { id, ttlMs, alive: true, lost: false };
    void this.#keepAlive(client, lease);
    return lease;
  }

  /** Keeps `lease` alive every TTL/3 (sometimes late) while it is alive. */
  async #keepAlive(client: ClientState, lease: HeldLease): Promise<void> {
    const periodMs = Math.max(1, Math.floor(lease.ttlMs / 3));
    while (lease.alive && !lease.lost) {
      const late = client.random.chance(lateKeepAliveChance)
        ? client.random.between(1, lease.ttlMs)
        : client.random.chance(edgeKeepAliveChance)
        ? lease.ttlMs - periodMs + client.random.between(0, edgeKeepAliveMsMax)
        : 0;
      await this.#sleep(periodMs + late);
      if (!lease.alive || lease.lost) return;
      const sentAtMs = this.#queue.now;
      const clocksAtSendMs = this.#clocks();
      const record = (response: LeaseKeepAliveResponse) => {
        for (const entry of response.leases) {
          if ("error" in entry) {
            if (entry.id === lease.id && !lease.lost) {
              lease.lost = true;
              this.counts.leasesLost++;
            }
            continue;
          }
          this.counts.keepAlives++;
          this.#expiry.acknowledged({
            lease: entry.id,
            sentAtMs,
            clocksAtSendMs,
            ttlMs: entry.ttlMs,
          });
        }
      };
      // An answer after the client gave up still counts: a leader acknowledged it.
      const answer = await this.#call(
        client,
        (node) => node.keepAlive({ ids: [lease.id] }),
        record,
      );
      if (answer.kind === "ok") record(answer.value);
      if (answer.kind === "refused" && answer.code === "leaseNotFound") {
        lease.lost = true;
        this.counts.leasesLost++;
      }
    }
  }

  /** One round on one name; a dying client walks away mid-way. */
  async #round(
    client: ClientState,
    lease: HeldLease,
    dies: boolean,
  ): Promise<void> {
    const { name, permits } = client.random.pick(this.#options.names);
    const dieAfterMs = dies
      ? this.#queue.now +
        client.random.between(0, this.#options.acquireTimeoutMs)
      : Infinity;
    const token = await this.#acquire(client, lease, name, permits, dieAfterMs);
    // Died while waiting: its waiter stays queued until its lease expires.
    if (token === null || this.#queue.now >= dieAfterMs) return;
    this.counts.acquired++;
    this.#trace?.(
      `coordination client ${client.id} holds '${name}' token ${token}`,
    );
    await this.#fencedWrite(client, lease, name, token);
    if (dies) return;
    await this.#sleep(client.random.between(0, holdMsMax));
    const released = await this.#call(
      client,
      (node) => node.release({ name, token }),
    );
    if (released.kind === "ok") this.counts.released++;
  }

  /** Polls acquire until granted, the lease is lost or the timeout; then cancels. */
  async #acquire(
    client: ClientState,
    lease: HeldLease,
    name: string,
    permits: number,
    dieAfterMs: number,
  ): Promise<string | null> {
    const endMs = this.#queue.now + this.#options.acquireTimeoutMs;
    while (this.#queue.now < endMs && !lease.lost) {
      if (this.#queue.now >= dieAfterMs) return null;
      const answer = await this.#call(client, (node) =>
        node.acquire({
          name,
          lease: lease.id,
          permits,
          waitMs: client.random.between(0, pollWaitMsMax),
        }));
      if (answer.kind === "ok" && answer.value.granted) {
        return answer.value.token;
      }
      if (answer.kind === "refused" && answer.code === "leaseNotFound") {
        lease.lost = true;
        return null;
      }
      await this.#sleep(client.random.between(5, 40));
    }
    if (lease.lost) return null;
    // The timeout: leave the queue; a grant won meanwhile is released.
    await this.#call(client, (node) => node.cancel({ name, lease: lease.id }));
    return null;
  }

  /** Writes `["fenced", name]` with `checkFence` and a key attached to the lease. */
  async #fencedWrite(
    client: ClientState,
    lease: HeldLease,
    name: string,
    token: string,
  ): Promise<void> {
    const data = btoa(`${client.id} ${token}`);
    const answer = await this.#call(client, (node) =>
      node.commit({
        checks: [{ fence: { name, token } }],
        mutations: [
          {
            type: "set",
            key: ["fenced", name],
            value: { encoding: "bytes", data },
          },
          {
            type: "set",
            key: ["leased", client.id],
            value: { encoding: "bytes", data },
            lease: lease.id,
          },
        ],
      }));
    if (answer.kind !== "ok") return;
    if (!answer.value.ok) {
      this.counts.fencedRefused++;
      return;
    }
    this.counts.fencedAccepted++;
    this.fencedWrites.push({
      name,
      token,
      revision: tokenRevision(answer.value.versionstamp),
    });
  }

  async #revoke(client: ClientState, lease: HeldLease): Promise<void> {
    lease.alive = false;
    this.#expiry.revoking(lease.id);
    const answer = await this.#call(
      client,
      (node) => node.revoke({ id: lease.id }),
    );
    if (answer.kind === "ok") this.counts.revoked++;
  }
}
