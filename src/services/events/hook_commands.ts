/**
 * The hook commands of the events service (see `hooks.ts` for what each
 * does at apply) and their shape checks. The front end validates requests
 * in detail first (names, URLs, headers, schedules); apply re-checks the
 * shape so no entry can corrupt a record. Times are decided at proposal.
 *
 * @module
 */
import type { HookCursor, HookOutcome, HookTarget } from "./hooks.ts";
import type { KeySelector } from "./selector.ts";
import { EventsError } from "./commands.ts";

/** A hook command. */
export type HookCommand =
  | {
    readonly type: "hookCreate";
    readonly id: string;
    readonly name: string;
    readonly selector: KeySelector;
    readonly types: readonly string[];
    readonly target: HookTarget;
    readonly secret: Uint8Array;
    readonly cursor: HookCursor;
    readonly timeoutMs: number;
    readonly retryWindowMs: number;
    readonly retrySchedule: readonly number[] | null;
    readonly nowMs: number;
  }
  | { readonly type: "hookDelete"; readonly id: string }
  | {
    readonly type: "hookSetState";
    readonly id: string;
    readonly enabled: boolean;
  }
  | {
    readonly type: "hookRotate";
    readonly id: string;
    readonly secret: Uint8Array;
    readonly nowMs: number;
  }
  | {
    readonly type: "hookClaim";
    readonly worker: string;
    readonly lease: string;
    readonly max: number;
  }
  | {
    readonly type: "hookBegin";
    readonly id: string;
    readonly token: number;
    readonly event: string;
    readonly attempt: number;
    readonly replay: boolean;
    readonly nowMs: number;
  }
  | {
    readonly type: "hookFinish";
    readonly id: string;
    readonly token: number;
    readonly event: string;
    readonly attempt: number;
    readonly replay: boolean;
    readonly status: number | null;
    readonly latencyMs: number;
    readonly outcome: Exclude<HookOutcome, "unknown">;
    readonly error: string | null;
    readonly nextAttemptAtMs: number | null;
    readonly disable: string | null;
    readonly nowMs: number;
  }
  | {
    readonly type: "hookReplay";
    readonly id: string;
    readonly fromRevision: number;
    readonly toRevision: number;
  }
  | {
    readonly type: "hookReplayDone";
    readonly id: string;
    readonly token: number;
    readonly seq: number | null;
  }
  | {
    readonly type: "hookTrigger";
    readonly id: string;
    readonly data: Readonly<Record<string, unknown>>;
  }
  | {
    readonly type: "hookAdvance";
    readonly id: string;
    readonly toRevision: number;
    readonly nowMs: number;
  };

/** The type names of hook commands. */
export const HOOK_COMMAND_TYPES: ReadonlySet<string> = new Set([
  "hookCreate",
  "hookDelete",
  "hookSetState",
  "hookRotate",
  "hookClaim",
  "hookBegin",
  "hookFinish",
  "hookReplay",
  "hookReplayDone",
  "hookTrigger",
  "hookAdvance",
]);

function invalid(message: string): never {
  throw new EventsError("invalid", `Cannot apply hook command: ${message}`);
}

function integer(value: unknown, name: string, min = 0): number {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min
  ) {
    invalid(`'${name}' must be an integer ≥ ${min}`);
  }
  return value;
}

function text(value: unknown, name: string, max = 2_048): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    invalid(`'${name}' must be 1 to ${max} characters`);
  }
  return value;
}

function hookId(value: unknown): string {
  if (typeof value !== "string" || !/^[0-9a-f]{16}$/.test(value)) {
    invalid("'id' must be 16 hex digits");
  }
  return value;
}

function bytes(value: unknown, name: string): Uint8Array {
  if (!(value instanceof Uint8Array)) invalid(`'${name}' must be bytes`);
  return value;
}

const OUTCOMES = new Set([
  "ok",
  "failed",
  "timeout",
  "error",
  "blocked",
  "gone",
]);

/**
 * Checks a hook command's shape.
 *
 * @throws {EventsError} `invalid`.
 */
export function validateHookCommand(c: Record<string, unknown>): HookCommand {
  switch (c.type) {
    case "hookCreate": {
      const selector = c.selector as KeySelector;
      if (
        selector === null || typeof selector !== "object" ||
        !["all", "prefix", "range"].includes(selector.kind)
      ) invalid("'selector' is malformed");
      const target = c.target as HookTarget;
      if (
        target === null || typeof target !== "object" ||
        !(target.kind === "webhook" || target.kind === "queue")
      ) invalid("'target' is malformed");
      const cursor = c.cursor as HookCursor;
      if (cursor === null || typeof cursor !== "object") {
        invalid("'cursor' is malformed");
      }
      if (
        !Array.isArray(c.types) || c.types.some((t) => typeof t !== "string")
      ) invalid("'types' must be a list");
      return {
        type: "hookCreate",
        id: hookId(c.id),
        name: text(c.name, "name", 64),
        selector,
        types: c.types as string[],
        target,
        secret: bytes(c.secret, "secret"),
        cursor: {
          r: integer(cursor.r, "cursor.r"),
          i: integer(cursor.i, "cursor.i", -1),
        },
        timeoutMs: integer(c.timeoutMs, "timeoutMs", 1),
        retryWindowMs: integer(c.retryWindowMs, "retryWindowMs", 1),
        retrySchedule: c.retrySchedule === null
          ? null
          : (c.retrySchedule as number[]).map((ms) =>
            integer(ms, "retrySchedule")
          ),
        nowMs: integer(c.nowMs, "nowMs"),
      };
    }
    case "hookDelete":
      return { type: "hookDelete", id: hookId(c.id) };
    case "hookSetState":
      return {
        type: "hookSetState",
        id: hookId(c.id),
        enabled: c.enabled === true,
      };
    case "hookRotate":
      return {
        type: "hookRotate",
        id: hookId(c.id),
        secret: bytes(c.secret, "secret"),
        nowMs: integer(c.nowMs, "nowMs"),
      };
    case "hookClaim":
      return {
        type: "hookClaim",
        worker: text(c.worker, "worker", 64),
        lease: text(c.lease, "lease", 16),
        max: integer(c.max, "max", 1),
      };
    case "hookBegin":
      return {
        type: "hookBegin",
        id: hookId(c.id),
        token: integer(c.token, "token", 1),
        event: text(c.event, "event", 32),
        attempt: integer(c.attempt, "attempt", 1),
        replay: c.replay === true,
        nowMs: integer(c.nowMs, "nowMs"),
      };
    case "hookFinish": {
      if (typeof c.outcome !== "string" || !OUTCOMES.has(c.outcome)) {
        invalid("'outcome' is unknown");
      }
      return {
        type: "hookFinish",
        id: hookId(c.id),
        token: integer(c.token, "token", 1),
        event: text(c.event, "event", 32),
        attempt: integer(c.attempt, "attempt", 1),
        replay: c.replay === true,
        status: c.status === null ? null : integer(c.status, "status"),
        latencyMs: integer(c.latencyMs, "latencyMs"),
        outcome: c.outcome as Exclude<HookOutcome, "unknown">,
        error: c.error === null ? null : text(c.error, "error", 256),
        nextAttemptAtMs: c.nextAttemptAtMs === null
          ? null
          : integer(c.nextAttemptAtMs, "nextAttemptAtMs"),
        disable: c.disable === null ? null : text(c.disable, "disable", 32),
        nowMs: integer(c.nowMs, "nowMs"),
      };
    }
    case "hookReplay":
      return {
        type: "hookReplay",
        id: hookId(c.id),
        fromRevision: integer(c.fromRevision, "fromRevision"),
        toRevision: integer(c.toRevision, "toRevision"),
      };
    case "hookReplayDone":
      return {
        type: "hookReplayDone",
        id: hookId(c.id),
        token: integer(c.token, "token", 1),
        seq: c.seq === null || c.seq === undefined
          ? null
          : integer(c.seq, "seq", 1),
      };
    case "hookTrigger": {
      const data = c.data;
      if (data === null || typeof data !== "object" || Array.isArray(data)) {
        invalid("'data' must be a map");
      }
      return {
        type: "hookTrigger",
        id: hookId(c.id),
        data: data as Record<string, unknown>,
      };
    }
    case "hookAdvance":
      return {
        type: "hookAdvance",
        id: hookId(c.id),
        toRevision: integer(c.toRevision, "toRevision"),
        nowMs: integer(c.nowMs, "nowMs"),
      };
    default:
      invalid(`unknown type '${String(c.type).slice(0, 32)}'`);
  }
}
