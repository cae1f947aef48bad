/**
 * The KV service as the state host runs it: atomic operations (checks,
 * mutations and the enqueues they carry, which reach the queues service
 * through its `api.ts`, in the same entry and transaction), expiry sweeps
 * and marks of delivered stock-client answers. Apply is the authority that
 * validates every write (front ends validate too, for early errors); it is
 * deterministic: times come from the proposer inside the command.
 *
 * @module
 */
import { Encoder } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import type { LogIndex } from "../../raft/types.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  Versionstamp,
} from "../../model/types.ts";
import { failureOf } from "../../model/errors.ts";
import { validateAtomic } from "../../model/limits.ts";
import { equalBytes } from "../../base/bytes.ts";
import { isZeroVersionstamp } from "../../model/versionstamp.ts";
import { toHex } from "../../base/bytes.ts";
import type { ApplyContext, Overlay } from "../../state/write_context.ts";
import type { KeyRange, ServiceDefinition } from "../../state/registry.ts";
import { SESSION_DIGEST_BYTES } from "../../state/sessions.ts";
import { INTERNAL_KEYS_START } from "../../model/reserved.ts";
import { decodeCommand, type KvServiceCommand } from "./commands.ts";
import { applyMutations } from "./mutations.ts";
import {
  KV_INTERNAL_KEYSPACE,
  type ResendKnobs,
  ResendTable,
} from "./resends.ts";
import { enqueueInto } from "../queues/api.ts";
import { pubsubStepInto } from "../pubsub/api.ts";
import {
  LeaseError,
  leaseLive,
  leasesHeld,
  LeaseWriter,
} from "../leases/api.ts";
import { fenceHolds } from "../locks/api.ts";

/** Encodes what a digest covers; its bytes are hashed at once (a shared view). */
const digestEncoder = new Encoder();

/** Keys one expiry command deletes at most, whatever it asks for. */
export const EXPIRE_KEYS_MAX = 10_000;

/** User Deno KV keys: everything below the reserved `ff` byte; writes here are change events. */
export const KV_USER_KEYSPACE: KeyRange = {
  start: new Uint8Array(0),
  end: INTERNAL_KEYS_START,
  changes: true,
};

/**
 * Digest of what a write does, independent of its session and of the
 * receiving node's clock (an `expireIn` or enqueue delay is turned into an
 * absolute time by whichever node receives each attempt).
 */
export function writeDigest(operation: KvAtomicOperation): Uint8Array {
  const normal: unknown[] = [
    operation.checks.map((c) => [c.key, c.versionstamp]),
    operation.mutations.map((m) =>
      m.type === "delete" ? [m.type, m.key] : [
        m.type,
        m.key,
        m.value.encoding,
        m.value.data,
        "expireAtMs" in m ? m.expireAtMs != null : null,
        "sumMin" in m ? m.sumMin ?? null : null,
        "sumMax" in m ? m.sumMax ?? null : null,
        "sumClamp" in m ? m.sumClamp ?? null : null,
        // Only when present: digests of writes without leases stay as they
        // were (session results stored before this field still match).
        ...("lease" in m && m.lease !== undefined ? [m.lease] : []),
      ]
    ),
    operation.enqueues.map((e) => [
      e.payload,
      e.keysIfUndelivered,
      e.backoffSchedule,
      e.queue ?? null,
    ]),
  ];
  const coordination = operation.coordinationChecks ?? [];
  if (coordination.length > 0) {
    normal.push(
      coordination.map((c) =>
        c.kind === "lease"
          ? [c.kind, c.lease, c.position]
          : [c.kind, c.name, c.token, c.position]
      ),
      operation.checkPositions ?? null,
    );
  }
  const pubsub = operation.pubsub;
  if (pubsub !== undefined) {
    // Positions 3 and 4 (coordination) stay, so the shapes never collide.
    if (coordination.length === 0) normal.push(null, null);
    normal.push(
      pubsub.publishes.map((p) => [
        p.topic,
        p.producerId,
        p.value,
        p.encoding,
        p.key,
        p.headers,
        p.partition,
        p.sequence,
        // A delay is made absolute by whichever node receives the attempt.
        p.deliverAtMs !== null,
      ]),
      pubsub.acks.map((
        a,
      ) => [a.topic, a.group, a.memberId, a.generation, a.partition, a.offset]),
    );
  }
  return sha256(digestEncoder.encodeSharedRef(normal)).subarray(
    0,
    SESSION_DIGEST_BYTES,
  );
}

/** Decides an atomic operation, staging its changes in `overlay` only if it applies. */
function atomicInto(
  context: ApplyContext,
  operation: KvAtomicOperation,
): KvApplyResult {
  const { index, versionstamp, store } = context;
  const failedChecks: number[] = [];
  const positions = operation.checkPositions;
  operation.checks.forEach((check, i) => {
    const current = store.get(check.key);
    const expectAbsent = check.versionstamp === null ||
      isZeroVersionstamp(check.versionstamp);
    const passes = current === null ? expectAbsent : !expectAbsent &&
      equalBytes(current.versionstamp, check.versionstamp!);
    if (!passes) failedChecks.push(positions?.[i] ?? i);
  });
  for (const check of operation.coordinationChecks ?? []) {
    const passes = check.kind === "lease"
      ? leaseLive(context, check.lease)
      : fenceHolds(context, check.name, check.token);
    if (!passes) failedChecks.push(check.position);
  }
  if (positions !== undefined) failedChecks.sort((a, b) => a - b);
  if (failedChecks.length > 0) {
    return {
      ok: false,
      index,
      reason: "checkFailed",
      message: "Check failed",
      failedChecks,
    };
  }
  // Staged apart and merged only if the operation applies; straight into the
  // entry's overlay when nothing is staged there yet (the usual case), which
  // is then emptied again if it does not.
  const direct = context.overlay.size === 0;
  const staged: Overlay = direct ? context.overlay : new Map();
  const mismatch = applyMutations(
    store,
    staged,
    operation.mutations,
    versionstamp,
  );
  if (mismatch !== null) {
    if (direct) staged.clear();
    return {
      ok: false,
      index,
      reason: "typeMismatch",
      message: mismatch,
      failedChecks: [],
    };
  }
  const leased = attachLeases(
    { ...context, overlay: staged },
    operation.mutations,
  );
  if (leased !== null) {
    if (direct) staged.clear();
    return { ok: false, index, ...leased, failedChecks: [] };
  }
  if (operation.enqueues.length > 0) {
    enqueueInto(
      direct ? context : { ...context, overlay: staged },
      operation.enqueues,
    );
  }
  if (operation.pubsub !== undefined) {
    const refused = pubsubStepInto(
      direct ? context : { ...context, overlay: staged },
      operation.pubsub,
    );
    if (refused !== null) {
      if (direct) staged.clear();
      return { ok: false, index, ...refused, failedChecks: [] };
    }
  }
  if (!direct) { for (const [k, v] of staged) context.overlay.set(k, v); }
  return { ok: true, index, versionstamp, expiredKeyCount: 0 };
}

/**
 * Attaches the keys of sets with a lease and detaches those of other sets
 * and deletes (nothing to do while no lease exists); the refusal of a set
 * naming an unknown lease, or one beyond the keys per lease.
 */
function attachLeases(
  context: ApplyContext,
  mutations: KvAtomicOperation["mutations"],
): { reason: "leaseNotFound" | "limitExceeded"; message: string } | null {
  const named = mutations.some((m) => "lease" in m && m.lease !== undefined);
  if (!named && leasesHeld(context) === 0) return null;
  const writer = new LeaseWriter(context);
  try {
    for (const m of mutations) {
      if (m.type === "set" && m.lease !== undefined) {
        writer.attach(m.lease, m.key);
      } else if (m.type === "set" || m.type === "delete") {
        writer.detach(m.key);
      }
    }
  } catch (error) {
    if (!(error instanceof LeaseError)) throw error;
    return {
      reason: error.code === "leaseNotFound"
        ? "leaseNotFound"
        : "limitExceeded",
      message: error.message,
    };
  }
  return null;
}

function expire(
  context: ApplyContext,
  timestampMs: number,
  keyCountMax: number,
): KvApplyResult {
  const keys = context.store.expiredKeys(
    timestampMs,
    Math.min(keyCountMax, EXPIRE_KEYS_MAX),
  );
  const leases = leasesHeld(context) === 0 ? null : new LeaseWriter(context);
  for (const key of keys) {
    const id = toHex(key);
    context.overlay.set(id, { key, row: null });
    context.causes.set(id, "expire");
    leases?.detach(key);
  }
  return {
    ok: true,
    index: context.index,
    versionstamp: context.versionstamp,
    expiredKeyCount: keys.length,
  };
}

function ok(index: LogIndex, versionstamp: Versionstamp): KvApplyResult {
  return { ok: true, index, versionstamp, expiredKeyCount: 0 };
}

/** The KV service's registration (see `services/table.ts`). */
export function kvService(
  knobs: ResendKnobs = {},
): ServiceDefinition<KvServiceCommand, KvApplyResult> {
  return {
    name: "kv",
    keyspaces: [KV_USER_KEYSPACE, KV_INTERNAL_KEYSPACE],
    // Enqueues reach the queues; sets with a lease (and the deletes and
    // expiries of leased keys) reach the leases' index; publishes and acks
    // reach pub/sub (and an ack's skip of a trimmed record, the events).
    reaches: ["queues", "leases", "pubsub", "events"],
    decode(payload) {
      const command = decodeCommand(payload);
      if (command.type === "atomic") validateAtomic(command.operation);
      return command;
    },
    sessionDigest: (command) =>
      command.type === "atomic" ? writeDigest(command.operation) : null,
    replay(command, context) {
      if (command.type !== "atomic" || command.operation.resend === undefined) {
        return null;
      }
      // A stock client's resend of a write that applied: its first result.
      return new ResendTable(context.store, knobs).lookup(
        command.operation.resend,
      );
    },
    apply(command, context) {
      const { index, versionstamp } = context;
      switch (command.type) {
        case "expire":
          return expire(context, command.timestampMs, command.keyCountMax);
        case "resendDelivered":
          new ResendTable(context.store, knobs).markDelivered(
            context.overlay,
            command.marks,
            versionstamp,
          );
          return ok(index, versionstamp);
        case "atomic": {
          const result = atomicInto(context, command.operation);
          if (command.operation.resend !== undefined) {
            new ResendTable(context.store, knobs).record(
              context.overlay,
              command.operation.resend,
              index,
              result,
              versionstamp,
            );
          }
          return result;
        }
      }
    },
    failure(error: unknown, index: LogIndex): KvApplyResult {
      const { reason, message } = failureOf(error);
      return { ok: false, index, reason, message, failedChecks: [] };
    },
    sessionRefusal: (reason, message, index) => ({
      ok: false,
      index,
      reason,
      message,
      failedChecks: [],
    }),
  };
}
