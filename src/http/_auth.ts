/**
 * Bearer-token check: the request's token is compared with every
 * configured token in constant time (no early exit on a mismatch, nor on a
 * length difference), so timing does not reveal how much of a token matched.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { HttpApiError } from "./_errors.ts";

/** Longest token accepted, in bytes. */
export const TOKEN_BYTES_MAX = 1024;

const encoder = new TextEncoder();

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  const length = Math.max(a.length, b.length);
  for (let i = 0; i < length; i++) {
    difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  }
  return difference === 0;
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

/** Middleware refusing requests without one of `tokens` as `Authorization: Bearer …`. */
export function bearerAuth(tokens: readonly Uint8Array[]): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (header === undefined) {
      throw new HttpApiError(
        "unauthorized",
        "Missing bearer token: send 'Authorization: Bearer <token>'",
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const given = encoder.encode(match?.[1] ?? "");
    let accepted = false;
    for (const token of tokens) {
      accepted = constantTimeEqual(given, token) || accepted;
    }
    if (!accepted) {
      throw new HttpApiError("unauthorized", "Invalid bearer token");
    }
    await next();
  };
}
