/**
 * In-process requests to the HTTP app (`app.request()`), JSON or MessagePack.
 *
 * @module
 */
import type { Hono } from "hono";
import { decode } from "@msgpack/msgpack";
import { encodeBody } from "../../src/protocol/http_api_codec.ts";
import { TEST_TOKEN } from "./http_cluster.ts";

/** Options of {@linkcode call}. */
export interface CallOptions {
  /** Bearer token; null sends none. Default the test token. */
  readonly token?: string | null;
  /** "json" (default), "msgpack", or raw body text/bytes sent as is. */
  readonly format?: "json" | "msgpack";
  readonly accept?: "json" | "msgpack";
  readonly headers?: Record<string, string>;
  /** Sent unencoded, instead of `body`. */
  readonly raw?: BodyInit;
}

/** A decoded reply. */
export interface CallResult {
  readonly status: number;
  readonly contentType: string;
  // deno-lint-ignore no-explicit-any
  readonly body: any;
}

/** Sends one request to `app` and decodes the reply by its content type. */
export async function call(
  app: Hono,
  method: string,
  path: string,
  body?: unknown,
  options: CallOptions = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? TEST_TOKEN : options.token;
  if (token !== null) headers["authorization"] = `Bearer ${token}`;
  if (options.accept === "msgpack") headers["accept"] = "application/msgpack";
  let payload: BodyInit | undefined = options.raw;
  if (body !== undefined) {
    if (options.format === "msgpack") {
      headers["content-type"] ??= "application/msgpack";
      payload = encodeBody(body, "msgpack");
    } else {
      headers["content-type"] ??= "application/json";
      payload = encodeBody(body, "json");
    }
  }
  const response = await app.request(path, { method, headers, body: payload });
  const contentType = response.headers.get("content-type") ?? "";
  const bytes = new Uint8Array(await response.arrayBuffer());
  let decoded: unknown = new TextDecoder().decode(bytes);
  if (contentType.startsWith("application/msgpack")) decoded = decode(bytes);
  else if (contentType.startsWith("application/json")) {
    decoded = JSON.parse(decoded as string);
  }
  return { status: response.status, contentType, body: decoded };
}

/** UTF-8 bytes as the wire's base64 value. */
export function bytesValue(text: string): { encoding: "bytes"; data: string } {
  return { encoding: "bytes", data: btoa(text) };
}
