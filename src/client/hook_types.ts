/**
 * The types of `client.hooks` ({@link ./hooks.ts}): selectors and targets
 * with keys, create's options, a hook as get and list show it, the
 * delivery log's records.
 *
 * @module
 */
import type { HookDeliveryOutcome } from "../protocol/hook_targets.ts";
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
