/**
 * Requests to a cluster's nodes: bounded attempts, a deadline per attempt,
 * idempotent requests retried on any node, writes sent to the known leader
 * and retried when the node said nothing happened (503) or sent us to the
 * leader (421). KV writes carry a session (client id, sequence number) that
 * the cluster deduplicates, so they are also retried when their outcome is
 * unknown; typed errors are rebuilt from the wire. A retry goes to the next
 * node at once (pausing only when it returns to a node the request already
 * tried), and a node that refused a connection is passed over for a while.
 *
 * @module
 */
import {
  type BodyFormat,
  contentTypeOf,
  decodeBody,
  encodeBody,
} from "../protocol/http_api_codec.ts";
import {
  type AspenError,
  errorFromWire,
  NotLeaderError,
  TimeoutError,
  UnavailableError,
  WrongClusterError,
} from "./errors.ts";
import { ROUTES } from "../protocol/http_api.ts";
import { AttemptDeadline } from "./_deadline.ts";

/** Writes that carry a session (exactly-once): set, delete, atomic. */
const SESSION_PATHS: ReadonlySet<string> = new Set([
  ROUTES.kvSet,
  ROUTES.kvDelete,
  ROUTES.kvAtomic,
]);

/** How a request may be retried. */
export type RequestKind =
  /** Reads: retried on any node after a failure. */
  | "idempotent"
  /** Writes: retried only when the node says nothing happened. */
  | "write"
  /** Writes with a session: also retried when their outcome is unknown. */
  | "sessionWrite";

/** Options of {@linkcode HttpTransport}. */
export interface TransportOptions {
  readonly urls: readonly string[];
  readonly token: string | undefined;
  readonly timeoutMs: number;
  readonly format: BodyFormat;
  readonly attemptsMax: number;
  readonly fetch: typeof fetch;
  /** The cluster every answering node must belong to (from a ticket). */
  readonly clusterId?: string;
  /** Ms a node that refused a connection is passed over. Default {@linkcode DOWN_MS}. */
  readonly downMs?: number;
}

/** Request header naming the cluster the client expects; response header naming the node's. */
export const CLUSTER_ID_HEADER = "aspen-cluster-id";

/**
 * Pauses before an attempt that goes back to a node this request already
 * tried, in ms, indexed by how many such returns came before (last
 * repeats). The time the failed attempt itself took counts towards the
 * pause: an attempt that waited out its deadline is retried at once. An
 * attempt on a node not tried yet in this request is sent at once.
 */
const BACKOFF_MS = [50, 100, 200, 400];

/**
 * Ms a node that refused a connection (its process is gone) is passed over
 * when picking the next node, unless every other node is too.
 */
export const DOWN_MS = 1_000;

/** A connection failed before the request was sent (safe to retry a write). */
function connectFailed(error: unknown): boolean {
  const pattern =
    /connection refused|tcp connect error|dns error|os error 111/i;
  // Deno wraps the reason in causes: "fetch failed" ← "… Connection refused".
  let cause = error;
  for (let depth = 0; cause instanceof Error && depth < 4; depth++) {
    if (pattern.test(cause.message)) return true;
    cause = cause.cause;
  }
  return false;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Sends API requests to a set of nodes. */
export class HttpTransport {
  readonly #options: TransportOptions;
  readonly #urls: string[];
  /** Index of the node to try first (the leader when known). */
  #preferred = 0;
  /** Until when (`performance.now()` ms) each node is passed over, by index. */
  readonly #downUntil: number[] = [];
  readonly #closing = new AbortController();

  /** This client's session id: its writes are applied once even when retried. */
  readonly #clientId: string = crypto.randomUUID();
  #seq = 0;

  /** The cluster every node must belong to: the ticket's, else the first answer's. */
  #clusterId: string | undefined;

  constructor(options: TransportOptions) {
    if (options.urls.length === 0) {
      throw new TypeError("Cannot connect: no node URL given");
    }
    this.#options = options;
    this.#clusterId = options.clusterId;
    this.#urls = options.urls.map((url) => url.replace(/\/+$/, ""));
  }

  /** The node URLs, preferred first. */
  get urls(): readonly string[] {
    return [
      ...this.#urls.slice(this.#preferred),
      ...this.#urls.slice(0, this.#preferred),
    ];
  }

  /** Aborts in-flight requests; later requests fail. */
  close(): void {
    this.#closing.abort();
  }

  /** The deadline of one request, in ms. */
  get timeoutMs(): number {
    return this.#options.timeoutMs;
  }

  /** Aborted once {@linkcode close} was called. */
  get closed(): AbortSignal {
    return this.#closing.signal;
  }

  /**
   * Opens a streaming POST (JSON body) on the preferred node and returns the
   * response body; a node that cannot be reached is skipped for the next call.
   *
   * @throws {AspenError} The typed error of a refused request.
   * @throws {UnavailableError} When the node cannot be reached.
   */
  async stream(
    path: string,
    body: unknown,
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const index = this.#preferred % this.#urls.length;
    const url = this.#urls[index]!;
    const headers: Record<string, string> = {
      "content-type": contentTypeOf("json"),
      accept: contentTypeOf("json"),
    };
    if (this.#options.token !== undefined) {
      headers["authorization"] = `Bearer ${this.#options.token}`;
    }
    if (this.#clusterId !== undefined) {
      headers[CLUSTER_ID_HEADER] = this.#clusterId;
    }
    let response: Response;
    try {
      response = await this.#options.fetch(url + path, {
        method: "POST",
        headers,
        body: encodeBody(body, "json"),
        signal: AbortSignal.any([signal, this.#closing.signal]),
      });
    } catch (error) {
      if (connectFailed(error)) this.#markDown(index);
      this.#advance(index);
      throw new UnavailableError(
        "unavailable",
        `Cannot reach ${url}: ${(error as Error).message}`,
        { cause: error, url },
      );
    }
    const wrong = this.#wrongCluster(response, url);
    if (wrong !== null) {
      await response.body?.cancel();
      this.#advance(index);
      throw wrong;
    }
    if (response.ok && response.body !== null) return response.body;
    let decoded: unknown = null;
    try {
      decoded = decodeBody(
        new Uint8Array(await response.arrayBuffer()),
        "json",
      );
    } catch {
      decoded = null;
    }
    const error = errorFromWire(response.status, decoded, url);
    if (error instanceof UnavailableError) this.#advance(index);
    throw error;
  }

  /** Prefers `url` (adding it when new), e.g. the leader. */
  prefer(url: string | null): void {
    if (url === null) return;
    const normalized = url.replace(/\/+$/, "");
    let index = this.#urls.indexOf(normalized);
    if (index === -1) index = this.#urls.push(normalized) - 1;
    this.#preferred = index;
  }

  /** Passes over node `index` for {@linkcode DOWN_MS} when picking the next. */
  #markDown(index: number): void {
    this.#downUntil[index] = performance.now() +
      (this.#options.downMs ?? DOWN_MS);
  }

  /**
   * After a failure on node `from`: moves the preference to the next node in
   * order that is not marked down. When another request already moved it
   * away from `from` to a node not marked down, it stays there. When every
   * other node is down, it stays on `from` unless that one is down too.
   */
  #advance(from: number): void {
    const count = this.#urls.length;
    const now = performance.now();
    const up = (index: number) => (this.#downUntil[index] ?? 0) <= now;
    if (this.#preferred !== from && up(this.#preferred)) return;
    for (let step = 1; step < count; step++) {
      const index = (from + step) % count;
      if (up(index)) {
        this.#preferred = index;
        return;
      }
    }
    this.#preferred = up(from) ? from : (from + 1) % count;
  }

  /**
   * Sends a request and returns the decoded reply body.
   *
   * @throws {AspenError} The typed error of a refused request.
   * @throws {TimeoutError} With `outcomeUnknown` for a write without an answer.
   * @throws {UnavailableError} When every attempt failed without an answer.
   */
  async request(
    method: "GET" | "POST",
    path: string,
    body: unknown,
    kind: RequestKind,
  ): Promise<unknown> {
    if (this.#closing.signal.aborted) {
      throw new UnavailableError(
        "unavailable",
        "Cannot send request: the client is closed",
      );
    }
    // A KV write carries the session once; every retry repeats the same
    // sequence number, so the cluster applies it at most once.
    const session = kind === "write" && SESSION_PATHS.has(path) &&
      typeof body === "object" && body !== null;
    if (session) {
      body = {
        ...(body as Record<string, unknown>),
        session: { clientId: this.#clientId, seq: this.#seq++ },
      };
    }
    let lastError: AspenError | null = null;
    // Once an attempt's outcome is unknown (it may have applied), a later
    // "nothing happened" answer describes only that later attempt: the
    // request's outcome stays unknown, and that is what is reported.
    let unknown: AspenError | null = null;
    const failure = (error: AspenError): AspenError =>
      unknown !== null &&
        !(error instanceof TimeoutError && error.outcomeUnknown)
        ? unknown
        : error;
    // Nodes tried by this request; going back to one of them pauses first.
    const tried = new Set<string>();
    let returns = 0;
    let attemptMs = 0;
    for (let attempt = 0; attempt < this.#options.attemptsMax; attempt++) {
      const index = this.#preferred % this.#urls.length;
      const url = this.#urls[index]!;
      if (tried.has(url)) {
        const backoff = BACKOFF_MS[Math.min(returns, BACKOFF_MS.length - 1)]!;
        returns++;
        await sleep(Math.max(0, backoff - attemptMs), this.#closing.signal);
      }
      tried.add(url);
      const started = performance.now();
      const outcome = await this.#attempt(
        url,
        method,
        path,
        body,
        session ? "sessionWrite" : kind,
      );
      attemptMs = performance.now() - started;
      if (outcome.ok) return outcome.body;
      lastError = outcome.error;
      if (
        outcome.error instanceof TimeoutError && outcome.error.outcomeUnknown
      ) unknown = outcome.error;
      if (!outcome.retry || this.#closing.signal.aborted) {
        throw failure(outcome.error);
      }
      if (
        outcome.error instanceof NotLeaderError &&
        outcome.error.leaderUrl !== null
      ) {
        this.prefer(outcome.error.leaderUrl);
      } else {
        if (outcome.down) this.#markDown(index);
        this.#advance(index);
      }
    }
    if (lastError !== null) throw failure(lastError);
    throw new UnavailableError(
      "unavailable",
      "Cannot send request: no attempt made",
    );
  }

  async #attempt(
    url: string,
    method: "GET" | "POST",
    path: string,
    body: unknown,
    kind: RequestKind,
  ): Promise<
    { ok: true; body: unknown } | {
      ok: false;
      error: AspenError;
      retry: boolean;
      /** The node refused the connection: its process is not there. */
      down?: boolean;
    }
  > {
    const { format, timeoutMs, token } = this.#options;
    const headers: Record<string, string> = { accept: contentTypeOf(format) };
    if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
    if (this.#clusterId !== undefined) {
      headers[CLUSTER_ID_HEADER] = this.#clusterId;
    }
    if (body !== undefined) headers["content-type"] = contentTypeOf(format);
    const timeout = new AttemptDeadline(timeoutMs, this.#closing.signal);
    let response: Response;
    let bytes: Uint8Array;
    try {
      response = await this.#options.fetch(url + path, {
        method,
        headers,
        body: body === undefined ? undefined : encodeBody(body, format),
        signal: timeout.signal,
      });
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      const where = `${method} ${url}${path}`;
      if (this.#closing.signal.aborted) {
        return {
          ok: false,
          retry: false,
          error: new TimeoutError(
            `Request ${where} aborted: the client was closed`,
            kind === "write",
            { cause: error, url },
          ),
        };
      }
      const refused = connectFailed(error);
      if (kind === "idempotent" || refused) {
        const reason = timeout.timedOut
          ? `no answer within ${timeoutMs} ms`
          : (error as Error).message;
        return {
          ok: false,
          retry: true,
          down: refused,
          error: new UnavailableError(
            "unavailable",
            `Cannot reach ${url}: ${reason}`,
            { cause: error, url },
          ),
        };
      }
      return {
        ok: false,
        // A session write may be retried: the cluster answers a duplicate
        // with the first result instead of applying it again.
        retry: kind === "sessionWrite",
        error: new TimeoutError(
          timeout.timedOut
            ? `Write ${where} got no answer within ${timeoutMs} ms: its outcome is unknown`
            : `Write ${where} failed in flight: its outcome is unknown: ${
              (error as Error).message
            }`,
          true,
          { cause: error, url },
        ),
      };
    } finally {
      timeout.end();
    }
    // A node of another cluster: what it answered is not this cluster's.
    const wrong = this.#wrongCluster(response, url);
    if (wrong !== null) return { ok: false, error: wrong, retry: true };
    const type = response.headers.get("content-type") ?? "";
    let decoded: unknown = null;
    try {
      decoded = type.includes("msgpack")
        ? decodeBody(bytes, "msgpack")
        : type.includes("json")
        ? decodeBody(bytes, "json")
        : new TextDecoder().decode(bytes);
    } catch {
      decoded = null;
    }
    if (response.ok) return { ok: true, body: decoded };
    const error = errorFromWire(response.status, decoded, url);
    const retry = error instanceof UnavailableError ||
      // Refused before anything was applied: try the ticket's other nodes.
      error instanceof WrongClusterError ||
      (error instanceof NotLeaderError && error.leaderUrl !== null) ||
      (kind === "sessionWrite" && error instanceof TimeoutError &&
        error.outcomeUnknown);
    return { ok: false, error, retry };
  }

  /** A `WrongClusterError` when the node answered with another cluster's id. */
  #wrongCluster(response: Response, url: string): WrongClusterError | null {
    const expected = this.#clusterId;
    const actual = response.headers.get(CLUSTER_ID_HEADER);
    // Given URLs only, the first answer names the cluster; later ones must match.
    if (expected === undefined && actual !== null) this.#clusterId = actual;
    if (expected === undefined || actual === null || actual === expected) {
      return null;
    }
    return new WrongClusterError(
      "wrongCluster",
      `Node ${url} belongs to cluster ${actual}, not ${expected} (${
        this.#options.clusterId === undefined
          ? "the cluster of the first node that answered"
          : "the ticket's"
      })`,
      { status: response.status, url, details: {} },
    );
  }
}
