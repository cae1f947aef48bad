/**
 * One webhook delivery attempt (issue 17, "Webhook delivery"): check the
 * target with the SSRF guard, sign, POST, classify. The worker's loop
 * records the result with `finish` and schedules the next attempt with
 * {@link ./schedule.ts}.
 *
 * - The guard runs first; a refusal is outcome `blocked` and no request is
 *   sent.
 * - Plain http connects to the checked address (the URL's host rewritten
 *   to it, the `Host` header keeping the name), so a DNS answer that
 *   changes after the check (rebinding) cannot move the request.
 * - Redirects are not followed (`redirect: "manual"`): a 3xx is `failed`.
 * - The whole exchange, DNS included, has `timeoutMs` (1–30 s, default
 *   15 s); at most 64 KiB of the response body is read, then dropped. A
 *   status counts once that read is done: a body that stalls past the
 *   timeout is `timeout`, one cut off is `error` (both retried).
 * - `error` is at most 256 characters and never carries a secret, a header
 *   value or the URL's path and query (they may hold tokens).
 *
 * @module
 */
import {
  HOOK_TARGET_LIMITS,
  validateHookHeaders,
  validateHookTimeoutMs,
  validateHookUrl,
} from "../../protocol/hook_targets.ts";
import {
  type CheckedAddress,
  TargetBlockedError,
  type TargetGuard,
} from "./guard.ts";
import { classify, honoursRetryAfter, parseRetryAfter } from "./schedule.ts";
import { signatureHeader, WEBHOOK_ID_LENGTH_MAX } from "./sign.ts";

/** Bytes of a response body read at most; the rest is dropped unread. */
export const RESPONSE_BODY_BYTES_MAX = 64 * 1024;
/** Largest request body, in bytes (an event's data is well below). */
export const REQUEST_BODY_BYTES_MAX = 1024 * 1024;

/** One attempt to send. */
export interface DeliverRequest {
  /** The hook's target (http or https). */
  readonly url: URL | string;
  /** The hook's user headers (checked by `validateHookHeaders`). */
  readonly headers?: Readonly<Record<string, string>>;
  /** The event's `data` as JSON bytes, sent and signed as they are. */
  readonly body: Uint8Array;
  /** The `webhook-id`: `<clusterId>.<R>.<I>`, stable across retries and replays. */
  readonly id: string;
  /** The `webhook-timestamp`, Unix seconds, fresh per attempt. */
  readonly timestampSec: number;
  /** The signing keys: current, then previous during a rotation. */
  readonly secrets: readonly Uint8Array[];
  /** The attempt's number, 1 for the first (`aspen-attempt`). */
  readonly attempt: number;
  /** The replay's id when this attempt re-delivers (`aspen-replay`). */
  readonly replayOf?: string;
  /** The whole attempt's timeout, in ms (1,000–30,000; default 15,000). */
  readonly timeoutMs?: number;
  /** The SSRF guard. */
  readonly guard: TargetGuard;
  /** Cancels the attempt; `deliver` then rejects with its reason. */
  readonly signal?: AbortSignal;
  /** A monotonic clock in ms for `latencyMs`; default `performance.now`. */
  readonly monotonicMs?: () => number;
  /** The wall clock, Unix ms, for a `Retry-After` date; default `Date.now`. */
  readonly wallClockMs?: () => number;
}

/** How an attempt went, for the `finish` record. */
export interface DeliveryResult {
  /** The response status, when one arrived. */
  readonly status?: number;
  /** From the guard's start to the end of the response, in ms. */
  readonly latencyMs: number;
  /** `ok`, `gone`, `failed`, `timeout`, `error` or `blocked`. */
  readonly outcome: "ok" | "gone" | "failed" | "timeout" | "error" | "blocked";
  /** What went wrong, ≤ 256 characters, no secrets. */
  readonly error?: string;
  /** The receiver's `Retry-After` in ms (≤ 1 h), for 429, 502, 503 and 504. */
  readonly retryAfterMs?: number;
}

/**
 * Makes one delivery attempt.
 *
 * @param request The target, the event, the signing keys and the guard.
 * @returns The result; every failure of the receiver or the network is an
 *   outcome, not an exception.
 * @throws {HookTargetError} When the URL, headers or timeout are invalid
 *   (the server refuses them at create, so this is a bug upstream).
 * @throws {RangeError | TypeError} For a bad attempt number, id, timestamp,
 *   secrets or an oversized body.
 * @throws The `signal`'s reason when the caller aborts.
 */
export async function deliver(
  request: DeliverRequest,
): Promise<DeliveryResult> {
  const url = validateHookUrl(String(request.url));
  const userHeaders = validateHookHeaders(request.headers ?? {});
  const timeoutMs = validateHookTimeoutMs(request.timeoutMs);
  // A copy: what is signed is what is sent, even if the caller reuses its buffer.
  const body = new Uint8Array(request.body);
  const headers = requestHeaders(request, body, userHeaders);
  request.signal?.throwIfAborted();
  const monotonicMs = request.monotonicMs ?? (() => performance.now());
  const startMs = monotonicMs();
  const latency = () => Math.max(0, Math.round(monotonicMs() - startMs));
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new DOMException(
          `Attempt timed out after ${timeoutMs} ms`,
          "TimeoutError",
        ),
      ),
    timeoutMs,
  );
  const signal = request.signal === undefined
    ? timeout.signal
    : AbortSignal.any([request.signal, timeout.signal]);
  try {
    let checked: CheckedAddress;
    try {
      checked = await request.guard.check(url, signal);
    } catch (error) {
      request.signal?.throwIfAborted();
      const outcome = error instanceof TargetBlockedError
        ? "blocked"
        : timeout.signal.aborted
        ? "timeout"
        : "error";
      return { latencyMs: latency(), outcome, error: errorText(error, url) };
    }
    return await send(
      { request, url, checked, headers, body, signal, latency },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** POSTs to the checked address and reads the answer. */
async function send(attempt: {
  readonly request: DeliverRequest;
  readonly url: URL;
  readonly checked: CheckedAddress;
  readonly headers: Headers;
  readonly body: Uint8Array<ArrayBuffer>;
  readonly signal: AbortSignal;
  readonly latency: () => number;
}): Promise<DeliveryResult> {
  const { request, url, checked, headers, signal, latency } = attempt;
  const { url: target, host } = connectTarget(url, checked);
  if (host !== null) headers.set("host", host);
  // Deno's fetch drops a Host header unless the client allows it. One
  // client per attempt: no pooled connection outlives the attempt, so none
  // is reused after a later check would have refused its address.
  using client = Deno.createHttpClient({ allowHost: host !== null });
  let status: number | undefined;
  let retryAfterMs: number | undefined;
  try {
    const response = await fetch(target, {
      method: "POST",
      headers,
      body: attempt.body,
      redirect: "manual",
      signal,
      client,
    });
    status = response.status;
    if (honoursRetryAfter(status)) {
      const wallClockMs = request.wallClockMs ?? (() => Date.now());
      retryAfterMs = parseRetryAfter(
        response.headers.get("retry-after"),
        wallClockMs(),
      );
    }
    await drainBounded(response);
  } catch (error) {
    request.signal?.throwIfAborted();
    return {
      ...(status === undefined ? {} : { status }),
      latencyMs: latency(),
      // Our timeout aborts with a TimeoutError; so does a timed-out read.
      outcome: classify(error) === "timeout" || signal.aborted
        ? "timeout"
        : "error",
      error: errorText(error, url, target),
    };
  }
  const outcome = classify(status);
  return {
    status,
    latencyMs: latency(),
    outcome,
    ...(status >= 300 && status < 400
      ? { error: `Redirect ${status} not followed` }
      : {}),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** Where an attempt connects, from {@linkcode connectTarget}. */
export interface ConnectTarget {
  /** The URL to fetch. */
  readonly url: URL;
  /** The `Host` header to send, null to let fetch derive it from `url`. */
  readonly host: string | null;
}

/**
 * The URL to connect to. Plain http: the checked address, with the name
 * in `Host`, so the connection goes where the guard looked. https: the
 * name itself, as TLS needs it for SNI and certificate checks and Deno's
 * fetch cannot pin a name to an address (its `tcp` proxy transport sends
 * plain HTTP); a rebinding between the check and the connection is then
 * possible, and the certificate (issued for the name, not for an internal
 * address) is what stands in its way.
 *
 * @param url The hook's target.
 * @param checked The address the guard checked.
 * @returns The URL to fetch and the `Host` header to send.
 *
 * @example
 * ```ts
 * import { connectTarget } from "./deliver.ts";
 * const target = connectTarget(new URL("http://hook.test:8080/h?a=1"), {
 *   address: "93.184.216.34",
 *   family: 4,
 * });
 * console.assert(target.url.href === "http://93.184.216.34:8080/h?a=1");
 * console.assert(target.host === "hook.test:8080");
 * ```
 */
export function connectTarget(
  url: URL,
  checked: CheckedAddress,
): ConnectTarget {
  if (url.protocol === "https:") return { url, host: null };
  const target = new URL(url);
  target.hostname = checked.family === 6
    ? `[${checked.address}]`
    : checked.address;
  return { url: target, host: url.host };
}

/** Aspen's headers over the user's (which may not name any of them). */
function requestHeaders(
  request: DeliverRequest,
  body: Uint8Array,
  userHeaders: Readonly<Record<string, string>>,
): Headers {
  if (!Number.isSafeInteger(request.attempt) || request.attempt < 1) {
    throw new RangeError(
      `Cannot deliver as 'attempt' must be a positive integer: current value is ${request.attempt}`,
    );
  }
  if (body.length > REQUEST_BODY_BYTES_MAX) {
    throw new RangeError(
      `Cannot deliver as the body is too large: ${body.length} > ${REQUEST_BODY_BYTES_MAX} bytes`,
    );
  }
  const replayOf = request.replayOf;
  if (
    replayOf !== undefined &&
    !(replayOf.length <= WEBHOOK_ID_LENGTH_MAX &&
      /^[\x21-\x7e]+$/.test(replayOf))
  ) {
    throw new TypeError(
      `Cannot deliver as 'replayOf' must be 1 to ${WEBHOOK_ID_LENGTH_MAX} visible ASCII characters`,
    );
  }
  const headers = new Headers(userHeaders);
  headers.set("content-type", "application/json");
  headers.set("webhook-id", request.id);
  headers.set("webhook-timestamp", String(request.timestampSec));
  headers.set(
    "webhook-signature",
    signatureHeader(
      request.secrets,
      request.id,
      request.timestampSec,
      body,
    ),
  );
  headers.set("aspen-attempt", String(request.attempt));
  if (replayOf !== undefined) headers.set("aspen-replay", replayOf);
  return headers;
}

/**
 * Reads at most {@linkcode RESPONSE_BODY_BYTES_MAX} of the body, then
 * cancels the rest: a receiver cannot make the worker hold or wait for
 * more. Aborting the attempt's signal ends the read too.
 */
async function drainBounded(response: Response): Promise<void> {
  if (response.body === null) return;
  const reader = response.body.getReader();
  let bytes = 0;
  try {
    while (bytes < RESPONSE_BODY_BYTES_MAX) {
      const chunk = await reader.read();
      if (chunk.done) return;
      bytes += chunk.value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * An error's text for the delivery log: name and message, the URL's path
 * and query replaced by its origin (Deno's fetch errors quote the URL),
 * at most {@linkcode HOOK_TARGET_LIMITS.deliveryErrorLengthMax} characters.
 */
function errorText(error: unknown, url: URL, target?: URL): string {
  let text = describe(error);
  // fetch says "fetch failed"; the reason (refused, reset, TLS) is its cause.
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause !== undefined) text += ` (${describe(cause)})`;
  for (const location of [url, target]) {
    if (location === undefined) continue;
    text = text.replaceAll(location.href, location.origin);
    const rest = location.pathname + location.search;
    if (rest.length > 1) text = text.replaceAll(rest, "");
  }
  // Any query left (a URL quoted in another form) may hold a token.
  text = text.replace(/\?[^\s)"']*/g, "");
  const max = HOOK_TARGET_LIMITS.deliveryErrorLengthMax;
  return text.length <= max ? text : text.slice(0, max - 1) + "…";
}

function describe(error: unknown): string {
  return error instanceof Error || error instanceof DOMException
    ? `${error.name}: ${error.message}`
    : String(error).slice(0, 256);
}
