/**
 * Bearer-token checks with two scopes. The request's token is compared with
 * every accepted token in constant time (no early exit on a mismatch, nor on
 * a length difference), so timing does not reveal how much of a token
 * matched, nor which one, with `constantTimeEqual` from `src/base/bytes.ts`,
 * the one such comparison in the codebase (KV Connect and the cluster
 * handshake use it too).
 *
 * - **data** scope: `/v1/kv/*`, `/v1/queue/*`, cluster status, members and
 *   the client ticket, `/metrics`, KV Connect. Data or admin tokens.
 * - **admin** scope: membership changes, backups, join tickets (and the
 *   future secrets `sys` routes). Admin tokens only.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpApiError } from "./http_api_error.ts";
import { constantTimeEqual } from "../../base/bytes.ts";

/** Longest token accepted, in bytes. */
export const TOKEN_BYTES_MAX = 1024;

const encoder = new TextEncoder();

/** True when `given` is one of `accepted`; every candidate is compared. */
export function tokenAccepted(
  given: Uint8Array | string,
  accepted: readonly Uint8Array[],
): boolean {
  const bytes = typeof given === "string" ? encoder.encode(given) : given;
  let matched = false;
  for (const token of accepted) {
    matched = constantTimeEqual(bytes, token) || matched;
  }
  return matched;
}

/**
 * Validates configured tokens.
 *
 * @throws {RangeError} When a token is empty or longer than 1024 bytes.
 */
export function validateTokens(tokens: readonly string[]): Uint8Array[] {
  return tokens.map((token, index) => {
    const bytes = encoder.encode(token);
    if (bytes.length === 0 || bytes.length > TOKEN_BYTES_MAX) {
      throw new RangeError(
        `Cannot configure token ${index} as it must be 1 to ${TOKEN_BYTES_MAX} bytes: current length is ${bytes.length}`,
      );
    }
    return bytes;
  });
}

/** The tokens of each scope. */
export interface ScopedTokens {
  readonly data: readonly Uint8Array[];
  readonly admin: readonly Uint8Array[];
}

/** The bearer token of an `Authorization` header, or null. */
export function bearerOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] ?? null;
}

/**
 * Middleware refusing requests without an accepted
 * `Authorization: Bearer …`: admin tokens on paths `isAdmin` names, data or
 * admin tokens elsewhere.
 *
 * @throws {HttpApiError} `unauthorized` (401) for a missing or unknown token,
 *   `forbidden` (403) for a data token on an admin route.
 */
export function bearerAuth(
  tokens: ScopedTokens,
  isAdmin: (path: string) => boolean = () => false,
): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (header === undefined) {
      throw new HttpApiError(
        "unauthorized",
        "Missing bearer token: send 'Authorization: Bearer <token>'",
      );
    }
    const given = encoder.encode(bearerOf(header) ?? "");
    const admin = tokenAccepted(given, tokens.admin);
    const data = tokenAccepted(given, tokens.data);
    if (!admin && !data) {
      throw new HttpApiError("unauthorized", "Invalid bearer token");
    }
    if (!admin && isAdmin(c.req.path)) {
      throw new HttpApiError(
        "forbidden",
        `${c.req.path} needs an admin token (ASPEN_ADMIN_TOKEN); this is a data token`,
      );
    }
    await next();
  };
}
