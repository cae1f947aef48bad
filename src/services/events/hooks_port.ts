/**
 * What a node offers front ends of the hooks: management, the delivery
 * log, replay and trigger, and the workers' claim/begin/finish. The node's
 * implementation proposes the hook commands (with the node's session, so a
 * retried proposal applies once) and reads its applied state.
 *
 * @module
 */
import type {
  HookCursor,
  HookOutcome,
  HookRecord,
  HookTarget,
} from "./hooks.ts";
import type { DeliveryRecord } from "./hooks.ts";
import type { KeySelector } from "./selector.ts";

/** A validated create request. */
export interface HookCreate {
  readonly name: string;
  readonly selector: KeySelector;
  readonly types: readonly string[];
  readonly target: HookTarget;
  /** Null: 32 random bytes. */
  readonly secret: Uint8Array | null;
  /** Null: the next revision. */
  readonly fromRevision: number | null;
  readonly timeoutMs: number;
  readonly retryWindowMs: number;
  readonly retrySchedule: readonly number[] | null;
}

/** A worker's report of one attempt. */
export interface HookReport {
  readonly event: string;
  readonly attempt: number;
  readonly replay: boolean;
  readonly status: number | null;
  readonly latencyMs: number;
  readonly outcome: Exclude<HookOutcome, "unknown">;
  readonly error: string | null;
  readonly nextAttemptAtMs: number | null;
  readonly disable: string | null;
}

/** The node's hooks. */
export interface HooksPort {
  /** The node's applied revision (for lag). */
  head(): number;
  create(
    request: HookCreate,
  ): Promise<{ hook: HookRecord; secret: Uint8Array }>;
  list(): HookRecord[];
  /** By id or name; null when none. */
  get(ref: string): HookRecord | null;
  delete(ref: string): Promise<void>;
  setState(ref: string, enabled: boolean): Promise<HookRecord>;
  rotate(
    ref: string,
    secret: Uint8Array | null,
  ): Promise<{ hook: HookRecord; secret: Uint8Array }>;
  deliveries(
    ref: string,
    options: { limit: number; before?: number; outcome?: HookOutcome },
  ): { records: (DeliveryRecord & { seq: number })[]; next: number | null };
  replay(ref: string, fromRevision: number, toRevision: number): Promise<void>;
  trigger(ref: string, data: Readonly<Record<string, unknown>>): Promise<void>;
  claim(worker: string, lease: string, max: number): Promise<HookRecord[]>;
  begin(
    hook: string,
    token: number,
    event: string,
    attempt: number,
    replay: boolean,
  ): Promise<HookCursor>;
  finish(hook: string, token: number, report: HookReport): Promise<HookCursor>;
  /** Replay `seq` is done (null: whichever is current). */
  replayDone(hook: string, token: number, seq: number | null): Promise<void>;
}
