/**
 * The admin scope's routes: membership changes (`/v1/cluster/add-learner`,
 * `promote`, `remove`, `transfer-leader`), which need an admin token, and
 * a node's join request, which carries its own join token.
 * {@linkcode adminRoutes} and {@linkcode joinRoute} register them.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import type { NodeAddress } from "../../node/node_api.ts";
import { ROUTES } from "../../protocol/http_api.ts";
import { matchNodeId, nodeIdMatchMessage } from "../../protocol/node_id.ts";
import { reply } from "./_body.ts";
import { HttpApiError } from "./_errors.ts";
import * as parse from "./_parse.ts";
import { OK, type RouteContext } from "./_route_context.ts";

/** Routes of the admin scope. */
export const ADMIN_ROUTES: readonly string[] = [
  ROUTES.clusterAddLearner,
  ROUTES.clusterPromote,
  ROUTES.clusterRemove,
  ROUTES.clusterTransferLeader,
];

/** How a node's join request is answered (see `HttpAppOptions.join`). */
export interface JoinRoute {
  readonly path: string;
  readonly handle: (
    request: { token: string; address: NodeAddress },
  ) => Promise<unknown>;
}

/** Registers `POST join.path` (checked by the join token, not a bearer token). */
export function joinRoute(app: Hono, ctx: RouteContext, join: JoinRoute): void {
  app.post(
    join.path,
    async (c) =>
      reply(c, await join.handle(parse.parseJoin(await ctx.body(c)))),
  );
}

/** Registers the membership changes ({@linkcode ADMIN_ROUTES}) on `app`. */
export function adminRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  app.post(ROUTES.clusterAddLearner, async (c) => {
    await node.addLearner(parse.parseAddLearner(await body(c)));
    return reply(c, OK);
  });
  // A unique prefix (the short id the logs print) names the member; an
  // ambiguous one is refused; anything else goes to the node as given.
  const memberId = async (c: Context): Promise<string> => {
    const text = parse.parseNodeId(await body(c));
    const ids = node.status().members.map((m) => m.id);
    const match = matchNodeId(text, ids);
    if (match.kind === "found") return match.id;
    if (match.kind === "ambiguous") {
      throw new HttpApiError("invalid", nodeIdMatchMessage(text, match, ids));
    }
    return text;
  };
  app.post(ROUTES.clusterPromote, async (c) => {
    await node.promote(await memberId(c));
    return reply(c, OK);
  });
  app.post(ROUTES.clusterRemove, async (c) => {
    await node.remove(await memberId(c));
    return reply(c, OK);
  });
  app.post(ROUTES.clusterTransferLeader, async (c) => {
    await node.transferLeader(await memberId(c));
    return reply(c, OK);
  });
}
