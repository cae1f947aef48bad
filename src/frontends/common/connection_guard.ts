/**
 * The HTTP listener's front: Aspen accepts TCP (or TLS) connections itself
 * and relays each to the `Deno.serve` HTTP server behind it (on a free
 * loopback port, still behind the token checks), because `Deno.serve` has
 * no knob for any of these:
 *
 * - a cap on open connections per listener and per remote address (past it
 *   a new connection is closed at once);
 * - a TLS handshake and request-header deadline, a request-body deadline,
 *   and an idle keep-alive deadline (a connection waiting on a response,
 *   such as a watch stream or a queue listen, is not idle);
 * - accept errors (`EMFILE` when out of descriptors…) are logged, backed off
 *   and survived, never thrown.
 *
 * The request and response framing of plain HTTP is followed with
 * `http-parser-js` (see `_http_framing.ts`); bytes are relayed untouched.
 * TLS is relayed as bytes and ends at the inner server (a pending
 * `Deno.TlsConn` handshake cannot be aborted: closing it leaves its socket
 * open), so over TLS the guard sees traffic, not requests: the first answer
 * byte must come within the header deadline (a stalled handshake), and a
 * connection is idle after no byte either way for the idle deadline, at
 * least {@linkcode RAW_IDLE_MIN_MS}.
 *
 * @module
 */
import { HttpFraming } from "./_http_framing.ts";

/** Limits of {@linkcode serveGuarded}. */
export interface ConnectionLimits {
  /** Open connections at most. */
  readonly connectionsMax: number;
  /** Open connections one remote address may hold. */
  readonly perAddressMax: number;
  /** TLS handshake plus a request's headers, in ms. */
  readonly headerTimeoutMs: number;
  /** A request's body, from the end of its headers, in ms. */
  readonly bodyTimeoutMs: number;
  /** An idle keep-alive connection (nothing in flight), in ms. */
  readonly idleTimeoutMs: number;
}

/** Why the guard closed a connection, as counted in {@linkcode GuardStats}. */
export type CloseReason =
  | "connectionsMax"
  | "perAddressMax"
  | "headerTimeout"
  | "bodyTimeout"
  | "idleTimeout";

/** Counters of a guarded listener. */
export interface GuardStats {
  /** Connections open now. */
  readonly open: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  /** Connections the guard closed, by reason. */
  readonly closed: Readonly<Record<CloseReason, number>>;
  /** Accept calls that failed (and were retried). */
  readonly acceptErrors: number;
}

/** Options of {@linkcode serveGuarded}. */
export interface GuardedServeOptions {
  readonly hostname: string;
  readonly port: number;
  /** PEM certificate and key: TLS on the outside. */
  readonly tls?: { readonly cert: string; readonly key: string };
  readonly limits: ConnectionLimits;
  /** Reports accept errors (rate-limited: one line per second at most). */
  readonly log?: (line: string) => void;
}

/** A guarded HTTP listener. */
export interface GuardedServer {
  /** The outer (public) address. */
  readonly addr: Deno.NetAddr;
  stats(): GuardStats;
  /** Stops accepting, lets in-flight requests finish, then closes everything. */
  shutdown(): Promise<void>;
}

/** Default limits (see the table in docs/architecture.md). */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  connectionsMax: 512,
  perAddressMax: 64,
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
};

const SWEEP_INTERVAL_MS = 200;
/** Shortest idle deadline over TLS: longer than the longest queue listen (60 s). */
export const RAW_IDLE_MIN_MS = 75_000;
const RELAY_BUFFER_BYTES = 64 * 1024;
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 1_000;

interface Relay {
  readonly outer: Deno.Conn;
  inner: Deno.Conn | null;
  readonly address: string;
  readonly acceptedMs: number;
  readonly framing: HttpFraming;
  /** Last byte either way (ms). */
  lastActivityMs: number;
  /** TLS bytes: the framing cannot be seen, only traffic. */
  readonly raw: boolean;
  /** The server has sent a byte (for TLS: the handshake got an answer). */
  serverSpoke: boolean;
  closed: boolean;
}

/**
 * Serves `handler` behind a guarded listener.
 *
 * @throws {RangeError} When a limit is not a positive integer.
 */
export function serveGuarded(
  handler: (request: Request) => Response | Promise<Response>,
  options: GuardedServeOptions,
): GuardedServer {
  const { limits } = options;
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new RangeError(
        `Cannot serve HTTP as '${name}' must be a positive integer: current value is ${value}`,
      );
    }
  }
  const log = options.log ?? ((line: string) => console.error(line));
  // TLS ends at the inner server: closing a Deno.TlsConn whose handshake is
  // pending does not close its socket (Deno 2.9.6), so the guard only ever
  // holds plain TCP sockets it can close.
  const inner = startInner(handler, options.tls);
  const raw = options.tls !== undefined;
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
  });
  const relays = new Set<Relay>();
  const perAddress = new Map<string, number>();
  const closed: Record<CloseReason, number> = {
    connectionsMax: 0,
    perAddressMax: 0,
    headerTimeout: 0,
    bodyTimeout: 0,
    idleTimeout: 0,
  };
  let accepted = 0;
  let acceptErrors = 0;
  let lastAcceptLogMs = -Infinity;
  let stopping = false;

  const release = (relay: Relay) => {
    if (relay.closed) return;
    relay.closed = true;
    relays.delete(relay);
    const left = (perAddress.get(relay.address) ?? 1) - 1;
    if (left <= 0) perAddress.delete(relay.address);
    else perAddress.set(relay.address, left);
    closeQuietly(relay.outer);
    if (relay.inner !== null) closeQuietly(relay.inner);
  };
  const expire = (relay: Relay, reason: CloseReason) => {
    if (relay.closed) return;
    closed[reason]++;
    release(relay);
  };

  const sweep = setInterval(() => {
    const now = performance.now();
    for (const relay of relays) {
      const reason = overdue(relay, now, limits);
      if (reason !== null) expire(relay, reason);
    }
  }, SWEEP_INTERVAL_MS);

  const serveRelay = async (relay: Relay) => {
    try {
      if (relay.closed) return;
      relay.inner = await inner.connect();
      if (relay.closed) {
        closeQuietly(relay.inner);
        return;
      }
      const innerConn = relay.inner;
      const activity = () => relay.lastActivityMs = performance.now();
      await Promise.all([
        pump(relay.outer, innerConn, (chunk) => {
          activity();
          relay.framing.fromClient(chunk);
        }).then(() => innerConn.closeWrite().catch(() => {})),
        pump(innerConn, relay.outer, (chunk) => {
          activity();
          relay.serverSpoke = true;
          relay.framing.fromServer(chunk);
        }).then(() => release(relay)),
      ]);
    } catch {
      // Either side went away: close both.
    } finally {
      release(relay);
    }
  };

  const acceptLoop = (async () => {
    let backoffMs = BACKOFF_MIN_MS;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
        backoffMs = BACKOFF_MIN_MS;
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) break;
        acceptErrors++;
        const now = performance.now();
        if (now - lastAcceptLogMs >= 1_000) {
          lastAcceptLogMs = now;
          log(
            `http: accept failed (${
              (error as Error).message
            }); retrying in ${backoffMs} ms`,
          );
        }
        await sleep(backoffMs);
        backoffMs = Math.min(BACKOFF_MAX_MS, backoffMs * 2);
        continue;
      }
      accepted++;
      const address = (conn.remoteAddr as Deno.NetAddr).hostname;
      if (relays.size >= limits.connectionsMax) {
        closed.connectionsMax++;
        closeQuietly(conn);
        continue;
      }
      const held = perAddress.get(address) ?? 0;
      if (held >= limits.perAddressMax) {
        closed.perAddressMax++;
        closeQuietly(conn);
        continue;
      }
      perAddress.set(address, held + 1);
      const now = performance.now();
      const relay: Relay = {
        outer: conn,
        inner: null,
        address,
        acceptedMs: now,
        framing: new HttpFraming(() => performance.now(), !raw),
        lastActivityMs: now,
        raw,
        serverSpoke: false,
        closed: false,
      };
      relays.add(relay);
      void serveRelay(relay);
    }
  })();

  let stopped: Promise<void> | null = null;
  return {
    addr: listener.addr as Deno.NetAddr,
    stats: () => ({
      open: relays.size,
      accepted,
      closed: { ...closed },
      acceptErrors,
    }),
    shutdown: () =>
      stopped ??= (async () => {
        stopping = true;
        closeQuietly(listener);
        await acceptLoop;
        // In-flight requests finish; idle keep-alive connections are closed.
        await inner.shutdown();
        clearInterval(sweep);
        for (const relay of [...relays]) release(relay);
      })(),
  };
}

/** The deadline a connection has passed, if any. */
function overdue(
  relay: Relay,
  now: number,
  limits: ConnectionLimits,
): CloseReason | null {
  if (relay.raw) {
    // No ServerHello yet: the ClientHello is late (a stalled handshake).
    if (!relay.serverSpoke) {
      return now - relay.acceptedMs > limits.headerTimeoutMs
        ? "headerTimeout"
        : null;
    }
    // Requests are not visible: a connection is idle after no byte either
    // way for the idle deadline, and never before the longest queue listen.
    return now - relay.lastActivityMs >
        Math.max(limits.idleTimeoutMs, RAW_IDLE_MIN_MS)
      ? "idleTimeout"
      : null;
  }
  const { framing } = relay;
  if (framing.parsed && framing.phase === "headers") {
    return now - framing.phaseSinceMs > limits.headerTimeoutMs
      ? "headerTimeout"
      : null;
  }
  if (framing.parsed && framing.phase === "body") {
    return now - framing.phaseSinceMs > limits.bodyTimeoutMs
      ? "bodyTimeout"
      : null;
  }
  if (framing.parsed && framing.outstanding > 0) return null;
  if (!framing.parsed || relay.lastActivityMs > relay.acceptedMs) {
    return now - relay.lastActivityMs > limits.idleTimeoutMs
      ? "idleTimeout"
      : null;
  }
  // Nothing sent since the connection opened: the first request's headers are late.
  return now - framing.phaseSinceMs > limits.headerTimeoutMs
    ? "headerTimeout"
    : null;
}

async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  seen: (chunk: Uint8Array) => void,
): Promise<void> {
  const buffer = new Uint8Array(RELAY_BUFFER_BYTES);
  for (;;) {
    const n = await from.read(buffer);
    if (n === null) return;
    const chunk = buffer.subarray(0, n);
    seen(chunk);
    let written = 0;
    while (written < n) written += await to.write(chunk.subarray(written));
  }
}

interface Inner {
  connect(): Promise<Deno.Conn>;
  shutdown(): Promise<void>;
}

function startInner(
  handler: (request: Request) => Response | Promise<Response>,
  tls: { readonly cert: string; readonly key: string } | undefined,
): Inner {
  // Loopback TCP: a Unix socket would need a net permission for its path.
  const server = Deno.serve({
    onListen: () => {},
    onError: internalError,
    hostname: "127.0.0.1",
    port: 0,
    ...(tls ?? {}),
  }, handler);
  const port = server.addr.port;
  return {
    connect: () => Deno.connect({ hostname: "127.0.0.1", port }),
    shutdown: () => server.shutdown(),
  };
}

function internalError(): Response {
  // Never the error's text: it is logged by the app's own error mapping.
  return new Response(
    JSON.stringify({
      error: {
        code: "internal",
        message: "Internal error: see the node's log",
        details: {},
      },
    }),
    { status: 500, headers: { "content-type": "application/json" } },
  );
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
