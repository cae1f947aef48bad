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
import {
  HOOK_LIMITS,
  type HookDeliveriesResponse,
  type WireDelivery,
  type WireHook,
} from "../protocol/http_api_hooks.ts";
import {
  HOOK_DELIVERY_OUTCOMES,
  parseWebhookSecret,
} from "../protocol/hook_targets.ts";
import type { HttpTransport } from "./_transport.ts";
import {
  checkCreate,
  checkRef,
  checkRevision,
  hookFromWire,
  hookSelectorToWire,
  targetToWire,
} from "./_hook_wire.ts";
import type {
  AspenHook,
  HookCreated,
  HookCreateOptions,
  HookDeliveriesOptions,
  HookDeliveriesPage,
} from "./hook_types.ts";
import { HookWorkerCalls } from "./hook_worker_calls.ts";

export type {
  AspenHook,
  HookCreated,
  HookCreateOptions,
  HookDeliveriesOptions,
  HookDeliveriesPage,
  HookDelivery,
  HookOutcome,
  HookSelector,
  HookTarget,
} from "./hook_types.ts";
export {
  checkHookName,
  checkTypePatterns,
  hookSelectorToWire,
} from "./_hook_wire.ts";

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
