/**
 * Per-client data-path tokens of the KV Connect server (issue 12 item 0).
 *
 * The metadata exchange hands each stock client a token of its own instead
 * of echoing the access token; the client sends it on every data-path
 * request, resends included, so a node can tell which client a write came
 * from without any request id. A token is
 * `aspen-dp1.<client id>.<expiry ms>.<mac>`: a random 128-bit client id, an
 * expiry (the metadata's `expiresAt`), and an HMAC-SHA256 over both under a
 * key derived from an accepted access token. Every node configured with the
 * same access token verifies every other node's tokens, across restarts,
 * with no shared state; the token reveals nothing of the access token.
 * Private to `kv_connect/`.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { encodeBase64Url } from "../../base/base64.ts";
import { constantTimeEqual } from "../../base/bytes.ts";

const PREFIX = "aspen-dp1";
const KEY_LABEL = "aspen kv-connect data-path token v1";
const encoder = new TextEncoder();
const TOKEN_SHAPE =
  /^aspen-dp1\.([A-Za-z0-9_-]{22})\.([0-9]{1,16})\.([A-Za-z0-9_-]{43})$/;

/**
 * Tokens whose MAC was verified, remembered at most (the oldest verified
 * first forgotten). A stock client sends its token on every request: one
 * HMAC per client instead of one per request.
 */
export const VERIFIED_TOKENS_MAX = 10_000;

interface Verified {
  readonly client: DataPathClient;
  readonly expiresAtMs: number;
}

/** A verified data-path token. */
export interface DataPathClient {
  /** The client's id as sessions and resend records name it (`dp:` + 22 characters). */
  readonly clientId: string;
}

/** Issues and verifies data-path tokens under keys derived from the access tokens. */
export class DataPathTokens {
  readonly #keys: readonly { token: Uint8Array; key: Uint8Array }[];
  /**
   * Tokens already verified under one of `#keys` (which never change), by
   * the whole token. Only a token that passed the MAC check gets here, so a
   * guess still costs the full constant-time check.
   */
  readonly #verified = new Map<string, Verified>();

  constructor(accessTokens: readonly string[]) {
    this.#keys = accessTokens.map((token) => {
      const bytes = encoder.encode(token);
      return {
        token: bytes,
        key: hmac(sha256, bytes, encoder.encode(KEY_LABEL)),
      };
    });
  }

  /**
   * A new client's token, under the key of `accessToken` (the one the
   * client presented), valid until `expiresAtMs`.
   */
  issue(accessToken: string, expiresAtMs: number): string {
    const presented = encoder.encode(accessToken);
    const entry = this.#keys.find((k) => constantTimeEqual(k.token, presented));
    if (entry === undefined) {
      throw new TypeError(
        "Cannot issue a data-path token: unknown access token",
      );
    }
    const id = encodeBase64Url(crypto.getRandomValues(new Uint8Array(16)));
    const expiry = Math.floor(expiresAtMs);
    const body = `${PREFIX}.${id}.${expiry}`;
    const token = `${body}.${
      encodeBase64Url(hmac(sha256, entry.key, encoder.encode(body)))
    }`;
    this.#remember(token, { clientId: `dp:${id}` }, expiry);
    return token;
  }

  /**
   * The client of `token` when it is a data-path token issued under one of
   * the accepted access tokens and not expired at `nowMs`; null otherwise
   * (including for a plain access token). Every key is tried, so timing
   * does not reveal which one matched.
   */
  verify(token: string, nowMs: number): DataPathClient | null {
    const known = this.#verified.get(token);
    if (known !== undefined) {
      return known.expiresAtMs < nowMs ? null : known.client;
    }
    const match = TOKEN_SHAPE.exec(token);
    if (match === null) return null;
    const [, id, expiry, mac] = match as unknown as [
      string,
      string,
      string,
      string,
    ];
    const body = encoder.encode(`${PREFIX}.${id}.${expiry}`);
    const presented = encoder.encode(mac);
    let matched = false;
    for (const { key } of this.#keys) {
      const expected = encoder.encode(encodeBase64Url(hmac(sha256, key, body)));
      matched = constantTimeEqual(presented, expected) || matched;
    }
    if (!matched || Number(expiry) < nowMs) return null;
    const client = { clientId: `dp:${id}` };
    this.#remember(token, client, Number(expiry));
    return client;
  }

  /** Number of verified tokens remembered. */
  get verifiedCount(): number {
    return this.#verified.size;
  }

  #remember(token: string, client: DataPathClient, expiresAtMs: number): void {
    if (this.#verified.size >= VERIFIED_TOKENS_MAX) {
      const oldest = this.#verified.keys().next();
      if (!oldest.done) this.#verified.delete(oldest.value);
    }
    this.#verified.set(token, { client, expiresAtMs });
  }
}
