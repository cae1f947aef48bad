import assert from "node:assert/strict";
import { Webhook, WebhookVerificationError } from "standardwebhooks";
import { HookTargetError } from "../../protocol/hook_targets.ts";
import {
  generateSecret,
  parseSecret,
  signature,
  signatureHeader,
  webhookId,
} from "./sign.ts";

const encoder = new TextEncoder();

function secretOf(fill: number): string {
  return generateSecret(new Uint8Array(32).fill(fill));
}

function headersOf(id: string, timestampSec: number, signature: string) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSec),
    "webhook-signature": signature,
  };
}

Deno.test("signatureHeader() verifies with standardwebhooks' Webhook.verify", () => {
  const secret = secretOf(1);
  const body = JSON.stringify({ revision: 12, index: 0, type: "kv.set" });
  const id = "c1a2.12.0";
  const timestampSec = Math.floor(Date.now() / 1000);
  const header = signatureHeader(
    [parseSecret(secret)],
    id,
    timestampSec,
    encoder.encode(body),
  );
  assert.match(header, /^v1,[A-Za-z0-9+/]{43}=$/);
  const payload = new Webhook(secret).verify(
    body,
    headersOf(id, timestampSec, header),
  );
  assert.deepEqual(payload, JSON.parse(body));
});

Deno.test("signatureHeader() matches standardwebhooks' own sign()", () => {
  const secret = secretOf(9);
  const body = '{"emoji":"\u00e9\u{1f600}"}';
  const expected = new Webhook(secret).sign(
    "x.1.2",
    new Date(1_700_000_000_000),
    body,
  );
  assert.equal(
    signature(
      parseSecret(secret),
      "x.1.2",
      1_700_000_000,
      encoder.encode(body),
    ),
    expected,
  );
});

Deno.test("signatureHeader() after rotation verifies with the new and the old secret", () => {
  const previous = secretOf(2);
  const current = secretOf(3);
  const body = '{"type":"kv.delete"}';
  const id = "c1a2.13.1";
  const timestampSec = Math.floor(Date.now() / 1000);
  const header = signatureHeader(
    [parseSecret(current), parseSecret(previous)],
    id,
    timestampSec,
    encoder.encode(body),
  );
  const parts = header.split(" ");
  assert.equal(parts.length, 2);
  assert.notEqual(parts[0], parts[1]);
  const headers = headersOf(id, timestampSec, header);
  assert.deepEqual(
    new Webhook(current).verify(body, headers),
    JSON.parse(body),
  );
  assert.deepEqual(
    new Webhook(previous).verify(body, headers),
    JSON.parse(body),
  );
  assert.throws(
    () => new Webhook(secretOf(4)).verify(body, headers),
    WebhookVerificationError,
  );
});

Deno.test("signatureHeader() signs the id, timestamp and body: changing any fails", () => {
  const secret = secretOf(5);
  const body = '{"a":1}';
  const timestampSec = Math.floor(Date.now() / 1000);
  const header = signatureHeader(
    [parseSecret(secret)],
    "id.1",
    timestampSec,
    encoder.encode(body),
  );
  const hook = new Webhook(secret);
  const tampered: [string, Record<string, string>][] = [
    ['{"a":2}', headersOf("id.1", timestampSec, header)],
    [body, headersOf("id.2", timestampSec, header)],
    [body, headersOf("id.1", timestampSec - 1, header)],
  ];
  for (const [payload, headers] of tampered) {
    assert.throws(
      () => hook.verify(payload, headers),
      WebhookVerificationError,
    );
  }
});

Deno.test("signatureHeader() refuses bad secrets, ids and timestamps", () => {
  const key = parseSecret(secretOf(6));
  const body = new Uint8Array();
  assert.throws(() => signatureHeader([], "a", 1, body), RangeError);
  assert.throws(
    () => signatureHeader([key, key, key], "a", 1, body),
    RangeError,
  );
  assert.throws(
    () => signatureHeader([new Uint8Array(16)], "a", 1, body),
    RangeError,
  );
  for (const id of ["", "a b", "a,b", "a\nb", "x".repeat(257)]) {
    assert.throws(() => signatureHeader([key], id, 1, body), TypeError);
  }
  for (const timestampSec of [-1, 1.5, NaN]) {
    assert.throws(
      () => signatureHeader([key], "a", timestampSec, body),
      RangeError,
    );
  }
});

Deno.test("generateSecret() writes whsec_ + base64 of its 32 bytes, which standardwebhooks reads", () => {
  const random = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
  const text = generateSecret(random);
  assert.equal(text, "whsec_" + btoa(String.fromCharCode(...random)));
  assert.deepEqual(parseSecret(text), random);
  assert.throws(() => generateSecret(new Uint8Array(31)), RangeError);
  assert.throws(() => generateSecret(new Uint8Array(33)), RangeError);
});

Deno.test("parseSecret() refuses short, long, unprefixed and non-base64 secrets", () => {
  for (
    const text of [
      "whsec_" + btoa("k".repeat(23)),
      "whsec_" + btoa("k".repeat(65)),
      btoa("k".repeat(32)),
      "whsec_***",
    ]
  ) {
    assert.throws(
      () => parseSecret(text),
      (error: unknown) =>
        error instanceof HookTargetError && error.code === "invalidSecret" &&
        !error.message.includes(text.slice(6)),
    );
  }
});

Deno.test("webhookId() joins cluster, revision and index, and refuses bad parts", () => {
  assert.equal(webhookId("c1a2", 17, 0), "c1a2.17.0");
  assert.equal(webhookId("c", 2 ** 53 - 1, 3), `c.${2 ** 53 - 1}.3`);
  assert.throws(() => webhookId("c", 0, 0), RangeError);
  assert.throws(() => webhookId("c", 1.5, 0), RangeError);
  assert.throws(() => webhookId("c", 1, -1), RangeError);
  for (const clusterId of ["", "a b", "a,b", "x".repeat(256)]) {
    assert.throws(() => webhookId(clusterId, 1, 0), TypeError);
  }
});
