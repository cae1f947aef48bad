/**
 * What every route module of the HTTP front end (`kv.ts`, `queues.ts`,
 * `cluster.ts`, `admin.ts`) is given by `app.ts` when it registers its
 * routes, and the small request helpers they share. Private to
 * `src/frontends/http/`.
 *
 * @module
 */
import type { Context } from "hono";
import type { KvConsistency } from "../../services/kv/api.ts";
import type { NodeApi } from "../../node/node_api.ts";
import {
  CONSISTENCY_PARAMETER,
  type OkResponse,
} from "../../protocol/http_api.ts";
import { bearerOf } from "../common/auth.ts";
import type { StreamBudget, StreamLease } from "../common/stream_budget.ts";
import { HttpApiError } from "./_errors.ts";

/** The front end's stages (named as in the node's `aspen_stage_ms`). */
export type HttpStage =
  | "http.parse"
  | "http.backend"
  | "http.answer"
  | "http.total";

/** Where the front end records its stages (the node's stage recorder). */
export interface StageSink {
  observe(stage: HttpStage, ms: number): void;
}

/** Marks one request's HTTP stages: parsed, answered (by the backend), built. */
export class RequestTiming {
  readonly #sink: StageSink | undefined;
  readonly #receivedAt: number;
  #parsedAt = 0;
  #answeredAt = 0;

  constructor(sink: StageSink | undefined) {
    this.#sink = sink;
    this.#receivedAt = sink === undefined ? 0 : performance.now();
  }

  /** The body was read, parsed and validated. */
  parsed(): void {
    if (this.#sink !== undefined) this.#parsedAt = performance.now();
  }

  /** The backend answered. */
  answered(): void {
    if (this.#sink !== undefined) this.#answeredAt = performance.now();
  }

  /** The response was built: records the stages. */
  built(): void {
    const sink = this.#sink;
    if (sink === undefined || this.#answeredAt === 0) return;
    const now = performance.now();
    sink.observe("http.parse", this.#parsedAt - this.#receivedAt);
    sink.observe("http.backend", this.#answeredAt - this.#parsedAt);
    sink.observe("http.answer", now - this.#answeredAt);
    sink.observe("http.total", now - this.#receivedAt);
  }
}

/** The node, the body reader, the clock and the stream budget of one app. */
export interface RouteContext {
  /** The node the API serves. */
  readonly node: NodeApi;
  /** Reads the request body (JSON or MessagePack), bounded by the app's limit. */
  readonly body: (c: Context) => Promise<unknown>;
  /** Clock in Unix ms, for `expireIn` deadlines. */
  readonly now: () => number;
  /** The shared budget of long-lived streams (watches, listens). */
  readonly streams: StreamBudget;
  /** Starts timing one request's stages (a no-op without a sink). */
  readonly timing: () => RequestTiming;
}

/** The body of a write that answers nothing but success. */
export const OK: OkResponse = { ok: true };

/** A stream lease charged to the request's bearer token. */
export function streamLease(streams: StreamBudget, c: Context): StreamLease {
  return streams.acquire(bearerOf(c.req.header("authorization")) ?? "");
}

/**
 * The read's consistency from `?consistency=`: strong (default) or eventual.
 *
 * @throws {HttpApiError} `badRequest` for any other value.
 */
export function consistencyOf(c: Context): KvConsistency {
  const value = c.req.query(CONSISTENCY_PARAMETER);
  if (value === undefined || value === "strong") return "strong";
  if (value === "eventual") return "eventual";
  throw new HttpApiError(
    "badRequest",
    `Invalid '${CONSISTENCY_PARAMETER}': expected 'strong' or 'eventual', received '${value}'`,
  );
}
