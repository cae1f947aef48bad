/**
 * Aspen's HTTP API as a Hono app: `/v1/kv/...` (with the `/v1/kv/watch`
 * stream), `/v1/queue/...`, `/v1/cluster/...`, `/health` and `/metrics`, with bounded bodies, a bearer-token check on
 * everything but `/health`, content negotiation (JSON or MessagePack) and
 * one error mapping in `app.onError`. Routes and bodies are defined in
 * `src/protocol/http_api.ts`.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { KvConsistency } from "../../services/kv/api.ts";
import type { NodeAddress, NodeApi } from "../../node/node_api.ts";
import {
  CONSISTENCY_PARAMETER,
  CONTENT_TYPE_JSON_LINES,
  CONTENT_TYPE_METRICS,
  HTTP_API_LIMITS,
  type MembersResponse,
  type OkResponse,
  ROUTES,
  type StatusResponse,
  type TicketResponse,
} from "../../protocol/http_api.ts";
import { cors } from "hono/cors";
import { bearerAuth, bearerOf, validateTokens } from "../common/auth.ts";
import { StreamBudget, type StreamLease } from "../common/stream_budget.ts";
import { readBody, reply } from "./_body.ts";
import { notFoundMessage } from "./not_found.ts";
import { matchNodeId, nodeIdMatchMessage } from "../../protocol/node_id.ts";
import { errorReply, HttpApiError } from "./_errors.ts";
import * as kv from "./kv.ts";
import * as parse from "./_parse.ts";
import * as queue from "./queues.ts";
import { watchLines } from "./_watch_stream.ts";

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
  readonly join?: {
    readonly path: string;
    readonly handle: (
      request: { token: string; address: NodeAddress },
    ) => Promise<unknown>;
  };
}

/** Routes of the admin scope. */
export const ADMIN_ROUTES: readonly string[] = [
  ROUTES.clusterAddLearner,
  ROUTES.clusterPromote,
  ROUTES.clusterRemove,
  ROUTES.clusterTransferLeader,
];

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

function streamLease(streams: StreamBudget, c: Context): StreamLease {
  return streams.acquire(bearerOf(c.req.header("authorization")) ?? "");
}

function consistencyOf(c: Context): KvConsistency {
  const value = c.req.query(CONSISTENCY_PARAMETER);
  if (value === undefined || value === "strong") return "strong";
  if (value === "eventual") return "eventual";
  throw new HttpApiError(
    "badRequest",
    `Invalid '${CONSISTENCY_PARAMETER}': expected 'strong' or 'eventual', received '${value}'`,
  );
}

function statusOf(node: NodeApi): StatusResponse {
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
  const adminPaths = new Set([...ADMIN_ROUTES, ...(options.adminPaths ?? [])]);
  const allowedHosts = options.allowedHosts ?? null;
  const streams = options.streams ?? new StreamBudget();
  const { node } = options;
  const now = options.nowMs ?? Date.now;
  const logError = options.logError ?? ((error) => console.error(error));
  const app = new Hono();
  const body = (c: Context) => readBody(c, limit);
  const ok: OkResponse = { ok: true };

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
  app.get(ROUTES.health, (c) => {
    const health = node.health();
    return c.json(
      { ok: health.ok, reason: health.reason },
      health.ok ? 200 : 503,
    );
  });
  if (options.join !== undefined) {
    const join = options.join;
    app.post(
      join.path,
      async (c) => reply(c, await join.handle(parse.parseJoin(await body(c)))),
    );
  }
  // Routes that check their own credentials (KV Connect: the data tokens
  // and its per-client data-path tokens) sit after the Host and CORS checks
  // and before the API's token check.
  if (options.selfAuthenticated !== undefined) {
    app.route("/", options.selfAuthenticated);
  }
  if (tokens !== null) {
    app.use("*", bearerAuth(tokens, (path) => adminPaths.has(path)));
  }
  app.get(
    ROUTES.metrics,
    (c) =>
      c.body(node.metrics(), 200, { "content-type": CONTENT_TYPE_METRICS }),
  );

  app.post(
    ROUTES.kvGet,
    async (c) =>
      reply(
        c,
        await kv.get(
          node.backend,
          parse.parseGet(await body(c)),
          consistencyOf(c),
        ),
      ),
  );
  app.post(
    ROUTES.kvGetMany,
    async (c) =>
      reply(
        c,
        await kv.getMany(
          node.backend,
          parse.parseGetMany(await body(c)),
          consistencyOf(c),
        ),
      ),
  );
  app.post(
    ROUTES.kvList,
    async (c) =>
      reply(
        c,
        await kv.list(
          node.backend,
          parse.parseList(await body(c)),
          consistencyOf(c),
        ),
      ),
  );
  app.post(ROUTES.kvSet, async (c) => {
    const nowMs = now();
    const request = await body(c);
    const mutation = parse.parseSet(request, nowMs);
    const session = parse.parseSession(request);
    return reply(
      c,
      await kv.commit(
        node.backend,
        { checks: [], mutations: [mutation], ...(session ? { session } : {}) },
        nowMs,
      ),
    );
  });
  app.post(ROUTES.kvDelete, async (c) => {
    const request = await body(c);
    const mutation = parse.parseDelete(request);
    const session = parse.parseSession(request);
    return reply(
      c,
      await kv.commit(
        node.backend,
        { checks: [], mutations: [mutation], ...(session ? { session } : {}) },
        now(),
      ),
    );
  });
  app.post(ROUTES.kvAtomic, async (c) => {
    const nowMs = now();
    const request = await body(c);
    const operation = parse.parseAtomic(request, nowMs);
    const session = parse.parseSession(request);
    return reply(
      c,
      await kv.commit(node.backend, {
        ...operation,
        ...(session ? { session } : {}),
      }, nowMs),
    );
  });
  app.post(ROUTES.kvWatch, async (c) => {
    const keys = parse.parseWatch(await body(c));
    const lease = streamLease(streams, c);
    const stream = watchLines(
      node.backend,
      keys,
      HTTP_API_LIMITS.watchKeepAliveMs,
      lease.release,
    );
    return c.body(stream, 200, { "content-type": CONTENT_TYPE_JSON_LINES });
  });

  app.post(ROUTES.queueListen, async (c) => {
    const request = await body(c);
    const lease = streamLease(streams, c);
    try {
      return reply(c, await queue.listen(node, request, c.req.raw.signal));
    } finally {
      lease.release();
    }
  });
  app.post(
    ROUTES.queueAck,
    async (c) => reply(c, await queue.ack(node, await body(c))),
  );
  app.post(
    ROUTES.queueNack,
    async (c) => reply(c, await queue.nack(node, await body(c))),
  );
  app.post(
    ROUTES.queueInfo,
    async (c) =>
      reply(c, await queue.info(node, await body(c), consistencyOf(c))),
  );
  app.post(
    ROUTES.queuePeek,
    async (c) =>
      reply(c, await queue.peek(node, await body(c), consistencyOf(c))),
  );
  app.post(ROUTES.queueConfigure, async (c) => {
    await queue.configure(node, await body(c));
    return reply(c, ok);
  });

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
  app.post(ROUTES.clusterAddLearner, async (c) => {
    await node.addLearner(parse.parseAddLearner(await body(c)));
    return reply(c, ok);
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
    return reply(c, ok);
  });
  app.post(ROUTES.clusterRemove, async (c) => {
    await node.remove(await memberId(c));
    return reply(c, ok);
  });
  app.post(ROUTES.clusterTransferLeader, async (c) => {
    await node.transferLeader(await memberId(c));
    return reply(c, ok);
  });

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
