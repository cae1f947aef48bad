import assert from "node:assert/strict";
import { DataPathTokens, VERIFIED_TOKENS_MAX } from "./_data_token.ts";

const HOUR_MS = 60 * 60 * 1000;

Deno.test("DataPathTokens.verify() answers a remembered token like a fresh check: same client, expiry still enforced", () => {
  const tokens = new DataPathTokens(["secret"]);
  const token = tokens.issue("secret", 10 * HOUR_MS);
  // Another instance (another node) checks the MAC itself.
  const other = new DataPathTokens(["secret"]);
  const fresh = other.verify(token, 0);
  assert.notEqual(fresh, null);
  assert.deepEqual(tokens.verify(token, 0), fresh);
  assert.deepEqual(other.verify(token, 0), fresh);
  // Remembered or not, an expired token is refused.
  assert.equal(tokens.verify(token, 11 * HOUR_MS), null);
  assert.equal(other.verify(token, 11 * HOUR_MS), null);
  assert.equal(
    new DataPathTokens(["secret"]).verify(token, 11 * HOUR_MS),
    null,
  );
});

Deno.test("DataPathTokens.verify() still refuses a tampered token after the genuine one was remembered", () => {
  const tokens = new DataPathTokens(["secret"]);
  const token = tokens.issue("secret", 10 * HOUR_MS);
  assert.notEqual(tokens.verify(token, 0), null);
  const last = token.at(-1) === "A" ? "B" : "A";
  assert.equal(tokens.verify(token.slice(0, -1) + last, 0), null);
  // Nor does a node with other access tokens accept it.
  assert.equal(new DataPathTokens(["other"]).verify(token, 0), null);
});

Deno.test("DataPathTokens remembers at most VERIFIED_TOKENS_MAX tokens, and a forgotten one is checked again", () => {
  const tokens = new DataPathTokens(["secret"]);
  const first = tokens.issue("secret", 10 * HOUR_MS);
  for (let i = 0; i < VERIFIED_TOKENS_MAX + 5; i++) {
    tokens.issue("secret", 10 * HOUR_MS);
  }
  assert.equal(tokens.verifiedCount, VERIFIED_TOKENS_MAX);
  assert.notEqual(tokens.verify(first, 0), null);
  assert.equal(tokens.verifiedCount, VERIFIED_TOKENS_MAX);
});
