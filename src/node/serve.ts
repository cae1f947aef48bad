/**
 * A node with its HTTP listener: the Aspen HTTP API, KV Connect at `/kv`,
 * `/health` and `/metrics`, and graceful shutdown (stop accepting, finish
 * in-flight requests, sync, close).
 *
 * @module
 */
import { Hono } from "hono";
import { createHttpApp } from "../http/app.ts";
import { type GuardedServer, serveGuarded } from "../http/connection_guard.ts";
import {
  availableDescriptors,
  descriptorsNeeded,
  fitConnectionCap,
} from "../http/descriptors.ts";
import { kvConnectApp } from "../http/kv_connect/app.ts";
import { AspenNode } from "./aspen_node.ts";
import { routeGroup } from "./http_metrics.ts";
import { DATA_TOKEN_FILE, loadAccessTokens } from "./access_tokens.ts";
import { HttpApiError } from "../http/_errors.ts";
import { JOIN_ROUTE, JoinRefusedError } from "./join.ts";
import { isLoopback, type NodeConfig } from "./config.ts";
import { DATA_FILES } from "./data_dir.ts";
import { StreamBudget } from "../http/stream_budget.ts";
import { freeTcpPorts } from "./provision.ts";

/** Path of the KV Connect metadata exchange (what `Deno.openKv` is given). */
export const KV_CONNECT_PATH = "/kv";

/** `GET` here returns a consistent backup of the cluster's KV state. */
export const SNAPSHOT_ROUTE = "/v1/cluster/snapshot";

/** `GET` here returns `{ ticket }`, a join ticket (needs the cluster key). */
export const JOIN_TICKET_ROUTE = "/v1/cluster/join-ticket";

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
  /** Stops accepting, waits for in-flight requests, then stops the node. */
  stop(): Promise<void>;
}

/** Starts a node and its HTTP listener. */
export async function serveNode(
  config: NodeConfig,
  options: { log?: (line: string) => void } = {},
): Promise<ServingNode> {
  const log = options.log ?? ((line: string) => console.error(line));
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
    ...options,
  });
  try {
    const tokens = await loadAccessTokens(config.dataDir, config);
    const streams = new StreamBudget(
      config.streamsMax,
      config.streamsPerTokenMax,
    );
    // The admin scope covers the data scope, on every listener.
    const dataOrAdmin = [...tokens.data, ...tokens.admin];
    node.setClientAccess(dataOrAdmin, streams);
    const kvConnect = kvConnectApp({
      backend: node.backend,
      tokens: dataOrAdmin,
      selfUrl: url,
      path: KV_CONNECT_PATH,
      streams,
    });
    // KV Connect and the admin routes below share the API's token check.
    const extra = new Hono();
    extra.get(
      SNAPSHOT_ROUTE,
      async () =>
        new Response((await node.snapshot()) as Uint8Array<ArrayBuffer>, {
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
    extra.route("/", kvConnect);
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
    outer.use(async (c, next) => {
      const started = performance.now();
      await next();
      node.http.record(
        routeGroup(c.req.path),
        c.res.status,
        performance.now() - started,
      );
    });
    outer.route("/", app);
    // A mounted app's not-found handler does not apply here: answer with the
    // API's typed error body, like every other refusal.
    outer.notFound((c) =>
      c.json({
        error: {
          code: "notFound",
          message: `Unknown route: ${c.req.method} ${c.req.path}`,
          details: {},
        },
      }, 404)
    );
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
        await server.shutdown();
        await node.stop();
      })();
    return {
      node,
      url,
      kvConnectTokens: tokens.data,
      adminTokens: tokens.admin,
      http: server,
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
