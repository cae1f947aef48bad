/**
 * Starts the KV Connect app over a {@linkcode LocalKvBackend} on
 * 127.0.0.1:0 with `Deno.serve` (HTTP/1.1 and h2c), for tests that drive it
 * with stock clients.
 *
 * @module
 */
import { kvConnectApp } from "../../src/frontends/kv_connect/mod.ts";
import {
  LocalKvBackend,
  type LocalKvBackendOptions,
} from "../../src/server/local_backend.ts";

/** A running server; dispose it to stop the server and the backend. */
export interface KvConnectTestServer extends AsyncDisposable {
  readonly backend: LocalKvBackend;
  /** The URL to pass to `Deno.openKv`. */
  readonly url: string;
  readonly token: string;
}

/** Serves a fresh backend at `http://127.0.0.1:<port>/kv`. */
export function startKvConnectServer(
  options: LocalKvBackendOptions & { watchPingIntervalMs?: number } = {},
): KvConnectTestServer {
  const token = `test-token-${crypto.randomUUID()}`;
  const backend = new LocalKvBackend(options);
  let port = 0;
  const app = kvConnectApp({
    backend,
    tokens: [token],
    path: "/kv",
    selfUrl: () => `http://127.0.0.1:${port}`,
    watchPingIntervalMs: options.watchPingIntervalMs,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    app.fetch,
  );
  port = server.addr.port;
  return {
    backend,
    url: `http://127.0.0.1:${port}/kv`,
    token,
    async [Symbol.asyncDispose]() {
      backend.close();
      await server.shutdown();
    },
  };
}
