import assert from "node:assert/strict";
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  formatWebhookSecret,
  HOOK_TARGET_LIMITS,
  HookTargetError,
  type HookTargetErrorCode,
  parseWebhookSecret,
  validateHookHeaders,
  validateHookTimeoutMs,
  validateHookUrl,
  validateRetrySchedule,
  validateRetryWindowMs,
} from "./hook_targets.ts";

function assertRefused(
  run: () => unknown,
  code: HookTargetErrorCode,
  messageIncludes?: string,
): HookTargetError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HookTargetError, `expected HookTargetError`);
  assert.equal(caught.code, code);
  if (messageIncludes !== undefined) {
    assert.ok(
      caught.message.includes(messageIncludes),
      `'${caught.message}' lacks '${messageIncludes}'`,
    );
  }
  return caught;
}

Deno.test("validateHookUrl() accepts http(s) and normalises the host", () => {
  assert.equal(validateHookUrl("https://example.com/a?b=1").pathname, "/a");
  assert.equal(validateHookUrl("http://2130706433/").hostname, "127.0.0.1");
  assert.equal(validateHookUrl("http://[::1]:8080/").hostname, "[::1]");
});

Deno.test("validateHookUrl() refuses other schemes, userinfo, bad and long URLs", async (t) => {
  const cases: [string, string, string][] = [
    ["ftp", "ftp://example.com/", "scheme"],
    ["file", "file:///etc/passwd", "scheme"],
    ["javascript", "javascript:alert(1)", "scheme"],
    ["not a URL", "example.com/path", "parse"],
    ["user", "https://user@example.com/", "user name"],
    ["user and password", "https://u:hunter2@example.com/", "user name"],
    [
      "too long",
      "https://example.com/" + "a".repeat(HOOK_TARGET_LIMITS.urlBytesMax),
      "too long",
    ],
  ];
  for (const [name, url, fragment] of cases) {
    await t.step(name, () => {
      const error = assertRefused(
        () => validateHookUrl(url),
        "invalidUrl",
        fragment,
      );
      assert.ok(!error.message.includes("hunter2"));
    });
  }
});

Deno.test("validateHookUrl() counts bytes after normalisation too", () => {
  // Each "é" is 2 bytes, percent-encoded to 6: fits before, not after.
  const path = "é".repeat(500);
  const text = "https://example.com/" + path;
  assert.ok(new TextEncoder().encode(text).length <= 2048);
  assertRefused(() => validateHookUrl(text), "invalidUrl", "normalised");
});

Deno.test("validateHookHeaders() lower-cases and freezes the headers", () => {
  const headers = validateHookHeaders({
    "X-Team": "orders",
    "Authorization": "Bearer t",
  });
  assert.deepEqual(headers, { "x-team": "orders", authorization: "Bearer t" });
  assert.ok(Object.isFrozen(headers));
  assert.deepEqual(validateHookHeaders({}), {});
});

Deno.test("validateHookHeaders() refuses reserved, hop-by-hop and malformed headers", async (t) => {
  const reserved = [
    "webhook-id",
    "Webhook-Signature",
    "aspen-attempt",
    "ASPEN-REPLAY",
    "host",
    "Content-Length",
    "content-type",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "Proxy-Connection",
  ];
  for (const name of reserved) {
    await t.step(name, () => {
      assertRefused(
        () => validateHookHeaders({ [name]: "v" }),
        "invalidHeader",
        `'${name.toLowerCase()}'`,
      );
    });
  }
  await t.step("bad name", () => {
    assertRefused(
      () => validateHookHeaders({ "x y": "v" }),
      "invalidHeader",
      "not a valid header name",
    );
    assertRefused(() => validateHookHeaders({ "": "v" }), "invalidHeader");
  });
  await t.step("value with CR LF, not echoed", () => {
    const error = assertRefused(
      () => validateHookHeaders({ "x-a": "secret\r\nx-b: 1" }),
      "invalidHeader",
      "'x-a'",
    );
    assert.ok(!error.message.includes("secret"));
  });
  await t.step("value too long", () => {
    assertRefused(
      () =>
        validateHookHeaders({
          "x-a": "v".repeat(HOOK_TARGET_LIMITS.headerValueLengthMax + 1),
        }),
      "invalidHeader",
      "too long",
    );
  });
  await t.step("same name twice", () => {
    assertRefused(
      () => validateHookHeaders({ "X-A": "1", "x-a": "2" }),
      "invalidHeader",
      "twice",
    );
  });
});

Deno.test("validateHookHeaders() allows 16 headers and refuses 17", () => {
  const sixteen = Object.fromEntries(
    Array.from({ length: 16 }, (_, i) => [`x-h${i}`, "v"]),
  );
  assert.equal(Object.keys(validateHookHeaders(sixteen)).length, 16);
  assertRefused(
    () => validateHookHeaders({ ...sixteen, "x-h16": "v" }),
    "tooManyHeaders",
    "17 > 16",
  );
});

Deno.test("validateHookTimeoutMs() takes 1–30 s, default 15 s", () => {
  assert.equal(validateHookTimeoutMs(undefined), 15_000);
  assert.equal(validateHookTimeoutMs(1_000), 1_000);
  assert.equal(validateHookTimeoutMs(30_000), 30_000);
  for (const bad of [999, 30_001, 1.5e3 + 0.5, NaN, -1]) {
    assertRefused(() => validateHookTimeoutMs(bad), "invalidTimeout");
  }
});

Deno.test("validateRetryWindowMs() takes 60 s–30 days, default 3 days", () => {
  assert.equal(validateRetryWindowMs(undefined), 3 * 86_400_000);
  assert.equal(validateRetryWindowMs(60_000), 60_000);
  assert.equal(validateRetryWindowMs(30 * 86_400_000), 30 * 86_400_000);
  for (const bad of [59_999, 30 * 86_400_000 + 1, Infinity]) {
    assertRefused(() => validateRetryWindowMs(bad), "invalidRetryWindow");
  }
});

Deno.test("validateRetrySchedule() checks steps, count and the last step", () => {
  assert.equal(validateRetrySchedule(undefined), DEFAULT_RETRY_SCHEDULE_MS);
  assert.deepEqual(validateRetrySchedule([0, 1_000]), [0, 1_000]);
  assert.ok(Object.isFrozen(validateRetrySchedule([5_000])));
  const twenty = Array.from({ length: 20 }, () => 86_400_000);
  assert.equal(validateRetrySchedule(twenty).length, 20);
  assertRefused(
    () => validateRetrySchedule([...twenty, 1_000]),
    "invalidRetrySchedule",
    "1 to 20 steps",
  );
  assertRefused(() => validateRetrySchedule([]), "invalidRetrySchedule");
  assertRefused(
    () => validateRetrySchedule([1_000, 86_400_001, 1_000]),
    "invalidRetrySchedule",
    "retrySchedule[1]",
  );
  assertRefused(
    () => validateRetrySchedule([-1, 1_000]),
    "invalidRetrySchedule",
    "retrySchedule[0]",
  );
  assertRefused(
    () => validateRetrySchedule([1_000, 0]),
    "invalidRetrySchedule",
    "last step",
  );
});

Deno.test("DEFAULT_RETRY_SCHEDULE_MS is the issue's schedule and passes the check", () => {
  assert.deepEqual(
    [...DEFAULT_RETRY_SCHEDULE_MS],
    [0, 5e3, 3e5, 18e5, 72e5, 18e6, 36e6, 504e5, 72e6, 864e5],
  );
  assert.deepEqual(
    validateRetrySchedule([...DEFAULT_RETRY_SCHEDULE_MS]),
    DEFAULT_RETRY_SCHEDULE_MS,
  );
});

Deno.test("parseWebhookSecret() round-trips 24–64 byte keys and refuses others", () => {
  for (const length of [24, 32, 64]) {
    const key = Uint8Array.from({ length }, (_, i) => (i * 37) & 0xff);
    const text = formatWebhookSecret(key);
    assert.ok(text.startsWith("whsec_"));
    assert.deepEqual(parseWebhookSecret(text), key);
  }
  for (const length of [23, 65]) {
    const text = "whsec_" + btoa("k".repeat(length));
    assertRefused(() => parseWebhookSecret(text), "invalidSecret", "bytes");
    assertRefused(
      () => formatWebhookSecret(new Uint8Array(length)),
      "invalidSecret",
    );
  }
  const noPrefix = btoa("k".repeat(32));
  const error = assertRefused(
    () => parseWebhookSecret(noPrefix),
    "invalidSecret",
    "whsec_",
  );
  assert.ok(!error.message.includes(noPrefix));
  assertRefused(
    () => parseWebhookSecret("whsec_not*base64!"),
    "invalidSecret",
    "not base64",
  );
});
