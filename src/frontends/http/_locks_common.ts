/**
 * What the `/v1/locks/...` and `/v1/elections/...` routes share: the node's
 * locks port, field parsers, the mapping of the locks service's refusals to
 * API errors, and the bounded wait of acquire and campaign. Private to
 * `src/frontends/http/`.
 *
 * @module
 */
import type { Context } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import {
  LockError,
  type LocksPort,
  validateLeaseId,
  validateLockName,
  validatePermits,
  validateToken,
  validateValue,
} from "../../services/locks/api.ts";
import { COORDINATION_LIMITS } from "../../protocol/http_api_leases.ts";
import { WireFormatError } from "../../protocol/http_api_codec.ts";
import { HttpApiError } from "./_errors.ts";
import { optionalInteger } from "./_parse.ts";
import { type RouteContext, streamLease } from "./_route_context.ts";

/**
 * The node's locks port (a node that serves locks adds `locks` to its
 * `NodeApi`).
 *
 * @throws {HttpApiError} `unsupported` when the node has none.
 */
export function locksOf(node: NodeApi): LocksPort {
  const locks = (node as NodeApi & { readonly locks?: LocksPort }).locks;
  if (locks === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use locks or elections: this node serves none",
    );
  }
  return locks;
}

/** Runs `work`, answering the locks service's refusals as API errors. */
export async function lockCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof LockError)) throw error;
    throw new HttpApiError(error.code, error.message, {}, { cause: error });
  }
}

function required(value: unknown, field: string): unknown {
  if (value === undefined) {
    throw new WireFormatError("badRequest", `Invalid body: missing '${field}'`);
  }
  return value;
}

function checked<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (!(error instanceof LockError)) throw error;
    throw new HttpApiError(error.code, error.message, {}, { cause: error });
  }
}

/** A required name field (1–256 UTF-8 bytes, no control characters). */
export function nameField(value: unknown): string {
  required(value, "name");
  return checked(() => validateLockName(value));
}

/** A required lease field (16 lowercase hex digits). */
export function leaseField(value: unknown): string {
  required(value, "lease");
  return checked(() => validateLeaseId(value));
}

/** An optional permits field (1–10,000; default 1, a lock). */
export function permitsField(value: unknown): number {
  return value === undefined ? 1 : checked(() => validatePermits(value));
}

/** A required token field (20 lowercase hex digits). */
export function tokenField(value: unknown): string {
  required(value, "token");
  return checked(() => validateToken(value));
}

/** A required election value (≤ 64 KiB of UTF-8). */
export function valueField(value: unknown): string {
  required(value, "value");
  return checked(() => validateValue(value));
}

/** An optional `waitMs` (0 to 60,000; default 0). */
export function waitMsField(value: unknown): number {
  return optionalInteger(value, "waitMs", 0, COORDINATION_LIMITS.waitMsMax) ??
    0;
}

/**
 * Runs a wait (acquire, campaign) of `waitMs`, holding a slot of the node's
 * long-lived stream budget while it may wait.
 */
export async function waiting<T>(
  ctx: RouteContext,
  c: Context,
  waitMs: number,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const lease = waitMs > 0 ? streamLease(ctx.streams, c) : null;
  try {
    return await lockCall(() => work(c.req.raw.signal));
  } finally {
    lease?.release();
  }
}
