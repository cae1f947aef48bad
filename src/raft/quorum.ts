/**
 * Pure quorum arithmetic: the commit index a set of voters agrees on, and the
 * outcome of an election. No state; joint configurations combine two results.
 *
 * @module
 */
import type { LogIndex, NodeId } from "./types.ts";

/** Outcome of counting votes. */
export type VoteResult = "pending" | "lost" | "won";

/**
 * Returns the largest index that a majority of `voters` has acknowledged.
 * A voter missing from `acked` counts as having acknowledged index 0.
 * An empty voter set places no constraint, so it returns `Infinity`
 * (the joint-config caller takes the minimum of two results).
 *
 * @param voters The voting members.
 * @param acked Each voter's acknowledged (durable) match index.
 * @returns The majority-acknowledged index.
 */
export function majorityCommitted(
  voters: ReadonlySet<NodeId>,
  acked: (id: NodeId) => LogIndex | undefined,
): LogIndex {
  const count = voters.size;
  if (count === 0) return Infinity as LogIndex;
  const indexes: number[] = [];
  for (const id of voters) indexes.push(acked(id) ?? 0);
  indexes.sort((a, b) => b - a);
  // With n voters, a quorum is floor(n/2)+1; the (quorum)-th largest index
  // is held by at least a quorum.
  const quorum = Math.floor(count / 2) + 1;
  return indexes[quorum - 1] as LogIndex;
}

/**
 * Counts votes among `voters`. Votes from non-voters are ignored.
 *
 * @param voters The voting members.
 * @param votes Granted (true) or rejected (false) votes received so far.
 * @returns "won" once a quorum granted, "lost" once a quorum is impossible.
 */
export function majorityVoteResult(
  voters: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const count = voters.size;
  // An empty configuration wins any election: it constrains nothing.
  if (count === 0) return "won";
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const quorum = Math.floor(count / 2) + 1;
  if (granted >= quorum) return "won";
  if (count - rejected < quorum) return "lost";
  return "pending";
}

/**
 * The index both halves of a (possibly joint) configuration have committed.
 * With no outgoing voters it is the incoming majority's index.
 */
export function jointCommitted(
  voters: ReadonlySet<NodeId>,
  votersOutgoing: ReadonlySet<NodeId>,
  acked: (id: NodeId) => LogIndex | undefined,
): LogIndex {
  return Math.min(
    majorityCommitted(voters, acked),
    majorityCommitted(votersOutgoing, acked),
  ) as LogIndex;
}

/** Vote outcome in a (possibly joint) configuration: both halves must win. */
export function jointVoteResult(
  voters: ReadonlySet<NodeId>,
  votersOutgoing: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const incoming = majorityVoteResult(voters, votes);
  const outgoing = majorityVoteResult(votersOutgoing, votes);
  if (incoming === outgoing) return incoming;
  if (incoming === "lost" || outgoing === "lost") return "lost";
  return "pending";
}
