/**
 * The leases service as the state host runs it: grant, revoke and expire
 * applied to the entry's write context, and the attach/detach helpers KV
 * atomic operations reach through `api.ts` (one entry, one transaction).
 * Revoke and expire delete the records, every attached user key (a change
 * event with cause `lease` or `leaseExpired`), then call every registered
 * dependent's `onLeaseEnded` in the same entry. Deterministic: ids and TTLs
 * are the proposer's, inside the command.
 *
 * @module
 */
import { fromHex, toHex } from "../../base/bytes.ts";
import type { LogIndex } from "../../raft/types.ts";
import type { ServiceDefinition } from "../../state/registry.ts";
import {
  type ApplyContext,
  internalRowWriter,
  readThrough,
} from "../../state/write_context.ts";
import { type LeaseDependent, leaseRecordKey, LEASES_KEYSPACE } from "./api.ts";
import {
  decodeLeaseCommand,
  LEASE_LIMITS,
  type LeaseCommand,
  LeaseError,
  type LeaseResult,
} from "./commands.ts";
import {
  attachedKey,
  attachedRange,
  decodeCount,
  decodeLeaseRecord,
  encodeCount,
  encodeLeaseRecord,
  LEASE_COUNT_KEY,
  type LeaseRecord,
  ownerKey,
  userKeyOfAttached,
} from "./keys.ts";

/** The leases service's name. */
export const LEASES_SERVICE = "leases";

/** Leases held in the state entry `context` sees (0: no key is attached anywhere). */
export function leasesHeld(
  context: Pick<ApplyContext, "store" | "overlay">,
): number {
  return decodeCount(readThrough(context, LEASE_COUNT_KEY)?.value);
}

/** Stages the leases rows of one entry. */
export class LeaseWriter {
  readonly #context: ApplyContext;
  readonly #rows: ReturnType<typeof internalRowWriter>;

  /** A writer into entry `context`. */
  constructor(context: ApplyContext) {
    this.#context = context;
    this.#rows = internalRowWriter(context.overlay, context.versionstamp);
  }

  /** Lease `id`'s record as this entry sees it, or null. */
  record(id: string): LeaseRecord | null {
    const row = readThrough(this.#context, leaseRecordKey(id));
    return row === null ? null : decodeLeaseRecord(row.value);
  }

  #count(): number {
    return decodeCount(readThrough(this.#context, LEASE_COUNT_KEY)?.value);
  }

  #setCount(count: number): void {
    this.#rows.put(LEASE_COUNT_KEY, encodeCount(count));
  }

  /**
   * Grants lease `id` (idempotent for the same TTL).
   *
   * @throws {LeaseError} `leaseExists` for another TTL, `limitExceeded`
   *   beyond the leases limit.
   */
  grant(id: string, ttlMs: number): { id: string; ttlMs: number } {
    const existing = this.record(id);
    if (existing !== null) {
      if (existing.ttlMs === ttlMs) return { id, ttlMs };
      throw new LeaseError(
        "leaseExists",
        `Lease ${id} exists with ttlMs ${existing.ttlMs}`,
      );
    }
    const count = this.#count();
    if (count >= LEASE_LIMITS.leasesMax) {
      throw new LeaseError(
        "limitExceeded",
        `Too many leases (max ${LEASE_LIMITS.leasesMax})`,
      );
    }
    this.#rows.put(
      leaseRecordKey(id),
      encodeLeaseRecord({
        ttlMs,
        grantedAt: Number(this.#context.index),
        keyCount: 0,
      }),
    );
    this.#setCount(count + 1);
    return { id, ttlMs };
  }

  /**
   * Ends the live leases among `ids` (unknown ids are skipped): deletes
   * their records, attached keys (change cause `cause`) and index rows,
   * then calls each dependent once with the ended ids.
   */
  end(
    ids: readonly string[],
    cause: "lease" | "leaseExpired",
    dependents: readonly LeaseDependent[],
  ): { ended: string[]; keysDeleted: number } {
    const ended: string[] = [];
    let keysDeleted = 0;
    const { overlay, causes, store } = this.#context;
    for (const id of new Set(ids)) {
      if (this.record(id) === null) continue;
      ended.push(id);
      this.#rows.remove(leaseRecordKey(id));
      // Attached rows were written by earlier entries: the store has them all.
      const attached = store.scan({
        ...attachedRange(id),
        limit: LEASE_LIMITS.leaseKeysMax + 1,
      });
      for (const row of attached) {
        const userKey = userKeyOfAttached(row.key);
        this.#rows.remove(row.key);
        this.#rows.remove(ownerKey(userKey));
        if (readThrough(this.#context, userKey) !== null) {
          const hex = toHex(userKey);
          overlay.set(hex, { key: userKey, row: null });
          causes.set(hex, cause);
          keysDeleted++;
        }
      }
    }
    if (ended.length > 0) {
      this.#setCount(this.#count() - ended.length);
      for (const dependent of dependents) {
        dependent.onLeaseEnded(ended, this.#context);
      }
    }
    return { ended, keysDeleted };
  }

  /** The lease `userKey` is attached to in this entry's view, or null. */
  ownerOf(userKey: Uint8Array): string | null {
    const row = readThrough(this.#context, ownerKey(userKey));
    return row === null ? null : toHex(row.value);
  }

  /**
   * Attaches `userKey` to lease `id` (detaching it from another lease).
   *
   * @throws {LeaseError} `leaseNotFound` for a lease not live in this
   *   entry, `limitExceeded` beyond the keys per lease.
   */
  attach(id: string, userKey: Uint8Array): void {
    const owner = this.ownerOf(userKey);
    if (owner === id) return;
    const record = this.record(id);
    if (record === null) {
      throw new LeaseError("leaseNotFound", `Lease ${id} not found`);
    }
    if (record.keyCount >= LEASE_LIMITS.leaseKeysMax) {
      throw new LeaseError(
        "limitExceeded",
        `Too many keys on lease ${id} (max ${LEASE_LIMITS.leaseKeysMax})`,
      );
    }
    if (owner !== null) this.detach(userKey);
    this.#rows.put(attachedKey(id, userKey), new Uint8Array(0));
    this.#rows.put(ownerKey(userKey), fromHex(id));
    this.#rows.put(
      leaseRecordKey(id),
      encodeLeaseRecord({ ...record, keyCount: record.keyCount + 1 }),
    );
  }

  /** Detaches `userKey` from its lease, if any. */
  detach(userKey: Uint8Array): void {
    const owner = this.ownerOf(userKey);
    if (owner === null) return;
    this.#rows.remove(attachedKey(owner, userKey));
    this.#rows.remove(ownerKey(userKey));
    const record = this.record(owner);
    if (record !== null) {
      this.#rows.put(
        leaseRecordKey(owner),
        encodeLeaseRecord({ ...record, keyCount: record.keyCount - 1 }),
      );
    }
  }
}

function applyLease(
  command: LeaseCommand,
  context: ApplyContext,
  dependents: readonly LeaseDependent[],
): LeaseResult {
  const writer = new LeaseWriter(context);
  const index = Number(context.index);
  switch (command.type) {
    case "grant":
      return {
        ok: true,
        index,
        lease: writer.grant(command.id, command.ttlMs),
      };
    case "revoke": {
      const done = writer.end([command.id], "lease", dependents);
      if (done.ended.length === 0) {
        throw new LeaseError("leaseNotFound", `Lease ${command.id} not found`);
      }
      return { ok: true, index, ...done };
    }
    case "expire":
      return {
        ok: true,
        index,
        ...writer.end(command.ids, "leaseExpired", dependents),
      };
  }
}

/**
 * The leases service's registration (see `services/table.ts`): it reaches
 * `kv` (attached keys) and every dependent's service.
 */
export function leasesService(
  dependents: readonly LeaseDependent[] = [],
): ServiceDefinition<LeaseCommand, LeaseResult> {
  return {
    name: LEASES_SERVICE,
    keyspaces: [LEASES_KEYSPACE],
    reaches: ["kv", ...dependents.map((d) => d.service)],
    decode: decodeLeaseCommand,
    apply: (command, context) => applyLease(command, context, dependents),
    failure(error: unknown, index: LogIndex): LeaseResult {
      if (!(error instanceof LeaseError)) throw error;
      return {
        ok: false,
        index: Number(index),
        reason: error.code,
        message: error.message,
      };
    },
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index: Number(index),
      reason,
      message,
    }),
  };
}
