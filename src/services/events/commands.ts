/**
 * The events service's commands, results and typed refusals.
 *
 * - `leader {term, leader}`: a new leader announces itself once its blank
 *   entry committed; apply records `leader.changed {term, leader,
 *   previous}` only for a term above the last one recorded (a repeat or a
 *   late one applies as a no-op, identically everywhere).
 * - `fact {event, data}`: a cluster fact (`snapshot.taken`,
 *   `node.unhealthy`, `hook.*`…) recorded as one event.
 * - `compact {belowRevision}`: deletes every record below that revision
 *   (never past the entry's own revision); below the current floor it is a
 *   no-op.
 *
 * Encoded as MessagePack maps.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import {
  HOOK_COMMAND_TYPES,
  type HookCommand,
  validateHookCommand,
} from "./hook_commands.ts";

/** Longest encoded facts of one event, bytes. */
export const FACT_BYTES_MAX = 4096;

/** Event types a `fact` may carry (KV and member events come from apply). */
const FACT_TYPE =
  /^(snapshot\.(taken|installed)|node\.(unhealthy|healthy)|hook\.(disabled|gap|test))$/;

/** A command of the events service. */
export type EventsCommand =
  | { readonly type: "leader"; readonly term: number; readonly leader: string }
  | {
    readonly type: "fact";
    readonly event: string;
    readonly data: Readonly<Record<string, unknown>>;
  }
  | { readonly type: "compact"; readonly belowRevision: number }
  | HookCommand;

/** Refusal reasons. */
export type EventsErrorCode =
  | "invalid"
  | "sessionReused"
  | "sessionExpired"
  | "hookExists"
  | "hookNotFound"
  | "claimLost"
  | "compacted"
  | "limitExceeded";

/** The result of an events command. */
export type EventsResult =
  | {
    readonly ok: true;
    readonly index: number;
    /** Whether an event was recorded (leader, fact). */
    readonly recorded?: boolean;
    /** The floor after a compaction. */
    readonly floor?: number;
    /** Records a compaction deleted. */
    readonly deleted?: number;
    /** Hook commands: the hooks a claim holds. */
    readonly hooks?: readonly string[];
    /** Hook advance: events enqueued. */
    readonly enqueued?: number;
  }
  | {
    readonly ok: false;
    readonly index: number;
    readonly reason: EventsErrorCode;
    readonly message: string;
  };

/** A refused command (identical on every replica). */
export class EventsError extends Error {
  override name = "EventsError";
  constructor(readonly code: EventsErrorCode, message: string) {
    super(message);
  }
}

function invalid(message: string): never {
  throw new EventsError("invalid", `Cannot apply events command: ${message}`);
}

function positiveInteger(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    invalid(`'${name}' must be a non-negative integer`);
  }
  return value;
}

/**
 * Checks a command's shape and bounds.
 *
 * @throws {EventsError} `invalid`.
 */
export function validateEventsCommand(value: unknown): EventsCommand {
  if (value === null || typeof value !== "object") invalid("not a map");
  const command = value as Record<string, unknown>;
  switch (command.type) {
    case "leader": {
      const term = positiveInteger("term", command.term);
      if (typeof command.leader !== "string" || command.leader.length > 128) {
        invalid("'leader' must be a node id");
      }
      return { type: "leader", term, leader: command.leader };
    }
    case "fact": {
      if (typeof command.event !== "string" || !FACT_TYPE.test(command.event)) {
        invalid(`unknown fact type '${String(command.event).slice(0, 64)}'`);
      }
      const data = command.data;
      if (data === null || typeof data !== "object" || Array.isArray(data)) {
        invalid("'data' must be a map");
      }
      if (encode(data).byteLength > FACT_BYTES_MAX) {
        invalid(`'data' is larger than ${FACT_BYTES_MAX} bytes`);
      }
      return {
        type: "fact",
        event: command.event,
        data: data as Record<string, unknown>,
      };
    }
    case "compact":
      return {
        type: "compact",
        belowRevision: positiveInteger("belowRevision", command.belowRevision),
      };
    default:
      if (
        typeof command.type === "string" && HOOK_COMMAND_TYPES.has(command.type)
      ) return validateHookCommand(command);
      invalid(`unknown type '${String(command.type).slice(0, 32)}'`);
  }
}

/** The payload of a command. */
export function encodeEventsCommand(command: EventsCommand): Uint8Array {
  return encode(command);
}

/**
 * Decodes and validates a payload.
 *
 * @throws {EventsError} `invalid`.
 */
export function decodeEventsCommand(payload: Uint8Array): EventsCommand {
  let value: unknown;
  try {
    value = decode(payload);
  } catch (error) {
    invalid(`not MessagePack (${(error as Error).message})`);
  }
  return validateEventsCommand(value);
}
