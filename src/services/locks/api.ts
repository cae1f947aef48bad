/**
 * The locks service's public face (other services import only this file). Its contract with KV's atomic checks: the holder index,
 * one row per current holder of a lock, semaphore or election, so that
 * `atomic().checkFence(name, token)` is decided by one read at the write's
 * revision.
 *
 * | row    | key                                         | value                     |
 * | ------ | ------------------------------------------- | ------------------------- |
 * | holder | `ff 6d 68` name (UTF-8) `00` token (10 bytes) | owned by `services/locks` |
 *
 * Names carry no control characters, so `00` ends a name. The rest of
 * `ff 6d` is private to `services/locks`; the locks service keeps exactly
 * one holder row for each current holder and none for anyone else.
 *
 * @module
 */
import { fromHex } from "../../base/bytes.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";
import { type ApplyContext, readThrough } from "../../state/write_context.ts";

/** The locks service's keyspace: `ff 6d`. */
export const LOCKS_KEYSPACE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x6d]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x6e]),
};

const HOLDER_TAG = 0x68;
const encoder = new TextEncoder();

/** The holder row's key of `token` (20 lowercase hex digits) on `name`. */
export function holderKey(name: string, token: string): Uint8Array {
  const nameBytes = encoder.encode(name);
  const tokenBytes = fromHex(token);
  const key = new Uint8Array(3 + nameBytes.length + 1 + tokenBytes.length);
  key.set([INTERNAL_KEY_BYTE, 0x6d, HOLDER_TAG]);
  key.set(nameBytes, 3);
  key[3 + nameBytes.length] = 0x00;
  key.set(tokenBytes, 4 + nameBytes.length);
  return key;
}

/** Whether `token` currently holds `name` in the state this entry sees. */
export function fenceHolds(
  context: Pick<ApplyContext, "store" | "overlay">,
  name: string,
  token: string,
): boolean {
  return readThrough(context, holderKey(name, token)) !== null;
}

export { LOCKS_SERVICE, locksLeaseDependent, locksService } from "./apply.ts";
export {
  decodeLockCommand,
  encodeLockCommand,
  LOCK_LIMITS,
  type LockCommand,
  LockError,
  type LockErrorCode,
  type LockGrant,
  type LockResult,
  validateLeaseId,
  validateLockCommand,
  validateLockName,
  validatePermits,
  validateToken,
  validateValue,
} from "./commands.ts";
export {
  decodeLeader,
  leaderKey,
  type LeaderRecord,
  type LockKind,
  LOCKS_KEYSPACES,
} from "./keys.ts";
export {
  leaderChangeFilter,
  leaderOfChange,
  type LockMembership,
  LockReads,
  type LockStatus,
  membershipChangeFilter,
  membershipOf,
} from "./reads.ts";
export type { LockReadConsistency, LocksPort } from "./port.ts";
export type { LockKnobs } from "./writer.ts";
