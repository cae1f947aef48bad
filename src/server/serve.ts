/**
 * A node with its HTTP listener: the Aspen HTTP API, KV Connect at `/kv`,
 * `/health` and `/metrics`, and graceful shutdown (stop accepting, finish
 * in-flight requests, sync, close).
 *
 * @module
 */
import { Hono } from "hono";
import { createHttpApp } from "../frontends/http/app.ts";
import {
  type GuardedServer,
  serveGuarded,
} from "../frontends/common/connection_guard.ts";
import {
  availableDescriptors,
  descriptorsNeeded,
  fitConnectionCap,
} from "../frontends/http/descriptors.ts";
import { kvConnectApp } from "../frontends/kv_connect/app.ts";
import { AspenNode } from "../node/aspen_node.ts";
import { HttpMetrics, routeGroup } from "../frontends/http/metrics.ts";
import { serveClientSession } from "../frontends/webtransport/sessions.ts";
import { DATA_TOKEN_FILE, loadAccessTokens } from "../cluster/access_tokens.ts";
import { HttpApiError } from "../frontends/common/http_api_error.ts";
import { JOIN_ROUTE, JoinRefusedError } from "../node/join.ts";
import { isLoopback, type NodeConfig } from "../node/config.ts";
import { DATA_FILES } from "../node/data_dir.ts";
import { StreamBudget } from "../frontends/common/stream_budget.ts";
import { freeTcpPorts } from "../node/provision.ts";
import { notFoundBody } from "../frontends/http/not_found.ts";

/** Path of the KV Connect metadata exchange (what `Deno.openKv` is given). */
export const KV_CONNECT_PATH = "/kv";

/** `GET` here returns a consistent backup of the cluster's KV state. */
export const SNAPSHOT_ROUTE = "/v1/cluster/snapshot";

/** `GET` here returns `{ ticket }`, a join ticket (needs the cluster key). */
export const JOIN_TICKET_ROUTE = "/v1/cluster/join-ticket";

/** Response header naming the answering node's cluster id (base32). */
export const CLUSTER_ID_HEADER = "aspen-cluster-id";

/** File holding the cluster's data token when none is configured. */
export const GENERATED_TOKEN_FILE = DATA_TOKEN_FILE;

/** A node serving HTTP. */
export interface ServingNode {
  readonly node: AspenNode;
  readonly url: string;
  /** Data-scope tokens (HTTP API and KV Connect): configured, or the cluster's. */
  readonly kvConnectTokens: readonly string[];
  /** Admin-scope tokens: configured, or the cluster's. */
  readonly adminTokens: readonly string[];
  /** The guarded listener (connection counts, closes by reason). */
  readonly http: GuardedServer;
  /** The node's budget of long-lived client streams (watches, over every listener). */
  readonly streams: StreamBudget;
  /** Latencies of the HTTP listener (exposed in the node's `/metrics`). */
  readonly httpMetrics: HttpMetrics;
  /**
   * Stops accepting, waits for in-flight requests up to the shutdown grace
   * period (long-lived streams such as watches would otherwise hold it for
   * ever), then stops the node. Always settles.
   */
  stop(): Promise<void>;
}

/** Default milliseconds in-flight requests get to finish at shutdown. */
export const SHUTDOWN_GRACE_MS = 5000;

/** Resolves `true` when `promise` settles within `ms`, else `false`. */
function settlesWithin(
  promise: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(() => true, () => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts a node and its HTTP listener. */
export async function serveNode(
  config: NodeConfig,
  options: {
    log?: (line: string) => void;
    /** Milliseconds in-flight requests get at shutdown. Default 5000. */
    shutdownGraceMs?: number;
  } = {},
): Promise<ServingNode> {
  const { shutdownGraceMs = SHUTDOWN_GRACE_MS, ...nodeOptions } = options;
  const log = options.log ??
    ((line: string) => console.error(`${new Date().toISOString()} ${line}`));
  const httpPort = config.httpPort === 0
    ? freeTcpPorts(config.httpHost, 1)[0]!
    : config.httpPort;
  const host = config.httpHost.includes(":")
    ? `[${config.httpHost}]`
    : config.httpHost;
  const url = `${
    config.httpsCertFile === "" ? "http" : "https"
  }://${host}:${httpPort}`;
  const node = await AspenNode.start({ ...config, httpPort }, {
    httpUrl: url,
    ...nodeOptions,
  });
  try {
    const tokens = await loadAccessTokens(
      config.dataDir,
      config,
      DATA_FILES.clusterKey,
    );
    const streams = new StreamBudget(
      config.streamsMax,
      config.streamsPerTokenMax,
    );
    // The admin scope covers the data scope, on every listener.
    const dataOrAdmin = [...tokens.data, ...tokens.admin];
    node.setClientSessions((session) =>
      void serveClientSession(session, node.backend, dataOrAdmin, streams)
    );
    const httpMetrics = new HttpMetrics();
    node.addMetrics(() => httpMetrics.render());
    const kvConnect = kvConnectApp({
      backend: node.backend,
      tokens: dataOrAdmin,
      selfUrl: url,
      path: KV_CONNECT_PATH,
      streams,
    });
    // The backup and join-ticket routes share the API's token check (admin
    // scope). KV Connect checks the same tokens itself, and also its
    // per-client data-path tokens (which the API's check does not know), so
    // the app mounts it after the Host and CORS checks but before its own
    // token check.
    const extra = new Hono();
    extra.get(
      SNAPSHOT_ROUTE,
      async () =>
        new Response(await node.snapshot(), {
          headers: {
            "content-type": "application/octet-stream",
            "content-disposition": 'attachment; filename="aspen.backup"',
          },
        }),
    );
    extra.get(
      JOIN_TICKET_ROUTE,
      async (c) => c.json({ ticket: await node.joinTicket() }),
    );
    const app = createHttpApp({
      node,
      tokens: tokens.data,
      adminTokens: tokens.admin,
      adminPaths: [SNAPSHOT_ROUTE, JOIN_TICKET_ROUTE],
      allowedHosts: allowedHostsOf(config),
      corsOrigins: config.corsOrigins,
      streams,
      bodyLimitBytes: config.bodyLimitBytes,
      kvConnect: extra,
      selfAuthenticated: kvConnect,
      stages: node.runner.stages,
      // The join request carries its own credential (the join token).
      join: {
        path: JOIN_ROUTE,
        handle: async (request) => {
          try {
            return await node.handleJoin(request);
          } catch (error) {
            if (!(error instanceof JoinRefusedError)) throw error;
            throw new HttpApiError("joinRefused", error.message);
          }
        },
      },
    });
    const outer = new Hono();
    const clusterId = node.status().clusterId;
    outer.use(async (c, next) => {
      const started = performance.now();
      // A client given a ticket names its cluster, and a KV Connect URL can
      // be bound to one (`/kv?cluster=ID`): another cluster's node refuses
      // before applying anything.
      const expected = c.req.header(CLUSTER_ID_HEADER) ??
        (c.req.path === KV_CONNECT_PATH ? c.req.query("cluster") : undefined);
      if (expected !== undefined && expected !== clusterId) {
        return c.json({
          error: {
            code: "wrongCluster",
            message:
              `This node belongs to cluster ${clusterId}, not ${expected}`,
            details: { clusterId },
          },
        }, 409);
      }
      await next();
      // Clients given a ticket check every answer comes from its cluster.
      try {
        c.res.headers.set(CLUSTER_ID_HEADER, clusterId);
      } catch {
        // Immutable headers (a proxied response): the client accepts none.
      }
      httpMetrics.record(
        routeGroup(c.req.path),
        c.res.status,
        performance.now() - started,
      );
      return undefined;
    });
    // The HTTP API's routes under the KV Connect URL: a client given the
    // wrong URL is told the right one (before KV Connect's bare 404).
    outer.all(
      `${KV_CONNECT_PATH}/v1/*`,
      (c) => c.json(notFoundBody(c.req.method, c.req.url), 404),
    );
    outer.route("/", app);
    // A mounted app's not-found handler does not apply here: answer with the
    // API's typed error body, like every other refusal.
    outer.notFound((c) => c.json(notFoundBody(c.req.method, c.req.url), 404));
    const tls = config.httpsCertFile === "" ? undefined : {
      cert: await Deno.readTextFile(config.httpsCertFile),
      key: await Deno.readTextFile(config.httpsKeyFile),
    };
    const { cap, warning } = fitConnectionCap(
      config.httpConnectionsMax,
      availableDescriptors(
        `${config.dataDir}/${DATA_FILES.cluster}`,
        descriptorsNeeded(config.httpConnectionsMax),
      ),
    );
    if (warning !== null) log(`http: ${warning}`);
    const server = serveGuarded(outer.fetch, {
      hostname: config.httpHost,
      port: httpPort,
      ...(tls === undefined ? {} : { tls }),
      limits: {
        connectionsMax: cap,
        perAddressMax: Math.min(cap, config.httpConnectionsPerAddressMax),
        headerTimeoutMs: config.httpHeaderTimeoutMs,
        bodyTimeoutMs: config.httpBodyTimeoutMs,
        idleTimeoutMs: config.httpIdleTimeoutMs,
      },
      log,
    });
    let stopping: Promise<void> | null = null;
    const stop = () =>
      stopping ??= (async () => {
        const shutdown = server.shutdown();
        const drained = await settlesWithin(shutdown, shutdownGraceMs);
        if (!drained) {
          log(
            `warning: requests still open ${shutdownGraceMs} ms after shutdown began; stopping the node anyway`,
          );
        }
        await node.stop();
        // Stopping the node ends its streams; do not wait on stragglers.
        if (!drained) await settlesWithin(shutdown, 1000);
      })();
    return {
      node,
      url,
      kvConnectTokens: tokens.data,
      adminTokens: tokens.admin,
      http: server,
      streams,
      httpMetrics,
      stop,
    };
  } catch (error) {
    await node.stop();
    throw error;
  }
}

/**
 * `Host` names the API answers besides IP literals: the configured ones,
 * the bind address, and loopback names when bound to loopback; `["*"]`
 * turns the check off.
 */
export function allowedHostsOf(config: NodeConfig): string[] | null {
  if (config.allowedHosts.includes("*")) return null;
  const names = [...config.allowedHosts, config.httpHost];
  if (isLoopback(config.httpHost)) names.push("localhost");
  return names;
}
