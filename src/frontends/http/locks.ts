/**
 * The `/v1/locks/...` handlers (locks and semaphores): acquire (waiting up
 * to `waitMs` for the grant; a waiter not granted stays queued), cancel,
 * release and status. Every change is a proposal, so any node takes them
 * (a follower forwards to the leader). {@linkcode lockRoutes} registers them.
 *
 * @module
 */
import type { Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import { ROUTES } from "../../protocol/http_api.ts";
import type {
  LockAcquireResponse,
  LockCancelResponse,
  LockReleaseResponse,
  LockStatusResponse,
} from "../../protocol/http_api_leases.ts";
import type { LockReadConsistency } from "../../services/locks/api.ts";
import { fields } from "./_parse.ts";
import { reply } from "./_body.ts";
import { consistencyOf, type RouteContext } from "./_route_context.ts";
import {
  leaseField,
  lockCall,
  locksOf,
  nameField,
  permitsField,
  tokenField,
  waiting,
  waitMsField,
} from "./_locks_common.ts";

/** A parsed `POST /v1/locks/acquire` body. */
export interface ParsedAcquire {
  /** The lock or semaphore. */
  readonly name: string;
  /** The holding lease. */
  readonly lease: string;
  /** Permits of the semaphore (1: a lock). */
  readonly permits: number;
  /** How long to wait for the grant, ms (0: answer at once). */
  readonly waitMs: number;
}

/** `LockAcquireRequest` → its fields, validated (permits default 1). */
export function parseAcquire(body: unknown): ParsedAcquire {
  const f = fields(body, ["name", "lease", "permits", "waitMs"]);
  return {
    name: nameField(f.name),
    lease: leaseField(f.lease),
    permits: permitsField(f.permits),
    waitMs: waitMsField(f.waitMs),
  };
}

/** `POST /v1/locks/cancel` */
export async function cancel(
  node: NodeApi,
  body: unknown,
): Promise<LockCancelResponse> {
  const f = fields(body, ["name", "lease"]);
  const name = nameField(f.name);
  const lease = leaseField(f.lease);
  return await lockCall(() => locksOf(node).cancel(name, lease));
}

/** `POST /v1/locks/release` */
export async function release(
  node: NodeApi,
  body: unknown,
): Promise<LockReleaseResponse> {
  const f = fields(body, ["name", "token"]);
  const name = nameField(f.name);
  const token = tokenField(f.token);
  return await lockCall(() => locksOf(node).release(name, token));
}

/** `POST /v1/locks/status` */
export async function status(
  node: NodeApi,
  body: unknown,
  consistency: LockReadConsistency,
): Promise<LockStatusResponse> {
  const name = nameField(fields(body, ["name"]).name);
  return await lockCall(() => locksOf(node).status(name, consistency));
}

/** Registers the `/v1/locks/...` routes on `app`. */
export function lockRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  app.post(ROUTES.lockAcquire, async (c) => {
    const request = parseAcquire(await body(c));
    const locks = locksOf(node);
    const answer: LockAcquireResponse = await waiting(
      ctx,
      c,
      request.waitMs,
      (signal) => locks.acquire(request, signal),
    );
    return reply(c, answer);
  });
  app.post(
    ROUTES.lockCancel,
    async (c) => reply(c, await cancel(node, await body(c))),
  );
  app.post(
    ROUTES.lockRelease,
    async (c) => reply(c, await release(node, await body(c))),
  );
  app.post(
    ROUTES.lockStatus,
    async (c) => reply(c, await status(node, await body(c), consistencyOf(c))),
  );
}
