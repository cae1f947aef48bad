/**
 * `client.locks`: locks and semaphores with fencing tokens. A grant's token
 * is the granting entry's versionstamp, strictly increasing per name; pass
 * it to `kv.atomic().checkFence(name, token)` so a write made after the
 * lock moved fails, whatever the holder believes.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import {
  COORDINATION_LIMITS,
  type LockAcquireResponse,
  type LockStatusResponse,
  TOKEN_PATTERN,
} from "../protocol/http_api_leases.ts";
import type { HttpTransport } from "./_transport.ts";
import { checkTimeout, waitForGrant } from "./_grant_wait.ts";
import type { OwnLease } from "./_own_lease.ts";
import { checkLeaseId } from "./leases.ts";
import { NotHolderError } from "./errors.ts";
import type {
  LockAcquireOptions,
  LockGrant,
  LockStatus,
  OpenLease,
} from "./types.ts";

const encoder = new TextEncoder();
/** A signal that never aborts: the grant of a lease this client does not keep. */
const NEVER = new AbortController().signal;

/**
 * Checks a lock or election name: 1 to 256 UTF-8 bytes, no control characters.
 *
 * @throws {TypeError} When it holds a control character or is not a string.
 * @throws {RangeError} When it is empty or longer than 256 bytes.
 */
export function checkName(name: string): void {
  if (typeof name !== "string") {
    throw new TypeError(`Invalid name: expected a string: received ${name}`);
  }
  const bytes = encoder.encode(name).length;
  const max = COORDINATION_LIMITS.nameBytesMax;
  if (bytes < 1 || bytes > max) {
    throw new RangeError(
      `Invalid name: must be 1 to ${max} UTF-8 bytes: received ${bytes} bytes`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) {
    throw new TypeError(
      `Invalid name '${
        JSON.stringify(name)
      }': control characters are not allowed`,
    );
  }
}

/**
 * Checks a fencing token: 20 lowercase hex digits.
 *
 * @throws {TypeError} When it is not.
 */
export function checkToken(token: string): void {
  if (typeof token !== "string" || !TOKEN_PATTERN.test(token)) {
    throw new TypeError(
      `Invalid token: expected 20 lowercase hex digits: received '${token}'`,
    );
  }
}

/** The holding lease of an acquire or campaign: given, or the client's own. */
export async function holdingLease(
  given: string | OpenLease | undefined,
  own: OwnLease,
): Promise<{ id: string; signal: AbortSignal | undefined }> {
  if (typeof given === "string") {
    checkLeaseId(given);
    return { id: given, signal: undefined };
  }
  const lease = given ?? await own.get();
  return { id: lease.id, signal: lease.signal };
}

/**
 * Locks and semaphores: FIFO per name, granted only to live leases, each
 * grant carrying a fencing token.
 *
 * @example
 * ```ts ignore
 * await using lock = await client.locks.acquire("reports", { timeoutMs: 5_000 });
 * const result = await client.kv.atomic()
 *   .checkFence(lock.name, lock.token)
 *   .set(["reports", "latest"], "…")
 *   .commit();
 * if (!result.ok) console.log("the lock moved: nothing written");
 * ```
 */
export class AspenLocks {
  readonly #transport: HttpTransport;
  readonly #own: OwnLease;

  /** Used by `connect`. */
  constructor(transport: HttpTransport, own: OwnLease) {
    this.#transport = transport;
    this.#own = own;
  }

  /**
   * Waits for a grant of `name` (FIFO), holding it with `lease` or the
   * client's own kept-alive lease. Acquiring again with a lease that holds
   * answers the same grant (so grants of one client's own lease on one
   * name are the same grant). On a timeout or abort the waiter leaves the
   * queue; a grant won in that race is returned instead. An abort is seen
   * once the poll in flight answers (at most half the request deadline):
   * cancelling before it could let that poll queue the waiter again.
   *
   * @throws {AcquireTimeoutError} After `timeoutMs` without a grant.
   * @throws {LeaseNotFoundError} When the lease does not exist.
   * @throws {LeaseLostError} When the client's kept-alive lease was lost while waiting.
   * @throws {PermitsMismatchError} When `name` has another number of permits.
   * @throws {RangeError} For a name, permits or timeout out of range.
   */
  async acquire(
    name: string,
    options: LockAcquireOptions = {},
  ): Promise<LockGrant> {
    checkName(name);
    const permits = options.permits;
    if (
      permits !== undefined &&
      (!Number.isSafeInteger(permits) || permits < 1 ||
        permits > COORDINATION_LIMITS.permitsMax)
    ) {
      throw new RangeError(
        `Cannot acquire '${name}' as 'permits' must be 1 to ${COORDINATION_LIMITS.permitsMax}: current value is ${permits}`,
      );
    }
    checkTimeout(options.timeoutMs);
    const lease = await holdingLease(options.lease, this.#own);
    const reply = await waitForGrant({
      transport: this.#transport,
      name,
      lease: lease.id,
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      leaseSignal: lease.signal,
      attempt: async (waitMs) => {
        const answer = await this.#transport.request(
          "POST",
          ROUTES.lockAcquire,
          {
            name,
            lease: lease.id,
            ...(permits === undefined ? {} : { permits }),
            waitMs,
          },
          // Acquiring again with the same lease answers the same grant.
          "idempotent",
        ) as LockAcquireResponse;
        return answer.granted ? answer : null;
      },
    });
    return this.#grant(reply, lease.signal ?? NEVER);
  }

  #grant(
    reply: Extract<LockAcquireResponse, { granted: true }>,
    signal: AbortSignal,
  ): LockGrant {
    const release = () => this.release(reply.name, reply.token);
    return {
      name: reply.name,
      token: reply.token,
      lease: reply.lease,
      revision: reply.revision,
      signal,
      release,
      async [Symbol.asyncDispose]() {
        try {
          await release();
        } catch (error) {
          if (!(error instanceof NotHolderError)) throw error;
        }
      },
    };
  }

  /**
   * Releases the grant `token` of `name`; the next waiters whose lease is
   * live are granted in the same entry.
   *
   * @throws {NotHolderError} When `token` does not hold `name`.
   */
  async release(name: string, token: string): Promise<void> {
    checkName(name);
    checkToken(token);
    await this.#transport.request("POST", ROUTES.lockRelease, {
      name,
      token,
    }, "write");
  }

  /** The holders and waiters of `name` (a name never acquired: permits 0). */
  async status(name: string): Promise<LockStatus> {
    checkName(name);
    const reply = await this.#transport.request("POST", ROUTES.lockStatus, {
      name,
    }, "idempotent") as LockStatusResponse;
    return {
      name: reply.name,
      permits: reply.permits,
      holders: reply.holders.map((h) => ({ ...h })),
      waiters: reply.waiters.map((w) => ({ ...w })),
    };
  }
}
