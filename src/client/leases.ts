/**
 * `client.leases`: grant, keep alive, revoke, inspect and list leases, and
 * {@linkcode AspenLeases.open}, a lease this client keeps alive whose
 * `signal` tells the holder when to stop.
 *
 * The holder's clock: a keep-alive acknowledged by the leader set the
 * lease's deadline to the leader's now + TTL, no earlier than when the
 * client sent it. So the client counts from the *send* time of its last
 * acknowledged keep-alive and gives up at sentAt + TTL − 10% (a margin for
 * clock drift between the two monotonic clocks): by then it must assume the
 * cluster may expire the lease.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  COORDINATION_LIMITS,
  LEASE_ID_PATTERN,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseListResponse,
  type LeaseRevokeResponse,
  type LeaseTtlResponse,
} from "../protocol/http_api_leases.ts";
import { keyFromWire } from "../protocol/http_api_codec.ts";
import type { HttpTransport } from "./_transport.ts";
import { backgroundTimeout } from "./_timers.ts";
import { LeaseLostError, LeaseNotFoundError } from "./errors.ts";
import type {
  LeaseGrant,
  LeaseGrantOptions,
  LeaseKeepAliveResult,
  LeaseListOptions,
  LeaseListPage,
  LeaseOpenOptions,
  LeaseTimeToLive,
  LeaseTimeToLiveOptions,
  OpenLease,
} from "./types.ts";

/** Share of the TTL between keep-alives of an open lease (TTL/3). */
const KEEP_ALIVE_SHARE = 1 / 3;
/** Share of the TTL the holder gives up before the cluster may expire (10%). */
const HOLDER_MARGIN_SHARE = 0.1;
/** Pause before retrying a failed keep-alive, ms (at most TTL/10). */
const RETRY_MS_MAX = 500;

/**
 * Checks a lease id's shape.
 *
 * @throws {TypeError} When `id` is not 16 lowercase hex digits.
 */
export function checkLeaseId(id: string, what = "lease id"): void {
  if (typeof id !== "string" || !LEASE_ID_PATTERN.test(id)) {
    throw new TypeError(
      `Invalid ${what}: expected 16 lowercase hex digits: received '${id}'`,
    );
  }
}

function checkTtl(ttlMs: number): void {
  const { leaseTtlMsMin, leaseTtlMsMax } = COORDINATION_LIMITS;
  if (
    !Number.isSafeInteger(ttlMs) || ttlMs < leaseTtlMsMin ||
    ttlMs > leaseTtlMsMax
  ) {
    throw new RangeError(
      `Cannot grant lease as 'ttlMs' must be ${leaseTtlMsMin} to ${leaseTtlMsMax}: current value is ${ttlMs}`,
    );
  }
}

/**
 * Leases: a TTL the cluster's leader keeps, renewed by keep-alives; keys,
 * locks and elections attached to a lease end with it, in one entry.
 *
 * @example
 * ```ts ignore
 * await using lease = await client.leases.open({ ttlMs: 5_000 });
 * await client.kv.set(["workers", "w1"], "alive", { lease });
 * lease.signal.addEventListener("abort", () => console.log("lease lost"));
 * ```
 */
export class AspenLeases {
  readonly #transport: HttpTransport;

  /** Used by `connect`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /**
   * Grants a lease of `ttlMs` (raised by the cluster to at least 3 election
   * timeouts; the granted TTL is answered).
   *
   * @throws {RangeError} When `ttlMs` is not 1,000 to 604,800,000.
   * @throws {TypeError} When `options.id` is not 16 lowercase hex digits.
   * @throws {LimitExceededError} When the cluster holds 100,000 leases.
   */
  async grant(
    ttlMs: number,
    options: LeaseGrantOptions = {},
  ): Promise<LeaseGrant> {
    checkTtl(ttlMs);
    if (options.id !== undefined) checkLeaseId(options.id);
    const reply = await this.#transport.request("POST", ROUTES.leaseGrant, {
      ttlMs,
      ...(options.id === undefined ? {} : { id: options.id }),
    }, "write") as LeaseGrantResponse;
    return { id: reply.id, ttlMs: reply.ttlMs };
  }

  /**
   * Renews leases: the leader sets each deadline to its now + TTL. Answers
   * per id, in order; an unknown id answers `{ id, error: "leaseNotFound" }`.
   *
   * @throws {RangeError} For no ids or more than 1,000.
   * @throws {TypeError} When an id is not 16 lowercase hex digits.
   */
  async keepAlive(ids: readonly string[]): Promise<LeaseKeepAliveResult[]> {
    const max = COORDINATION_LIMITS.keepAliveIdsMax;
    if (ids.length < 1 || ids.length > max) {
      throw new RangeError(
        `Cannot keep leases alive as 'ids' must hold 1 to ${max} ids: current count is ${ids.length}`,
      );
    }
    for (const id of ids) checkLeaseId(id);
    // Not a log entry: renewing twice is harmless, so it retries anywhere.
    const reply = await this.#transport.request(
      "POST",
      ROUTES.leaseKeepAlive,
      { ids },
      "idempotent",
    ) as LeaseKeepAliveResponse;
    return reply.leases.map((lease) => ({ ...lease }));
  }

  /**
   * Revokes a lease: it, its keys and its holds go in one entry.
   *
   * @returns How many attached keys were deleted.
   * @throws {LeaseNotFoundError} When no lease has this id.
   */
  async revoke(id: string): Promise<{ keysDeleted: number }> {
    checkLeaseId(id);
    const reply = await this.#transport.request("POST", ROUTES.leaseRevoke, {
      id,
    }, "write") as LeaseRevokeResponse;
    return { keysDeleted: reply.keysDeleted };
  }

  /**
   * A lease's TTL and the time left in the leader's view, and its keys
   * when `keys` is set.
   *
   * @throws {LeaseNotFoundError} When no lease has this id.
   */
  async timeToLive(
    id: string,
    options: LeaseTimeToLiveOptions = {},
  ): Promise<LeaseTimeToLive> {
    checkLeaseId(id);
    const reply = await this.#transport.request("POST", ROUTES.leaseTtl, {
      id,
      ...(options.keys ? { keys: true } : {}),
    }, "idempotent") as LeaseTtlResponse;
    return {
      id: reply.id,
      ttlMs: reply.ttlMs,
      remainingMs: reply.remainingMs,
      ...(reply.keys === undefined
        ? {}
        : { keys: reply.keys.map((key) => keyFromWire(key)) }),
    };
  }

  /**
   * One page of leases in id order.
   *
   * @throws {RangeError} When `limit` is not 1 to 1,000.
   */
  async list(options: LeaseListOptions = {}): Promise<LeaseListPage> {
    const max = COORDINATION_LIMITS.leaseListLimitMax;
    if (
      options.limit !== undefined &&
      (!Number.isSafeInteger(options.limit) || options.limit < 1 ||
        options.limit > max)
    ) {
      throw new RangeError(
        `Cannot list leases as 'limit' must be 1 to ${max}: current value is ${options.limit}`,
      );
    }
    const reply = await this.#transport.request("POST", ROUTES.leaseList, {
      ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
      ...(options.limit === undefined ? {} : { limit: options.limit }),
    }, "idempotent") as LeaseListResponse;
    return {
      leases: reply.leases.map((l) => ({ ...l })),
      cursor: reply.cursor,
    };
  }

  /**
   * Grants a lease and keeps it alive every TTL/3 until `close()` (which
   * revokes it). Its `signal` aborts, with a `LeaseLostError`, when a
   * keep-alive answers `leaseNotFound` or when none was acknowledged by
   * the send time of the last acknowledged one + TTL − 10%; then the
   * keep-alives stop. Its timers do not keep the process alive.
   *
   * @throws {RangeError} When `ttlMs` is out of range.
   */
  async open(options: LeaseOpenOptions): Promise<OpenLease> {
    const sentAt = performance.now();
    const grant = await this.grant(options.ttlMs, { id: options.id });
    return new KeptLease(this, this.#transport.closed, grant, sentAt, true);
  }

  /**
   * Keeps an existing lease alive as {@linkcode AspenLeases.open} does,
   * starting with a keep-alive now. Its `close()` only stops the
   * keep-alives: the lease was granted elsewhere, so it is not revoked.
   *
   * @throws {LeaseNotFoundError} When no lease has this id.
   */
  async keep(id: string): Promise<OpenLease> {
    const sentAt = performance.now();
    const [result] = await this.keepAlive([id]);
    if (result === undefined || "error" in result) {
      throw new LeaseNotFoundError("leaseNotFound", `lease ${id} not found`, {
        status: 404,
      });
    }
    return new KeptLease(
      this,
      this.#transport.closed,
      { id, ttlMs: result.ttlMs },
      sentAt,
      false,
    );
  }
}

/** An open lease: keep-alives on background timers, the holder's deadline. */
class KeptLease implements OpenLease {
  readonly id: string;
  readonly ttlMs: number;
  readonly #leases: AspenLeases;
  readonly #controller = new AbortController();
  readonly #clientClosed: AbortSignal;
  #keepAliveTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #revokeOnClose: boolean;
  readonly #onClientClose = () =>
    this.#stop(new DOMException("The client was closed", "AbortError"));

  constructor(
    leases: AspenLeases,
    clientClosed: AbortSignal,
    grant: LeaseGrant,
    sentAt: number,
    revokeOnClose: boolean,
  ) {
    this.id = grant.id;
    this.#revokeOnClose = revokeOnClose;
    this.ttlMs = grant.ttlMs;
    this.#leases = leases;
    this.#clientClosed = clientClosed;
    clientClosed.addEventListener("abort", this.#onClientClose, { once: true });
    this.#acknowledged(sentAt);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** A keep-alive (or the grant) sent at `sentAt` was acknowledged. */
  #acknowledged(sentAt: number): void {
    if (this.signal.aborted) return;
    const now = performance.now();
    const holdUntil = sentAt + this.ttlMs * (1 - HOLDER_MARGIN_SHARE);
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = backgroundTimeout(() => {
      this.#stop(
        new LeaseLostError(
          this.id,
          `Lease ${this.id} may be lost: no keep-alive acknowledged within ${
            Math.round(this.ttlMs * (1 - HOLDER_MARGIN_SHARE))
          } ms of the last one sent`,
        ),
      );
    }, holdUntil - now);
    this.#schedule(sentAt + this.ttlMs * KEEP_ALIVE_SHARE - now);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#keepAliveTimer);
    this.#keepAliveTimer = backgroundTimeout(() => void this.#tick(), ms);
  }

  async #tick(): Promise<void> {
    if (this.signal.aborted) return;
    const sentAt = performance.now();
    let result: LeaseKeepAliveResult | undefined;
    try {
      [result] = await this.#leases.keepAlive([this.id]);
    } catch (error) {
      if (this.signal.aborted) return;
      if (error instanceof LeaseNotFoundError) {
        this.#stop(
          new LeaseLostError(this.id, `Lease ${this.id} not found`, {
            cause: error,
          }),
        );
        return;
      }
      // Unavailable or timed out: retry until the holder's deadline.
      this.#schedule(Math.min(RETRY_MS_MAX, this.ttlMs / 10));
      return;
    }
    if (this.signal.aborted) return;
    if (result === undefined || "error" in result) {
      this.#stop(
        new LeaseLostError(
          this.id,
          `Lease ${this.id} not found: it expired or was revoked`,
        ),
      );
      return;
    }
    this.#acknowledged(sentAt);
  }

  #stop(reason: unknown): void {
    clearTimeout(this.#keepAliveTimer);
    clearTimeout(this.#deadlineTimer);
    this.#clientClosed.removeEventListener("abort", this.#onClientClose);
    if (!this.signal.aborted) this.#controller.abort(reason);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const lost = this.signal.aborted;
    this.#stop(new DOMException(`Lease ${this.id} was closed`, "AbortError"));
    if (this.#clientClosed.aborted || !this.#revokeOnClose) return;
    try {
      await this.#leases.revoke(this.id);
    } catch (error) {
      // Already gone is what close wants; a lease already given up on
      // expires by itself if the revoke cannot be delivered.
      if (!(error instanceof LeaseNotFoundError) && !lost) throw error;
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
