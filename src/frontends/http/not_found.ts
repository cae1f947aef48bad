/**
 * The message of a 404: names the right URL when the request looks like a
 * client pointed at the wrong one (the KV Connect URL given to the HTTP API
 * client, or the node's root given to `Deno.openKv`).
 *
 * @module
 */

/** Where KV Connect (`Deno.openKv`) is served on a node. */
export const KV_CONNECT_PREFIX = "/kv";

/** One readable sentence for an unknown route, naming the URL meant. */
export function notFoundMessage(method: string, url: string): string {
  const { origin, pathname } = new URL(url);
  const route = `Unknown route: ${method} ${pathname}`;
  if (pathname.startsWith(`${KV_CONNECT_PREFIX}/v1/`)) {
    return `${route}: the HTTP API (aspen CLI, mod.ts) is at ${origin}, without '${KV_CONNECT_PREFIX}'; ${origin}${KV_CONNECT_PREFIX} is for Deno.openKv`;
  }
  if (pathname === "/" || pathname === "") {
    return `${route}: for Deno.openKv use the KV Connect URL ${origin}${KV_CONNECT_PREFIX}; the HTTP API (aspen CLI, mod.ts) is at ${origin} with routes under /v1/`;
  }
  return route;
}

/** The API's typed 404 body (`{ error: { code, message, details } }`). */
export function notFoundBody(method: string, url: string): {
  error: { code: "notFound"; message: string; details: Record<never, never> };
} {
  return {
    error: {
      code: "notFound",
      message: notFoundMessage(method, url),
      details: {},
    },
  };
}
