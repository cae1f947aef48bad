/**
 * Node configuration: every field documented with its unit and default,
 * layered environment < file (JSON) < flags, and validated before the node
 * does any work.
 *
 * @module
 */
import { leaseBounds } from "../raft/config.ts";

/** A node's configuration with every default filled in. */
export interface NodeConfig {
  /** Folder for identity, SQLite files and the lock. Default "./data". Env ASPEN_DATA_DIR. */
  readonly dataDir: string;
  /** Address the HTTP API binds. Default "127.0.0.1". Env ASPEN_HTTP_HOST. */
  readonly httpHost: string;
  /** TCP port of the HTTP API; 0 picks one. Default 8080. Env ASPEN_HTTP_PORT. */
  readonly httpPort: number;
  /** Address the QUIC peer listener binds. Default: same as `httpHost`. Env ASPEN_QUIC_HOST. */
  readonly quicHost: string;
  /** UDP port of the QUIC peer listener; 0 picks one. Default: same number as `httpPort`. Env ASPEN_QUIC_PORT. */
  readonly quicPort: number;
  /**
   * Data-scope bearer tokens accepted by the HTTP API and KV Connect (any of
   * them). Default none: the cluster's token, derived from the cluster key
   * and kept in `access.token`, is required. Env ASPEN_TOKENS (comma-separated).
   */
  readonly tokens: readonly string[];
  /**
   * Admin-scope tokens (membership, backups, joins). Default none: the
   * cluster's admin token, kept in `admin.token`. Env ASPEN_ADMIN_TOKENS.
   */
  readonly adminTokens: readonly string[];
  /**
   * `Host` names the HTTP API answers besides IP literals (and loopback
   * names when bound to loopback); `["*"]` accepts any. Default none.
   */
  readonly allowedHosts: readonly string[];
  /** Origins allowed cross-site (CORS). Default none: CORS is off. */
  readonly corsOrigins: readonly string[];
  /** Open HTTP connections at most (past it new ones are closed at once). Default 512. */
  readonly httpConnectionsMax: number;
  /** Open HTTP connections one remote address may hold. Default 64. */
  readonly httpConnectionsPerAddressMax: number;
  /** Milliseconds a connection may take to send a request's headers (and finish TLS). Default 10,000. */
  readonly httpHeaderTimeoutMs: number;
  /** Milliseconds a request's body may take to arrive. Default 30,000. */
  readonly httpBodyTimeoutMs: number;
  /** Milliseconds an idle keep-alive connection stays open. Default 30,000. */
  readonly httpIdleTimeoutMs: number;
  /**
   * Milliseconds of silence after which a QUIC connection (to a peer or of a
   * WebTransport client) is closed; keep-alives go every third of it.
   * Default 10,000. A peer restarted within it is noticed at once by its new
   * connection; past it the old one has already closed.
   */
  readonly quicIdleTimeoutMs: number;
  /** Bytes of events history the window keeps at most (this wins over the two below). Default 128 MiB. */
  readonly historyBytesMax: number;
  /** Milliseconds of events history the window keeps (within the byte cap). Default 600,000. */
  readonly historyKeepMs: number;
  /** Revisions of events history the window keeps at least (within the byte cap). Default 10,000. */
  readonly historyKeepRevisions: number;
  /** Milliseconds between the leader's compaction passes. Default 10,000. */
  readonly historyCompactIntervalMs: number;
  /** Long-lived streams (watches, queue listens, WebTransport) the node serves at once. Default 1,000. */
  readonly streamsMax: number;
  /** Long-lived streams one token may hold at once. Default 500. */
  readonly streamsPerTokenMax: number;
  /**
   * Milliseconds per Raft tick; the leader sends a heartbeat every tick.
   * Default 50: with `electionTicks` 10, followers start an election 0.5–1 s
   * after the last heartbeat (a killed leader is replaced in about 0.6 s).
   */
  readonly tickMs: number;
  /** Ticks without a leader before an election (randomized up to twice this). Default 10. */
  readonly electionTicks: number;
  /** Entries applied since the last snapshot that trigger a new one. Default 10,000. */
  readonly snapshotEntries: number;
  /** Milliseconds a write or strong read may wait before failing. Default 5,000. */
  readonly requestTimeoutMs: number;
  /** Strong reads: "safe" (ReadIndex heartbeat round) or "lease" (leader lease). Default "safe". */
  readonly readOnly: "safe" | "lease";
  /** PEM certificate file for HTTPS on the client listener. Default "" (plain HTTP). */
  readonly httpsCertFile: string;
  /** PEM private key file for HTTPS; required with `httpsCertFile`. Default "". */
  readonly httpsKeyFile: string;
  /** Largest HTTP request body in bytes. Default 2 MiB. */
  readonly bodyLimitBytes: number;
  /** The leader promotes a learner to voter by itself once it is within 1,000 entries of the commit index. Default false. */
  readonly autoPromote: boolean;
  /** Recover a lone survivor as a new one-node cluster (loses uncommitted writes). Default false. */
  readonly forceNewCluster: boolean;
  /** Start although the identity exists without a log (or the reverse). Default false. */
  readonly allowMissingLog: boolean;
  /**
   * A human name for the node, replicated with its address and shown by
   * `aspen cluster members` (1 to 64 of `A-Z a-z 0-9 . _ -`). Default "" (none).
   */
  readonly name: string;
}

/** Defaults of every field. */
export const DEFAULT_NODE_CONFIG: NodeConfig = {
  dataDir: "./data",
  httpHost: "127.0.0.1",
  httpPort: 8080,
  quicHost: "",
  quicPort: -1,
  tokens: [],
  adminTokens: [],
  allowedHosts: [],
  corsOrigins: [],
  httpConnectionsMax: 512,
  httpConnectionsPerAddressMax: 64,
  httpHeaderTimeoutMs: 10_000,
  httpBodyTimeoutMs: 30_000,
  httpIdleTimeoutMs: 30_000,
  quicIdleTimeoutMs: 10_000,
  historyBytesMax: 128 * 1024 * 1024,
  historyKeepMs: 600_000,
  historyKeepRevisions: 10_000,
  historyCompactIntervalMs: 10_000,
  streamsMax: 1000,
  streamsPerTokenMax: 500,
  tickMs: 50,
  electionTicks: 10,
  snapshotEntries: 10_000,
  requestTimeoutMs: 5_000,
  readOnly: "safe",
  httpsCertFile: "",
  httpsKeyFile: "",
  bodyLimitBytes: 2 * 1024 * 1024,
  autoPromote: false,
  forceNewCluster: false,
  allowMissingLog: false,
  name: "",
};

/** A partial configuration, as one layer gives it. */
export type NodeConfigLayer = {
  -readonly [K in keyof NodeConfig]?: NodeConfig[K];
};

const ENV: Record<string, keyof NodeConfig> = {
  ASPEN_DATA_DIR: "dataDir",
  ASPEN_HTTP_HOST: "httpHost",
  ASPEN_HTTP_PORT: "httpPort",
  ASPEN_QUIC_HOST: "quicHost",
  ASPEN_QUIC_PORT: "quicPort",
  ASPEN_TOKENS: "tokens",
  ASPEN_ADMIN_TOKENS: "adminTokens",
  ASPEN_HTTPS_CERT_FILE: "httpsCertFile",
  ASPEN_HTTPS_KEY_FILE: "httpsKeyFile",
};

/** The environment variables a node reads. */
export const NODE_ENV_VARS: readonly string[] = Object.keys(ENV);

/**
 * Reads the configuration layer given by environment variables.
 *
 * @param get Looks a variable up (e.g. `Deno.env.get`).
 */
export function configFromEnv(
  get: (name: string) => string | undefined,
): NodeConfigLayer {
  const layer: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(ENV)) {
    const raw = get(name);
    if (raw === undefined || raw === "") continue;
    layer[field] = coerce(field, raw, `environment variable ${name}`);
  }
  return layer as NodeConfigLayer;
}

/**
 * Reads a JSON configuration file's layer.
 *
 * @throws {TypeError} When the text is not a JSON object or names an unknown field.
 */
export function configFromJson(text: string, source: string): NodeConfigLayer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TypeError(
      `Cannot read configuration '${source}' as it is not JSON: ${
        (error as Error).message
      }`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(
      `Cannot read configuration '${source}' as it is not a JSON object`,
    );
  }
  for (const key of Object.keys(value)) {
    if (!(key in DEFAULT_NODE_CONFIG)) {
      throw new TypeError(
        `Cannot read configuration '${source}' as it has an unknown field: '${key}'`,
      );
    }
  }
  return value as NodeConfigLayer;
}

function coerce(field: keyof NodeConfig, raw: string, source: string): unknown {
  const sample = DEFAULT_NODE_CONFIG[field];
  if (typeof sample === "number" || field === "quicPort") {
    const number = Number(raw);
    if (!Number.isFinite(number)) {
      throw new TypeError(
        `Cannot read ${source} as '${field}' must be a number: current value is '${raw}'`,
      );
    }
    return number;
  }
  if (typeof sample === "boolean") return raw === "true" || raw === "1";
  if (Array.isArray(sample)) {
    return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  }
  return raw;
}

function integer(
  name: string,
  value: unknown,
  min: number,
  max: number,
): number {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min ||
    value > max
  ) {
    throw new RangeError(
      `Cannot start node as '${name}' must be an integer in [${min}, ${max}]: current value is ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

/**
 * Merges layers (later wins) over the defaults and validates the result.
 *
 * @throws {RangeError} When a number is out of range.
 * @throws {TypeError} When a field has the wrong type.
 */
export function resolveNodeConfig(
  ...layers: readonly NodeConfigLayer[]
): NodeConfig {
  const merged: Record<string, unknown> = { ...DEFAULT_NODE_CONFIG };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) merged[key] = value;
    }
  }
  const m = merged as NodeConfigLayer;
  if (typeof m.dataDir !== "string" || m.dataDir === "") {
    throw new TypeError(
      `Cannot start node as 'dataDir' must be a non-empty path: current value is '${m.dataDir}'`,
    );
  }
  const httpPort = integer("httpPort", m.httpPort, 0, 65535);
  const quicPort = m.quicPort === -1
    ? httpPort
    : integer("quicPort", m.quicPort, 0, 65535);
  const httpHost = String(m.httpHost);
  const quicHost = m.quicHost === "" ? httpHost : String(m.quicHost);
  const tokens = tokenList(m.tokens, "tokens");
  const adminTokens = tokenList(m.adminTokens, "adminTokens");
  const electionTicks = integer("electionTicks", m.electionTicks, 3, 1000);
  if (m.readOnly !== "safe" && m.readOnly !== "lease") {
    throw new TypeError(
      `Cannot start node as 'readOnly' must be "safe" or "lease": current value is '${m.readOnly}'`,
    );
  }
  const tickMs = integer("tickMs", m.tickMs, 1, 10_000);
  if (m.readOnly === "lease") {
    // The lease's bound with the runner's drift (10%) and delay (10 ms) margins.
    const { voteGuardMs, leaseMs } = leaseBounds({
      electionTicks,
      tickMs,
      clockDrift: 0.1,
      maxDelayMs: 10,
      guarded: true,
    });
    if (leaseMs < tickMs) {
      throw new RangeError(
        `Cannot start node as lease reads have no margin with 'tickMs' ${tickMs} and 'electionTicks' ${electionTicks}: followers refuse votes for ${voteGuardMs} ms at least, so the lease would be ${
          leaseMs.toFixed(1)
        } ms, shorter than a tick; raise 'electionTicks' or 'tickMs', or use 'readOnly' "safe"`,
      );
    }
  }
  const httpsCertFile = String(m.httpsCertFile ?? "");
  const httpsKeyFile = String(m.httpsKeyFile ?? "");
  if ((httpsCertFile === "") !== (httpsKeyFile === "")) {
    throw new TypeError(
      "Cannot start node as HTTPS needs both 'httpsCertFile' and 'httpsKeyFile'",
    );
  }
  const name = m.name ?? "";
  if (typeof name !== "string" || !/^([A-Za-z0-9._-]{1,64})?$/.test(name)) {
    throw new TypeError(
      `Cannot start node as 'name' must be 1 to 64 of A-Z a-z 0-9 . _ -: current value is ${
        JSON.stringify(name)
      }`,
    );
  }
  return {
    dataDir: m.dataDir,
    httpHost,
    httpPort,
    quicHost,
    quicPort,
    tokens,
    adminTokens,
    allowedHosts: stringList(m.allowedHosts, "allowedHosts"),
    corsOrigins: stringList(m.corsOrigins, "corsOrigins"),
    httpConnectionsMax: integer(
      "httpConnectionsMax",
      m.httpConnectionsMax,
      1,
      1_000_000,
    ),
    httpConnectionsPerAddressMax: integer(
      "httpConnectionsPerAddressMax",
      m.httpConnectionsPerAddressMax,
      1,
      1_000_000,
    ),
    httpHeaderTimeoutMs: integer(
      "httpHeaderTimeoutMs",
      m.httpHeaderTimeoutMs,
      100,
      600_000,
    ),
    httpBodyTimeoutMs: integer(
      "httpBodyTimeoutMs",
      m.httpBodyTimeoutMs,
      100,
      3_600_000,
    ),
    httpIdleTimeoutMs: integer(
      "httpIdleTimeoutMs",
      m.httpIdleTimeoutMs,
      100,
      3_600_000,
    ),
    quicIdleTimeoutMs: integer(
      "quicIdleTimeoutMs",
      m.quicIdleTimeoutMs,
      1_000,
      600_000,
    ),
    historyBytesMax: integer(
      "historyBytesMax",
      m.historyBytesMax,
      64 * 1024,
      64 * 1024 * 1024 * 1024,
    ),
    historyKeepMs: integer(
      "historyKeepMs",
      m.historyKeepMs,
      0,
      30 * 86_400_000,
    ),
    historyKeepRevisions: integer(
      "historyKeepRevisions",
      m.historyKeepRevisions,
      0,
      1_000_000_000,
    ),
    historyCompactIntervalMs: integer(
      "historyCompactIntervalMs",
      m.historyCompactIntervalMs,
      100,
      3_600_000,
    ),
    streamsMax: integer("streamsMax", m.streamsMax, 1, 1_000_000),
    streamsPerTokenMax: integer(
      "streamsPerTokenMax",
      m.streamsPerTokenMax,
      1,
      1_000_000,
    ),
    tickMs,
    electionTicks,
    snapshotEntries: integer(
      "snapshotEntries",
      m.snapshotEntries,
      10,
      100_000_000,
    ),
    requestTimeoutMs: integer(
      "requestTimeoutMs",
      m.requestTimeoutMs,
      10,
      600_000,
    ),
    readOnly: m.readOnly,
    httpsCertFile,
    httpsKeyFile,
    bodyLimitBytes: integer(
      "bodyLimitBytes",
      m.bodyLimitBytes,
      1024,
      64 * 1024 * 1024,
    ),
    autoPromote: m.autoPromote === true,
    forceNewCluster: m.forceNewCluster === true,
    allowMissingLog: m.allowMissingLog === true,
    name,
  };
}

function tokenList(value: unknown, name: string): readonly string[] {
  const tokens = value ?? [];
  if (
    !Array.isArray(tokens) ||
    tokens.some((t) => typeof t !== "string" || t.length < 16)
  ) {
    throw new RangeError(
      `Cannot start node as every one of '${name}' must be a string of at least 16 characters`,
    );
  }
  return tokens;
}

function stringList(value: unknown, name: string): readonly string[] {
  const list = value ?? [];
  if (!Array.isArray(list) || list.some((t) => typeof t !== "string")) {
    throw new TypeError(
      `Cannot start node as '${name}' must be a list of strings`,
    );
  }
  return list;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" ||
    host.startsWith("127.");
}
