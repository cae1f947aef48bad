/**
 * The locks service as the state host runs it (envelope id 5, keyspace
 * `ff 6d`): its commands applied to the entry's write context, and the
 * lease dependent the leases service calls in the entry that ends leases.
 *
 * @module
 */
import type { LogIndex } from "../../raft/types.ts";
import type { ServiceDefinition } from "../../state/registry.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import type { LeaseDependent } from "../leases/api.ts";
import {
  decodeLockCommand,
  type LockCommand,
  LockError,
  type LockResult,
} from "./commands.ts";
import { LOCKS_KEYSPACES } from "./keys.ts";
import { type LockKnobs, LockWriter } from "./writer.ts";

/** The locks service's name (in change events and `reaches`). */
export const LOCKS_SERVICE = "locks";

function applyLock(
  command: LockCommand,
  context: ApplyContext,
  knobs: LockKnobs,
): LockResult {
  const writer = new LockWriter(context, knobs);
  switch (command.type) {
    case "acquire":
      return writer.acquire(
        command.name,
        "lock",
        command.lease,
        command.permits,
        null,
      );
    case "campaign":
      return writer.acquire(
        command.name,
        "election",
        command.lease,
        1,
        command.value,
      );
    case "cancel":
      return writer.cancel(command.name, command.lease);
    case "release":
      return writer.release(command.name, "lock", command.token);
    case "resign":
      return writer.release(command.name, "election", command.token);
    case "proclaim":
      return writer.proclaim(command.name, command.token, command.value);
  }
}

/**
 * The locks service's registration (see `services/table.ts`).
 *
 * @param knobs Testing knobs: planted bugs of the simulator (default none).
 */
export function locksService(
  knobs: LockKnobs = {},
): ServiceDefinition<LockCommand, LockResult> {
  return {
    name: LOCKS_SERVICE,
    keyspaces: LOCKS_KEYSPACES,
    decode: decodeLockCommand,
    apply: (command, context) => applyLock(command, context, knobs),
    failure(error: unknown, index: LogIndex): LockResult {
      if (!(error instanceof LockError)) throw error;
      return { ok: false, index, reason: error.code, message: error.message };
    },
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index,
      reason,
      message,
    }),
  };
}

/**
 * The locks service as a lease dependent: ends the holds and waits of the
 * leases that end, and grants their names to the next live waiters, in the
 * same entry (the leases service must `reach` `locks`).
 *
 * @param knobs Testing knobs: planted bugs of the simulator (default none).
 */
export function locksLeaseDependent(knobs: LockKnobs = {}): LeaseDependent {
  return {
    service: LOCKS_SERVICE,
    onLeaseEnded(ids, context) {
      new LockWriter(context, knobs).leasesEnded(ids);
    },
  };
}
