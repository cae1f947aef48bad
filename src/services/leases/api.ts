/**
 * The leases service's public face (other services import only this file). Its contract with the services whose holds live on a
 * lease (locks, elections; later pub/sub groups and job workers): where a
 * lease's record is, how apply asks whether a lease is live, and the hook a
 * dependent registers so that its holds end in the very entry (one revision)
 * that revokes or expires the lease.
 *
 * | row    | key                          | value                      |
 * | ------ | ---------------------------- | -------------------------- |
 * | record | `ff 6c 01` id (8 bytes)      | owned by `services/leases` |
 *
 * The rest of `ff 6c` is private to `services/leases`.
 *
 * @module
 */
import { fromHex } from "../../base/bytes.ts";
import { INTERNAL_KEY_BYTE } from "../../model/reserved.ts";
import type { KeyRange } from "../../state/registry.ts";
import { type ApplyContext, readThrough } from "../../state/write_context.ts";

/** The leases service's keyspace: `ff 6c`. */
export const LEASES_KEYSPACE: KeyRange = {
  start: new Uint8Array([INTERNAL_KEY_BYTE, 0x6c]),
  end: new Uint8Array([INTERNAL_KEY_BYTE, 0x6d]),
};

const RECORD_TAG = 0x01;

/** The key of lease `id`'s record (`id`: 16 lowercase hex digits). */
export function leaseRecordKey(id: string): Uint8Array {
  const bytes = fromHex(id);
  const key = new Uint8Array(3 + bytes.length);
  key.set([INTERNAL_KEY_BYTE, 0x6c, RECORD_TAG]);
  key.set(bytes, 3);
  return key;
}

/** Whether lease `id` exists in the state this entry sees (apply-time, no clock). */
export function leaseLive(
  context: Pick<ApplyContext, "store" | "overlay">,
  id: string,
): boolean {
  return readThrough(context, leaseRecordKey(id)) !== null;
}

/**
 * A service whose holds end with their lease. The leases service calls
 * every registered dependent inside the entry that ends leases (revoke or
 * expire), after their records are staged as deleted, so `leaseLive` is
 * already false for them; the dependent deletes their holds and does what
 * follows (for locks: grants to the next live waiters) in the same entry.
 */
export interface LeaseDependent {
  /** The dependent's service name (the leases service `reaches` it). */
  readonly service: string;
  /** Ends every hold of the leases `ids` in entry `context`. */
  onLeaseEnded(ids: readonly string[], context: ApplyContext): void;
}

export {
  LEASES_SERVICE,
  leasesHeld,
  leasesService,
  LeaseWriter,
} from "./apply.ts";
export {
  decodeLeaseCommand,
  encodeLeaseCommand,
  grantedTtlMs,
  LEASE_LIMITS,
  type LeaseCommand,
  LeaseError,
  type LeaseErrorCode,
  type LeaseResult,
  validateLeaseCommand,
  validateLeaseId,
  validateTtlMs,
} from "./commands.ts";
export {
  LEASE_LIST_LIMIT_MAX,
  type LeaseInfo,
  LeaseReads,
  randomLeaseId,
} from "./reads.ts";
export {
  type KeepAliveAnswer,
  LeaseKeeper,
  type LeaseKeeperOptions,
  type LeaseKeeperStats,
  type LeaseKnobs,
} from "./leader.ts";
export type { LeasesPort } from "./port.ts";
