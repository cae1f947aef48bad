/**
 * Aspen's HTTP API as a Hono app, composed here from one route module per
 * service and concern: `kv.ts` (`/v1/kv/...` with the watch stream),
 * `queues.ts` (`/v1/queue/...`), `cluster.ts` (`/health`, `/metrics`,
 * `/v1/cluster/...` reads) and `admin.ts` (membership changes and joins).
 * This file adds what every route shares: bounded bodies, the Host and
 * CORS checks, the bearer-token check on everything but `/health` and the
 * join route, content negotiation (JSON or MessagePack) and one error
 * mapping in `app.onError`. Routes and bodies are defined in
 * `src/protocol/http_api.ts`.
 *
 * @module
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import type { NodeApi } from "../../node/node_api.ts";
import { HTTP_API_LIMITS } from "../../protocol/http_api.ts";
import { bearerAuth, validateTokens } from "../common/auth.ts";
import { StreamBudget } from "../common/stream_budget.ts";
import { readBody, reply } from "./_body.ts";
import { notFoundMessage } from "./not_found.ts";
import { errorReply, HttpApiError } from "./_errors.ts";
import {
  RequestTiming,
  type RouteContext,
  type StageSink,
} from "./_route_context.ts";
import { kvRoutes } from "./kv.ts";
import { queueRoutes } from "./queues.ts";
import { lockRoutes } from "./locks.ts";
import { leaseRoutes } from "./leases.ts";
import { electionRoutes } from "./elections.ts";
import { eventsRoutes } from "./events.ts";
import { HOOK_WORKER_ROUTES, hookRoutes } from "./hooks.ts";
import { pubsubRoutes } from "./pubsub.ts";
import { clusterRoutes, healthRoute } from "./cluster.ts";
import {
  ADMIN_ROUTES,
  adminRoutes,
  type JoinRoute,
  joinRoute,
} from "./admin.ts";

export { ADMIN_ROUTES };

/** Options of {@linkcode createHttpApp}. */
export interface HttpAppOptions {
  /** The node the API serves. */
  readonly node: NodeApi;
  /**
   * Bearer tokens accepted (several, for rotation), configured per cluster;
   * `null` turns the check off (local development only).
   */
  readonly tokens: readonly string[] | null;
  /** Largest request body, in bytes. Default 2 MiB. */
  readonly bodyLimitBytes?: number;
  /** Clock in Unix ms, for `expireIn` deadlines. Default `Date.now`. */
  readonly nowMs?: () => number;
  /** Reports unexpected errors (answered as `internal`). Default `console.error`. */
  readonly logError?: (error: unknown) => void;
  /** A sub-app mounted at `/` (KV Connect), behind the same token check. */
  readonly kvConnect?: Hono;
  /**
   * Routes that check their own credentials (KV Connect), mounted after the
   * Host and CORS checks and before the API's token check.
   */
  readonly selfAuthenticated?: Hono;
  /**
   * Tokens of the admin scope (membership, backups, joins). Default: the
   * data `tokens` (one scope), for tests and embedders.
   */
  readonly adminTokens?: readonly string[];
  /** Paths of `kvConnect` that need the admin scope (e.g. the backup route). */
  readonly adminPaths?: readonly string[];
  /**
   * `Host` names accepted besides IP literals (DNS rebinding guard); `null`
   * accepts any. Default `null`.
   */
  readonly allowedHosts?: readonly string[] | null;
  /** Origins allowed cross-site (CORS). Default none: no CORS headers at all. */
  readonly corsOrigins?: readonly string[];
  /** The shared budget of long-lived streams. Default: a budget of its own. */
  readonly streams?: StreamBudget;
  /**
   * Serves a node's join request at `POST path` (checked by its own join
   * token, not a bearer token); `handle` raises `HttpApiError("joinRefused")`
   * for a refused token. Absent: the route does not exist.
   */
  readonly join?: JoinRoute;
  /** Where each request's HTTP stages are recorded (the node's stage recorder). Default: nowhere. */
  readonly stages?: StageSink;
}

function hostOf(header: string): string {
  const value = header.trim().toLowerCase();
  if (value.startsWith("[")) return value.slice(0, value.indexOf("]") + 1);
  const colon = value.lastIndexOf(":");
  return colon < 0 ? value : value.slice(0, colon);
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** True when `Host` names an IP literal or one of `allowed` (DNS rebinding cannot forge either). */
export function hostAllowed(
  header: string | undefined,
  allowed: readonly string[],
): boolean {
  if (header === undefined) return false;
  const host = hostOf(header);
  if (IPV4.test(host) || (host.startsWith("[") && host.endsWith("]"))) {
    return true;
  }
  return allowed.some((name) => name.toLowerCase() === host);
}

/**
 * Builds the HTTP API app.
 *
 * @throws {RangeError} When `bodyLimitBytes` is not a positive integer or a token is empty or too long.
 */
export function createHttpApp(options: HttpAppOptions): Hono {
  const limit = options.bodyLimitBytes ?? HTTP_API_LIMITS.bodyBytesMaxDefault;
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new RangeError(
      `Cannot create HTTP app as 'bodyLimitBytes' must be a positive integer: current value is ${limit}`,
    );
  }
  const tokens = options.tokens === null ? null : {
    data: validateTokens(options.tokens),
    admin: validateTokens(options.adminTokens ?? options.tokens),
  };
  const adminPaths = new Set([
    ...ADMIN_ROUTES,
    ...HOOK_WORKER_ROUTES,
    ...(options.adminPaths ?? []),
  ]);
  const allowedHosts = options.allowedHosts ?? null;
  const logError = options.logError ?? ((error) => console.error(error));
  const app = new Hono();
  const ctx: RouteContext = {
    node: options.node,
    body: (c) => readBody(c, limit),
    now: options.nowMs ?? Date.now,
    streams: options.streams ?? new StreamBudget(),
    timing: () => new RequestTiming(options.stages),
  };

  app.onError((error, c) => {
    const { status, body } = errorReply(error);
    if (body.error.code === "internal") logError(error);
    return reply(c, body, status);
  });
  app.notFound((c) => {
    throw new HttpApiError(
      "notFound",
      notFoundMessage(c.req.method, c.req.url),
    );
  });

  if (allowedHosts !== null) {
    app.use("*", async (c, next) => {
      // HTTP/2 carries the host as :authority, which lands in the URL only.
      const host = c.req.header("host") ?? new URL(c.req.url).host;
      if (!hostAllowed(host, allowedHosts)) {
        throw new HttpApiError(
          "invalidHost",
          "The Host header names none of this node's addresses (set allowedHosts to add a name)",
        );
      }
      await next();
    });
  }
  if ((options.corsOrigins ?? []).length > 0) {
    app.use(
      "*",
      cors({
        origin: [...options.corsOrigins!],
        allowHeaders: ["authorization", "content-type", "accept"],
        allowMethods: ["GET", "POST", "OPTIONS"],
        maxAge: 600,
      }),
    );
  }
  healthRoute(app, options.node);
  if (options.join !== undefined) joinRoute(app, ctx, options.join);
  // Routes that check their own credentials (KV Connect: the data tokens
  // and its per-client data-path tokens) sit after the Host and CORS checks
  // and before the API's token check.
  if (options.selfAuthenticated !== undefined) {
    app.route("/", options.selfAuthenticated);
  }
  if (tokens !== null) {
    app.use("*", bearerAuth(tokens, (path) => adminPaths.has(path)));
  }
  clusterRoutes(app, ctx);
  kvRoutes(app, ctx);
  queueRoutes(app, ctx);
  lockRoutes(app, ctx);
  leaseRoutes(app, ctx);
  electionRoutes(app, ctx);
  eventsRoutes(app, ctx);
  hookRoutes(app, ctx);
  pubsubRoutes(app, ctx);
  adminRoutes(app, ctx);
  if (options.kvConnect !== undefined) app.route("/", options.kvConnect);
  return app;
}

/** Options of {@linkcode serveHttpApp}. */
export interface ServeHttpAppOptions {
  /** Default "127.0.0.1". */
  readonly hostname?: string;
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Stops the server when aborted. */
  readonly signal?: AbortSignal;
  /** TLS certificate and key (PEM) for HTTPS; plain HTTP without them. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

/** Serves `app` with `Deno.serve`; the returned server's `addr` has the bound port. */
export function serveHttpApp(
  app: Hono,
  options: ServeHttpAppOptions = {},
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    signal: options.signal,
    onListen: () => {},
    ...(options.tls ?? {}),
  }, app.fetch);
}
