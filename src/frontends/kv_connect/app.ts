/**
 * The KV Connect server (denoland/denokv `proto/kv-connect.md`, protocol 3,
 * 2 accepted) as a Hono sub-app over a {@linkcode KvBackend}, so stock
 * `Deno.openKv("http://…")` clients work against Aspen.
 *
 * Answers and why:
 * - Deterministic refusals (bad headers, malformed protobuf, bad
 *   versionstamp, limits, type mismatch, unsupported features) are 4xx with
 *   a plain-text message: stock clients throw them at once.
 * - A failed check is a normal `AtomicWriteOutput` with `AW_CHECK_FAILURE`.
 * - `KvUnavailableError` (nothing was proposed) is 503: stock clients retry
 *   it forever, which is safe.
 * - A commit whose outcome is unknown (`KvOutcomeUnknownError`, or any
 *   unexpected error while committing) is never 5xx, since a stock client
 *   would resend it without a request id and could apply it twice. It is
 *   409 with a message saying the write may have been committed; the stock
 *   client throws it. What remains possible: the write did apply, and the
 *   caller, if it retries blindly, applies it again (use an atomic check to
 *   make a retry safe).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import {
  type KvBackend,
  type KvConsistency,
  KvOutcomeUnknownError,
  KvUnavailableError,
} from "../../services/kv/api.ts";
import {
  invalidProtobuf,
  KV_CONNECT_MESSAGES as M,
  KvConnectError,
} from "./errors.ts";
import {
  badRequestOf,
  toAtomicOperation,
  toPbEntry,
  toReadRanges,
  toWatchKeys,
} from "./convert.ts";
import {
  AtomicWriteStatus,
  decodeAtomicWrite,
  decodeSnapshotRead,
  decodeWatch,
  encodeAtomicWriteOutput,
  encodeSnapshotReadOutput,
  type PbAtomicWriteOutput,
  ProtobufDecodeError,
  SnapshotReadStatus,
} from "./proto.ts";
import { readBodyBounded, TokenChecker } from "./_request.ts";
import { type DataPathClient, DataPathTokens } from "./_data_token.ts";
import { ResendTracker } from "./_resend_tracker.ts";
import { DELIVERY_MARK_DELAY_MS, DeliveryMarks } from "./_delivery_marks.ts";
import { versionstampIndex } from "../../model/versionstamp.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { watchResponseStream } from "./_watch_stream.ts";
import { StreamBudget, StreamBudgetError } from "../common/stream_budget.ts";

/** Options of {@linkcode kvConnectApp}. */
export interface KvConnectAppOptions {
  /** What serves the data. */
  readonly backend: KvBackend;
  /** Accepted access tokens (at least one, none empty); compared in constant time. */
  readonly tokens: readonly string[];
  /**
   * This node's base URL as clients reach it (`http://10.0.0.1:8080`), or a
   * function returning it (for a port known only after listening). Default:
   * the origin of each metadata request.
   */
  readonly selfUrl?: string | (() => string);
  /** Path of the metadata exchange (the URL given to `Deno.openKv`). Default `/`. */
  readonly path?: string;
  /** How long returned metadata stays valid, in ms; at least one hour. Default 2 hours. */
  readonly metadataTtlMs?: number;
  /** Interval of zero-length watch pings, in ms. Default 5000 (denokv's). */
  readonly watchPingIntervalMs?: number;
  /** Largest data-path request body, in bytes. Default 1 MiB + 64 KiB. */
  readonly requestBodyBytesMax?: number;
  /** The clock, Unix ms. Default `Date.now`. */
  readonly now?: () => number;
  /** The node's budget of long-lived streams (watches). Default: a budget of its own. */
  readonly streams?: StreamBudget;
  /**
   * How long after a stock write's answer went out its delivery mark is
   * proposed, in ms (see `_delivery_marks.ts`). Default 1000; 0 only where
   * no process can die between answering and the client reading the answer.
   */
  readonly deliveryMarkDelayMs?: number;
}

/** Protocol versions this server speaks, preferred first. */
export const KV_CONNECT_VERSIONS = [3, 2] as const;
/** Default {@linkcode KvConnectAppOptions.requestBodyBytesMax}. */
export const REQUEST_BODY_BYTES_MAX = 1024 * 1024 + 64 * 1024;
/** Largest metadata exchange request body, in bytes. */
export const METADATA_BODY_BYTES_MAX = 16 * 1024;
const HOUR_MS = 60 * 60 * 1000;
const UUID_LOWERCASE =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const DATA_PATH_METHODS = ["snapshot_read", "atomic_write", "watch"] as const;
type DataPathMethod = (typeof DATA_PATH_METHODS)[number];

interface ResolvedOptions {
  readonly backend: KvBackend;
  readonly streams: StreamBudget;
  readonly tokens: TokenChecker;
  readonly dataTokens: DataPathTokens;
  readonly resends: ResendTracker;
  readonly marks: DeliveryMarks;
  readonly selfUrl: (c: Context) => string;
  readonly prefix: string;
  readonly metadataTtlMs: number;
  readonly watchPingIntervalMs: number;
  readonly requestBodyBytesMax: number;
  readonly now: () => number;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Cannot create KV Connect app: '${name}' must be a positive integer: current value is ${value}`,
    );
  }
  return value;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot create KV Connect app: '${name}' must be a non-negative integer: current value is ${value}`,
    );
  }
  return value;
}

function resolveOptions(options: KvConnectAppOptions): ResolvedOptions {
  const path = options.path ?? "/";
  if (!path.startsWith("/") || (path.length > 1 && path.endsWith("/"))) {
    throw new TypeError(
      `Cannot create KV Connect app: 'path' must start with '/' and not end with '/': current value is '${path}'`,
    );
  }
  if (!UUID_LOWERCASE.test(options.backend.databaseId)) {
    throw new TypeError(
      `Cannot create KV Connect app: the backend's 'databaseId' must be a lowercase UUID: current value is '${options.backend.databaseId}'`,
    );
  }
  const metadataTtlMs = positiveInteger(
    "metadataTtlMs",
    options.metadataTtlMs ?? 2 * HOUR_MS,
  );
  if (metadataTtlMs < HOUR_MS) {
    throw new RangeError(
      `Cannot create KV Connect app: 'metadataTtlMs' must be at least one hour: current value is ${metadataTtlMs}`,
    );
  }
  const { selfUrl } = options;
  const now = options.now ?? Date.now;
  return {
    backend: options.backend,
    streams: options.streams ?? new StreamBudget(),
    tokens: new TokenChecker(options.tokens),
    dataTokens: new DataPathTokens(options.tokens),
    resends: new ResendTracker(now),
    marks: new DeliveryMarks(options.backend, {
      delayMs: nonNegativeInteger(
        "deliveryMarkDelayMs",
        options.deliveryMarkDelayMs ?? DELIVERY_MARK_DELAY_MS,
      ),
    }),
    selfUrl: selfUrl === undefined
      ? (c) => new URL(c.req.url).origin
      : typeof selfUrl === "string"
      ? () => selfUrl
      : () => selfUrl(),
    prefix: path === "/" ? "" : path,
    metadataTtlMs,
    watchPingIntervalMs: positiveInteger(
      "watchPingIntervalMs",
      options.watchPingIntervalMs ?? 5000,
    ),
    requestBodyBytesMax: positiveInteger(
      "requestBodyBytesMax",
      options.requestBodyBytesMax ?? REQUEST_BODY_BYTES_MAX,
    ),
    now,
  };
}

function negotiateVersion(body: Uint8Array): number {
  if (body.length === 0) {
    throw new KvConnectError(400, M.minimumProtocolVersion);
  }
  let request: unknown;
  try {
    request = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new KvConnectError(
      400,
      `Invalid metadata exchange request: ${(error as Error).message}`,
    );
  }
  const versions = (request as { supportedVersions?: unknown })
    ?.supportedVersions;
  if (
    !Array.isArray(versions) || !versions.every((v) => typeof v === "number")
  ) {
    throw new KvConnectError(
      400,
      "Invalid metadata exchange request: 'supportedVersions' must be an array of numbers",
    );
  }
  const version = KV_CONNECT_VERSIONS.find((v) => versions.includes(v));
  if (version === undefined) {
    throw new KvConnectError(400, M.noMatchingProtocolVersion);
  }
  return version;
}

async function metadataExchange(
  c: Context,
  options: ResolvedOptions,
): Promise<Response> {
  const token = options.tokens.check(c.req.header("authorization") ?? null);
  const body = await readBodyBounded(c.req.raw, METADATA_BODY_BYTES_MAX);
  const version = negotiateVersion(body);
  const base = `${options.selfUrl(c).replace(/\/+$/, "")}${options.prefix}`;
  const expiresAtMs = options.now() + options.metadataTtlMs;
  // Exactly the keys the stock clients accept, no more. The token is this
  // client's own data-path token, so its resends can be recognised.
  const metadata = {
    version,
    databaseId: options.backend.databaseId,
    endpoints: [
      { url: `${base}/strong`, consistency: "strong" },
      { url: `${base}/eventual`, consistency: "eventual" },
    ],
    token: options.dataTokens.issue(token, expiresAtMs),
    expiresAt: new Date(expiresAtMs).toISOString(),
  };
  return new Response(JSON.stringify(metadata), {
    headers: { "content-type": "application/json" },
  });
}

/**
 * Checks the data-path headers; returns the client of a data-path token (null
 * for a request authorised by an access token itself) and the bearer token,
 * which the stream budget counts against.
 */
function checkDataPathHeaders(
  c: Context,
  options: ResolvedOptions,
): { client: DataPathClient | null; token: string } {
  const version = c.req.header("x-denokv-version");
  if (version !== "2" && version !== "3") {
    throw new KvConnectError(400, M.invalidProtocolVersion);
  }
  const authorization = c.req.header("authorization") ?? null;
  const bearer = /^bearer (.+)$/i.exec(authorization ?? "")?.[1];
  const client = bearer === undefined
    ? null
    : options.dataTokens.verify(bearer, options.now());
  const token = client === null ? options.tokens.check(authorization) : bearer!;
  const databaseId = c.req.header("x-denokv-database-id");
  if (databaseId?.toLowerCase() !== options.backend.databaseId) {
    throw new KvConnectError(400, M.invalidDatabaseId);
  }
  return { client, token };
}

function decodeOrRefuse<T>(
  decode: (bytes: Uint8Array) => T,
  body: Uint8Array,
): T {
  try {
    return decode(body);
  } catch (error) {
    if (error instanceof ProtobufDecodeError) {
      throw invalidProtobuf(error.message, error);
    }
    throw error;
  }
}

function protobuf(bytes: Uint8Array): Response {
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: { "content-type": "application/x-protobuf" },
  });
}

async function snapshotRead(
  options: ResolvedOptions,
  consistency: KvConsistency,
  body: Uint8Array,
): Promise<Response> {
  const ranges = toReadRanges(decodeOrRefuse(decodeSnapshotRead, body));
  // No request signal: Deno.serve aborts it even after a successful answer.
  const outputs = await options.backend.read(ranges, consistency).catch((
    error,
  ) => {
    throw badRequestOf(error);
  });
  return protobuf(encodeSnapshotReadOutput({
    ranges: outputs.map((entries) => ({ values: entries.map(toPbEntry) })),
    readDisabled: false,
    readIsStronglyConsistent: consistency === "strong",
    status: SnapshotReadStatus.SR_SUCCESS,
  }));
}

async function atomicWrite(
  options: ResolvedOptions,
  body: Uint8Array,
  client: DataPathClient | null,
  signal: AbortSignal,
): Promise<Response> {
  const parsed = toAtomicOperation(
    decodeOrRefuse(decodeAtomicWrite, body),
    options.now(),
  );
  // A stock client's write carries who sent it and a digest of its bytes:
  // the only things a resend of it shares with the first attempt.
  const digest = client === null ? null : sha256(body);
  const tracked = client === null
    ? null
    : await options.resends.begin(client.clientId, digest!);
  const operation = client === null ? parsed : {
    ...parsed,
    resend: {
      clientId: client.clientId,
      digest: digest!,
      mergeable: tracked!.mergeable,
      atMs: options.now(),
    },
  };
  let output: PbAtomicWriteOutput;
  try {
    const result = await options.backend.commit(operation);
    if (result.ok) {
      output = {
        status: AtomicWriteStatus.AW_SUCCESS,
        versionstamp: result.versionstamp,
        failedChecks: [],
      };
    } else if (result.reason === "checkFailed") {
      output = {
        status: AtomicWriteStatus.AW_CHECK_FAILURE,
        versionstamp: new Uint8Array(0),
        failedChecks: [...result.failedChecks],
      };
    } else if (result.reason === "sessionExpired") {
      throw new KvOutcomeUnknownError(result.message);
    } else {
      throw new KvConnectError(
        result.reason === "sessionReused" ? 409 : 400,
        result.message,
      );
    }
  } catch (error) {
    tracked?.done(false);
    if (
      error instanceof KvConnectError || error instanceof KvUnavailableError
    ) {
      throw error;
    }
    const detail = error instanceof KvOutcomeUnknownError
      ? error.message
      : `unexpected ${(error as Error)?.name ?? "error"}`;
    throw new KvConnectError(
      409,
      `The outcome of this write is unknown: it may or may not have been committed; read before retrying: ${detail}`,
      { cause: error },
    );
  }
  // Delivered unless the client went away first (then it resends). A
  // delivered success is marked so in the cluster, so a later identical
  // write is not taken for its resend, even by a restarted node.
  const delivered = !signal.aborted;
  tracked?.done(
    delivered,
    delivered && client !== null &&
      output.status === AtomicWriteStatus.AW_SUCCESS
      ? options.marks.add({
        clientId: client.clientId,
        digest: digest!,
        index: versionstampIndex(output.versionstamp),
      })
      : undefined,
  );
  return protobuf(encodeAtomicWriteOutput(output));
}

function watch(
  options: ResolvedOptions,
  body: Uint8Array,
  token: string,
): Response {
  const keys = toWatchKeys(decodeOrRefuse(decodeWatch, body));
  let lease;
  try {
    lease = options.streams.acquire(token);
  } catch (error) {
    if (!(error instanceof StreamBudgetError)) throw error;
    throw new KvConnectError(
      error.scope === "node" ? 503 : 429,
      error.message,
    );
  }
  const stream = watchResponseStream(
    options.backend,
    keys,
    options.watchPingIntervalMs,
    lease.release,
  );
  return new Response(stream, {
    headers: { "content-type": "application/octet-stream" },
  });
}

async function dataPath(
  c: Context,
  options: ResolvedOptions,
  consistency: KvConsistency,
  method: DataPathMethod,
): Promise<Response> {
  const { client, token } = checkDataPathHeaders(c, options);
  const body = await readBodyBounded(c.req.raw, options.requestBodyBytesMax);
  switch (method) {
    case "snapshot_read":
      return await snapshotRead(options, consistency, body);
    case "atomic_write":
      return await atomicWrite(options, body, client, c.req.raw.signal);
    case "watch":
      return watch(options, body, token);
  }
}

function errorResponse(error: unknown): Response {
  const [status, message] = error instanceof KvConnectError
    ? [error.status, error.message]
    : error instanceof KvUnavailableError
    ? [503, M.tryAgain]
    : [500, M.internalServerError];
  return new Response(message, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/**
 * Builds the KV Connect app: `POST <path>` is the metadata exchange,
 * `POST <path>/strong/{snapshot_read,atomic_write,watch}` and
 * `POST <path>/eventual/…` the data path. Mount it with
 * `app.route("/", kvConnectApp(…))` or serve it directly.
 *
 * @example
 * ```ts
 * import { kvConnectApp } from "./app.ts";
 * import { LocalKvBackend } from "../../server/local_backend.ts";
 * import assert from "node:assert/strict";
 *
 * using backend = new LocalKvBackend();
 * const app = kvConnectApp({ backend, tokens: ["secret"], path: "/kv" });
 * const response = await app.request("http://127.0.0.1/kv", {
 *   method: "POST",
 *   headers: { authorization: "Bearer secret" },
 *   body: JSON.stringify({ supportedVersions: [1, 2, 3] }),
 * });
 * assert.equal((await response.json()).version, 3);
 * ```
 *
 * @throws {TypeError} For a bad path, token list or database id.
 * @throws {RangeError} For an out-of-range number option.
 */
export function kvConnectApp(options: KvConnectAppOptions): Hono {
  const resolved = resolveOptions(options);
  const { prefix } = resolved;
  const app = new Hono();
  app.post(prefix === "" ? "/" : prefix, (c) => metadataExchange(c, resolved));
  for (const consistency of ["strong", "eventual"] as const) {
    for (const method of DATA_PATH_METHODS) {
      app.post(
        `${prefix}/${consistency}/${method}`,
        (c) => dataPath(c, resolved, consistency, method),
      );
    }
  }
  app.all(`${prefix}/*`, () => {
    throw new KvConnectError(404, M.notFound);
  });
  app.onError((error) => errorResponse(error));
  return app;
}
