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
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  readonly maxMessageBytes: number;
  readonly maxUncommittedBytes: number;
  readonly maxCommittedBytesPerReady: number;
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
  return {
    id: config.id,
    voters: [...config.voters],
    electionTicks,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
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
    random: config.random,
    testingKnobs: config.testingKnobs ?? {},
  };
}
