/**
 * The KV service's routes, `/v1/kv/...` (with the `/v1/kv/watch` stream):
 * parsed requests in, wire bodies out, every write validated against Deno
 * KV's limits before it is proposed. {@linkcode kvRoutes} registers them.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import {
  type KvBackend,
  type KvConsistency,
  KvOutcomeUnknownError,
} from "../../services/kv/api.ts";
import { decodeKey } from "../../model/key_codec.ts";
import {
  validateAtomic,
  validateReadKey,
  validateReadRanges,
} from "../../model/limits.ts";
import {
  applyCursor,
  encodeCursor,
  resolveSelector,
} from "../../model/range.ts";
import type {
  KvAtomicOperation,
  KvEnqueue,
  KvEntry,
  KvMutation,
  KvSession,
} from "../../model/types.ts";
import { versionstampToString } from "../../model/versionstamp.ts";
import type {
  CommitResponse,
  GetManyResponse,
  GetResponse,
  ListResponse,
  WireEntry,
} from "../../protocol/http_api.ts";
import { keyToWire, valueToWire } from "../../protocol/http_api_codec.ts";
import {
  CONTENT_TYPE_JSON_LINES,
  HTTP_API_LIMITS,
  ROUTES,
} from "../../protocol/http_api.ts";
import { concatBytes, equalBytes } from "../../base/bytes.ts";
import { HttpApiError } from "./_errors.ts";
import * as parse from "./_parse.ts";
import type { ParsedList } from "./_parse.ts";
import { reply } from "./_body.ts";
import {
  consistencyOf,
  type RequestTiming,
  type RouteContext,
  streamLease,
} from "./_route_context.ts";
import { watchLines } from "./_watch_stream.ts";

const ZERO = new Uint8Array([0]);

/** The wire form of a stored entry. */
export function entryToWire(entry: KvEntry): WireEntry {
  return {
    key: keyToWire(decodeKey(entry.key)),
    value: valueToWire(entry.value.encoding, entry.value.data),
    versionstamp: versionstampToString(entry.versionstamp),
  };
}

/** Reads keys from one consistent view; absent keys come back with null value. */
export async function getKeys(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  consistency: KvConsistency,
): Promise<WireEntry[]> {
  for (const key of keys) validateReadKey(key);
  validateReadRanges(keys.map(() => 1));
  const rows = await backend.read(
    keys.map((key) => ({
      start: key,
      end: concatBytes(key, ZERO),
      limit: 1,
      reverse: false,
    })),
    consistency,
  );
  return keys.map((key, i) => {
    const entry = rows[i]?.[0];
    if (entry !== undefined && equalBytes(entry.key, key)) {
      return entryToWire(entry);
    }
    return { key: keyToWire(decodeKey(key)), value: null, versionstamp: null };
  });
}

/** `POST /v1/kv/get` */
export async function get(
  backend: KvBackend,
  key: Uint8Array,
  consistency: KvConsistency,
): Promise<GetResponse> {
  const [entry] = await getKeys(backend, [key], consistency);
  return { entry: entry! };
}

/** `POST /v1/kv/get-many` */
export async function getMany(
  backend: KvBackend,
  keys: readonly Uint8Array[],
  consistency: KvConsistency,
): Promise<GetManyResponse> {
  if (keys.length === 0) return { entries: [] };
  return { entries: await getKeys(backend, keys, consistency) };
}

/** `POST /v1/kv/list`: one page, with the cursor after its last entry when more may follow. */
export async function list(
  backend: KvBackend,
  request: ParsedList,
  consistency: KvConsistency,
): Promise<ListResponse> {
  const { prefix, start, end } = request.selector;
  for (const key of [prefix, start, end]) {
    if (key !== undefined) validateReadKey(key);
  }
  const resolved = resolveSelector(request.selector);
  const range = request.cursor === undefined
    ? resolved
    : applyCursor(resolved, request.cursor, request.reverse);
  const [rows = []] = await backend.read([{
    start: range.start,
    end: range.end,
    limit: request.limit,
    reverse: request.reverse,
  }], consistency);
  const last = rows.at(-1);
  return {
    entries: rows.map(entryToWire),
    cursor: rows.length === request.limit && last !== undefined
      ? encodeCursor(resolved, last.key)
      : null,
  };
}

/**
 * Commits an atomic operation; a decided failure becomes the matching API
 * error (nothing changed).
 */
export async function commit(
  backend: KvBackend,
  operation: {
    checks: KvAtomicOperation["checks"];
    coordinationChecks?: KvAtomicOperation["coordinationChecks"];
    checkPositions?: KvAtomicOperation["checkPositions"];
    mutations: readonly KvMutation[];
    enqueues?: readonly KvEnqueue[];
    session?: KvSession;
  },
  nowMs: number,
): Promise<CommitResponse> {
  const full: KvAtomicOperation = {
    ...operation,
    enqueues: operation.enqueues ?? [],
  };
  validateAtomic(full, nowMs);
  const result = await backend.commit(full);
  if (result.ok) {
    return {
      ok: true,
      versionstamp: versionstampToString(result.versionstamp),
    };
  }
  switch (result.reason) {
    case "checkFailed":
      throw new HttpApiError(
        "checkFailed",
        `Atomic operation failed: check ${
          result.failedChecks.join(", ")
        } did not match`,
        { failedChecks: result.failedChecks },
      );
    case "typeMismatch":
      throw new HttpApiError("typeMismatch", result.message);
    case "leaseNotFound":
      throw new HttpApiError("leaseNotFound", result.message);
    case "limitExceeded":
      throw new HttpApiError("limitExceeded", result.message);
    case "unsupported":
      throw new HttpApiError("unsupported", result.message);
    case "invalidCommand":
      throw new HttpApiError("invalid", result.message);
    case "sessionReused":
      throw new HttpApiError("sessionReused", result.message);
    case "sessionExpired":
      throw new KvOutcomeUnknownError(result.message);
    case "topicNotFound":
    case "groupNotFound":
    case "staleGeneration":
    case "messageFinished":
    case "sequenceTooOld":
      throw new HttpApiError(result.reason, result.message, result.details);
  }
}

/** Registers the `/v1/kv/...` routes on `app`. */
export function kvRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body, now, streams } = ctx;
  // Each route marks its stages: body parsed, backend answered, reply built.
  const timed = (
    handle: (c: Context, timing: RequestTiming) => Promise<unknown>,
  ) =>
  async (c: Context) => {
    const timing = ctx.timing();
    const answer = await handle(c, timing);
    timing.answered();
    const response = reply(c, answer);
    timing.built();
    return response;
  };
  app.post(
    ROUTES.kvGet,
    timed(async (c, timing) => {
      const key = parse.parseGet(await body(c));
      const consistency = consistencyOf(c);
      timing.parsed();
      return await get(node.backend, key, consistency);
    }),
  );
  app.post(
    ROUTES.kvGetMany,
    timed(async (c, timing) => {
      const keys = parse.parseGetMany(await body(c));
      const consistency = consistencyOf(c);
      timing.parsed();
      return await getMany(node.backend, keys, consistency);
    }),
  );
  app.post(
    ROUTES.kvList,
    timed(async (c, timing) => {
      const request = parse.parseList(await body(c));
      const consistency = consistencyOf(c);
      timing.parsed();
      return await list(node.backend, request, consistency);
    }),
  );
  app.post(
    ROUTES.kvSet,
    timed(async (c, timing) => {
      const nowMs = now();
      const request = await body(c);
      const mutation = parse.parseSet(request, nowMs);
      const session = parse.parseSession(request);
      timing.parsed();
      return await commit(
        node.backend,
        { checks: [], mutations: [mutation], ...(session ? { session } : {}) },
        nowMs,
      );
    }),
  );
  app.post(
    ROUTES.kvDelete,
    timed(async (c, timing) => {
      const request = await body(c);
      const mutation = parse.parseDelete(request);
      const session = parse.parseSession(request);
      timing.parsed();
      return await commit(
        node.backend,
        { checks: [], mutations: [mutation], ...(session ? { session } : {}) },
        now(),
      );
    }),
  );
  app.post(
    ROUTES.kvAtomic,
    timed(async (c, timing) => {
      const nowMs = now();
      const request = await body(c);
      const operation = parse.parseAtomic(request, nowMs);
      const session = parse.parseSession(request);
      timing.parsed();
      return await commit(node.backend, {
        ...operation,
        ...(session ? { session } : {}),
      }, nowMs);
    }),
  );
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
}
