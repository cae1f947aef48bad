/**
 * Request helpers of the KV Connect server: bounded body reads and
 * constant-time bearer-token checks. Private to `kv_connect/`.
 *
 * @module
 */
import { constantTimeEqual } from "../../base/bytes.ts";
import { KV_CONNECT_MESSAGES as M, KvConnectError } from "./errors.ts";

/**
 * Reads a request body, refusing it with 413 as soon as it exceeds
 * `bytesMax` (from `Content-Length` when present, else while streaming), so
 * a large body is never buffered whole. A body with a `Content-Length`
 * within the bound is read in one call.
 *
 * @throws {KvConnectError} 413 when the body is larger than `bytesMax`.
 */
export async function readBodyBounded(
  request: Request,
  bytesMax: number,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new KvConnectError(413, `Request body too large (max ${bytesMax} bytes)`);
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > bytesMax) throw tooLarge();
  if (request.body === null) return new Uint8Array(0);
  if (declared !== null && /^[0-9]+$/.test(declared)) {
    // The declared length bounds the body (the HTTP framing ends it there):
    // read it in one call, without a reader and a copy per chunk.
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > bytesMax) throw tooLarge();
    return body;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.length;
      if (length > bytesMax) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const body = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

const encoder = new TextEncoder();

/** Holds the accepted tokens and checks `Authorization: Bearer <token>` headers. */
export class TokenChecker {
  readonly #tokens: readonly Uint8Array[];

  /** @throws {TypeError} When no token is given or a token is empty. */
  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) {
      throw new TypeError(
        "Cannot create KV Connect app: 'tokens' must hold at least one access token",
      );
    }
    for (const token of tokens) {
      if (typeof token !== "string" || token.length === 0) {
        throw new TypeError(
          "Cannot create KV Connect app: every access token must be a non-empty string",
        );
      }
    }
    this.#tokens = tokens.map((token) => encoder.encode(token));
  }

  /**
   * Returns the bearer token of `authorization` when it is one of the
   * accepted tokens. Every accepted token is compared, so timing reveals
   * neither which token matched nor where a guess differs.
   *
   * @throws {KvConnectError} 401 for a missing or malformed header or an unknown token.
   */
  check(authorization: string | null): string {
    if (authorization === null) {
      throw new KvConnectError(401, M.malformedAuthorizationHeader);
    }
    const space = authorization.indexOf(" ");
    if (space < 0) {
      throw new KvConnectError(401, M.malformedAuthorizationHeader);
    }
    const scheme = authorization.slice(0, space);
    const token = authorization.slice(space + 1);
    const presented = encoder.encode(token);
    let matched = false;
    for (const accepted of this.#tokens) {
      matched = constantTimeEqual(presented, accepted) || matched;
    }
    if (scheme.toLowerCase() !== "bearer" || !matched) {
      throw new KvConnectError(401, M.invalidAccessToken);
    }
    return token;
  }
}
