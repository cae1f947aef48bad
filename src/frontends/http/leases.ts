/**
 * The `/v1/leases/...` handlers: grant, keepalive, revoke, ttl and list.
 * Grant and revoke are proposals, so any node takes them. Keep-alive and
 * ttl are answered by the leader's keeper: a follower forwards them over
 * HTTP to the leader it knows (its status' `leaderHttpUrl`), with the
 * caller's bearer token and the header {@linkcode FORWARDED_HEADER}; a
 * request that carries that header is never forwarded again (it is
 * answered `notLeader`). {@linkcode leaseRoutes} registers them.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { decodeKey } from "../../model/key_codec.ts";
import type { NodeApi } from "../../node/node_api.ts";
import { ROUTES } from "../../protocol/http_api.ts";
import { keyToWire } from "../../protocol/http_api_codec.ts";
import {
  COORDINATION_LIMITS,
  type LeaseGrantResponse,
  type LeaseKeepAliveResponse,
  type LeaseListResponse,
  type LeaseRevokeResponse,
  type LeaseTtlResponse,
} from "../../protocol/http_api_leases.ts";
import { KvNotLeaderError } from "../../services/kv/api.ts";
import {
  LeaseError,
  type LeasesPort,
  validateLeaseId,
} from "../../services/leases/api.ts";
import { WireFormatError } from "../../protocol/http_api_codec.ts";
import { HttpApiError } from "./_errors.ts";
import { fields, optionalInteger } from "./_parse.ts";
import { reply } from "./_body.ts";
import type { RouteContext } from "./_route_context.ts";

/** Marks a keep-alive or ttl forwarded by a follower: never forwarded twice. */
export const FORWARDED_HEADER = "x-aspen-forwarded";

/**
 * The node's leases port (a node that serves leases adds `leases` to its
 * `NodeApi`).
 *
 * @throws {HttpApiError} `unsupported` when the node has none.
 */
export function leasesOf(node: NodeApi): LeasesPort {
  const leases = (node as NodeApi & { readonly leases?: LeasesPort }).leases;
  if (leases === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use leases: this node serves none",
    );
  }
  return leases;
}

/** Runs `work`, answering the leases service's refusals as API errors. */
async function leaseCall<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    // `leaseExists` has no code of its own in the protocol yet: a 409 would
    // be right; until then it is answered as `invalid` (400), nothing changed.
    const code = error.code === "leaseExists" ? "invalid" : error.code;
    throw new HttpApiError(code, error.message, { reason: error.code }, {
      cause: error,
    });
  }
}

function leaseIdField(value: unknown, field: string): string {
  if (value === undefined) {
    throw new WireFormatError("badRequest", `Invalid body: missing '${field}'`);
  }
  try {
    return validateLeaseId(value);
  } catch (error) {
    throw new HttpApiError(
      "invalid",
      `Invalid '${field}': expected 16 lowercase hex digits`,
      {},
      { cause: error },
    );
  }
}

function optionalBoolean(value: unknown, field: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") {
    throw new WireFormatError(
      "badRequest",
      `Invalid '${field}': expected a boolean`,
    );
  }
  return value;
}

/** `LeaseGrantRequest` → its fields, validated. */
export function parseGrant(body: unknown): { ttlMs: number; id?: string } {
  const f = fields(body, ["ttlMs", "id"]);
  if (f.ttlMs === undefined) {
    throw new WireFormatError("badRequest", "Invalid body: missing 'ttlMs'");
  }
  const ttlMs = optionalInteger(
    f.ttlMs,
    "ttlMs",
    COORDINATION_LIMITS.leaseTtlMsMin,
    COORDINATION_LIMITS.leaseTtlMsMax,
  )!;
  return f.id === undefined
    ? { ttlMs }
    : { ttlMs, id: leaseIdField(f.id, "id") };
}

/** `LeaseKeepAliveRequest` → its ids (1 to 1,000), validated. */
export function parseKeepAlive(body: unknown): string[] {
  const f = fields(body, ["ids"]);
  if (
    !Array.isArray(f.ids) || f.ids.length < 1 ||
    f.ids.length > COORDINATION_LIMITS.keepAliveIdsMax
  ) {
    throw new WireFormatError(
      "badRequest",
      `Invalid 'ids': expected 1 to ${COORDINATION_LIMITS.keepAliveIdsMax} lease ids`,
    );
  }
  return f.ids.map((id) => leaseIdField(id, "ids"));
}

/** `LeaseListRequest` → cursor and limit (default 100). */
export function parseLeaseList(
  body: unknown,
): { cursor: string | null; limit: number } {
  const f = fields(body ?? {}, ["cursor", "limit"]);
  return {
    cursor: f.cursor === undefined || f.cursor === null
      ? null
      : leaseIdField(f.cursor, "cursor"),
    limit: optionalInteger(
      f.limit,
      "limit",
      1,
      COORDINATION_LIMITS.leaseListLimitMax,
    ) ?? 100,
  };
}

/**
 * Answers on the leader, or forwards to it from a follower (once): the
 * leader's response is returned as it is.
 */
async function onLeader(
  ctx: RouteContext,
  c: Context,
  route: string,
  body: unknown,
  work: () => Promise<unknown>,
): Promise<Response> {
  try {
    return reply(c, await leaseCall(work));
  } catch (error) {
    if (!(error instanceof KvNotLeaderError)) throw error;
    const leaderUrl = ctx.node.status().leaderHttpUrl;
    if (c.req.header(FORWARDED_HEADER) !== undefined || leaderUrl === null) {
      throw new HttpApiError("notLeader", error.message, { leaderUrl }, {
        cause: error,
      });
    }
    const headers: Record<string, string> = {
      "content-type": "application/json",
      [FORWARDED_HEADER]: "1",
    };
    const authorization = c.req.header("authorization");
    if (authorization !== undefined) headers.authorization = authorization;
    const response = await fetch(new URL(route, leaderUrl), {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.any([c.req.raw.signal, AbortSignal.timeout(10_000)]),
    });
    const answer = await response.json();
    if (!response.ok) {
      return c.json(answer, response.status as 400);
    }
    return reply(c, answer);
  }
}

/** Registers the `/v1/leases/...` routes on `app`. */
export function leaseRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  app.post(ROUTES.leaseGrant, async (c) => {
    const request = parseGrant(await body(c));
    const answer: LeaseGrantResponse = await leaseCall(() =>
      leasesOf(node).grant(request.ttlMs, request.id)
    );
    return reply(c, answer);
  });
  app.post(ROUTES.leaseKeepAlive, async (c) => {
    const ids = parseKeepAlive(await body(c));
    const leases = leasesOf(node);
    return await onLeader(ctx, c, ROUTES.leaseKeepAlive, { ids }, async () => {
      const answer: LeaseKeepAliveResponse = {
        leases: await leases.keepAlive(ids),
      };
      return answer;
    });
  });
  app.post(ROUTES.leaseRevoke, async (c) => {
    const f = fields(await body(c), ["id"]);
    const id = leaseIdField(f.id, "id");
    const answer: LeaseRevokeResponse = await leaseCall(() =>
      leasesOf(node).revoke(id)
    );
    return reply(c, answer);
  });
  app.post(ROUTES.leaseTtl, async (c) => {
    const f = fields(await body(c), ["id", "keys"]);
    const id = leaseIdField(f.id, "id");
    const keys = optionalBoolean(f.keys, "keys");
    const leases = leasesOf(node);
    return await onLeader(ctx, c, ROUTES.leaseTtl, { id, keys }, async () => {
      const lease = await leases.timeToLive(id, keys);
      if (lease === null) {
        throw new LeaseError("leaseNotFound", `Lease ${id} not found`);
      }
      const answer: LeaseTtlResponse = {
        id,
        ttlMs: lease.ttlMs,
        remainingMs: lease.remainingMs,
        ...(lease.keys === undefined
          ? {}
          : { keys: lease.keys.map((key) => keyToWire(decodeKey(key))) }),
      };
      return answer;
    });
  });
  app.post(ROUTES.leaseList, async (c) => {
    const { cursor, limit } = parseLeaseList(await body(c));
    const page = await leaseCall(() => leasesOf(node).list(cursor, limit));
    const answer: LeaseListResponse = {
      leases: page.leases.map((l) => ({
        id: l.id,
        ttlMs: l.ttlMs,
        revision: l.revision,
        keyCount: l.keyCount,
      })),
      cursor: page.cursor,
    };
    return reply(c, answer);
  });
}
