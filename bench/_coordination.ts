/**
 * The coordination workloads of `bench:compare` (issue 16): locks and
 * lease keep-alives, against Aspen's HTTP API (`/v1/leases/*`,
 * `/v1/locks/*`, `src/protocol/http_api_leases.ts`) and etcd's HTTP/JSON
 * gateway (`/v3/lease/*`, `/v3/lock/*`, etcd 3.4 paths, base64 names), in
 * the same closed loop as the KV workloads (`runClosedLoop`).
 *
 * Workload `lock` runs two cells, `keepalive` two:
 *
 * - `lock`: each client acquires and releases a lock of its own name
 *   (uncontended); one operation is an acquire+release pair, its latency
 *   the pair's.
 * - `lock-contended`: every client acquires and releases the same name; a
 *   pair's latency includes its wait in the queue.
 * - `keepalive`: {@linkcode KEEPALIVE_LEASES} leases split among the clients
 *   (client i owns every lease whose index is i modulo the clients), each
 *   call renews all of the client's leases at once, as a client holding them
 *   would. Aspen: one `/v1/leases/keepalive` call with those ids (≤ 1,000).
 *   etcd: one `/v3/lease/keepalive` request whose body streams one
 *   `LeaseKeepAliveRequest` per id (the gateway maps the body onto the gRPC
 *   stream, one message per id, as etcd's own client sends them). One
 *   operation is one lease renewed; latencies are per call. etcd's gateway
 *   now and then ends a streamed reply early (after the messages of the
 *   body's first 512 bytes); the call then sends the unanswered ids again,
 *   within its latency, as a client would (counted in the cell's `resends`).
 * - `keepalive-1`: the same leases, one id per request on both sides (the
 *   unit of etcd's gateway used plainly).
 *
 * Leases are granted before a cell starts (untimed), with a TTL long enough
 * that none lapses during the run. The clients check what they can see
 * without slowing the loop: Aspen's tokens must rise strictly per name (a
 * breach counts as a violation). Mutual exclusion itself is the Jepsen-style
 * lock test's job: a holder here releases at once, so two holders could not
 * be told apart from one without holding the lock for a while.
 *
 * @module
 */
import { ROUTES } from "../src/protocol/http_api.ts";
import type {
  LeaseGrantResponse,
  LeaseKeepAliveResponse,
  LockAcquireResponse,
} from "../src/protocol/http_api_leases.ts";
import {
  BENCH_ASPEN_TOKEN,
  postJson,
  REQUEST_TIMEOUT_MS,
  UnexpectedStatusError,
} from "./_drivers.ts";
import {
  type CellMeasurement,
  describeError,
  pause,
  runClosedLoop,
  summarize,
} from "./_load.ts";

/** Coordination workloads (`--workloads lock,keepalive`). */
export const COORDINATION_WORKLOADS = ["lock", "keepalive"] as const;
/** A coordination workload. */
export type CoordinationWorkload = typeof COORDINATION_WORKLOADS[number];

/** The cells each coordination workload runs, in order. */
export const COORDINATION_CELLS = {
  lock: ["lock", "lock-contended"],
  keepalive: ["keepalive", "keepalive-1"],
} as const satisfies Record<CoordinationWorkload, readonly string[]>;
/** One coordination cell. */
export type CoordinationCell =
  typeof COORDINATION_CELLS[CoordinationWorkload][number];

/** What one operation of each cell is. */
export const CELL_UNITS: Record<CoordinationCell, string> = {
  lock: "acquire+release pairs (own name per client)",
  "lock-contended": "acquire+release pairs (one name)",
  keepalive: "leases renewed (each call renews the client's share)",
  "keepalive-1": "leases renewed (one id per request)",
};

/** Leases the keep-alive cells renew. */
export const KEEPALIVE_LEASES = 1_000;
/** TTL of every lease the benchmark grants, ms (none may lapse during a run). */
export const BENCH_LEASE_TTL_MS = 120_000;
/** Longest wait of one Aspen acquire call, ms (it is asked again while queued). */
const ACQUIRE_WAIT_MS = 5_000;
/** Ms one acquire may take in all, queue included, before it counts as an error. */
const ACQUIRE_TIMEOUT_MS = 30_000;
/** Requests one etcd keep-alive call may make (the first, then resends). */
const KEEPALIVE_ROUNDS_MAX = 4;
/** Concurrent grants while preparing leases. */
const GRANTERS = 16;

/** How one batched keep-alive call is made on Aspen. */
export const ASPEN_KEEPALIVE_CALL =
  "one POST /v1/leases/keepalive {ids: [the client's ids]} (up to 1,000 ids per call; the leader confirms leadership once per call)";
/** How one batched keep-alive call is made on etcd. */
export const ETCD_KEEPALIVE_CALL =
  "one POST /v3/lease/keepalive whose body streams one {ID} message per id, answered by one result line per id (etcd's LeaseKeepAliveRequest carries one id)";

/** What a target must offer the coordination cells. Errors are thrown. */
export interface CoordinationDriver {
  /** Grants a lease of `ttlMs` and resolves its id. */
  grantLease(ttlMs: number): Promise<string>;
  /** Renews `ids` in one call; resolves how many the target confirmed alive. */
  keepAlive(ids: readonly string[]): Promise<number>;
  /**
   * Acquires lock `name` for `lease`, waiting in its queue as long as it
   * takes (bounded); resolves the grant's token, and whether tokens of one
   * name rise strictly on this target (Aspen's do; etcd's are key names).
   */
  acquire(
    name: string,
    lease: string,
  ): Promise<{ token: string; ordered: boolean }>;
  /** Releases the grant `token` of `name`. */
  release(name: string, token: string): Promise<void>;
  /** Keep-alive requests sent again so far (etcd's gateway only). */
  readonly resends?: number;
  /** Releases connections. */
  close(): Promise<void>;
}

/**
 * Aspen through its HTTP API (raw `fetch`, JSON) at `urls[0]` (the leader),
 * moving to the next URL on a refused connection or a 503/421, like
 * `AspenHttpDriver`.
 */
export class AspenCoordinationDriver implements CoordinationDriver {
  #preferred = 0;

  /** @param urls Every node's base URL, the leader first. */
  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) {
      throw new RangeError("Cannot drive Aspen without a URL");
    }
  }

  async #call(route: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS) {
    const url = this.urls[this.#preferred]! + route;
    let reply;
    try {
      reply = await postJson(url, body, timeoutMs, BENCH_ASPEN_TOKEN);
    } catch (error) {
      this.#rotate();
      throw error;
    }
    if (reply.status !== 200) {
      if (reply.status === 503 || reply.status === 421) this.#rotate();
      throw new UnexpectedStatusError(reply.status, reply.text, url);
    }
    return reply.json;
  }

  #rotate(): void {
    this.#preferred = (this.#preferred + 1) % this.urls.length;
  }

  async grantLease(ttlMs: number): Promise<string> {
    const reply = await this.#call(ROUTES.leaseGrant, { ttlMs });
    return (reply as LeaseGrantResponse).id;
  }

  async keepAlive(ids: readonly string[]): Promise<number> {
    const reply = await this.#call(ROUTES.leaseKeepAlive, { ids });
    const leases = (reply as LeaseKeepAliveResponse).leases;
    return leases.filter((l) => !("error" in l)).length;
  }

  async acquire(
    name: string,
    lease: string,
  ): Promise<{ token: string; ordered: boolean }> {
    const deadline = performance.now() + ACQUIRE_TIMEOUT_MS;
    // Asking again while queued keeps the place (the same lease's waiter).
    while (performance.now() < deadline) {
      const reply = await this.#call(
        ROUTES.lockAcquire,
        { name, lease, waitMs: ACQUIRE_WAIT_MS },
        ACQUIRE_WAIT_MS + REQUEST_TIMEOUT_MS,
      ) as LockAcquireResponse;
      if (reply.granted) return { token: reply.token, ordered: true };
    }
    throw new Error(
      `Cannot acquire '${name}' within ${ACQUIRE_TIMEOUT_MS} ms: still queued`,
    );
  }

  async release(name: string, token: string): Promise<void> {
    await this.#call(ROUTES.lockRelease, { name, token });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * etcd v3 through its HTTP/JSON gateway at `url` (the leader). A lock is
 * etcd's `v3lock` service: `lock` {name, lease} answers the holder's key
 * once it owns the lock; `unlock` {key} deletes it.
 */
export class EtcdCoordinationDriver implements CoordinationDriver {
  /** @param url The leader's client URL. */
  constructor(readonly url: string) {}

  async #call(path: string, body: unknown, timeoutMs = REQUEST_TIMEOUT_MS) {
    const reply = await postJson(this.url + path, body, timeoutMs);
    if (reply.status !== 200) {
      throw new UnexpectedStatusError(
        reply.status,
        reply.text,
        this.url + path,
      );
    }
    return (reply.json ?? {}) as Record<string, unknown>;
  }

  async grantLease(ttlMs: number): Promise<string> {
    const reply = await this.#call("/v3/lease/grant", {
      TTL: String(Math.ceil(ttlMs / 1000)),
    });
    if (typeof reply.ID !== "string" || reply.error !== undefined) {
      throw new Error(`etcd granted no lease: ${JSON.stringify(reply)}`);
    }
    return reply.ID;
  }

  /**
   * Requests sent again for ids a streamed reply left unanswered (the
   * gateway now and then ends the reply after the first 512 bytes of the
   * body's messages).
   */
  resends = 0;

  async keepAlive(ids: readonly string[]): Promise<number> {
    let alive = 0;
    let missing = ids;
    // As a client would, ids left unanswered are sent again at once.
    for (let round = 0; round < KEEPALIVE_ROUNDS_MAX; round++) {
      if (round > 0) this.resends++;
      const answers = await this.#keepAliveStream(missing);
      for (const ttl of answers.values()) if (ttl > 0) alive++;
      missing = missing.filter((id) => !answers.has(id));
      if (missing.length === 0) return alive;
    }
    throw new Error(
      `etcd left ${missing.length} of ${ids.length} keep-alives unanswered after ${KEEPALIVE_ROUNDS_MAX} requests`,
    );
  }

  /** One request streaming `ids`; resolves each answered id's TTL (0: not found). */
  async #keepAliveStream(ids: readonly string[]): Promise<Map<string, number>> {
    // The gateway reads the body as a stream of messages and answers one
    // {"result": …} line per message; an unknown lease answers no TTL.
    const response = await fetch(this.url + "/v3/lease/keepalive", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: ids.map((id) => `{"ID":"${id}"}`).join("\n"),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new UnexpectedStatusError(
        response.status,
        text,
        this.url + "/v3/lease/keepalive",
      );
    }
    const answers = new Map<string, number>();
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      const message = JSON.parse(line) as {
        result?: { ID?: string; TTL?: string };
        error?: unknown;
      };
      if (message.error !== undefined || message.result?.ID === undefined) {
        throw new Error(`etcd keep-alive failed: ${line.slice(0, 200)}`);
      }
      answers.set(message.result.ID, Number(message.result.TTL ?? 0));
    }
    return answers;
  }

  async acquire(
    name: string,
    lease: string,
  ): Promise<{ token: string; ordered: boolean }> {
    // etcd's lock call blocks until the lock is held.
    const reply = await this.#call(
      "/v3/lock/lock",
      { name: btoa(name), lease },
      ACQUIRE_TIMEOUT_MS,
    );
    if (typeof reply.key !== "string") {
      throw new Error(`etcd answered no lock key: ${JSON.stringify(reply)}`);
    }
    return { token: reply.key, ordered: false };
  }

  async release(_name: string, token: string): Promise<void> {
    await this.#call("/v3/lock/unlock", { key: token });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Grants `count` leases of `ttlMs` ({@linkcode GRANTERS} at a time), bounded
 * by `timeoutMs`.
 *
 * @throws {Error} When the target cannot grant them in time.
 */
export async function prepareLeases(
  driver: CoordinationDriver,
  count: number,
  ttlMs: number,
  timeoutMs: number,
): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  const ids: string[] = [];
  let lastError: unknown = null;
  let asked = 0;
  const granter = async () => {
    while (asked < count && performance.now() < deadline) {
      asked++;
      try {
        ids.push(await driver.grantLease(ttlMs));
      } catch (error) {
        asked--;
        lastError = error;
        // A refusal other than "unavailable" will not change: stop asking.
        if (isPermanent(error)) break;
        await pause(50);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(GRANTERS, count) }, granter));
  if (ids.length < count) {
    throw new Error(
      `Cannot grant ${count} leases (granted ${ids.length}; ${
        isPermanent(lastError) ? "refused" : `within ${timeoutMs} ms`
      }): ${describeError(lastError)}`,
    );
  }
  return ids;
}

/** Whether `error` is a 4xx answer other than 408, 421 and 429 (asking again cannot help). */
function isPermanent(error: unknown): boolean {
  return error instanceof UnexpectedStatusError && error.status >= 400 &&
    error.status < 500 && ![408, 421, 429].includes(error.status);
}

/** Options of {@linkcode runCoordinationCell}. */
export interface CoordinationCellOptions {
  readonly cell: CoordinationCell;
  readonly clients: number;
  readonly durationMs: number;
  /** The keep-alive cells' leases (ignored by the lock cells, which grant one per client). */
  readonly leases: readonly string[];
  /** Ms the lock cells' lease grants may take. */
  readonly prepareTimeoutMs: number;
}

/** Runs one coordination cell: `clients` closed loops for the duration. */
export async function runCoordinationCell(
  driver: CoordinationDriver,
  options: CoordinationCellOptions,
): Promise<CellMeasurement> {
  const { cell, clients } = options;
  let units = 0;
  let violations = 0;
  let operation: (client: number) => Promise<boolean>;
  if (cell === "lock" || cell === "lock-contended") {
    const leases = await prepareLeases(
      driver,
      clients,
      BENCH_LEASE_TTL_MS,
      options.prepareTimeoutMs,
    );
    const tag = crypto.randomUUID().slice(0, 8);
    const nameOf = (client: number) =>
      cell === "lock" ? `bench-${tag}-${client}` : `bench-${tag}-one`;
    const lastToken = new Map<string, string>();
    operation = async (client) => {
      const name = nameOf(client);
      const { token, ordered } = await driver.acquire(name, leases[client]!);
      // Tokens are fixed-width hex: text order is number order.
      const last = lastToken.get(name);
      if (ordered && last !== undefined && !(token > last)) violations++;
      lastToken.set(name, token);
      await driver.release(name, token);
      units++;
      return true;
    };
  } else {
    const shares = Array.from(
      { length: clients },
      (_, i) => options.leases.filter((_, j) => j % clients === i),
    );
    if (shares.some((s) => s.length === 0)) {
      throw new RangeError(
        `Cannot split ${options.leases.length} leases among ${clients} clients`,
      );
    }
    const cursors = new Array<number>(clients).fill(0);
    operation = async (client) => {
      const share = shares[client]!;
      let ids = share;
      if (cell === "keepalive-1") {
        ids = [share[cursors[client]! % share.length]!];
        cursors[client]!++;
      }
      const alive = await driver.keepAlive(ids);
      units += alive;
      if (alive < ids.length) {
        throw new Error(
          `${
            ids.length - alive
          } of ${ids.length} leases were not found by their keep-alive`,
        );
      }
      return true;
    };
  }
  const resendsBefore = driver.resends ?? 0;
  const loop = await runClosedLoop(options, operation);
  const seconds = loop.elapsedMs / 1000;
  return {
    workload: cell,
    clients,
    elapsedMs: loop.elapsedMs,
    operations: units,
    errors: loop.errors,
    conflicts: 0,
    throughputPerSecond: units / seconds,
    latencyMs: summarize(loop.latencies),
    firstError: loop.firstError,
    unit: CELL_UNITS[cell],
    calls: loop.latencies.length,
    callsPerSecond: loop.latencies.length / seconds,
    violations,
    ...(driver.resends === undefined
      ? {}
      : { resends: driver.resends - resendsBefore }),
  };
}
