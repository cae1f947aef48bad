/**
 * The webhook target of a hook (issue 17, "Webhook delivery"), checked once
 * here so the server (on `hooks/create`) and the webhook workers (before each
 * attempt) refuse the same things: the URL (http(s) only, ≤ 2,048 bytes, no
 * userinfo), the user headers (≤ 16, none that Aspen sets or that belong to
 * the connection), the timeout, the retry window and schedule, and the
 * `whsec_` secret. Also the vocabulary both sides record: delivery outcomes
 * and the reasons a hook is disabled.
 *
 * Pure: no Deno API, no clock. The SSRF guard (which resolves names) lives
 * in the workers, `src/workers/webhooks/guard.ts`.
 *
 * @module
 */
import { decodeBase64, encodeBase64 } from "../base/base64.ts";

/** Limits of a webhook target; a value beyond one is a {@linkcode HookTargetError}. */
export const HOOK_TARGET_LIMITS = {
  /** Longest target URL, in UTF-8 bytes of its serialised form. */
  urlBytesMax: 2048,
  /** User headers of one hook at most. */
  headersMax: 16,
  /** Longest user header name, in characters. */
  headerNameLengthMax: 128,
  /** Longest user header value, in characters. */
  headerValueLengthMax: 2048,
  /** Shortest attempt timeout, in ms. */
  timeoutMsMin: 1_000,
  /** Longest attempt timeout, in ms. */
  timeoutMsMax: 30_000,
  /** Attempt timeout when the hook names none, in ms. */
  timeoutMsDefault: 15_000,
  /** Shortest retry window, in ms (60 s). */
  retryWindowMsMin: 60_000,
  /** Longest retry window, in ms (30 days). */
  retryWindowMsMax: 30 * 24 * 3_600_000,
  /** Retry window when the hook names none, in ms (3 days). */
  retryWindowMsDefault: 3 * 24 * 3_600_000,
  /** Steps of a custom retry schedule at most. */
  retryScheduleStepsMax: 20,
  /** Longest step of a retry schedule, in ms (24 h). */
  retryStepMsMax: 24 * 3_600_000,
  /**
   * Shortest last step of a retry schedule, in ms: the last step repeats
   * until the window ends, so it must not spin.
   */
  retryLastStepMsMin: 1_000,
  /** Fewest bytes of a signing secret. */
  secretBytesMin: 24,
  /** Most bytes of a signing secret. */
  secretBytesMax: 64,
  /** Bytes of a generated signing secret. */
  secretBytesGenerated: 32,
  /** Longest error text of one delivery record, in characters. */
  deliveryErrorLengthMax: 256,
} as const;

/**
 * Delays before each retry, in ms: the first retry right away, then 5 s,
 * 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h (the last repeats until
 * the retry window ends). Jitter (±10%) is added by the worker.
 */
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = Object.freeze([
  0,
  5_000,
  300_000,
  1_800_000,
  7_200_000,
  18_000_000,
  36_000_000,
  50_400_000,
  72_000_000,
  86_400_000,
]);

/** The prefix of a signing secret's text form. */
export const WEBHOOK_SECRET_PREFIX = "whsec_";

/**
 * How one delivery attempt ended, as the delivery log records it:
 * `ok` (2xx), `failed` (any other status, 3xx included), `timeout`, `error`
 * (connection or DNS), `blocked` (the SSRF guard refused the target, no
 * request sent), `gone` (410: the hook is disabled), `unknown` (the worker's
 * lease ended while the attempt was open).
 */
export type HookDeliveryOutcome =
  | "ok"
  | "failed"
  | "timeout"
  | "error"
  | "blocked"
  | "gone"
  | "unknown";

/** Every {@linkcode HookDeliveryOutcome}, in a stable order. */
export const HOOK_DELIVERY_OUTCOMES: readonly HookDeliveryOutcome[] = Object
  .freeze(["ok", "failed", "timeout", "error", "blocked", "gone", "unknown"]);

/**
 * Why a webhook worker disables a hook: the receiver answered 410
 * (`gone`), the retry window ended (`retryWindowExceeded`), or the SSRF
 * guard refused the target (`targetBlocked`).
 */
export type HookDisableReason =
  | "gone"
  | "retryWindowExceeded"
  | "targetBlocked";

/** Which part of a webhook target is wrong. Stable strings. */
export type HookTargetErrorCode =
  | "invalidUrl"
  | "invalidHeader"
  | "tooManyHeaders"
  | "invalidTimeout"
  | "invalidRetryWindow"
  | "invalidRetrySchedule"
  | "invalidSecret";

/**
 * A webhook target (URL, headers, timeout, retry policy or secret) is not
 * valid. The server answers it as 400 `invalid`; the message never carries
 * a secret or a header value.
 */
export class HookTargetError extends Error {
  override name = "HookTargetError";
  /** What was wrong, for callers that branch on it. */
  readonly code: HookTargetErrorCode;

  constructor(
    code: HookTargetErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
  }
}

const encoder = new TextEncoder();

/**
 * Parses and checks a hook's target URL: `http:` or `https:`, a host, no
 * user name or password, at most {@linkcode HOOK_TARGET_LIMITS.urlBytesMax}
 * bytes.
 *
 * @param text The URL as the user gave it.
 * @returns The parsed URL (WHATWG-normalised: `http://2130706433/` has the
 *   host `127.0.0.1`).
 * @throws {HookTargetError} `invalidUrl` when any of that fails.
 *
 * @example
 * ```ts
 * import { validateHookUrl } from "./hook_targets.ts";
 * console.assert(validateHookUrl("https://example.com/h").host === "example.com");
 * ```
 */
export function validateHookUrl(text: string): URL {
  const bytes = encoder.encode(text).length;
  if (bytes > HOOK_TARGET_LIMITS.urlBytesMax) {
    throw new HookTargetError(
      "invalidUrl",
      `Cannot use webhook URL as it is too long: ${bytes} > ${HOOK_TARGET_LIMITS.urlBytesMax} bytes`,
    );
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch (cause) {
    throw new HookTargetError(
      "invalidUrl",
      "Cannot use webhook URL as it does not parse",
      { cause },
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new HookTargetError(
      "invalidUrl",
      `Cannot use webhook URL as its scheme must be http or https: current value is '${
        url.protocol.slice(0, 16)
      }'`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    // Never echo the userinfo: it is a credential.
    throw new HookTargetError(
      "invalidUrl",
      "Cannot use webhook URL as it carries a user name or password",
    );
  }
  if (url.hostname === "") {
    throw new HookTargetError(
      "invalidUrl",
      "Cannot use webhook URL as it has no host",
    );
  }
  const normalisedBytes = encoder.encode(url.href).length;
  if (normalisedBytes > HOOK_TARGET_LIMITS.urlBytesMax) {
    throw new HookTargetError(
      "invalidUrl",
      `Cannot use webhook URL as it is too long once normalised: ${normalisedBytes} > ${HOOK_TARGET_LIMITS.urlBytesMax} bytes`,
    );
  }
  return url;
}

/** Header names Aspen sets itself or that belong to the connection. */
const RESERVED_HEADER_NAMES: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  // Aspen sends the event's JSON: a user content type would lie about it.
  "content-type",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);
/** Header name prefixes Aspen owns (`webhook-*`, `aspen-*`) or proxies read. */
const RESERVED_HEADER_PREFIXES: readonly string[] = [
  "webhook-",
  "aspen-",
  "proxy-",
];
/** RFC 9110 `token` (a field name). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: visible ASCII, space and tab (no CR, LF or NUL), no outer spaces. */
const FIELD_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?$/;

/**
 * Checks a hook's user headers: at most {@linkcode HOOK_TARGET_LIMITS.headersMax},
 * valid field names and values, none of `webhook-*`, `aspen-*`, `host`,
 * `content-length`, `content-type`, or hop-by-hop (`connection`,
 * `keep-alive`, `transfer-encoding`, `te`, `trailer`, `upgrade`,
 * `proxy-*`), no name twice (case-insensitive).
 *
 * @param headers Name to value, as the user gave them.
 * @returns A frozen copy with lower-case names.
 * @throws {HookTargetError} `tooManyHeaders` or `invalidHeader`; the message
 *   names the header, never its value.
 *
 * @example
 * ```ts
 * import { validateHookHeaders } from "./hook_targets.ts";
 * console.assert(validateHookHeaders({ "X-Team": "a" })["x-team"] === "a");
 * ```
 */
export function validateHookHeaders(
  headers: Readonly<Record<string, string>>,
): Readonly<Record<string, string>> {
  const entries = Object.entries(headers);
  if (entries.length > HOOK_TARGET_LIMITS.headersMax) {
    throw new HookTargetError(
      "tooManyHeaders",
      `Cannot use webhook headers as there are too many: ${entries.length} > ${HOOK_TARGET_LIMITS.headersMax}`,
    );
  }
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    const lower = checkHeaderName(name);
    if (typeof value !== "string" || !FIELD_VALUE.test(value)) {
      throw new HookTargetError(
        "invalidHeader",
        `Cannot use webhook header '${lower}' as its value is not a valid header value`,
      );
    }
    if (value.length > HOOK_TARGET_LIMITS.headerValueLengthMax) {
      throw new HookTargetError(
        "invalidHeader",
        `Cannot use webhook header '${lower}' as its value is too long: ${value.length} > ${HOOK_TARGET_LIMITS.headerValueLengthMax}`,
      );
    }
    if (Object.hasOwn(out, lower)) {
      throw new HookTargetError(
        "invalidHeader",
        `Cannot use webhook header '${lower}' as it is given twice`,
      );
    }
    out[lower] = value;
  }
  return Object.freeze(out);
}

/** Returns the lower-case name, or throws when it is malformed or reserved. */
function checkHeaderName(name: string): string {
  if (
    name.length === 0 || name.length > HOOK_TARGET_LIMITS.headerNameLengthMax ||
    !TOKEN.test(name)
  ) {
    throw new HookTargetError(
      "invalidHeader",
      `Cannot use webhook header '${
        name.slice(0, HOOK_TARGET_LIMITS.headerNameLengthMax)
      }' as it is not a valid header name`,
    );
  }
  const lower = name.toLowerCase();
  const reserved = RESERVED_HEADER_NAMES.has(lower) ||
    RESERVED_HEADER_PREFIXES.some((prefix) => lower.startsWith(prefix));
  if (reserved) {
    throw new HookTargetError(
      "invalidHeader",
      `Cannot use webhook header '${lower}' as Aspen or the connection owns it`,
    );
  }
  return lower;
}

/**
 * Checks an attempt timeout (1–30 s).
 *
 * @param timeoutMs The timeout, in ms; undefined for the default.
 * @returns The timeout to use, in ms.
 * @throws {HookTargetError} `invalidTimeout` when out of range or not an integer.
 */
export function validateHookTimeoutMs(timeoutMs: number | undefined): number {
  if (timeoutMs === undefined) return HOOK_TARGET_LIMITS.timeoutMsDefault;
  checkIntegerIn(
    timeoutMs,
    HOOK_TARGET_LIMITS.timeoutMsMin,
    HOOK_TARGET_LIMITS.timeoutMsMax,
    "invalidTimeout",
    "timeoutMs",
  );
  return timeoutMs;
}

/**
 * Checks a retry window (60 s–30 days).
 *
 * @param retryWindowMs The window, in ms; undefined for the default (3 days).
 * @returns The window to use, in ms.
 * @throws {HookTargetError} `invalidRetryWindow` when out of range or not an integer.
 */
export function validateRetryWindowMs(
  retryWindowMs: number | undefined,
): number {
  if (retryWindowMs === undefined) {
    return HOOK_TARGET_LIMITS.retryWindowMsDefault;
  }
  checkIntegerIn(
    retryWindowMs,
    HOOK_TARGET_LIMITS.retryWindowMsMin,
    HOOK_TARGET_LIMITS.retryWindowMsMax,
    "invalidRetryWindow",
    "retryWindowMs",
  );
  return retryWindowMs;
}

/**
 * Checks a custom retry schedule: 1–20 steps, each an integer from 0 to
 * 24 h, the last at least 1 s (it repeats until the window ends).
 *
 * @param steps Delays before each retry, in ms; undefined for the default.
 * @returns A frozen copy of the schedule to use.
 * @throws {HookTargetError} `invalidRetrySchedule` naming the bad step.
 */
export function validateRetrySchedule(
  steps: readonly number[] | undefined,
): readonly number[] {
  if (steps === undefined) return DEFAULT_RETRY_SCHEDULE_MS;
  if (
    !Array.isArray(steps) || steps.length === 0 ||
    steps.length > HOOK_TARGET_LIMITS.retryScheduleStepsMax
  ) {
    throw new HookTargetError(
      "invalidRetrySchedule",
      `Cannot use 'retrySchedule' as it must have 1 to ${HOOK_TARGET_LIMITS.retryScheduleStepsMax} steps: current length is ${
        Array.isArray(steps) ? steps.length : "not a list"
      }`,
    );
  }
  steps.forEach((step, index) =>
    checkIntegerIn(
      step,
      0,
      HOOK_TARGET_LIMITS.retryStepMsMax,
      "invalidRetrySchedule",
      `retrySchedule[${index}]`,
    )
  );
  const last = steps[steps.length - 1]!;
  if (last < HOOK_TARGET_LIMITS.retryLastStepMsMin) {
    throw new HookTargetError(
      "invalidRetrySchedule",
      `Cannot use 'retrySchedule' as its last step repeats and must be at least ${HOOK_TARGET_LIMITS.retryLastStepMsMin} ms: current value is ${last}`,
    );
  }
  return Object.freeze([...steps]);
}

function checkIntegerIn(
  value: number,
  min: number,
  max: number,
  code: HookTargetErrorCode,
  field: string,
): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new HookTargetError(
      code,
      `Cannot use '${field}' as it must be an integer from ${min} to ${max} ms: current value is ${
        String(value).slice(0, 32)
      }`,
    );
  }
}

/**
 * Parses a signing secret `whsec_<base64>` (Standard Webhooks) of 24–64
 * bytes.
 *
 * @param text The secret's text form.
 * @returns The key bytes.
 * @throws {HookTargetError} `invalidSecret`; the message never carries the secret.
 *
 * @example
 * ```ts
 * import { parseWebhookSecret } from "./hook_targets.ts";
 * const key = parseWebhookSecret("whsec_" + btoa("k".repeat(32)));
 * console.assert(key.length === 32);
 * ```
 */
export function parseWebhookSecret(text: string): Uint8Array {
  if (typeof text !== "string" || !text.startsWith(WEBHOOK_SECRET_PREFIX)) {
    throw new HookTargetError(
      "invalidSecret",
      `Cannot use webhook secret as it must start with '${WEBHOOK_SECRET_PREFIX}'`,
    );
  }
  const key = decodeBase64(text.slice(WEBHOOK_SECRET_PREFIX.length));
  if (key === null) {
    throw new HookTargetError(
      "invalidSecret",
      `Cannot use webhook secret as the text after '${WEBHOOK_SECRET_PREFIX}' is not base64`,
    );
  }
  checkSecretBytes(key.length);
  return key;
}

/**
 * Writes key bytes as a `whsec_<base64>` secret.
 *
 * @param key 24–64 bytes.
 * @returns The secret's text form.
 * @throws {HookTargetError} `invalidSecret` when the key has another length.
 */
export function formatWebhookSecret(key: Uint8Array): string {
  checkSecretBytes(key.length);
  return WEBHOOK_SECRET_PREFIX + encodeBase64(key);
}

function checkSecretBytes(bytes: number): void {
  const { secretBytesMin, secretBytesMax } = HOOK_TARGET_LIMITS;
  if (bytes < secretBytesMin || bytes > secretBytesMax) {
    throw new HookTargetError(
      "invalidSecret",
      `Cannot use webhook secret as it must be ${secretBytesMin} to ${secretBytesMax} bytes: current length is ${bytes}`,
    );
  }
}
