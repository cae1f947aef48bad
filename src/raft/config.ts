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
  readonly leaseTicks: number;
  readonly snapshotChunkBytes: number;
  readonly random: RandomSource;
  readonly testingKnobs: TestingKnobs;
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
  const leaseTicks = positiveInteger(
    "leaseTicks",
    config.leaseTicks ?? Math.max(1, Math.floor(electionTicks * 0.8)),
  );
  if (leaseTicks >= electionTicks) {
    throw new RangeError(
      `Cannot start Raft as 'leaseTicks' must be less than 'electionTicks': current values are ${leaseTicks} and ${electionTicks}`,
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
    snapshotChunkBytes: positiveInteger(
      "snapshotChunkBytes",
      config.snapshotChunkBytes ?? 1024 * 1024,
    ),
    random: config.random,
    testingKnobs: config.testingKnobs ?? {},
  };
}
