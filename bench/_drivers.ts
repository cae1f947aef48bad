/**
 * Drivers of the load generator, one per kind of target: Aspen's HTTP API
 * (JSON, `src/protocol/http_api.ts`), etcd's HTTP/JSON gateway (`/v3/kv/*`,
 * base64 keys and values), Deno KV (`Deno.openKv`, local file or KV Connect
 * URL) and a do-nothing HTTP server. HTTP drivers use `fetch`, which keeps
 * connections alive.
 *
 * @module
 */
import {
  type AtomicRequest,
  CONTENT_TYPE_JSON,
  type GetResponse,
  ROUTES,
  type SetRequest,
} from "../src/protocol/http_api.ts";
import { type AspenClient, connect } from "../mod.ts";
import type { KvDriver } from "./_load.ts";

/** Milliseconds one HTTP request may take before it counts as an error. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** The data token every benchmark Aspen node is configured with (`bench/_aspen_node.ts`). */
export const BENCH_ASPEN_TOKEN = "bench-aspen-token-0123456789";
/** The admin token of every benchmark Aspen node (the webhook worker's claims need it). */
export const BENCH_ASPEN_ADMIN_TOKEN = "bench-aspen-admin-token-0123456789";

const encoder = new TextEncoder();
const base64Cache = new WeakMap<Uint8Array, string>();

/** Standard base64 of `bytes` (cached per array: values are reused). */
export function base64Of(bytes: Uint8Array): string {
  let text = base64Cache.get(bytes);
  if (text === undefined) {
    text = btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));
    base64Cache.set(bytes, text);
  }
  return text;
}

/** An HTTP status the driver did not expect, with the body's start. */
export class UnexpectedStatusError extends Error {
  override name = "UnexpectedStatusError";
  constructor(readonly status: number, body: string, readonly url: string) {
    super(`Status ${status} from '${url}': ${body.slice(0, 200)}`);
  }
}

/**
 * POSTs `body` as JSON (with a bearer `token` when given) and reads the whole
 * reply: its status, its JSON (null when it is not JSON) and its text.
 */
export async function postJson(
  url: string,
  body: unknown,
  timeoutMs = REQUEST_TIMEOUT_MS,
  token?: string,
): Promise<{ status: number; json: unknown; text: string }> {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": CONTENT_TYPE_JSON,
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text === "" ? null : JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, json, text };
}

/**
 * Aspen through its HTTP API. Requests go to `urls[preferred]` (the leader
 * when known); a refused connection or an "unavailable" status moves on to
 * the next URL, which is how the failover measurement finds the new leader.
 */
export class AspenHttpDriver implements KvDriver {
  #preferred = 0;
  /**
   * @param urls Every node's base URL.
   * @param leaderIndex The node to try first.
   * @param timeoutMs How long one request may take, in ms.
   */
  constructor(
    readonly urls: readonly string[],
    leaderIndex = 0,
    readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {
    if (urls.length === 0) {
      throw new RangeError("Cannot drive Aspen without a URL");
    }
    this.#preferred = leaderIndex;
  }

  async #call(
    route: string,
    body: unknown,
  ): Promise<{ status: number; json: unknown }> {
    const url = this.urls[this.#preferred]!;
    try {
      const reply = await postJson(
        url + route,
        body,
        this.timeoutMs,
        BENCH_ASPEN_TOKEN,
      );
      if (reply.status === 503 || reply.status === 421) this.#rotate();
      return reply;
    } catch (error) {
      this.#rotate();
      throw error;
    }
  }

  #rotate(): void {
    this.#preferred = (this.#preferred + 1) % this.urls.length;
  }

  #value(value: Uint8Array) {
    return { encoding: "bytes" as const, data: base64Of(value) };
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const request: SetRequest = { key: [key], value: this.#value(value) };
    const reply = await this.#call(ROUTES.kvSet, request);
    if (reply.status !== 200) throw this.#unexpected(reply);
  }

  async get(key: string): Promise<boolean> {
    const reply = await this.#call(ROUTES.kvGet, { key: [key] });
    if (reply.status !== 200) throw this.#unexpected(reply);
    return (reply.json as GetResponse).entry.versionstamp !== null;
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const read = await this.#call(ROUTES.kvGet, { key: [key] });
    if (read.status !== 200) throw this.#unexpected(read);
    const versionstamp = (read.json as GetResponse).entry.versionstamp;
    const request: AtomicRequest = {
      checks: [{ key: [key], versionstamp }],
      mutations: [{ type: "set", key: [key], value: this.#value(value) }],
    };
    const write = await this.#call(ROUTES.kvAtomic, request);
    if (write.status === 409) return false;
    if (write.status !== 200) throw this.#unexpected(write);
    return true;
  }

  #unexpected(reply: { status: number; json: unknown }): Error {
    return new UnexpectedStatusError(
      reply.status,
      JSON.stringify(reply.json),
      this.urls[this.#preferred]!,
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Aspen through its client module (`connect(urls).kv`, JSON bodies), which
 * follows the leader and retries across nodes by itself.
 */
export class AspenClientDriver implements KvDriver {
  readonly #client: AspenClient;

  /**
   * @param urls Every node's base URL, the one to try first at the front.
   * @param timeoutMs How long one request may take, in ms.
   */
  constructor(urls: readonly string[], timeoutMs = REQUEST_TIMEOUT_MS) {
    this.#client = connect(urls, { timeoutMs, token: BENCH_ASPEN_TOKEN });
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#client.kv.set([key], value);
  }

  async get(key: string): Promise<boolean> {
    return (await this.#client.kv.get([key])).versionstamp !== null;
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const entry = await this.#client.kv.get([key]);
    const result = await this.#client.kv.atomic().check(entry).set(
      [key],
      value,
    ).commit();
    return result.ok;
  }

  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}

/** etcd v3 through its HTTP/JSON gateway (etcd 3.4 serves it at `/v3/`). */
export class EtcdHttpDriver implements KvDriver {
  constructor(readonly url: string) {}

  async #call(path: string, body: unknown): Promise<Record<string, unknown>> {
    const reply = await postJson(this.url + path, body);
    if (reply.status !== 200) {
      throw new UnexpectedStatusError(
        reply.status,
        reply.text,
        this.url + path,
      );
    }
    return (reply.json ?? {}) as Record<string, unknown>;
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.#call("/v3/kv/put", {
      key: base64Of(encoder.encode(key)),
      value: base64Of(value),
    });
  }

  async get(key: string): Promise<boolean> {
    // Without "serializable": true, etcd's range is linearizable.
    const reply = await this.#call("/v3/kv/range", {
      key: base64Of(encoder.encode(key)),
    });
    return Array.isArray(reply.kvs) && reply.kvs.length > 0;
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const keyBase64 = base64Of(encoder.encode(key));
    const read = await this.#call("/v3/kv/range", { key: keyBase64 });
    const kv = Array.isArray(read.kvs)
      ? read.kvs[0] as Record<string, unknown> | undefined
      : undefined;
    // The gateway omits zero fields: an absent key compares create_revision 0.
    const compare = kv === undefined
      ? { key: keyBase64, target: "CREATE", create_revision: "0" }
      : {
        key: keyBase64,
        target: "MOD",
        mod_revision: String(kv.mod_revision),
      };
    const write = await this.#call("/v3/kv/txn", {
      compare: [compare],
      success: [{ request_put: { key: keyBase64, value: base64Of(value) } }],
    });
    return write.succeeded === true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Deno KV: a local file (`Deno.openKv(path)`) or a KV Connect URL. */
export class DenoKvDriver implements KvDriver {
  constructor(readonly kv: Deno.Kv) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.kv.set([key], value);
  }

  async get(key: string): Promise<boolean> {
    const entry = await this.kv.get([key]);
    return entry.versionstamp !== null;
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    const entry = await this.kv.get([key]);
    const result = await this.kv.atomic().check(entry).set([key], value)
      .commit();
    return result.ok;
  }

  close(): Promise<void> {
    this.kv.close();
    return Promise.resolve();
  }
}

/**
 * A do-nothing HTTP server: each operation makes the same number of
 * requests of about the same size as Aspen's, and the server answers at once.
 */
export class NullHttpDriver implements KvDriver {
  constructor(readonly url: string) {}

  async #call(body: unknown): Promise<void> {
    const reply = await postJson(this.url, body);
    if (reply.status !== 200) {
      throw new UnexpectedStatusError(reply.status, reply.text, this.url);
    }
  }

  put(key: string, value: Uint8Array): Promise<void> {
    return this.#call({
      key: [key],
      value: { encoding: "bytes", data: base64Of(value) },
    });
  }

  async get(key: string): Promise<boolean> {
    await this.#call({ key: [key] });
    return true;
  }

  async cas(key: string, value: Uint8Array): Promise<boolean> {
    await this.#call({ key: [key] });
    await this.put(key, value);
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
