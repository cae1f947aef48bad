/**
 * Standard Webhooks signing (issue 17, "Webhook delivery"): the
 * `webhook-signature` header is `v1,<base64 HMAC-SHA256 of
 * "id.timestamp.body">`, one entry per secret, space-separated. During the
 * 24 h after `rotate-secret` the worker signs with the new secret and the
 * previous one, so a receiver holding either verifies.
 *
 * Secrets are `whsec_` + base64 of 24–64 bytes ({@linkcode parseSecret});
 * nothing here logs or returns them in an error.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { encodeBase64 } from "../../base/base64.ts";
import {
  formatWebhookSecret,
  HOOK_TARGET_LIMITS,
  parseWebhookSecret,
} from "../../protocol/hook_targets.ts";

/** Secrets one signature header carries at most: the current and the previous. */
export const SIGNING_SECRETS_MAX = 2;
/** Longest `webhook-id`, in characters. */
export const WEBHOOK_ID_LENGTH_MAX = 256;

/** Visible ASCII without space or comma: safe in a header and in "id.ts.body". */
const WEBHOOK_ID = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * The `webhook-id` of an event: `<clusterId>.<R>.<I>`, the same for every
 * attempt and replay of that event, so receivers can deduplicate.
 *
 * @param clusterId The cluster's id (visible ASCII, no comma or space).
 * @param revision The event's revision (a positive log index).
 * @param index The event's index within its revision (from 0).
 * @returns The id.
 * @throws {RangeError | TypeError} For a bad revision, index or cluster id.
 *
 * @example
 * ```ts
 * import { webhookId } from "./sign.ts";
 * console.assert(webhookId("c1a2", 17, 0) === "c1a2.17.0");
 * ```
 */
export function webhookId(
  clusterId: string,
  revision: number,
  index: number,
): string {
  if (!Number.isSafeInteger(revision) || revision < 1) {
    throw new RangeError(
      `Cannot make webhook id as 'revision' must be a positive integer: current value is ${revision}`,
    );
  }
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new RangeError(
      `Cannot make webhook id as 'index' must be a non-negative integer: current value is ${index}`,
    );
  }
  const id = `${clusterId}.${revision}.${index}`;
  if (
    clusterId.length === 0 || id.length > WEBHOOK_ID_LENGTH_MAX ||
    !WEBHOOK_ID.test(id)
  ) {
    throw new TypeError(
      `Cannot make webhook id as 'clusterId' must be visible ASCII without a comma: current value is '${
        clusterId.slice(0, 64)
      }'`,
    );
  }
  return id;
}

/**
 * Parses a signing secret `whsec_<base64>` of 24–64 bytes.
 *
 * @param text The secret's text form.
 * @returns The key bytes.
 * @throws {HookTargetError} `invalidSecret`; the message never carries the secret.
 *
 * @example
 * ```ts
 * import { generateSecret, parseSecret } from "./sign.ts";
 * const text = generateSecret(new Uint8Array(32).fill(7));
 * console.assert(parseSecret(text).length === 32);
 * ```
 */
export function parseSecret(text: string): Uint8Array {
  return parseWebhookSecret(text);
}

/**
 * Makes a new secret from 32 random bytes; the caller draws them (with
 * `crypto.getRandomValues`), so this stays deterministic.
 *
 * @param random Exactly 32 bytes.
 * @returns `whsec_` + their base64.
 * @throws {RangeError} When `random` is not 32 bytes.
 */
export function generateSecret(random: Uint8Array): string {
  const bytes = HOOK_TARGET_LIMITS.secretBytesGenerated;
  if (random.length !== bytes) {
    throw new RangeError(
      `Cannot generate webhook secret as 'random' must be ${bytes} bytes: current length is ${random.length}`,
    );
  }
  return formatWebhookSecret(random);
}

/**
 * Signs one request with one secret.
 *
 * @param secret The key bytes (24–64).
 * @param id The `webhook-id`.
 * @param timestampSec The `webhook-timestamp`, Unix seconds.
 * @param body The exact request body.
 * @returns `v1,<base64>`.
 */
export function signature(
  secret: Uint8Array,
  id: string,
  timestampSec: number,
  body: Uint8Array,
): string {
  return signatureHeader([secret], id, timestampSec, body);
}

/**
 * The `webhook-signature` header: one `v1,<base64>` per secret, in order
 * (current first), space-separated.
 *
 * @param secrets 1–2 keys of 24–64 bytes: current, then previous.
 * @param id The `webhook-id` (1–256 visible ASCII characters, no comma).
 * @param timestampSec The `webhook-timestamp`, Unix seconds.
 * @param body The exact request body.
 * @returns The header value.
 * @throws {RangeError} For no secret, too many, a key of the wrong length, or a bad timestamp.
 * @throws {TypeError} For a malformed id.
 *
 * @example
 * ```ts
 * import { parseSecret, signatureHeader } from "./sign.ts";
 * const key = parseSecret("whsec_" + btoa("k".repeat(32)));
 * const header = signatureHeader([key], "c.1.0", 1700000000, new Uint8Array());
 * console.assert(header.startsWith("v1,"));
 * ```
 */
export function signatureHeader(
  secrets: readonly Uint8Array[],
  id: string,
  timestampSec: number,
  body: Uint8Array,
): string {
  checkSigningInput(secrets, id, timestampSec);
  const content = signedContent(id, timestampSec, body);
  return secrets.map((secret) =>
    "v1," + encodeBase64(hmac(sha256, secret, content))
  ).join(" ");
}

/** `id.timestamp.` then the body, as bytes (the body is never re-encoded). */
function signedContent(
  id: string,
  timestampSec: number,
  body: Uint8Array,
): Uint8Array {
  const prefix = new TextEncoder().encode(`${id}.${timestampSec}.`);
  const content = new Uint8Array(prefix.length + body.length);
  content.set(prefix, 0);
  content.set(body, prefix.length);
  return content;
}

function checkSigningInput(
  secrets: readonly Uint8Array[],
  id: string,
  timestampSec: number,
): void {
  if (secrets.length === 0 || secrets.length > SIGNING_SECRETS_MAX) {
    throw new RangeError(
      `Cannot sign webhook as 'secrets' must hold 1 to ${SIGNING_SECRETS_MAX} keys: current length is ${secrets.length}`,
    );
  }
  const { secretBytesMin, secretBytesMax } = HOOK_TARGET_LIMITS;
  for (const secret of secrets) {
    if (secret.length < secretBytesMin || secret.length > secretBytesMax) {
      throw new RangeError(
        `Cannot sign webhook as a key must be ${secretBytesMin} to ${secretBytesMax} bytes: current length is ${secret.length}`,
      );
    }
  }
  if (id.length > WEBHOOK_ID_LENGTH_MAX || !WEBHOOK_ID.test(id)) {
    throw new TypeError(
      `Cannot sign webhook as 'id' must be 1 to ${WEBHOOK_ID_LENGTH_MAX} visible ASCII characters without a comma: current value is '${
        id.slice(0, 64)
      }'`,
    );
  }
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) {
    throw new RangeError(
      `Cannot sign webhook as 'timestampSec' must be a non-negative integer: current value is ${timestampSec}`,
    );
  }
}
