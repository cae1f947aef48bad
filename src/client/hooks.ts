/**
 * `client.hooks`: durable hooks (issue 17). A hook follows the events
 * history (a key selector and type patterns, as a watch) from a cursor
 * that commits through Raft, and delivers each matching event to its
 * target: a signed webhook (sent by webhook workers, `aspen worker start`)
 * or an Aspen named queue (enqueued by the leader).
 *
 * Management: `create`, `list`, `get`, `delete`, `enable`, `disable`,
 * `rotateSecret`, `deliveries` (the delivery log, newest first), `replay`
 * and `trigger` (a `hook.test` event to that hook only).
 *
 * For webhook workers (admin token): {@linkcode hookWorkerCalls} gives
 * `claim`, `begin`, `finish`, `replayDone` and `listEvents`
 * ({@link ./hook_worker_calls.ts}), the wire-level calls of the delivery
 * protocol described in `src/protocol/http_api_hooks.ts`;
 * `src/workers/webhooks/worker.ts` drives them. Applications do not need
 * them.
 *
 * Refusals are typed: {@linkcode HookExistsError} (409, a name taken),
 * {@linkcode HookNotFoundError} (404), {@linkcode ClaimLostError} (409, a
 * worker's claim moved), `InvalidRequestError` (400), and a 410 `compacted`
 * for a start or replay below the history window.
 *
 * @module
 */
import { ROUTES } from "../protocol/http_api.ts";
import { keyFromWire, keyToWire } from "../protocol/http_api_codec.ts";
import {
  EVENT_TYPE_PATTERN,
  EVENTS_LIMITS,
  type WireSelector,
} from "../protocol/http_api_events.ts";
import {
  HOOK_LIMITS,
  type HookDeliveriesResponse,
  type WireDelivery,
  type WireHook,
  type WireHookTarget,
} from "../protocol/http_api_hooks.ts";
import {
  HOOK_DELIVERY_OUTCOMES,
  type HookDeliveryOutcome,
  parseWebhookSecret,
  validateHookHeaders,
  validateHookTimeoutMs,
  validateHookUrl,
  validateRetrySchedule,
  validateRetryWindowMs,
} from "../protocol/hook_targets.ts";
import type { HttpTransport } from "./_transport.ts";
import { HookWorkerCalls } from "./hook_worker_calls.ts";
import type { KvKey } from "./types.ts";

/**
 * Which KV keys a hook follows: every key under `prefix` (the prefix
 * itself excluded), the keys in `[start, end)`, or every key (`{}`).
 * Cluster events carry no key and pass every selector; `types` picks them.
 */
export type HookSelector =
  | { readonly prefix: KvKey }
  | { readonly start: KvKey; readonly end: KvKey }
  | Record<string, never>;

/** Where a hook delivers (`forward.prefix` as a key). */
export type HookTarget =
  | {
    readonly webhook: {
      readonly url: string;
      readonly headers?: Readonly<Record<string, string>>;
    };
  }
  | { readonly queue: { readonly queue: string } }
  | { readonly job: { readonly type: string; readonly queue?: string } }
  | { readonly forward: { readonly peer: string; readonly prefix?: KvKey } };

/** Options of {@linkcode AspenHooks.create}. */
export interface HookCreateOptions {
  /** Unique, `[a-z0-9._-]{1,64}`. */
  readonly name: string;
  /** Default every key. */
  readonly selector?: HookSelector;
  /** Type names or trailing-`*` globs, 1 to 16. Default `["kv.*"]`. */
  readonly types?: readonly string[];
  /** Where it delivers. */
  readonly target: HookTarget;
  /** `whsec_` + base64 of 24–64 bytes (webhooks); default 32 random bytes. */
  readonly secret?: string;
  /** First revision delivered (inclusive). Default the next revision. */
  readonly fromRevision?: number;
  /** Timeout of one webhook attempt, 1,000–30,000 ms. Default 15,000. */
  readonly timeoutMs?: number;
  /** How long after the first failure retries go on, 60 s–30 days. Default 3 days. */
  readonly retryWindowMs?: number;
  /** Delays before each retry (≤ 20 steps of ≤ 24 h, the last repeats). */
  readonly retrySchedule?: readonly number[];
}

/** How one delivery attempt ended (`ok`, `failed`, `timeout`, `error`, `blocked`, `gone`, `unknown`). */
export type HookOutcome = HookDeliveryOutcome;

/** A hook as `get` and `list` show it (never its secret, nor header values). */
export interface AspenHook {
  /** 16 hex digits. */
  readonly id: string;
  /** Its unique name. */
  readonly name: string;
  /** The keys it follows. */
  readonly selector: HookSelector;
  /** The event type patterns it follows. */
  readonly types: readonly string[];
  /** Where it delivers. */
  readonly target: HookTarget;
  /** `disabled` by a user or by its worker (`disabledReason`). */
  readonly state: "active" | "disabled";
  /** `disabled`, `gone`, `retryWindowExceeded` or `targetBlocked`. */
  readonly disabledReason?: string;
  /** The last event done (`"R.I"`), or null before the first (see `fromRevision`). */
  readonly cursor: string | null;
  /** The revision it started from. */
  readonly fromRevision: number;
  /** Revisions between the cursor and the answering node's head. */
  readonly lag: number;
  /** Timeout of one webhook attempt, ms. */
  readonly timeoutMs: number;
  /** How long retries go on after the first failure, ms. */
  readonly retryWindowMs: number;
  /** A custom retry schedule (ms), or null for the default. */
  readonly retrySchedule: readonly number[] | null;
  /** When it was created, Unix ms. */
  readonly createdAtMs: number;
  /** The claiming worker's name, or null (`no worker`). */
  readonly worker: string | null;
  /** The event being retried, its last attempt and when the next is due (Unix ms). */
  readonly retrying: {
    readonly event: string;
    readonly attempt: number;
    readonly nextAttemptAtMs: number;
  } | null;
  /** Attempts logged so far, by outcome. */
  readonly deliveries: Readonly<Record<HookOutcome, number>>;
}

/** What `create` and `rotateSecret` answer: the secret, shown this once. */
export interface HookCreated {
  /** The hook's id. */
  readonly id: string;
  /** The hook's name. */
  readonly name: string;
  /** The signing secret (`whsec_…`), null for a target that signs nothing. */
  readonly secret: string | null;
  /** The hook's cursor (`"R.I"`), or null before its first event. */
  readonly cursor: string | null;
  /** The revision it starts from. */
  readonly fromRevision: number;
}

/** One delivery attempt as the log keeps it. */
export interface HookDelivery {
  /** The event (`"R.I"`). */
  readonly eventId: string;
  /** 1 for the first attempt of the event. */
  readonly attempt: number;
  /** When `begin` committed, Unix ms. */
  readonly startedAtMs: number;
  /** The request's duration, ms. */
  readonly latencyMs: number;
  /** The response status, null when none came. */
  readonly status: number | null;
  /** How it ended. */
  readonly outcome: HookOutcome;
  /** What went wrong (≤ 256 characters, no secrets). */
  readonly error: string | null;
  /** When the next attempt is due, Unix ms; null when none follows. */
  readonly nextAttemptAtMs: number | null;
  /** A replay's attempt. */
  readonly replay: boolean;
  /** The worker that made it. */
  readonly worker: string;
}

/** Options of {@linkcode AspenHooks.deliveries}. */
export interface HookDeliveriesOptions {
  /** Only attempts with this outcome. */
  readonly outcome?: HookOutcome;
  /** 1 to 1,000 records. Default the server's (100). */
  readonly limit?: number;
  /** A previous page's `cursor`: older records. */
  readonly cursor?: string;
}

/** One page of the delivery log, newest first. */
export interface HookDeliveriesPage {
  /** Newest first. */
  readonly deliveries: readonly HookDelivery[];
  /** Pass to the next call for older records; null at the oldest. */
  readonly cursor: string | null;
}

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
function selectorFromWire(selector: WireSelector): HookSelector {
  const given = selector as Record<string, unknown>;
  if ("prefix" in given) return { prefix: keyFromWire(given.prefix) };
  if ("start" in given && "end" in given) {
    return { start: keyFromWire(given.start), end: keyFromWire(given.end) };
  }
  return {};
}

function targetToWire(target: HookTarget): WireHookTarget {
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

function targetFromWire(target: WireHookTarget): HookTarget {
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

function hookFromWire(hook: WireHook): AspenHook {
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
function checkRef(ref: string): void {
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

function checkRevision(value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Invalid '${field}': expected a non-negative integer: received ${value}`,
    );
  }
}

/** Checks `create`'s options (the server checks them again). */
function checkCreate(options: HookCreateOptions): void {
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

/** Each client's transport, for {@linkcode hookWorkerCalls}. */
const TRANSPORTS = new WeakMap<AspenHooks, HttpTransport>();

/**
 * For webhook workers: the delivery protocol's calls (claim, begin,
 * finish, replay-done, and history pages with wire selectors) over a
 * client's connection. Not part of the application API (`mod.ts`).
 *
 * @param hooks A client's `hooks` (the client has the admin token).
 * @returns The calls.
 */
export function hookWorkerCalls(hooks: AspenHooks): HookWorkerCalls {
  const transport = TRANSPORTS.get(hooks);
  if (transport === undefined) {
    throw new TypeError("Cannot make worker calls: not a client's hooks");
  }
  return new HookWorkerCalls(transport);
}

/**
 * Hooks: create and manage them, read their delivery logs, replay and
 * trigger; and the webhook workers' protocol.
 *
 * @example
 * ```ts ignore
 * const { id, secret } = await client.hooks.create({
 *   name: "orders",
 *   selector: { prefix: ["orders"] },
 *   target: { webhook: { url: "https://example.com/hooks/orders" } },
 * });
 * console.log(id, secret); // the secret is shown this once
 * const hook = await client.hooks.get("orders");
 * console.log(hook.state, hook.cursor, hook.worker ?? "no worker");
 * ```
 */
export class AspenHooks {
  readonly #transport: HttpTransport;

  /** Used by `connect`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
    TRANSPORTS.set(this, transport);
  }

  /**
   * Creates a hook; its cursor starts at `fromRevision` (default the next
   * revision).
   *
   * @returns Its id, name, cursor and (webhooks) the secret, shown this once.
   * @throws {TypeError | RangeError} For a bad name, selector or types.
   * @throws {HookTargetError} For a bad URL, header, timeout, retry policy or secret.
   * @throws {HookExistsError} When a hook has this name.
   * @throws {LimitExceededError} When 1,000 hooks exist.
   */
  async create(options: HookCreateOptions): Promise<HookCreated> {
    checkCreate(options);
    const body = {
      name: options.name,
      ...(options.selector === undefined
        ? {}
        : { selector: hookSelectorToWire(options.selector) }),
      ...(options.types === undefined ? {} : { types: options.types }),
      target: targetToWire(options.target),
      ...(options.secret === undefined ? {} : { secret: options.secret }),
      ...(options.fromRevision === undefined
        ? {}
        : { fromRevision: options.fromRevision }),
      ...(options.timeoutMs === undefined
        ? {}
        : { timeoutMs: options.timeoutMs }),
      ...(options.retryWindowMs === undefined
        ? {}
        : { retryWindowMs: options.retryWindowMs }),
      ...(options.retrySchedule === undefined
        ? {}
        : { retrySchedule: options.retrySchedule }),
    };
    return await this.#transport.request(
      "POST",
      ROUTES.hookCreate,
      body,
      "write",
    ) as HookCreated;
  }

  /** Every hook (at most 1,000), without secrets. */
  async list(): Promise<AspenHook[]> {
    const reply = await this.#transport.request(
      "POST",
      ROUTES.hookList,
      {},
      "idempotent",
    ) as { hooks: readonly WireHook[] };
    return reply.hooks.map(hookFromWire);
  }

  /**
   * One hook by id or name: state, cursor, lag, the claiming worker.
   *
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async get(hook: string): Promise<AspenHook> {
    checkRef(hook);
    return hookFromWire(await this.#ref(ROUTES.hookGet, hook, "idempotent"));
  }

  /**
   * Deletes a hook and its delivery log.
   *
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async delete(hook: string): Promise<void> {
    checkRef(hook);
    await this.#ref(ROUTES.hookDelete, hook, "write");
  }

  /**
   * Enables a hook: delivery resumes at its cursor (on the event that
   * failed, for a hook disabled by its worker).
   *
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async enable(hook: string): Promise<AspenHook> {
    checkRef(hook);
    return await this.#state(ROUTES.hookEnable, hook);
  }

  /**
   * Disables a hook (its cursor stays; `hook.disabled` is emitted).
   *
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async disable(hook: string): Promise<AspenHook> {
    checkRef(hook);
    return await this.#state(ROUTES.hookDisable, hook);
  }

  /**
   * Gives a webhook hook a new signing secret; the previous one still
   * signs (beside it) for 24 h.
   *
   * @param secret `whsec_` + base64 of 24–64 bytes; default 32 random bytes.
   * @returns The new secret, shown this once.
   * @throws {HookTargetError} For a malformed secret.
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async rotateSecret(hook: string, secret?: string): Promise<HookCreated> {
    checkRef(hook);
    if (secret !== undefined) parseWebhookSecret(secret);
    return await this.#transport.request("POST", ROUTES.hookRotateSecret, {
      hook,
      ...(secret === undefined ? {} : { secret }),
    }, "write") as HookCreated;
  }

  /**
   * One page of a hook's delivery log, newest first.
   *
   * @throws {RangeError} When `limit` is not 1 to 1,000.
   * @throws {TypeError} For an unknown outcome.
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async deliveries(
    hook: string,
    options: HookDeliveriesOptions = {},
  ): Promise<HookDeliveriesPage> {
    checkRef(hook);
    const max = HOOK_LIMITS.deliveriesLimitMax;
    const { limit, outcome, cursor } = options;
    if (
      limit !== undefined &&
      (!Number.isSafeInteger(limit) || limit < 1 || limit > max)
    ) {
      throw new RangeError(
        `Invalid limit: expected 1 to ${max}: received ${limit}`,
      );
    }
    if (outcome !== undefined && !HOOK_DELIVERY_OUTCOMES.includes(outcome)) {
      throw new TypeError(
        `Invalid outcome '${String(outcome).slice(0, 32)}': expected one of ${
          HOOK_DELIVERY_OUTCOMES.join(", ")
        }`,
      );
    }
    const reply = await this.#transport.request("POST", ROUTES.hookDeliveries, {
      hook,
      ...(outcome === undefined ? {} : { outcome }),
      ...(limit === undefined ? {} : { limit }),
      ...(cursor === undefined ? {} : { cursor }),
    }, "idempotent") as HookDeliveriesResponse;
    return {
      deliveries: reply.deliveries.map((d: WireDelivery) => ({ ...d })),
      cursor: reply.cursor,
    };
  }

  /**
   * Re-delivers the hook's matching events of `[fromRevision, toRevision]`
   * in order, on a side cursor (at most 100,000 events); webhook requests
   * then carry `aspen-replay`.
   *
   * @throws {RangeError} For bad revisions.
   * @throws {HookNotFoundError} When none has this id or name.
   * @throws {AspenError} `compacted` (410) when `fromRevision` is below the window.
   */
  async replay(
    hook: string,
    fromRevision: number,
    toRevision: number,
  ): Promise<void> {
    checkRef(hook);
    checkRevision(fromRevision, "fromRevision");
    checkRevision(toRevision, "toRevision");
    if (toRevision < fromRevision) {
      throw new RangeError(
        `Invalid replay: 'toRevision' must not be below 'fromRevision': received ${fromRevision} to ${toRevision}`,
      );
    }
    await this.#transport.request("POST", ROUTES.hookReplay, {
      hook,
      fromRevision,
      toRevision,
    }, "write");
  }

  /**
   * Sends a `hook.test` event to this hook only; `data` is its payload
   * (at most 4,096 bytes of JSON; `hook` and `name` are set by the server).
   *
   * @throws {RangeError} When `data` is too large.
   * @throws {HookNotFoundError} When none has this id or name.
   */
  async trigger(
    hook: string,
    data?: Readonly<Record<string, unknown>>,
  ): Promise<void> {
    checkRef(hook);
    if (data !== undefined) {
      const bytes = new TextEncoder().encode(JSON.stringify(data)).length;
      if (bytes > HOOK_LIMITS.triggerDataBytesMax) {
        throw new RangeError(
          `Invalid trigger data: at most ${HOOK_LIMITS.triggerDataBytesMax} bytes of JSON: received ${bytes}`,
        );
      }
    }
    await this.#transport.request("POST", ROUTES.hookTrigger, {
      hook,
      ...(data === undefined ? {} : { data }),
    }, "write");
  }

  async #ref(
    path: string,
    hook: string,
    kind: "idempotent" | "write",
  ): Promise<WireHook> {
    return await this.#transport.request(
      "POST",
      path,
      { hook },
      kind,
    ) as WireHook;
  }

  async #state(path: string, hook: string): Promise<AspenHook> {
    await this.#ref(path, hook, "write");
    return await this.get(hook);
  }
}
