/**
 * The `/v1/hooks/...` handlers (issue 17): create and manage durable
 * hooks, read their delivery log, replay and trigger them, and the
 * workers' `claim`, `begin` and `finish` (admin token: they carry the
 * signing secrets). Every field is checked before anything is proposed; a
 * refusal is a typed 4xx and changes nothing. Secrets are shown by create
 * and rotate-secret only (and to the claiming worker). The protocol is in
 * `protocol/http_api_hooks.ts`; {@linkcode hookRoutes} registers the
 * routes.
 *
 * @module
 */
import type { Hono } from "hono";
import type { NodeApi } from "../../node/node_api.ts";
import { ROUTES } from "../../protocol/http_api.ts";
import type {
  HookClaimResponse,
  HookCreateResponse,
  HookDeliveriesResponse,
  HookStepResponse,
  WireClaim,
  WireDelivery,
  WireHook,
  WireHookTarget,
} from "../../protocol/http_api_hooks.ts";
import { HOOK_LIMITS } from "../../protocol/http_api_hooks.ts";
import type { WireSelector } from "../../protocol/http_api_events.ts";
import {
  formatWebhookSecret,
  HookTargetError,
  parseWebhookSecret,
  validateHookHeaders,
  validateHookTimeoutMs,
  validateHookUrl,
  validateRetrySchedule,
  validateRetryWindowMs,
} from "../../protocol/hook_targets.ts";
import {
  describe,
  encodeBody,
  keyToWire,
  WireFormatError,
} from "../../protocol/http_api_codec.ts";
import { decodeKey } from "../../model/key_codec.ts";
import {
  cursorId,
  type DeliveryRecord,
  EventsError,
  HOOK_OUTCOMES,
  type HookCreate,
  hookLag,
  type HookOutcome,
  type HookRecord,
  type HookReport,
  type HooksPort,
  type HookTarget,
  type KeySelector,
  NO_EXTRA_TARGETS,
  type OpenRef,
  unsupportedTarget,
} from "../../services/events/api.ts";
import { validateQueueName } from "../../services/queues/api.ts";
import { fields, optionalInteger } from "./_parse.ts";
import { reply } from "./_body.ts";
import { HttpApiError } from "./_errors.ts";
import type { RouteContext } from "./_route_context.ts";
import { OK } from "./_route_context.ts";
import { selectorFromWire, typePatterns } from "./events.ts";

/** The worker routes: they need the admin token (claims carry secrets). */
export const HOOK_WORKER_ROUTES: readonly string[] = [
  ROUTES.hookClaim,
  ROUTES.hookBegin,
  ROUTES.hookFinish,
  ROUTES.hookReplayDone,
];

const REVISION_MAX = Number.MAX_SAFE_INTEGER;

function bad(message: string): WireFormatError {
  return new WireFormatError("badRequest", message);
}

function invalid(message: string): HttpApiError {
  return new HttpApiError("invalid", message);
}

function hooksOf(node: NodeApi): HooksPort {
  if (node.hooks === undefined) {
    throw new HttpApiError(
      "unsupported",
      "Cannot use hooks: this node serves none",
    );
  }
  return node.hooks;
}

/** Runs `work`, answering the hooks' refusals as API errors. */
async function hookCall<T>(work: () => T | Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof HookTargetError) throw invalid(error.message);
    if (error instanceof EventsError) {
      const code = error.code === "sessionReused" ||
          error.code === "sessionExpired"
        ? "outcomeUnknown"
        : error.code;
      throw new HttpApiError(code, error.message);
    }
    throw error;
  }
}

function text(value: unknown, field: string, max: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw bad(
      `Invalid '${field}': expected 1 to ${max} characters, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

function hookRef(value: unknown): string {
  return text(value, "hook", 64);
}

function selectorToWire(selector: KeySelector): WireSelector {
  switch (selector.kind) {
    case "all":
      return {};
    case "prefix":
      return { prefix: keyToWire(decodeKey(selector.prefix)) };
    case "range":
      return {
        start: keyToWire(decodeKey(selector.start)),
        end: keyToWire(decodeKey(selector.end)),
      };
  }
}

function targetToWire(
  target: HookTarget,
  headerValues: boolean,
): WireHookTarget {
  if (target.kind === "queue") return { queue: { queue: target.queue } };
  const headers = headerValues
    ? target.headers
    : Object.fromEntries(Object.keys(target.headers).map((k) => [k, "…"]));
  return { webhook: { url: target.url, headers } };
}

/** A hook as get and list show it: no secret, no header values. */
export function hookToWire(hook: HookRecord, head: number): WireHook {
  return {
    id: hook.id,
    name: hook.name,
    selector: selectorToWire(hook.selector),
    types: hook.types,
    target: targetToWire(hook.target, false),
    state: hook.state,
    ...(hook.disabledReason === null
      ? {}
      : { disabledReason: hook.disabledReason }),
    cursor: cursorId(hook.cursor),
    fromRevision: hook.cursor.r,
    lag: hookLag(hook, head),
    timeoutMs: hook.timeoutMs,
    retryWindowMs: hook.retryWindowMs,
    retrySchedule: hook.retrySchedule,
    createdAtMs: hook.createdAtMs,
    worker: hook.claim?.worker ?? null,
    retrying: hook.retrying === null ? null : {
      event: hook.retrying.event,
      attempt: hook.retrying.attempt,
      nextAttemptAtMs: hook.retrying.nextAttemptAtMs,
    },
    deliveries: hook.counts,
  };
}

function claimToWire(hook: HookRecord, nowMs: number): WireClaim {
  const target = hook.target;
  const secrets = hook.previousUntilMs !== null &&
      hook.previousUntilMs > nowMs && hook.secrets.length > 1
    ? hook.secrets
    : hook.secrets.slice(0, 1);
  return {
    hook: hook.id,
    name: hook.name,
    token: hook.claim?.token ?? 0,
    url: target.kind === "webhook" ? target.url : "",
    headers: target.kind === "webhook" ? target.headers : {},
    selector: selectorToWire(hook.selector),
    types: hook.types,
    secrets: secrets.map(formatWebhookSecret),
    timeoutMs: hook.timeoutMs,
    retryWindowMs: hook.retryWindowMs,
    retrySchedule: hook.retrySchedule,
    cursor: cursorId(hook.cursor),
    fromRevision: hook.cursor.r,
    retrying: hook.retrying,
    replay: hook.replay === null ? null : {
      cursor: cursorId(hook.replay.cursor),
      fromRevision: hook.replay.cursor.r,
      toRevision: hook.replay.toRevision,
      seq: hook.replay.seq ?? 0,
    },
  };
}

function parseTarget(value: unknown): HookTarget {
  const f = fields(value, ["webhook", "queue", "job", "forward"]);
  const kinds = Object.keys(f);
  if (kinds.length !== 1) {
    throw bad(
      "Invalid 'target': expected exactly one of 'webhook', 'queue', 'job', 'forward'",
    );
  }
  if (f.job !== undefined || f.forward !== undefined) {
    // This front end delivers no job or forward hooks yet, whatever the
    // node was built with: the reason names what is missing.
    const kind = f.job !== undefined ? "job" : "forward";
    throw new HttpApiError(
      "unsupported",
      unsupportedTarget(kind, NO_EXTRA_TARGETS) ??
        `Cannot create hook: target '${kind}' is not supported here`,
    );
  }
  if (f.queue !== undefined) {
    const q = fields(f.queue, ["queue"]);
    const queue = text(q.queue, "target.queue.queue", 256);
    validateQueueName(queue);
    return { kind: "queue", queue };
  }
  const w = fields(f.webhook, ["url", "headers"]);
  const url = validateHookUrl(text(w.url, "target.webhook.url", 4096));
  const raw = w.headers ?? {};
  if (
    typeof raw !== "object" || raw === null || Array.isArray(raw) ||
    Object.values(raw).some((v) => typeof v !== "string")
  ) {
    throw bad("Invalid 'target.webhook.headers': expected a map of strings");
  }
  const headers = validateHookHeaders(raw as Record<string, string>);
  for (const value of Object.values(headers)) {
    if (value.length > HOOK_LIMITS.headerValueBytesMax) {
      throw invalid(
        `Invalid 'target.webhook.headers': a value is longer than ${HOOK_LIMITS.headerValueBytesMax} bytes`,
      );
    }
  }
  return { kind: "webhook", url: url.href, headers };
}

/** `HookCreateRequest` → a validated create. */
export function parseHookCreate(body: unknown): HookCreate {
  const f = fields(body, [
    "name",
    "selector",
    "types",
    "target",
    "secret",
    "fromRevision",
    "timeoutMs",
    "retryWindowMs",
    "retrySchedule",
  ]);
  const name = text(f.name, "name", 64);
  if (!HOOK_LIMITS.namePattern.test(name)) {
    throw invalid(
      `Invalid 'name': expected 1 to 64 of a-z, 0-9, '.', '_', '-', received '${
        name.slice(0, 64)
      }'`,
    );
  }
  if (f.target === undefined) throw bad("Invalid body: missing 'target'");
  const target = parseTarget(f.target);
  const selector = f.selector === undefined
    ? { kind: "all" as const }
    : selectorFromWire(fields(f.selector, ["prefix", "start", "end"]));
  const types = typePatterns(f.types, "types");
  if (f.secret !== undefined && target.kind !== "webhook") {
    throw bad("Invalid 'secret': only webhook hooks sign");
  }
  const secret = f.secret === undefined
    ? null
    : parseWebhookSecret(text(f.secret, "secret", 256));
  if (
    f.retrySchedule !== undefined &&
    (!Array.isArray(f.retrySchedule) ||
      f.retrySchedule.some((ms) => typeof ms !== "number"))
  ) {
    throw bad("Invalid 'retrySchedule': expected a list of milliseconds");
  }
  return {
    name,
    selector,
    types,
    target,
    secret,
    fromRevision: optionalInteger(
      f.fromRevision,
      "fromRevision",
      0,
      REVISION_MAX,
    ) ?? null,
    timeoutMs: validateHookTimeoutMs(
      optionalInteger(f.timeoutMs, "timeoutMs", 0, REVISION_MAX),
    ),
    retryWindowMs: validateRetryWindowMs(
      optionalInteger(f.retryWindowMs, "retryWindowMs", 0, REVISION_MAX),
    ),
    retrySchedule: f.retrySchedule === undefined
      ? null
      : validateRetrySchedule(f.retrySchedule as number[]),
  };
}

function outcomeField(value: unknown, field: string): HookOutcome | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== "string" || !HOOK_OUTCOMES.includes(value as HookOutcome)
  ) {
    throw bad(
      `Invalid '${field}': expected one of ${
        HOOK_OUTCOMES.join(", ")
      }, received ${describe(value)}`,
    );
  }
  return value as HookOutcome;
}

function eventField(value: unknown): string {
  const id = text(value, "event", 32);
  if (!/^\d{1,16}\.\d{1,10}$/.test(id)) {
    throw bad(`Invalid 'event': expected an event id 'R.I', received '${id}'`);
  }
  return id;
}

function deliveryToWire(record: DeliveryRecord): WireDelivery {
  return {
    eventId: record.eventId,
    attempt: record.attempt,
    startedAtMs: record.startedAtMs,
    latencyMs: record.latencyMs,
    status: record.status,
    outcome: record.outcome,
    error: record.error,
    nextAttemptAtMs: record.nextAttemptAtMs,
    replay: record.replay,
    worker: record.worker,
  };
}

const RESULT_FIELDS = [
  "event",
  "attempt",
  "status",
  "latencyMs",
  "outcome",
  "error",
  "nextAttemptAtMs",
  "disable",
] as const;

function tokenField(value: unknown): number {
  const token = optionalInteger(value, "token", 1, REVISION_MAX);
  if (token === undefined) throw bad("Invalid body: missing 'token'");
  return token;
}

/** A list of 1 (or `min`) to `HOOK_LIMITS.batchMax` maps. */
function batchList(value: unknown, field: string, min: number): unknown[] {
  if (
    !Array.isArray(value) || value.length < min ||
    value.length > HOOK_LIMITS.batchMax
  ) {
    throw bad(
      `Invalid '${field}': expected a list of ${min} to ${HOOK_LIMITS.batchMax}, received ${
        describe(value)
      }`,
    );
  }
  return value;
}

function attemptRef(value: unknown): OpenRef {
  const f = fields(value, ["event", "attempt"]);
  return {
    event: eventField(f.event),
    attempt: optionalInteger(f.attempt, "attempt", 1, 1_000_000) ?? 1,
  };
}

/** `HookBeginRequest` → the batch. */
export function parseBegin(
  body: unknown,
): { hook: string; token: number; attempts: OpenRef[]; replay: boolean } {
  const f = fields(body, [
    "hook",
    "token",
    "attempts",
    "event",
    "attempt",
    "replay",
  ]);
  const attempts = f.attempts === undefined
    ? [attemptRef({ event: f.event, attempt: f.attempt })]
    : batchList(f.attempts, "attempts", 1).map(attemptRef);
  return {
    hook: hookRef(f.hook),
    token: tokenField(f.token),
    attempts,
    replay: f.replay === true,
  };
}

function parseResult(
  f: Record<string, unknown>,
  replay: boolean,
): HookReport {
  const outcome = outcomeField(f.outcome, "outcome");
  if (outcome === undefined || outcome === "unknown") {
    throw bad(
      "Invalid 'outcome': expected ok, failed, timeout, error, blocked or gone",
    );
  }
  if (
    f.disable !== undefined &&
    !["gone", "retryWindowExceeded", "targetBlocked"].includes(
      f.disable as string,
    )
  ) {
    throw bad(
      "Invalid 'disable': expected gone, retryWindowExceeded or targetBlocked",
    );
  }
  if (f.error !== undefined && typeof f.error !== "string") {
    throw bad("Invalid 'error': expected a string");
  }
  return {
    event: eventField(f.event),
    attempt: optionalInteger(f.attempt, "attempt", 1, 1_000_000) ?? 1,
    replay,
    status: f.status === null || f.status === undefined
      ? null
      : optionalInteger(f.status, "status", 100, 999)!,
    latencyMs: optionalInteger(f.latencyMs, "latencyMs", 0, REVISION_MAX) ??
      0,
    outcome,
    error: f.error === undefined
      ? null
      : (f.error as string).slice(0, HOOK_LIMITS.errorCharsMax),
    nextAttemptAtMs: optionalInteger(
      f.nextAttemptAtMs,
      "nextAttemptAtMs",
      0,
      REVISION_MAX,
    ) ?? null,
    disable: (f.disable as string | undefined) ?? null,
  };
}

/**
 * `HookFinishRequest` → the results and the cancelled attempts (the
 * single form: one result).
 */
export function parseFinish(
  body: unknown,
): {
  hook: string;
  token: number;
  results: HookReport[];
  cancel: OpenRef[];
} {
  const batch = body !== null && typeof body === "object" &&
    "results" in body;
  const f = fields(
    body,
    batch
      ? ["hook", "token", "replay", "results", "cancel"]
      : ["hook", "token", "replay", ...RESULT_FIELDS],
  );
  const replay = f.replay === true;
  const results = batch
    ? batchList(f.results, "results", 0).map((r) =>
      parseResult(fields(r, RESULT_FIELDS), replay)
    )
    : [parseResult(f, replay)];
  const cancel = batch && f.cancel !== undefined
    ? batchList(f.cancel, "cancel", 0).map(attemptRef)
    : [];
  if (results.length + cancel.length === 0) {
    throw bad("Invalid body: 'results' and 'cancel' are both empty");
  }
  return { hook: hookRef(f.hook), token: tokenField(f.token), results, cancel };
}

function created(
  hook: HookRecord,
  secret: Uint8Array,
): HookCreateResponse {
  return {
    id: hook.id,
    name: hook.name,
    secret: hook.target.kind === "webhook" ? formatWebhookSecret(secret) : null,
    cursor: cursorId(hook.cursor),
    fromRevision: hook.cursor.r,
  };
}

function required(hooks: HooksPort, ref: string): HookRecord {
  const hook = hooks.get(ref);
  if (hook === null) {
    throw new HttpApiError("hookNotFound", `No hook '${ref.slice(0, 64)}'`);
  }
  return hook;
}

function step(cursor: HookRecord["cursor"]): HookStepResponse {
  return { ok: true, cursor: cursorId(cursor) };
}

/** Registers the `/v1/hooks/...` routes on `app`. */
export function hookRoutes(app: Hono, ctx: RouteContext): void {
  const { node, body } = ctx;
  const route = (
    path: string,
    handle: (hooks: HooksPort, request: unknown) => Promise<unknown> | unknown,
  ) =>
    app.post(path, async (c) => {
      const request = await body(c);
      const hooks = hooksOf(node);
      return reply(c, await hookCall(() => handle(hooks, request)));
    });
  route(ROUTES.hookCreate, async (hooks, request) => {
    const parsed = parseHookCreate(request);
    const { hook, secret } = await hooks.create(parsed);
    return created(hook, secret);
  });
  route(ROUTES.hookList, (hooks, request) => {
    fields(request ?? {}, []);
    const head = hooks.head();
    return { hooks: hooks.list().map((h) => hookToWire(h, head)) };
  });
  route(ROUTES.hookGet, (hooks, request) => {
    const f = fields(request, ["hook"]);
    return hookToWire(required(hooks, hookRef(f.hook)), hooks.head());
  });
  route(ROUTES.hookDelete, async (hooks, request) => {
    const f = fields(request, ["hook"]);
    await hooks.delete(required(hooks, hookRef(f.hook)).id);
    return OK;
  });
  for (
    const [path, enabled] of [[ROUTES.hookEnable, true], [
      ROUTES.hookDisable,
      false,
    ]] as const
  ) {
    route(path, async (hooks, request) => {
      const f = fields(request, ["hook"]);
      const hook = await hooks.setState(
        required(hooks, hookRef(f.hook)).id,
        enabled,
      );
      return hookToWire(hook, hooks.head());
    });
  }
  route(ROUTES.hookRotateSecret, async (hooks, request) => {
    const f = fields(request, ["hook", "secret"]);
    const hook = required(hooks, hookRef(f.hook));
    if (hook.target.kind !== "webhook") {
      throw invalid(`Hook '${hook.name}' is not a webhook: it has no secret`);
    }
    const secret = f.secret === undefined
      ? null
      : parseWebhookSecret(text(f.secret, "secret", 256));
    const rotated = await hooks.rotate(hook.id, secret);
    return created(rotated.hook, rotated.secret);
  });
  route(ROUTES.hookDeliveries, (hooks, request) => {
    const f = fields(request, ["hook", "outcome", "limit", "cursor"]);
    const hook = required(hooks, hookRef(f.hook));
    const before = f.cursor === undefined
      ? undefined
      : /^\d{1,16}$/.test(String(f.cursor))
      ? Number(f.cursor)
      : (() => {
        throw bad("Invalid 'cursor': expected a previous answer's cursor");
      })();
    const outcome = outcomeField(f.outcome, "outcome");
    const page = hooks.deliveries(hook.id, {
      limit: optionalInteger(
        f.limit,
        "limit",
        1,
        HOOK_LIMITS.deliveriesLimitMax,
      ) ?? 100,
      ...(before === undefined ? {} : { before }),
      ...(outcome === undefined ? {} : { outcome }),
    });
    const answer: HookDeliveriesResponse = {
      deliveries: page.records.map(deliveryToWire),
      cursor: page.next === null ? null : String(page.next),
    };
    return answer;
  });
  route(ROUTES.hookReplay, async (hooks, request) => {
    const f = fields(request, ["hook", "fromRevision", "toRevision"]);
    const hook = required(hooks, hookRef(f.hook));
    const from = optionalInteger(
      f.fromRevision,
      "fromRevision",
      0,
      REVISION_MAX,
    );
    const to = optionalInteger(f.toRevision, "toRevision", 0, REVISION_MAX);
    if (from === undefined || to === undefined) {
      throw bad("Invalid body: 'fromRevision' and 'toRevision' are required");
    }
    if (to < from) {
      throw invalid("Invalid replay: 'toRevision' is below 'fromRevision'");
    }
    if (to - from + 1 > HOOK_LIMITS.replayEventsMax) {
      throw new HttpApiError(
        "limitExceeded",
        `Invalid replay: at most ${HOOK_LIMITS.replayEventsMax} revisions`,
        { limit: "replay", max: HOOK_LIMITS.replayEventsMax },
      );
    }
    await hooks.replay(hook.id, from, to);
    return OK;
  });
  route(ROUTES.hookTrigger, async (hooks, request) => {
    const f = fields(request, ["hook", "data"]);
    const hook = required(hooks, hookRef(f.hook));
    const data = f.data ?? {};
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      throw bad("Invalid 'data': expected an object");
    }
    if (
      encodeBody(data, "json").byteLength > HOOK_LIMITS.triggerDataBytesMax
    ) {
      throw new HttpApiError(
        "limitExceeded",
        `Invalid 'data': larger than ${HOOK_LIMITS.triggerDataBytesMax} bytes`,
        { limit: "data", max: HOOK_LIMITS.triggerDataBytesMax },
      );
    }
    await hooks.trigger(hook.id, data as Record<string, unknown>);
    return OK;
  });
  route(ROUTES.hookClaim, async (hooks, request) => {
    const f = fields(request, ["worker", "lease", "max"]);
    const worker = text(f.worker, "worker", 64);
    const lease = text(f.lease, "lease", 16);
    if (!/^[0-9a-f]{16}$/.test(lease)) {
      throw bad("Invalid 'lease': expected a lease id (16 hex digits)");
    }
    const max = optionalInteger(f.max, "max", 1, HOOK_LIMITS.claimMax) ??
      HOOK_LIMITS.claimMax;
    const claimed = await hooks.claim(worker, lease, max);
    const now = Date.now();
    const answer: HookClaimResponse = {
      clusterId: node.status().clusterId,
      claims: claimed.map((hook) => claimToWire(hook, now)),
    };
    return answer;
  });
  route(ROUTES.hookBegin, async (hooks, request) => {
    const { hook, token, attempts, replay } = parseBegin(request);
    return step(await hooks.begin(hook, token, attempts, replay));
  });
  route(ROUTES.hookFinish, async (hooks, request) => {
    const { hook, token, results, cancel } = parseFinish(request);
    return step(await hooks.finish(hook, token, results, cancel));
  });
  route(ROUTES.hookReplayDone, async (hooks, request) => {
    const f = fields(request, ["hook", "token", "seq"]);
    const token = optionalInteger(f.token, "token", 1, REVISION_MAX);
    if (token === undefined) throw bad("Invalid body: missing 'token'");
    const seq = optionalInteger(f.seq, "seq", 1, REVISION_MAX) ?? null;
    await hooks.replayDone(hookRef(f.hook), token, seq);
    return OK;
  });
}
