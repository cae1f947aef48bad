/**
 * `aspen cluster health` and `aspen cluster endpoints`: ask every node of
 * the cluster, one row each (etcdctl's `endpoint health|status --cluster`).
 * Exit 3 when any node is unhealthy or does not answer.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import {
  AuthError,
  type ClusterStatus,
  connect,
  UnavailableError,
} from "../../mod.ts";
import { ROUTES } from "../../src/protocol/http_api.ts";
import {
  clientOf,
  EXIT,
  type GlobalOptions,
  printJson,
  printTable,
  urlsOf,
} from "./_context.ts";

/** Deadline of each node's answer when `--timeout` is not given. */
const ENDPOINT_TIMEOUT_MS = 5000;

/** Most nodes asked (a cluster holds far fewer). */
const ENDPOINTS_MAX = 64;

interface Endpoint {
  readonly url: string;
  readonly id: string | null;
}

function globals(command: { optsWithGlobals(): unknown }): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/**
 * Every node: the members the cluster reports (their URLs), plus the URLs
 * given. When no given node answers, only those URLs (each then fails).
 *
 * @throws {AuthError} When the token is refused.
 */
async function endpointsOf(global: GlobalOptions): Promise<Endpoint[]> {
  const given = urlsOf(global);
  let members: { id: string; httpUrl: string | null }[] = [];
  try {
    using client = clientOf({
      ...global,
      timeout: global.timeout ?? ENDPOINT_TIMEOUT_MS,
    });
    members = [...(await client.cluster.status()).members];
  } catch (error) {
    if (!(error instanceof UnavailableError)) throw error;
  }
  const byUrl = new Map<string, Endpoint>();
  for (const m of members) {
    if (m.httpUrl !== null) byUrl.set(m.httpUrl, { url: m.httpUrl, id: m.id });
  }
  for (const url of given) {
    if (!byUrl.has(url)) byUrl.set(url, { url, id: null });
  }
  return [...byUrl.values()].slice(0, ENDPOINTS_MAX);
}

function fail(count: number, total: number, what: string): void {
  console.error(`aspen: ${count} of ${total} endpoints ${what}`);
  Deno.exitCode = EXIT.unavailable;
}

interface HealthRow {
  readonly endpoint: string;
  readonly id: string | null;
  readonly healthy: boolean;
  readonly tookMs: number;
  readonly error: string | null;
}

async function probeHealth(
  endpoint: Endpoint,
  timeoutMs: number,
): Promise<HealthRow> {
  const started = performance.now();
  const row = (healthy: boolean, error: string | null): HealthRow => ({
    endpoint: endpoint.url,
    id: endpoint.id,
    healthy,
    tookMs: Math.round(performance.now() - started),
    error,
  });
  try {
    const response = await fetch(endpoint.url + ROUTES.health, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = await response.json() as { ok?: unknown; reason?: unknown };
    if (response.ok && body.ok === true) return row(true, null);
    return row(
      false,
      typeof body.reason === "string" ? body.reason : `HTTP ${response.status}`,
    );
  } catch (error) {
    return row(
      false,
      `Cannot reach ${endpoint.url}: ${(error as Error).message}`,
    );
  }
}

/** `aspen cluster health` */
export function healthCommand(): CommandUnknownOpts {
  return new Command("health")
    .description(
      "Ask every node's /health (a leader known, storage writable); exit 3 when one is unhealthy",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      const endpoints = await endpointsOf(global);
      const timeoutMs = global.timeout ?? ENDPOINT_TIMEOUT_MS;
      const rows = await Promise.all(
        endpoints.map((e) => probeHealth(e, timeoutMs)),
      );
      if (global.json) printJson(rows);
      else {
        printTable(
          ["ENDPOINT", "ID", "HEALTHY", "TOOK", "ERROR"],
          rows.map((r) => [
            r.endpoint,
            r.id ?? "-",
            String(r.healthy),
            `${r.tookMs}ms`,
            r.error ?? "",
          ]),
        );
      }
      const bad = rows.filter((r) => !r.healthy).length;
      if (bad > 0) fail(bad, rows.length, "unhealthy");
    });
}

interface EndpointRow {
  readonly endpoint: string;
  readonly id: string | null;
  readonly status: ClusterStatus | null;
  readonly error: string | null;
}

async function probeStatus(
  endpoint: Endpoint,
  global: GlobalOptions,
): Promise<EndpointRow> {
  try {
    using client = connect(endpoint.url, {
      token: global.token,
      timeoutMs: global.timeout ?? ENDPOINT_TIMEOUT_MS,
      attemptsMax: 1,
    });
    const status = await client.cluster.status();
    return { endpoint: endpoint.url, id: status.nodeId, status, error: null };
  } catch (error) {
    if (error instanceof AuthError) throw error;
    return {
      endpoint: endpoint.url,
      id: endpoint.id,
      status: null,
      error: (error as Error).message,
    };
  }
}

/** `aspen cluster endpoints` */
export function endpointsCommand(): CommandUnknownOpts {
  return new Command("endpoints")
    .description(
      "Ask every node for its status (role, term, indexes); exit 3 when one does not answer",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      const endpoints = await endpointsOf(global);
      const rows = await Promise.all(
        endpoints.map((e) => probeStatus(e, global)),
      );
      if (global.json) {
        printJson(rows.map((r) => ({
          endpoint: r.endpoint,
          id: r.id,
          role: r.status?.role ?? null,
          leader: r.status?.leader ?? null,
          term: r.status?.term ?? null,
          commitIndex: r.status?.commitIndex ?? null,
          appliedIndex: r.status?.appliedIndex ?? null,
          snapshotIndex: r.status?.snapshotIndex ?? null,
          error: r.error,
        })));
      } else {
        const dash = (n: number | undefined) => n === undefined ? "-" : `${n}`;
        printTable(
          [
            "ENDPOINT",
            "ID",
            "ROLE",
            "IS LEADER",
            "TERM",
            "COMMIT",
            "APPLIED",
            "SNAPSHOT",
            "ERROR",
          ],
          rows.map((r) => [
            r.endpoint,
            r.id ?? "-",
            r.status?.role ?? "-",
            r.status === null
              ? "-"
              : String(r.status.leader === r.status.nodeId),
            dash(r.status?.term),
            dash(r.status?.commitIndex),
            dash(r.status?.appliedIndex),
            dash(r.status?.snapshotIndex),
            r.error ?? "",
          ]),
        );
      }
      const bad = rows.filter((r) => r.status === null).length;
      if (bad > 0) fail(bad, rows.length, "did not answer");
    });
}
