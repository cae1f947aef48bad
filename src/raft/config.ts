/**
 * Validation and defaults of {@linkcode RaftConfig}: checked before a core
 * does any work, with std-style messages.
 *
 * @module
 */
import type {
  NodeId,
  RaftConfig,
  RandomSource,
  TestingKnobs,
} from "./types.ts";

/** A RaftConfig with every default filled in. */
export interface ResolvedRaftConfig {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  readonly maxMessageBytes: number;
  readonly maxUncommittedBytes: number;
  readonly maxCommittedBytesPerReady: number;
  readonly readOnly: "safe" | "lease";
  /** Ticks of the old tick-counted lease; only the `leaseTickCount` planted bug uses it. */
  readonly leaseTicks: number;
  readonly tickMs: number;
  readonly clockDrift: number;
  readonly maxDelayMs: number;
  /**
   * Real time, in clock units, this node refuses votes at least after a
   * heartbeat: floor((electionTicks - 1) * tickMs * (1 - clockDrift) - maxDelayMs),
   * or 0 without the CheckQuorum guard.
   */
  readonly voteGuardMs: number;
  /** How long a lease lasts on the leader's clock from the heartbeat's send: voteGuardMs / (1 + clockDrift). */
  readonly leaseMs: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotKeepBytes: number;
  readonly random: RandomSource;
  readonly testingKnobs: TestingKnobs;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot start Raft as '${name}' must be a non-negative integer: current value is ${value}`,
    );
  }
  return value;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot start Raft as '${name}' must be a positive integer: current value is ${value}`,
    );
  }
  return value;
}

/**
 * Fills defaults and validates a Raft configuration.
 *
 * @param config The configuration as given.
 * @returns The configuration with every default applied.
 * @throws {RangeError} When a number is out of range.
 * @throws {TypeError} When the membership is malformed.
 */
export function resolveRaftConfig(config: RaftConfig): ResolvedRaftConfig {
  const electionTicks = positiveInteger(
    "electionTicks",
    config.electionTicks ?? 10,
  );
  const heartbeatTicks = positiveInteger(
    "heartbeatTicks",
    config.heartbeatTicks ?? 1,
  );
  if (electionTicks <= heartbeatTicks) {
    throw new RangeError(
      `Cannot start Raft as 'electionTicks' must be greater than 'heartbeatTicks': current values are ${electionTicks} and ${heartbeatTicks}`,
    );
  }
  if (typeof config.id !== "string" || config.id.length === 0) {
    throw new TypeError(
      `Cannot start Raft as 'id' must be a non-empty string: current value is '${config.id}'`,
    );
  }
  if (new Set(config.voters).size !== config.voters.length) {
    throw new TypeError(
      `Cannot start Raft as 'voters' has duplicates: current value is ${
        JSON.stringify(config.voters)
      }`,
    );
  }
  const checkQuorum = config.checkQuorum ?? true;
  const readOnly = config.readOnly ?? "safe";
  if (readOnly !== "safe" && readOnly !== "lease") {
    throw new TypeError(
      `Cannot start Raft as 'readOnly' must be "safe" or "lease": current value is '${readOnly}'`,
    );
  }
  if (readOnly === "lease" && !checkQuorum) {
    throw new RangeError(
      "Cannot start Raft as lease reads need 'checkQuorum': current value is false",
    );
  }
  const leaseTicks = Math.max(1, Math.floor(electionTicks * 0.8));
  const knobs = config.testingKnobs ?? {};
  const tickMs = config.tickMs ?? 100;
  const clockDrift = config.clockDrift ?? 0.1;
  const maxDelayMs = config.maxDelayMs ?? 10;
  if (!Number.isFinite(tickMs) || tickMs <= 0) {
    throw new RangeError(
      `Cannot start Raft as 'tickMs' must be a positive number: current value is ${tickMs}`,
    );
  }
  if (!Number.isFinite(clockDrift) || clockDrift < 0 || clockDrift >= 0.5) {
    throw new RangeError(
      `Cannot start Raft as 'clockDrift' must be in [0, 0.5): current value is ${clockDrift}`,
    );
  }
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) {
    throw new RangeError(
      `Cannot start Raft as 'maxDelayMs' must be a non-negative number: current value is ${maxDelayMs}`,
    );
  }
  const { voteGuardMs, leaseMs } = leaseBounds({
    electionTicks,
    tickMs,
    clockDrift,
    maxDelayMs,
    guarded: checkQuorum,
  });
  if (readOnly === "lease" && leaseMs < tickMs) {
    throw new RangeError(
      `Cannot start Raft as the lease has no margin: (electionTicks - 1) * tickMs * (1 - clockDrift) - maxDelayMs = ${voteGuardMs}, so the lease would be ${
        leaseMs.toFixed(1)
      }, shorter than one tick (${tickMs}); raise 'electionTicks' or lower 'clockDrift' or 'maxDelayMs'`,
    );
  }
  const learners = config.learners ?? [];
  if (learners.some((id) => config.voters.includes(id))) {
    throw new TypeError(
      `Cannot start Raft as a node is both voter and learner: ${
        JSON.stringify(learners)
      }`,
    );
  }
  return {
    id: config.id,
    voters: [...config.voters],
    learners: [...learners],
    electionTicks,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum,
    maxInflightMessages: positiveInteger(
      "maxInflightMessages",
      config.maxInflightMessages ?? 256,
    ),
    maxInflightBytes: config.maxInflightBytes ?? 32 * 1024 * 1024,
    maxMessageBytes: positiveInteger(
      "maxMessageBytes",
      config.maxMessageBytes ?? 1024 * 1024,
    ),
    maxUncommittedBytes: positiveInteger(
      "maxUncommittedBytes",
      config.maxUncommittedBytes ?? 64 * 1024 * 1024,
    ),
    maxCommittedBytesPerReady: positiveInteger(
      "maxCommittedBytesPerReady",
      config.maxCommittedBytesPerReady ?? 16 * 1024 * 1024,
    ),
    readOnly,
    leaseTicks,
    tickMs,
    clockDrift,
    maxDelayMs,
    voteGuardMs,
    leaseMs: knobs.leaseBeyondDrift === true ? electionTicks * tickMs : leaseMs,
    snapshotChunkBytes: positiveInteger(
      "snapshotChunkBytes",
      config.snapshotChunkBytes ?? 1024 * 1024,
    ),
    snapshotKeepBytes: nonNegativeInteger(
      "snapshotKeepBytes",
      config.snapshotKeepBytes ?? 1024 * 1024,
    ),
    random: config.random,
    testingKnobs: knobs,
  };
}

/** What sizes a lease: the election timeout, tick length, drift bound and delay margin. */
export interface LeaseInputs {
  readonly electionTicks: number;
  readonly tickMs: number;
  readonly clockDrift: number;
  readonly maxDelayMs: number;
  /** Whether followers refuse votes while they hear from a leader (CheckQuorum). */
  readonly guarded: boolean;
}

/**
 * The lease's bound. A follower refuses votes until its election timer has
 * counted `electionTicks` ticks after the heartbeat, at least
 * (electionTicks - 1) ticks of its clock, which runs at most `clockDrift`
 * fast: at least G = (electionTicks - 1) * tickMs * (1 - clockDrift) -
 * maxDelayMs of real time (rounded down). The leader measures its lease from
 * the heartbeat's send, on a clock at most `clockDrift` slow, so it may rely
 * on it for lease * (1 + clockDrift) <= G of real time: lease = G / (1 + clockDrift).
 *
 * @returns The vote guard G and the lease, in clock units.
 */
export function leaseBounds(
  inputs: LeaseInputs,
): { voteGuardMs: number; leaseMs: number } {
  if (!inputs.guarded) return { voteGuardMs: 0, leaseMs: 0 };
  const voteGuardMs = Math.max(
    0,
    Math.floor(
      (inputs.electionTicks - 1) * inputs.tickMs * (1 - inputs.clockDrift) -
        inputs.maxDelayMs,
    ),
  );
  return { voteGuardMs, leaseMs: voteGuardMs / (1 + inputs.clockDrift) };
}
