/**
 * A small in-memory server speaking the coordination protocol of
 * `src/protocol/http_api_leases.ts` (leases, locks and semaphores,
 * elections with their SSE observe stream) and the part of `/v1/kv/*` the
 * client's lease and fence additions use (get, set, delete, atomic with
 * versionstamp, fence and lease checks), with the protocol's typed error
 * bodies, bearer check and long polls. It serves on 127.0.0.1 (one or more
 * listeners sharing one state, to test failover of streams) for the client
 * and CLI tests; the real node's services are tested elsewhere.
 *
 * Every state change is one "entry": the revision goes up by one and the
 * tokens it grants are its versionstamps (revision, then a counter), as the
 * real services do. Lease deadlines are real time (`performance.now()`),
 * swept every 20 ms.
 *
 * @module
 */
import {
  ERROR_STATUS,
  type ErrorCode,
  ROUTES,
  type WireCheck,
  type WireMutation,
  type WireValue,
} from "../../src/protocol/http_api.ts";
import {
  COORDINATION_LIMITS,
  LEASE_ID_PATTERN,
  TOKEN_PATTERN,
  type WireCoordinationCheck,
  type WireElectionLeader,
} from "../../src/protocol/http_api_leases.ts";

/** Options of {@linkcode startFakeCoordinationServer}. */
export interface FakeServerOptions {
  /** Bearer token every route needs. Default: none needed. */
  readonly token?: string;
  /** Listeners (URLs) sharing the state. Default 1. */
  readonly listeners?: number;
  /** Smallest TTL granted (the real node raises to 3 election timeouts). Default 1,000. */
  readonly ttlMsMin?: number;
}

interface Lease {
  readonly ttlMs: number;
  deadline: number;
  readonly revision: number;
  readonly keys: Set<string>;
}

interface Holder {
  readonly token: string;
  readonly lease: string;
  revision: number;
  value?: string;
}

interface Lock {
  readonly permits: number;
  readonly election: boolean;
  readonly holders: Holder[];
  readonly waiters: { lease: string; revision: number; value?: string }[];
}

interface KvRow {
  readonly key: unknown;
  readonly value: WireValue;
  readonly versionstamp: string;
  lease?: string;
}

interface Observer {
  readonly name: string;
  readonly controller: ReadableStreamDefaultController<Uint8Array>;
}

class Refusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const encoder = new TextEncoder();

function stamp(revision: number, counter: number): string {
  return revision.toString(16).padStart(16, "0") +
    counter.toString(16).padStart(4, "0");
}

function object(body: unknown): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new Refusal("badRequest", "Invalid body: expected a JSON object");
  }
  return body as Record<string, unknown>;
}

function leaseId(value: unknown, field = "lease"): string {
  if (typeof value !== "string" || !LEASE_ID_PATTERN.test(value)) {
    throw new Refusal(
      "invalid",
      `Invalid '${field}': expected 16 lowercase hex digits`,
    );
  }
  return value;
}

function lockName(value: unknown): string {
  if (typeof value !== "string") {
    throw new Refusal("badRequest", "Invalid 'name': expected a string");
  }
  const bytes = encoder.encode(value).length;
  // deno-lint-ignore no-control-regex
  if (bytes < 1 || bytes > 256 || /[\x00-\x1f\x7f]/.test(value)) {
    throw new Refusal(
      "invalid",
      "Invalid 'name': must be 1 to 256 UTF-8 bytes without control characters",
    );
  }
  return value;
}

function token(value: unknown): string {
  if (typeof value !== "string" || !TOKEN_PATTERN.test(value)) {
    throw new Refusal(
      "invalid",
      "Invalid 'token': expected 20 lowercase hex digits",
    );
  }
  return value;
}

function waitMs(value: unknown): number {
  if (value === undefined) return 0;
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 ||
    value > COORDINATION_LIMITS.waitMsMax
  ) {
    throw new Refusal(
      "limitExceeded",
      `Invalid 'waitMs': must be 0 to ${COORDINATION_LIMITS.waitMsMax}`,
      { limit: "waitMs", max: COORDINATION_LIMITS.waitMsMax },
    );
  }
  return value;
}

/** A running fake server; `close()` (or `await using`) stops it. */
export class FakeCoordinationServer implements AsyncDisposable {
  /** The listeners' URLs. */
  readonly urls: string[] = [];
  /** Every request: its path (with query) and body, in order. */
  readonly requests: { url: string; path: string; body: unknown }[] = [];
  /** Observe connections: the URL and `Last-Event-ID` they came with. */
  readonly observeConnections: { url: string; lastEventId: string | null }[] =
    [];
  /**
   * How keep-alives are answered: "ok", "unavailable" (503, nothing
   * renewed), or "ignore" (200 with `leaseNotFound` for each id, as if
   * the lease expired, without deleting it).
   */
  keepAliveMode: "ok" | "unavailable" | "ignore" = "ok";

  readonly #options: FakeServerOptions;
  readonly #servers: Deno.HttpServer[] = [];
  readonly #leases = new Map<string, Lease>();
  readonly #locks = new Map<string, Lock>();
  readonly #kv = new Map<string, KvRow>();
  readonly #history = new Map<
    string,
    { leader: WireElectionLeader | null; revision: number }[]
  >();
  readonly #observers = new Set<Observer>();
  #waiting: (() => void)[] = [];
  #revision = 0;
  #closed = false;
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(options: FakeServerOptions) {
    this.#options = options;
    for (let i = 0; i < (options.listeners ?? 1); i++) {
      let url = "";
      const server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen: () => {} },
        (request) => this.#handle(request, url),
      );
      url = `http://127.0.0.1:${server.addr.port}`;
      this.urls.push(url);
      this.#servers.push(server);
    }
    this.#sweeper = setInterval(() => this.#sweep(), 20);
  }

  /** The first listener's URL. */
  get url(): string {
    return this.urls[0]!;
  }

  /** The latest revision. */
  get revision(): number {
    return this.#revision;
  }

  /** Whether lease `id` exists. */
  hasLease(id: string): boolean {
    return this.#leases.has(id);
  }

  /** Ends lease `id` as an expiry does (keys and holds go), if it exists. */
  expire(id: string): void {
    if (!this.#leases.has(id)) return;
    this.#entry();
    this.#endLease(id);
    this.#notify();
  }

  /** Closes every observe stream now (a dropped connection). */
  dropObservers(): void {
    for (const observer of this.#observers) {
      try {
        observer.controller.close();
      } catch {
        // Already closed.
      }
    }
    this.#observers.clear();
  }

  /** The paths requested so far that start with `prefix`. */
  paths(prefix = "/"): string[] {
    return this.requests.map((r) => r.path).filter((p) => p.startsWith(prefix));
  }

  /** Stops the listeners and the sweeper. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.dropObservers();
    this.#notify();
    await Promise.all(this.#servers.map((server) => server.shutdown()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- HTTP -----------------------------------------------------------------

  async #handle(request: Request, url: string): Promise<Response> {
    const parsed = new URL(request.url);
    try {
      const expected = this.#options.token;
      if (
        expected !== undefined &&
        request.headers.get("authorization") !== `Bearer ${expected}`
      ) {
        throw new Refusal("unauthorized", "Missing or wrong bearer token");
      }
      if (
        request.method === "GET" &&
        parsed.pathname === ROUTES.electionObserve
      ) {
        this.requests.push({
          url,
          path: parsed.pathname + parsed.search,
          body: null,
        });
        return this.#observe(parsed, request, url);
      }
      if (request.method !== "POST") {
        throw new Refusal(
          "notFound",
          `No route ${request.method} ${parsed.pathname}`,
        );
      }
      let body: unknown;
      try {
        body = await request.json();
      } catch {
        throw new Refusal("badRequest", "Invalid body: not valid JSON");
      }
      this.requests.push({ url, path: parsed.pathname, body });
      const reply = await this.#route(parsed.pathname, object(body));
      return Response.json(reply);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      return Response.json({
        error: {
          code: error.code,
          message: error.message,
          details: error.details,
        },
      }, { status: ERROR_STATUS[error.code] });
    }
  }

  #route(path: string, body: Record<string, unknown>): unknown {
    switch (path) {
      case ROUTES.leaseGrant:
        return this.#grantLease(body);
      case ROUTES.leaseKeepAlive:
        return this.#keepAlive(body);
      case ROUTES.leaseRevoke: {
        const id = this.#liveLease(body.id, "id");
        const keysDeleted = this.#leases.get(id)!.keys.size;
        this.#entry();
        this.#endLease(id);
        this.#notify();
        return { keysDeleted };
      }
      case ROUTES.leaseTtl: {
        const id = this.#liveLease(body.id, "id");
        const lease = this.#leases.get(id)!;
        return {
          id,
          ttlMs: lease.ttlMs,
          remainingMs: Math.max(
            0,
            Math.round(lease.deadline - performance.now()),
          ),
          ...(body.keys === true
            ? { keys: [...lease.keys].map((k) => this.#kv.get(k)!.key) }
            : {}),
        };
      }
      case ROUTES.leaseList: {
        const ids = [...this.#leases.keys()].sort().filter((id) =>
          typeof body.cursor !== "string" || id > body.cursor
        );
        const limit = typeof body.limit === "number" ? body.limit : 100;
        const page = ids.slice(0, limit);
        return {
          leases: page.map((id) => {
            const lease = this.#leases.get(id)!;
            return {
              id,
              ttlMs: lease.ttlMs,
              revision: lease.revision,
              keyCount: lease.keys.size,
            };
          }),
          cursor: ids.length > limit ? page.at(-1)! : null,
        };
      }
      case ROUTES.lockAcquire:
        return this.#acquire(body, false);
      case ROUTES.electionCampaign:
        return this.#acquire(body, true);
      case ROUTES.lockCancel:
        return this.#cancel(body);
      case ROUTES.lockRelease:
      case ROUTES.electionResign: {
        const name = lockName(body.name);
        const held = token(body.token);
        const lock = this.#holding(name, held);
        this.#entry();
        lock.holders.splice(lock.holders.findIndex((h) => h.token === held), 1);
        this.#grantNext(name);
        this.#notify();
        return path === ROUTES.lockRelease
          ? { released: true }
          : { resigned: true };
      }
      case ROUTES.lockStatus: {
        const name = lockName(body.name);
        const lock = this.#locks.get(name);
        return {
          name,
          permits: lock?.permits ?? 0,
          holders: (lock?.holders ?? []).map((h) => ({
            token: h.token,
            lease: h.lease,
            revision: h.revision,
          })),
          waiters: (lock?.waiters ?? []).map((w) => ({
            lease: w.lease,
            revision: w.revision,
          })),
        };
      }
      case ROUTES.electionProclaim: {
        const name = lockName(body.name);
        const held = token(body.token);
        if (typeof body.value !== "string") {
          throw new Refusal("badRequest", "Invalid 'value'");
        }
        const lock = this.#holding(name, held);
        const holder = lock.holders.find((h) => h.token === held)!;
        this.#entry();
        holder.value = body.value;
        holder.revision = this.#revision;
        this.#recordElection(name);
        this.#notify();
        return { leader: this.#leaderOf(name) };
      }
      case ROUTES.electionLeader:
        return { leader: this.#leaderOf(lockName(body.name)) };
      case ROUTES.kvGet: {
        const row = this.#kv.get(JSON.stringify(body.key));
        return {
          entry: {
            key: body.key,
            value: row?.value ?? null,
            versionstamp: row?.versionstamp ?? null,
          },
        };
      }
      case ROUTES.kvSet:
        return this.#atomic({ mutations: [{ type: "set", ...body }] });
      case ROUTES.kvDelete:
        return this.#atomic({ mutations: [{ type: "delete", key: body.key }] });
      case ROUTES.kvAtomic:
        return this.#atomic(body);
      default:
        throw new Refusal("notFound", `No route POST ${path}`);
    }
  }

  // --- Leases ---------------------------------------------------------------

  #grantLease(body: Record<string, unknown>): unknown {
    const ttl = body.ttlMs;
    const { leaseTtlMsMin, leaseTtlMsMax } = COORDINATION_LIMITS;
    if (
      typeof ttl !== "number" || !Number.isSafeInteger(ttl) ||
      ttl < leaseTtlMsMin || ttl > leaseTtlMsMax
    ) {
      throw new Refusal(
        "invalid",
        `Invalid 'ttlMs': must be ${leaseTtlMsMin} to ${leaseTtlMsMax}`,
      );
    }
    const id = body.id === undefined
      ? [...crypto.getRandomValues(new Uint8Array(8))].map((b) =>
        b.toString(16).padStart(2, "0")
      ).join("")
      : leaseId(body.id, "id");
    if (this.#leases.has(id)) {
      throw new Refusal("invalid", `Cannot grant lease ${id}: it exists`);
    }
    const ttlMs = Math.max(ttl, this.#options.ttlMsMin ?? leaseTtlMsMin);
    this.#entry();
    this.#leases.set(id, {
      ttlMs,
      deadline: performance.now() + ttlMs,
      revision: this.#revision,
      keys: new Set(),
    });
    return { id, ttlMs };
  }

  #keepAlive(body: Record<string, unknown>): unknown {
    if (
      !Array.isArray(body.ids) || body.ids.length < 1 || body.ids.length > 1000
    ) {
      throw new Refusal("invalid", "Invalid 'ids': 1 to 1,000 lease ids");
    }
    if (this.keepAliveMode === "unavailable") {
      throw new Refusal("unavailable", "No leader: nothing renewed");
    }
    const now = performance.now();
    return {
      leases: body.ids.map((raw) => {
        const id = leaseId(raw, "ids");
        const lease = this.#leases.get(id);
        if (lease === undefined || this.keepAliveMode === "ignore") {
          return { id, error: "leaseNotFound" };
        }
        lease.deadline = now + lease.ttlMs;
        return { id, ttlMs: lease.ttlMs, remainingMs: lease.ttlMs };
      }),
    };
  }

  #liveLease(value: unknown, field = "lease"): string {
    const id = leaseId(value, field);
    if (!this.#leases.has(id)) {
      throw new Refusal("leaseNotFound", `Lease ${id} not found`, {
        lease: id,
      });
    }
    return id;
  }

  #sweep(): void {
    const now = performance.now();
    const due = [...this.#leases].filter(([, lease]) => lease.deadline <= now);
    if (due.length === 0) return;
    this.#entry();
    for (const [id] of due) this.#endLease(id);
    this.#notify();
  }

  /** Deletes lease `id`, its keys and holds, granting next waiters (in the current entry). */
  #endLease(id: string): void {
    const lease = this.#leases.get(id)!;
    for (const key of lease.keys) this.#kv.delete(key);
    this.#leases.delete(id);
    for (const [name, lock] of this.#locks) {
      const before = lock.holders.length + lock.waiters.length;
      lock.holders.splice(
        0,
        lock.holders.length,
        ...lock.holders.filter((h) => h.lease !== id),
      );
      lock.waiters.splice(
        0,
        lock.waiters.length,
        ...lock.waiters.filter((w) => w.lease !== id),
      );
      if (lock.holders.length + lock.waiters.length !== before) {
        this.#grantNext(name);
      }
    }
  }

  // --- Locks and elections --------------------------------------------------

  async #acquire(
    body: Record<string, unknown>,
    election: boolean,
  ): Promise<unknown> {
    const name = lockName(body.name);
    const lease = this.#liveLease(body.lease);
    const wait = waitMs(body.waitMs);
    const permits = election
      ? 1
      : body.permits === undefined
      ? 1
      : body.permits;
    if (
      typeof permits !== "number" || !Number.isSafeInteger(permits) ||
      permits < 1 || permits > 10_000
    ) {
      throw new Refusal("invalid", "Invalid 'permits': must be 1 to 10,000");
    }
    const value = election ? body.value : undefined;
    if (election && typeof value !== "string") {
      throw new Refusal("badRequest", "Invalid 'value'");
    }
    let lock = this.#locks.get(name);
    if (lock !== undefined && lock.permits !== permits) {
      throw new Refusal(
        "permitsMismatch",
        `Lock ${name} has ${lock.permits} permits, not ${permits}`,
        {
          permits: lock.permits,
        },
      );
    }
    if (lock === undefined) {
      lock = { permits, election, holders: [], waiters: [] };
      this.#locks.set(name, lock);
    }
    if (
      !lock.holders.some((h) => h.lease === lease) &&
      !lock.waiters.some((w) => w.lease === lease)
    ) {
      this.#entry();
      lock.waiters.push({
        lease,
        revision: this.#revision,
        ...(election ? { value: value as string } : {}),
      });
      this.#grantNext(name);
      this.#notify();
    }
    const deadline = performance.now() + wait;
    for (;;) {
      const current = this.#locks.get(name);
      const holder = current?.holders.find((h) => h.lease === lease);
      if (holder !== undefined) {
        return election
          ? {
            elected: true,
            name,
            token: holder.token,
            lease,
            value: holder.value,
            revision: holder.revision,
          }
          : {
            granted: true,
            name,
            token: holder.token,
            lease,
            revision: holder.revision,
          };
      }
      const position = current?.waiters.findIndex((w) => w.lease === lease) ??
        -1;
      if (position === -1) {
        // The lease ended while waiting.
        throw new Refusal("leaseNotFound", `Lease ${lease} not found`, {
          lease,
        });
      }
      const left = deadline - performance.now();
      if (left <= 0 || this.#closed) {
        return election
          ? { elected: false, name, position }
          : { granted: false, name, position };
      }
      await this.#changed(left);
    }
  }

  #cancel(body: Record<string, unknown>): unknown {
    const name = lockName(body.name);
    const lease = leaseId(body.lease);
    const lock = this.#locks.get(name);
    if (lock === undefined) return { removed: null };
    const waiter = lock.waiters.findIndex((w) => w.lease === lease);
    const holder = lock.holders.findIndex((h) => h.lease === lease);
    if (waiter === -1 && holder === -1) return { removed: null };
    this.#entry();
    if (waiter !== -1) lock.waiters.splice(waiter, 1);
    if (holder !== -1) lock.holders.splice(holder, 1);
    this.#grantNext(name);
    this.#notify();
    return { removed: holder !== -1 ? "grant" : "waiter" };
  }

  #holding(name: string, held: string): Lock {
    const lock = this.#locks.get(name);
    if (lock === undefined || !lock.holders.some((h) => h.token === held)) {
      throw new Refusal("notHolder", `Token ${held} does not hold ${name}`);
    }
    return lock;
  }

  /** Grants waiters with live leases while permits allow (in the current entry). */
  #grantNext(name: string): void {
    const lock = this.#locks.get(name)!;
    let counter = 0;
    while (lock.holders.length < lock.permits && lock.waiters.length > 0) {
      const waiter = lock.waiters.shift()!;
      if (!this.#leases.has(waiter.lease)) continue;
      lock.holders.push({
        token: stamp(this.#revision, counter++),
        lease: waiter.lease,
        revision: this.#revision,
        ...(waiter.value === undefined ? {} : { value: waiter.value }),
      });
    }
    const recorded = this.#history.get(name)?.at(-1)?.leader ?? null;
    if (
      lock.election &&
      JSON.stringify(this.#leaderOf(name)) !== JSON.stringify(recorded)
    ) {
      this.#recordElection(name);
    }
    if (lock.holders.length === 0 && lock.waiters.length === 0) {
      this.#locks.delete(name);
    }
  }

  #leaderOf(name: string): WireElectionLeader | null {
    const holder = this.#locks.get(name)?.holders[0];
    if (holder === undefined || holder.value === undefined) return null;
    return {
      value: holder.value,
      token: holder.token,
      lease: holder.lease,
      revision: holder.revision,
    };
  }

  #recordElection(name: string): void {
    const event = { leader: this.#leaderOf(name), revision: this.#revision };
    const history = this.#history.get(name) ?? [];
    history.push(event);
    this.#history.set(name, history);
    for (const observer of this.#observers) {
      if (observer.name === name) this.#send(observer, event);
    }
  }

  #send(
    observer: Observer,
    event: { leader: WireElectionLeader | null; revision: number },
  ): void {
    try {
      observer.controller.enqueue(
        encoder.encode(
          `id: ${event.revision}\ndata: ${JSON.stringify(event)}\n\n`,
        ),
      );
    } catch {
      this.#observers.delete(observer);
    }
  }

  #observe(parsed: URL, request: Request, url: string): Response {
    const name = lockName(parsed.searchParams.get("name") ?? "");
    const lastEventId = request.headers.get("last-event-id");
    this.observeConnections.push({ url, lastEventId });
    let observer: Observer;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        observer = { name, controller };
        this.#observers.add(observer);
        const history = this.#history.get(name) ?? [];
        const after = lastEventId === null ? null : Number(lastEventId);
        const backlog = after === null
          ? [history.at(-1) ?? { leader: null, revision: this.#revision }]
          : history.filter((event) => event.revision > after);
        for (const event of backlog) this.#send(observer, event);
        controller.enqueue(encoder.encode(": connected\n\n"));
      },
      cancel: () => {
        this.#observers.delete(observer);
      },
    });
    return new Response(stream, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
      },
    });
  }

  // --- KV -------------------------------------------------------------------

  #atomic(body: Record<string, unknown>): unknown {
    const checks = (body.checks ?? []) as (WireCheck | WireCoordinationCheck)[];
    const mutations = (body.mutations ?? []) as WireMutation[];
    const failed: number[] = [];
    checks.forEach((check, index) => {
      if ("fence" in check) {
        const lock = this.#locks.get(check.fence.name);
        if (!lock?.holders.some((h) => h.token === check.fence.token)) {
          failed.push(index);
        }
      } else if ("lease" in check) {
        if (!this.#leases.has(check.lease)) failed.push(index);
      } else {
        const row = this.#kv.get(JSON.stringify(check.key));
        if ((row?.versionstamp ?? null) !== check.versionstamp) {
          failed.push(index);
        }
      }
    });
    if (failed.length > 0) {
      throw new Refusal("checkFailed", "Check failed: nothing changed", {
        failedChecks: failed,
      });
    }
    for (const mutation of mutations) {
      if (mutation.type !== "set" && mutation.type !== "delete") {
        throw new Refusal(
          "unsupported",
          `The fake server has no '${mutation.type}'`,
        );
      }
      if (mutation.type === "set" && mutation.lease !== undefined) {
        this.#liveLease(mutation.lease);
      }
    }
    this.#entry();
    const versionstamp = stamp(this.#revision, 0);
    for (const mutation of mutations) {
      const id = JSON.stringify(mutation.key);
      const previous = this.#kv.get(id);
      if (previous?.lease !== undefined) {
        this.#leases.get(previous.lease)?.keys.delete(id);
      }
      if (mutation.type === "delete") {
        this.#kv.delete(id);
        continue;
      }
      if (mutation.type !== "set") continue;
      this.#kv.set(id, {
        key: mutation.key,
        value: mutation.value,
        versionstamp,
        ...(mutation.lease === undefined ? {} : { lease: mutation.lease }),
      });
      if (mutation.lease !== undefined) {
        this.#leases.get(mutation.lease)!.keys.add(id);
      }
    }
    this.#notify();
    return { ok: true, versionstamp };
  }

  // --- Entries and waiting ----------------------------------------------------

  #entry(): void {
    this.#revision++;
  }

  #notify(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const wake of waiting) wake();
  }

  /** Resolves at the next change or after `ms`. */
  #changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiting = this.#waiting.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#waiting.push(done);
    });
  }
}

/** Starts a fake server on 127.0.0.1; close it when done. */
export function startFakeCoordinationServer(
  options: FakeServerOptions = {},
): FakeCoordinationServer {
  return new FakeCoordinationServer(options);
}
