/**
 * The hooks part of Aspen's HTTP protocol (issue 17): durable hooks follow
 * the events history (a selector and type patterns, as a watch) from a
 * cursor that commits through Raft, and deliver each matching event to a
 * target: a signed webhook (by worker processes) or an Aspen named queue
 * (by the leader, in the entry that moves the cursor).
 *
 * Management: `POST /v1/hooks/{create,list,get,delete,enable,disable,
 * rotate-secret,deliveries,replay,trigger}`. Workers (admin token):
 * `POST /v1/hooks/{claim,begin,finish,replay-done}`. Routes are in `ROUTES`
 * ({@link ./http_api.ts}), limits in {@linkcode HOOK_LIMITS}.
 *
 * **Delivery protocol.** A worker holds a lease and claims hooks under it,
 * one worker per hook; each claim has a fencing `token`. Per attempt the
 * worker commits `begin {hook, token, event, attempt}`, sends the request,
 * then commits `finish {…, outcome}`; both are refused with 409
 * `claimLost` once the claim moved. A successful `finish` moves the cursor
 * in the same entry; a lease that ends closes an open attempt as
 * `unknown`. A retried `finish` of an attempt already finished answers as
 * the first did.
 *
 * Secrets (`whsec_` + base64) are returned by create and rotate-secret
 * only, and to the claiming worker; never by get, list or deliveries.
 *
 * @module
 */
import type { WireKey } from "./http_api.ts";
import type { WireEvent, WireSelector } from "./http_api_events.ts";

/** Limits of the hooks API. */
export const HOOK_LIMITS = {
  hooksMax: 1_000,
  namePattern: /^[a-z0-9._-]{1,64}$/,
  urlBytesMax: 2_048,
  headersMax: 16,
  headerValueBytesMax: 1_024,
  secretBytesMin: 24,
  secretBytesMax: 64,
  timeoutMsMin: 1_000,
  timeoutMsMax: 30_000,
  timeoutMsDefault: 15_000,
  retryWindowMsMin: 60_000,
  retryWindowMsMax: 30 * 86_400_000,
  retryWindowMsDefault: 3 * 86_400_000,
  retryStepsMax: 20,
  retryStepMsMax: 86_400_000,
  /** Events one queue advance enqueues at most. */
  advanceEventsMax: 1_000,
  /** Events one replay covers at most. */
  replayEventsMax: 100_000,
  /** Delivery records kept per hook (and at most `deliveryKeepMs` old). */
  deliveriesKept: 10_000,
  deliveryKeepMs: 3 * 86_400_000,
  deliveriesLimitMax: 1_000,
  errorCharsMax: 256,
  /** The previous secret still signs this long after a rotation. */
  previousSecretMs: 86_400_000,
  /** Hooks one claim takes at most. */
  claimMax: 100,
  triggerDataBytesMax: 4_096,
} as const;

/** Where a hook delivers. */
export type WireHookTarget =
  | {
    readonly webhook: {
      readonly url: string;
      readonly headers?: Readonly<Record<string, string>>;
    };
  }
  | { readonly queue: { readonly queue: string } }
  | { readonly job: { readonly type: string; readonly queue?: string } }
  | { readonly forward: { readonly peer: string; readonly prefix?: WireKey } };

/** `POST /v1/hooks/create` */
export interface HookCreateRequest {
  readonly name: string;
  readonly selector?: WireSelector;
  /** Type patterns; default `kv.*`. */
  readonly types?: readonly string[];
  readonly target: WireHookTarget;
  /** `whsec_…`; 32 random bytes when absent (webhooks only). */
  readonly secret?: string;
  /** Inclusive; default the next revision. */
  readonly fromRevision?: number;
  readonly timeoutMs?: number;
  readonly retryWindowMs?: number;
  readonly retrySchedule?: readonly number[];
}

/** Outcome of one delivery attempt (see `hook_targets.ts`). */
export type { HookDeliveryOutcome as HookOutcome } from "./hook_targets.ts";
import type { HookDeliveryOutcome as HookOutcome } from "./hook_targets.ts";

/** A hook as get and list show it (never its secret). */
export interface WireHook {
  readonly id: string;
  readonly name: string;
  readonly selector: WireSelector;
  readonly types: readonly string[];
  /** The target; webhook header values are not shown. */
  readonly target: WireHookTarget;
  readonly state: "active" | "disabled";
  readonly disabledReason?: string;
  /** The last event done (`"R.I"`), or where it starts (`fromRevision`). */
  readonly cursor: string | null;
  readonly fromRevision: number;
  /** Revisions between the cursor and the node's head. */
  readonly lag: number;
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  readonly retrySchedule: readonly number[] | null;
  readonly createdAtMs: number;
  /** The claiming worker, or null (`no worker`). */
  readonly worker: string | null;
  /** The event being retried, its attempt and when the next one is due. */
  readonly retrying: {
    readonly event: string;
    readonly attempt: number;
    readonly nextAttemptAtMs: number;
  } | null;
  readonly deliveries: Readonly<Record<HookOutcome, number>>;
}

/** Answer of create and rotate-secret: the secret, shown this once. */
export interface HookCreateResponse {
  readonly id: string;
  readonly name: string;
  readonly secret: string | null;
  readonly cursor: string | null;
  readonly fromRevision: number;
}

/** `POST /v1/hooks/{get,delete,enable,disable,rotate-secret}`: by id or name. */
export interface HookRefRequest {
  readonly hook: string;
  /** rotate-secret only: the new secret (default 32 random bytes). */
  readonly secret?: string;
}

/** `POST /v1/hooks/deliveries` */
export interface HookDeliveriesRequest {
  readonly hook: string;
  readonly outcome?: HookOutcome;
  readonly limit?: number;
  /** From a previous answer: older records. */
  readonly cursor?: string;
}

/** One delivery attempt as the log keeps it. */
export interface WireDelivery {
  readonly eventId: string;
  readonly attempt: number;
  readonly startedAtMs: number;
  readonly latencyMs: number;
  readonly status: number | null;
  readonly outcome: HookOutcome;
  readonly error: string | null;
  readonly nextAttemptAtMs: number | null;
  readonly replay: boolean;
  readonly worker: string;
}

/** Answer of deliveries: newest first. */
export interface HookDeliveriesResponse {
  readonly deliveries: readonly WireDelivery[];
  readonly cursor: string | null;
}

/** `POST /v1/hooks/replay` */
export interface HookReplayRequest {
  readonly hook: string;
  readonly fromRevision: number;
  readonly toRevision: number;
}

/** `POST /v1/hooks/trigger` */
export interface HookTriggerRequest {
  readonly hook: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** `POST /v1/hooks/claim` (workers) */
export interface HookClaimRequest {
  /** The worker's name (shown by `hook get`), 1–64 characters. */
  readonly worker: string;
  /** The worker's lease (hex id); its end releases the claims. */
  readonly lease: string;
  /** Hooks to hold at most (default and max {@linkcode HOOK_LIMITS.claimMax}). */
  readonly max?: number;
}

/** A claimed hook, with what its worker needs to deliver. */
export interface WireClaim {
  readonly hook: string;
  readonly name: string;
  readonly token: number;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly selector: WireSelector;
  readonly types: readonly string[];
  /** Signing secrets, `whsec_…`: current first, then the previous one during a rotation. */
  readonly secrets: readonly string[];
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  readonly retrySchedule: readonly number[] | null;
  /** Strictly after this event (`"R.I"`), or from `fromRevision` when null. */
  readonly cursor: string | null;
  readonly fromRevision: number;
  /** The event being retried. */
  readonly retrying: {
    readonly event: string;
    readonly attempt: number;
    readonly firstFailureAtMs: number;
    readonly nextAttemptAtMs: number;
  } | null;
  /** A replay in progress: strictly after `cursor` (or from `fromRevision`) up to `toRevision`. */
  readonly replay: {
    readonly cursor: string | null;
    readonly fromRevision: number;
    readonly toRevision: number;
    /** Which replay: pass it to `replay-done`, so a replay asked for since is kept. */
    readonly seq: number;
  } | null;
}

/** Answer of claim: every hook the lease holds now. */
export interface HookClaimResponse {
  /** The cluster's id: webhook ids are `<clusterId>.<R>.<I>`. */
  readonly clusterId: string;
  readonly claims: readonly WireClaim[];
}

/** `POST /v1/hooks/begin` (workers) */
export interface HookBeginRequest {
  readonly hook: string;
  readonly token: number;
  readonly event: string;
  readonly attempt: number;
  readonly replay?: boolean;
}

/** `POST /v1/hooks/finish` (workers) */
export interface HookFinishRequest {
  readonly hook: string;
  readonly token: number;
  readonly event: string;
  readonly attempt: number;
  readonly replay?: boolean;
  readonly status: number | null;
  readonly latencyMs: number;
  readonly outcome: Exclude<HookOutcome, "unknown">;
  readonly error?: string;
  /** When to try again; absent for ok or a disable. */
  readonly nextAttemptAtMs?: number;
  /** Disable the hook: `gone`, `retryWindowExceeded`, `targetBlocked`. */
  readonly disable?: "gone" | "retryWindowExceeded" | "targetBlocked";
}

/** `POST /v1/hooks/replay-done` (workers): the replay reached its end; the side cursor is dropped. */
export interface HookReplayDoneRequest {
  readonly hook: string;
  readonly token: number;
  /** The claim's `replay.seq`; a later replay is then kept. */
  readonly seq?: number;
}

/** Answer of begin and finish. */
export interface HookStepResponse {
  readonly ok: true;
  /** The hook's cursor after the step. */
  readonly cursor: string | null;
}

/** An event as a hook delivers it: the webhook body, the queue message. */
export type HookEventBody = WireEvent;
