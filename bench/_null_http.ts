/**
 * The `null-http` target: a do-nothing HTTP server in its own process that
 * reads the request body and answers `{"ok":true}`. It shows the ceiling of
 * the load generator (and of `Deno.serve`) on this machine. Prints
 * `{"url": …}` once listening; stops on SIGTERM.
 *
 * Run with `--allow-net=127.0.0.1`.
 *
 * @module
 */
const body = JSON.stringify({ ok: true });
const abort = new AbortController();
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  signal: abort.signal,
  onListen: ({ port }) => {
    console.log(JSON.stringify({ url: `http://127.0.0.1:${port}` }));
  },
}, async (request) => {
  await request.arrayBuffer();
  return new Response(body, {
    headers: { "content-type": "application/json" },
  });
});
Deno.addSignalListener("SIGTERM", () => abort.abort());
await server.finished;
