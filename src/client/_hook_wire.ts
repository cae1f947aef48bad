/**
 * `client.hooks`' wire forms and input checks, private to `src/client/`:
 * selectors and targets to and from the wire, hook names, type patterns
 * and create's options checked before anything is sent.
 *
 * @module
 */
import { keyFromWire, keyToWire } from "../protocol/http_api_codec.ts";
import {
  EVENT_TYPE_PATTERN,
  EVENTS_LIMITS,
  type WireSelector,
} from "../protocol/http_api_events.ts";
import {
  HOOK_LIMITS,
  type WireHook,
  type WireHookTarget,
} from "../protocol/http_api_hooks.ts";
import {
  parseWebhookSecret,
  validateHookHeaders,
  validateHookTimeoutMs,
  validateHookUrl,
  validateRetrySchedule,
  validateRetryWindowMs,
} from "../protocol/hook_targets.ts";
import type {
  AspenHook,
  HookCreateOptions,
  HookSelector,
  HookTarget,
} from "./hook_types.ts";
import type { KvKey } from "./types.ts";

/**
 * The wire form of a hook selector.
 *
 * @throws {TypeError} For a shape other than `{prefix}`, `{start, end}` or `{}`, or a malformed key.
 */
export function hookSelectorToWire(selector: HookSelector): WireSelector {
  if (typeof selector !== "object" || selector === null) {
    throw new TypeError(
      `Invalid selector: expected {prefix}, {start, end} or {}: received ${selector}`,
    );
  }
  const fields = Object.keys(selector).sort().join(",");
  const given = selector as { prefix?: KvKey; start?: KvKey; end?: KvKey };
  if (fields === "") return {};
  if (fields === "prefix") return { prefix: keyToWire(given.prefix!) };
  if (fields === "end,start") {
    return { start: keyToWire(given.start!), end: keyToWire(given.end!) };
  }
  throw new TypeError(
    `Invalid selector: expected {prefix}, {start, end} or {}: received fields '${
      fields.slice(0, 64)
    }'`,
  );
}

/** A wire selector as keys. */
export function selectorFromWire(selector: WireSelector): HookSelector {
  const given = selector as Record<string, unknown>;
  if ("prefix" in given) return { prefix: keyFromWire(given.prefix) };
  if ("start" in given && "end" in given) {
    return { start: keyFromWire(given.start), end: keyFromWire(given.end) };
  }
  return {};
}

export function targetToWire(target: HookTarget): WireHookTarget {
  if ("webhook" in target) {
    validateHookUrl(target.webhook.url);
    const headers = target.webhook.headers === undefined
      ? undefined
      : validateHookHeaders(target.webhook.headers);
    return {
      webhook: {
        url: target.webhook.url,
        ...(headers === undefined ? {} : { headers }),
      },
    };
  }
  if ("forward" in target) {
    const { peer, prefix } = target.forward;
    return {
      forward: {
        peer,
        ...(prefix === undefined ? {} : { prefix: keyToWire(prefix) }),
      },
    };
  }
  if ("queue" in target || "job" in target) return target;
  throw new TypeError(
    "Invalid target: expected {webhook}, {queue}, {job} or {forward}",
  );
}

export function targetFromWire(target: WireHookTarget): HookTarget {
  if ("forward" in target && target.forward.prefix !== undefined) {
    return {
      forward: {
        peer: target.forward.peer,
        prefix: keyFromWire(target.forward.prefix),
      },
    };
  }
  return target as HookTarget;
}

export function hookFromWire(hook: WireHook): AspenHook {
  return {
    ...hook,
    selector: selectorFromWire(hook.selector),
    target: targetFromWire(hook.target),
  };
}

/**
 * Checks a hook name: `[a-z0-9._-]{1,64}`.
 *
 * @throws {TypeError} When it is not one.
 */
export function checkHookName(name: string): void {
  if (typeof name !== "string" || !HOOK_LIMITS.namePattern.test(name)) {
    throw new TypeError(
      `Invalid hook name '${
        String(name).slice(0, 80)
      }': expected 1 to 64 of a-z, 0-9, '.', '_', '-'`,
    );
  }
}

/** Checks a hook reference (id or name) before it is sent. */
export function checkRef(ref: string): void {
  if (typeof ref !== "string" || ref.length < 1 || ref.length > 64) {
    throw new TypeError(
      `Invalid hook: expected its id or name (1 to 64 characters): received '${
        String(ref).slice(0, 80)
      }'`,
    );
  }
}

/**
 * Checks type patterns: 1 to 16 names or trailing-`*` globs.
 *
 * @throws {RangeError} For no pattern or more than 16.
 * @throws {TypeError} For a malformed pattern.
 */
export function checkTypePatterns(types: readonly string[]): void {
  if (
    !Array.isArray(types) || types.length < 1 ||
    types.length > EVENTS_LIMITS.typesMax
  ) {
    throw new RangeError(
      `Invalid types: expected 1 to ${EVENTS_LIMITS.typesMax} patterns: received ${
        Array.isArray(types) ? types.length : typeof types
      }`,
    );
  }
  for (const type of types) {
    if (typeof type !== "string" || !EVENT_TYPE_PATTERN.test(type)) {
      throw new TypeError(
        `Invalid type pattern '${
          String(type).slice(0, 64)
        }': expected a name like 'kv.set' or a glob like 'kv.*'`,
      );
    }
  }
}

export function checkRevision(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Invalid '${field}': expected a non-negative integer: received ${value}`,
    );
  }
}

/** Checks `create`'s options (the server checks them again). */
export function checkCreate(options: HookCreateOptions): void {
  checkHookName(options.name);
  if (options.types !== undefined) checkTypePatterns(options.types);
  if (options.secret !== undefined) parseWebhookSecret(options.secret);
  if (options.fromRevision !== undefined) {
    checkRevision(options.fromRevision, "fromRevision");
  }
  if (options.timeoutMs !== undefined) validateHookTimeoutMs(options.timeoutMs);
  if (options.retryWindowMs !== undefined) {
    validateRetryWindowMs(options.retryWindowMs);
  }
  if (options.retrySchedule !== undefined) {
    validateRetrySchedule(options.retrySchedule);
  }
}
