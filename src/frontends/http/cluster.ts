/**
 * The node's and the cluster's read-only routes: `/health` (no token),
 * `/metrics`, `/v1/cluster/status`, `/v1/cluster/members` and the client
 * ticket. {@linkcode healthRoute} and {@linkcode clusterRoutes} register
 * them; membership changes are in `admin.ts`.
 *
 * @module
 */
import type { Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import {
  CONTENT_TYPE_METRICS,
  type MembersResponse,
  ROUTES,
  type StatusResponse,
  type TicketResponse,
} from "../../protocol/http_api.ts";
import { reply } from "./_body.ts";
import type { RouteContext } from "./_route_context.ts";

/** The node's status as the API's wire body. */
export function statusOf(node: NodeApi): StatusResponse {
  const s = node.status();
  return {
    clusterId: s.clusterId,
    nodeId: s.nodeId,
    role: s.role,
    term: s.term,
    leader: s.leader,
    leaderHttpUrl: s.leaderHttpUrl,
    commitIndex: s.commitIndex,
    appliedIndex: s.appliedIndex,
    snapshotIndex: s.snapshotIndex,
    joint: s.joint,
    members: s.members.map((m) => ({
      id: m.id,
      role: m.role,
      match: m.match,
      lag: m.lag,
      reachable: m.reachable ?? null,
      lastContactMs: m.lastContactMs ?? null,
      name: m.name ?? null,
      httpUrl: m.httpUrl,
    })),
  };
}

/** Registers `GET /health` (answered before any token check). */
export function healthRoute(app: Hono, node: NodeApi): void {
  app.get(ROUTES.health, (c) => {
    const health = node.health();
    return c.json(
      { ok: health.ok, reason: health.reason },
      health.ok ? 200 : 503,
    );
  });
}

/** Registers `/metrics` and the `/v1/cluster/...` reads on `app`. */
export function clusterRoutes(app: Hono, ctx: RouteContext): void {
  const { node } = ctx;
  app.get(
    ROUTES.metrics,
    (c) =>
      c.body(node.metrics(), 200, { "content-type": CONTENT_TYPE_METRICS }),
  );
  app.get(ROUTES.clusterStatus, (c) => reply(c, statusOf(node)));
  app.get(ROUTES.clusterMembers, (c) => {
    const status = statusOf(node);
    const members: MembersResponse = {
      leader: status.leader,
      members: status.members,
    };
    return reply(c, members);
  });
  app.get(ROUTES.clusterTicket, (c) => {
    const ticket: TicketResponse = { ticket: node.clientTicket() };
    return reply(c, ticket);
  });
}
