/**
 * Typed errors the Raft core raises for operating conditions callers handle.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** Why a proposal was refused. */
export type ProposalDropReason =
  | "noLeader"
  | "notLeader"
  | "uncommittedBytesExceeded"
  | "transferInProgress";

/** A proposal was not appended to the log; it will never commit. */
export class ProposalDroppedError extends Error {
  override name = "ProposalDroppedError";
  /** Why it was dropped. */
  readonly reason: ProposalDropReason;
  /** The leader this node knows of, for the caller to retry there. */
  readonly leader: NodeId | null;

  constructor(
    reason: ProposalDropReason,
    message: string,
    leader: NodeId | null = null,
  ) {
    super(message);
    this.reason = reason;
    this.leader = leader;
  }
}

/** A role change the Raft rules forbid, such as follower → leader. */
export class IllegalTransitionError extends Error {
  override name = "IllegalTransitionError";
}
