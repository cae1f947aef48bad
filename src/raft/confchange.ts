/**
 * Membership changes as pure functions: each returns a new configuration and
 * never edits the live one. A change that alters the voters goes through a
 * joint configuration (old and new voters both decide) and then leaves it.
 *
 * @module
 */
import type { ConfChange, ConfState, NodeId } from "./types.ts";

/** A membership change the rules forbid. Nothing was proposed. */
export class ConfChangeError extends Error {
  override name = "ConfChangeError";
}

/** Voters and learners as sets, with the joint half apart. */
export interface Membership {
  readonly voters: ReadonlySet<NodeId>;
  readonly votersOutgoing: ReadonlySet<NodeId>;
  readonly learners: ReadonlySet<NodeId>;
}

/** Builds sets from a ConfState. */
export function membershipOf(conf: ConfState): Membership {
  return {
    voters: new Set(conf.voters),
    votersOutgoing: new Set(conf.votersOutgoing),
    learners: new Set(conf.learners),
  };
}

/** True while a joint change is in progress. */
export function isJoint(conf: ConfState): boolean {
  return conf.votersOutgoing.length > 0;
}

function sorted(ids: Iterable<NodeId>): NodeId[] {
  return [...ids].sort();
}

/**
 * Returns the configuration that starts `change` from `current`: joint when
 * the voters change (unless `singleStep` plants the bug of skipping it),
 * simple otherwise.
 *
 * @throws {ConfChangeError} When a change is already in progress or the change is invalid.
 */
export function enterChange(
  current: ConfState,
  change: ConfChange,
  singleStep = false,
): ConfState {
  if (isJoint(current)) {
    throw new ConfChangeError(
      "Cannot change membership as a joint change is still in progress",
    );
  }
  const voters = new Set(current.voters);
  const learners = new Set(current.learners);
  switch (change.type) {
    case "addLearner":
      if (voters.has(change.node)) {
        throw new ConfChangeError(
          `Cannot add '${change.node}' as a learner as it is a voter`,
        );
      }
      learners.add(change.node);
      break;
    case "promote":
      if (!learners.has(change.node)) {
        throw new ConfChangeError(
          `Cannot promote '${change.node}' as it is not a learner`,
        );
      }
      learners.delete(change.node);
      voters.add(change.node);
      break;
    case "addVoter":
      learners.delete(change.node);
      voters.add(change.node);
      break;
    case "remove":
      if (!voters.has(change.node) && !learners.has(change.node)) {
        throw new ConfChangeError(
          `Cannot remove '${change.node}' as it is not a member`,
        );
      }
      voters.delete(change.node);
      learners.delete(change.node);
      break;
    case "replaceVoters":
      voters.clear();
      for (const id of change.voters) {
        voters.add(id);
        learners.delete(id);
      }
      break;
  }
  if (voters.size === 0) {
    throw new ConfChangeError(
      "Cannot change membership as no voter would remain",
    );
  }
  const votersChanged = voters.size !== current.voters.length ||
    current.voters.some((id) => !voters.has(id));
  if (!votersChanged || singleStep) {
    return {
      voters: sorted(voters),
      votersOutgoing: [],
      learners: sorted(learners),
    };
  }
  return {
    voters: sorted(voters),
    votersOutgoing: sorted(current.voters),
    learners: sorted(learners),
  };
}

/** Returns the configuration that leaves a joint change: the incoming voters alone. */
export function leaveJoint(current: ConfState): ConfState {
  if (!isJoint(current)) {
    throw new ConfChangeError(
      "Cannot leave a joint configuration that is not joint",
    );
  }
  return {
    voters: [...current.voters],
    votersOutgoing: [],
    learners: [...current.learners],
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a configuration as the data of a `confChange` entry. */
export function encodeConfState(conf: ConfState): Uint8Array {
  return encoder.encode(JSON.stringify(conf));
}

/**
 * Decodes a `confChange` entry's data.
 *
 * @throws {TypeError} When the data is not a configuration.
 */
export function decodeConfState(data: Uint8Array): ConfState {
  const value = JSON.parse(decoder.decode(data)) as Partial<ConfState>;
  const isIds = (x: unknown): x is NodeId[] =>
    Array.isArray(x) && x.every((id) => typeof id === "string");
  if (
    !isIds(value.voters) || !isIds(value.votersOutgoing) ||
    !isIds(value.learners)
  ) {
    throw new TypeError(
      "Cannot decode configuration entry: expected voters, votersOutgoing and learners",
    );
  }
  return {
    voters: value.voters,
    votersOutgoing: value.votersOutgoing,
    learners: value.learners,
  };
}
