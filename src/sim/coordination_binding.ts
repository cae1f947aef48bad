/**
 * Where the simulator meets the leases and locks services (issue 16): the
 * one file that knows their commands, leader task and state layout. The
 * rest of the simulator speaks only the HTTP protocol's types (through
 * {@linkcode CoordinationNode}) and {@linkcode CoordinationView}s.
 *
 * A binding does three things for the simulator:
 *
 * - `stateKnobs`: the apply-side planted bugs (`LockKnobs`) as the state
 *   machine's knobs, so every replica applies the same (buggy) rules;
 * - `attach`: registers the services' leader tasks (the lease keeper, on
 *   the node's simulated clock and timers) with the node incarnation's
 *   service host, with the leader-side bugs (`LeaseKnobs`), and answers
 *   the node's {@linkcode CoordinationNode}: proposals through its runner,
 *   keep-alives to its keeper;
 * - `view`: reads a replica's leases, locks (permits, holders, waiters) and
 *   attached keys into a {@linkcode CoordinationView}.
 *
 * The port answers as the HTTP front ends do, in simplified form: one
 * proposal per request without a session (a request whose proposal fails
 * gets no answer: the client gives up on it), keep-alives only on the
 * leader (a follower gives no answer; the client tries another node), and
 * an acquire's long poll follows this replica's applied state on the
 * simulated timers until the lease holds, leaves the queue (then acquires
 * again) or `waitMs` passes.
 *
 * @module
 */
import { toHex } from "../base/bytes.ts";
import type { Clock, Scheduler } from "../base/clock.ts";
import { encodeKey } from "../model/key_codec.ts";
import type {
  KvAtomicOperation,
  KvCoordinationCheck,
  KvMutation,
} from "../model/types.ts";
import { versionstampToString } from "../model/versionstamp.ts";
import { LEASES_SERVICE_ID } from "../node/node_leases.ts";
import { LOCKS_SERVICE_ID } from "../node/node_locks.ts";
import type { RaftRunner } from "../node/raft_runner.ts";
import type { ServiceHost } from "../node/service_host.ts";
import type { AtomicRequest, ErrorCode } from "../protocol/http_api.ts";
import { keyFromWire, valueFromWire } from "../protocol/http_api_codec.ts";
import type { LockAcquireResponse } from "../protocol/http_api_leases.ts";
import { encodeKvEntry } from "../services/entries.ts";
import {
  encodeLeaseCommand,
  grantedTtlMs,
  type LeaseCommand,
  LeaseError,
  LeaseKeeper,
  LeaseReads,
  type LeaseResult,
} from "../services/leases/api.ts";
import {
  encodeLockCommand,
  type LockCommand,
  LockError,
  LockReads,
  type LockResult,
  membershipOf,
} from "../services/locks/api.ts";
import {
  decodeApplyResult,
  decodeProposalResult,
  type KvStateResult,
} from "../services/replicated_state.ts";
import type { KvStateMachine } from "../services/state_machine.ts";
import type { KvStateMachineKnobs } from "../services/state_machine.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import type { CoordinationView, ViewLock } from "./coordination_checker.ts";
import {
  CoordinationError,
  type CoordinationNode,
} from "./coordination_clients.ts";
import type { ServiceBugKnobs } from "./options.ts";

/** One node incarnation, as a binding attaches the services to it. */
export interface CoordinationHost {
  readonly runner: RaftRunner<KvStateResult>;
  /** The replica's KV state machine (the services' state lives in its store). */
  readonly kv: KvStateMachine;
  /** The incarnation's service host (started by the node after `attach`). */
  readonly services: ServiceHost;
  readonly clock: Clock;
  readonly scheduler: Scheduler;
  /** The longest election timeout, ms (the keeper's extension, the TTL floor). */
  readonly electionTimeoutMs: number;
  /** The leader-side planted bugs. */
  readonly knobs: ServiceBugKnobs;
}

/** The simulator's view of the leases and locks services. */
export interface CoordinationBinding {
  /** The apply-side planted bugs as knobs of every replica's state machine. */
  stateKnobs(knobs: ServiceBugKnobs): KvStateMachineKnobs;
  /** Registers the leader tasks with `host.services`; returns the node's port. */
  attach(host: CoordinationHost): CoordinationNode;
  /**
   * The coordination state of a replica at its applied index: its leases,
   * the locks `names` (the names the clients use), and its attached keys.
   */
  view(kv: KvStateMachine, names: readonly string[]): CoordinationView;
}

/** How often an acquire's long poll looks at the applied state, in ms. */
const pollMs = 10;

/** A refusal of the services as the protocol's typed error; anything else passes. */
function typed(error: unknown): unknown {
  if (error instanceof LeaseError || error instanceof LockError) {
    return new CoordinationError(error.code as ErrorCode, error.message, {
      cause: error,
    });
  }
  return error;
}

/** A refused result as a typed error (a session refusal cannot happen: none is sent). */
function refused(
  result: { reason: string; message: string },
): CoordinationError {
  return new CoordinationError(
    result.reason as ErrorCode,
    result.message,
  );
}

/**
 * The atomic operation of a simulated client's request: only what the
 * coordination clients send (`fence` and `lease` checks, `set` with an
 * optional lease, `delete`); the HTTP front end's parser is private to it.
 *
 * @throws {TypeError} For anything else.
 */
export function simAtomicOperation(request: AtomicRequest): KvAtomicOperation {
  const coordinationChecks: KvCoordinationCheck[] = [];
  (request.checks ?? []).forEach((check, position) => {
    const wire = check as {
      fence?: { name: string; token: string };
      lease?: string;
    };
    if (wire.fence !== undefined) {
      coordinationChecks.push({ kind: "fence", ...wire.fence, position });
    } else if (typeof wire.lease === "string") {
      coordinationChecks.push({ kind: "lease", lease: wire.lease, position });
    } else {
      throw new TypeError("Cannot simulate a versionstamp check");
    }
  });
  const mutations = request.mutations.map((wire): KvMutation => {
    const m = wire as {
      type: string;
      key: unknown;
      value?: unknown;
      lease?: string;
    };
    const key = encodeKey(keyFromWire(m.key));
    if (m.type === "delete") return { type: "delete", key };
    if (m.type !== "set") {
      throw new TypeError(`Cannot simulate a '${m.type}' mutation`);
    }
    const value = valueFromWire(m.value);
    return m.lease === undefined
      ? { type: "set", key, value }
      : { type: "set", key, value, lease: m.lease };
  });
  return {
    checks: [],
    ...(coordinationChecks.length === 0
      ? {}
      : { coordinationChecks, checkPositions: [] }),
    mutations,
    enqueues: [],
  };
}

/** The port of one node incarnation: proposals through its runner. */
class SimCoordinationPort implements CoordinationNode {
  readonly #host: CoordinationHost;
  readonly #keeper: LeaseKeeper;
  readonly #node: number;
  #grants = 0;

  constructor(host: CoordinationHost, keeper: LeaseKeeper) {
    this.#host = host;
    this.#keeper = keeper;
    let hash = 0;
    for (const char of String(host.runner.status().id)) {
      hash = (hash * 31 + char.charCodeAt(0)) & 0xffff;
    }
    this.#node = hash;
  }

  /** A fresh lease id, deterministic in simulated time: node, wall ms, count. */
  #leaseId(): string {
    const hex = (value: number, digits: number) =>
      (value >>> 0).toString(16).padStart(digits, "0").slice(-digits);
    const ms = Math.floor(this.#host.clock.wallMs()) % 0x1_0000_0000;
    return hex(this.#node, 4) + hex(ms, 8) + hex(this.#grants++ & 0xffff, 4);
  }

  async #lease(
    command: LeaseCommand,
  ): Promise<Exclude<LeaseResult, { ok: false }>> {
    const data = encodeEnvelope({
      serviceId: LEASES_SERVICE_ID,
      payload: encodeLeaseCommand(command),
    });
    const result = decodeProposalResult(
      await this.#host.runner.propose(data),
    ) as LeaseResult;
    if (!result.ok) throw refused(result);
    return result;
  }

  async #lock(
    command: LockCommand,
  ): Promise<Exclude<LockResult, { ok: false }>> {
    const data = encodeEnvelope({
      serviceId: LOCKS_SERVICE_ID,
      payload: encodeLockCommand(command),
    });
    const result = decodeProposalResult(
      await this.#host.runner.propose(data),
    ) as LockResult;
    if (!result.ok) throw refused(result);
    return result;
  }

  async grant(request: { ttlMs: number; id?: string }) {
    try {
      const ttlMs = grantedTtlMs(request.ttlMs, this.#host.electionTimeoutMs);
      const id = request.id ?? this.#leaseId();
      const result = await this.#lease({ type: "grant", id, ttlMs });
      if (!("lease" in result)) throw new TypeError("Unexpected grant result");
      return result.lease;
    } catch (error) {
      throw typed(error);
    }
  }

  async keepAlive(request: { ids: readonly string[] }) {
    try {
      return { leases: await this.#keeper.keepAlive(request.ids) };
    } catch (error) {
      throw typed(error);
    }
  }

  async revoke(request: { id: string }) {
    try {
      const result = await this.#lease({ type: "revoke", id: request.id });
      if (!("keysDeleted" in result)) {
        throw new TypeError("Unexpected revoke result");
      }
      return { keysDeleted: result.keysDeleted };
    } catch (error) {
      throw typed(error);
    }
  }

  async acquire(request: {
    name: string;
    lease: string;
    permits?: number;
    waitMs?: number;
  }): Promise<LockAcquireResponse> {
    try {
      const { name, lease } = request;
      const command: LockCommand = {
        type: "acquire",
        name,
        lease,
        permits: request.permits ?? 1,
      };
      const endMs = this.#host.clock.monotonicMs() + (request.waitMs ?? 0);
      for (;;) {
        const result = await this.#lock(command);
        if (!("granted" in result)) {
          throw new TypeError("Unexpected acquire result");
        }
        if (result.granted) {
          return {
            granted: true,
            name,
            token: result.grant.token,
            lease,
            revision: result.grant.revision,
          };
        }
        let position = result.position;
        let left = false;
        while (this.#host.clock.monotonicMs() < endMs) {
          await new Promise<void>((resolve) =>
            this.#host.scheduler.after(pollMs, resolve)
          );
          if (this.#host.kv.store.appliedIndex() < result.index) continue;
          const member = membershipOf(this.#host.kv.store, name, lease);
          if (member === null) {
            left = true;
            break;
          }
          if (member.kind === "holds") {
            return {
              granted: true,
              name,
              token: member.token,
              lease,
              revision: member.revision,
            };
          }
          position = member.position;
        }
        if (!left) return { granted: false, name, position };
      }
    } catch (error) {
      throw typed(error);
    }
  }

  async cancel(request: { name: string; lease: string }) {
    try {
      const result = await this.#lock({ type: "cancel", ...request });
      if (!("removed" in result)) throw new TypeError("Unexpected result");
      return { removed: result.removed };
    } catch (error) {
      throw typed(error);
    }
  }

  async release(request: { name: string; token: string }) {
    try {
      await this.#lock({ type: "release", ...request });
      return { released: true } as const;
    } catch (error) {
      throw typed(error);
    }
  }

  async commit(request: AtomicRequest) {
    const operation = simAtomicOperation(request);
    const result = decodeApplyResult(
      await this.#host.runner.propose(
        encodeKvEntry({ type: "atomic", operation }),
      ),
    );
    if (!result.ok) {
      if (result.reason === "checkFailed") return { ok: false } as const;
      throw new CoordinationError(
        result.reason as ErrorCode,
        result.message,
      );
    }
    return {
      ok: true,
      versionstamp: versionstampToString(result.versionstamp),
    } as const;
  }
}

/** The binding of the leases service (id 4) and the locks service (id 5) on main. */
export const SERVICES_BINDING: CoordinationBinding = {
  stateKnobs(knobs) {
    return knobs.locks?.grantWithoutLeaseCheck
      ? { grantWithoutLeaseCheck: true }
      : {};
  },
  attach(host) {
    const runner = host.runner;
    const keeper = new LeaseKeeper({
      reads: new LeaseReads(host.kv.store),
      isLeader: () => runner.status().role === "leader",
      confirmLeadership: async () => {
        await runner.readIndex();
      },
      electionTimeoutMs: host.electionTimeoutMs,
      ...(host.knobs.leases === undefined ? {} : { knobs: host.knobs.leases }),
    });
    host.services.add({
      task: keeper,
      encode: (command: LeaseCommand) =>
        encodeEnvelope({
          serviceId: LEASES_SERVICE_ID,
          payload: encodeLeaseCommand(command),
        }),
      decode: (result) => decodeProposalResult(result) as LeaseResult,
    });
    return new SimCoordinationPort(host, keeper);
  },
  view(kv, names) {
    const leaseReads = new LeaseReads(kv.store);
    const lockReads = new LockReads(kv.store);
    const leases = new Map<string, { ttlMs: number }>();
    const attached: { key: string; lease: string }[] = [];
    for (const lease of leaseReads.all()) {
      leases.set(lease.id, { ttlMs: lease.ttlMs });
      for (const key of leaseReads.keys(lease.id)) {
        attached.push({ key: toHex(key), lease: lease.id });
      }
    }
    const locks = new Map<string, ViewLock>();
    for (const name of names) {
      const status = lockReads.status(name);
      if (status.kind === null) continue;
      locks.set(name, {
        permits: status.permits,
        holders: status.holders,
        waiters: status.waiters,
      });
    }
    return {
      revision: Number(kv.store.appliedIndex()),
      leases,
      locks,
      attached,
    };
  },
};

/** The binding of the services on main. */
export const COORDINATION_BINDING: CoordinationBinding | null =
  SERVICES_BINDING;
