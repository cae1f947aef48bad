/**
 * One service command proposed with a node's session, retried while the
 * proposal is dropped or its outcome unknown (the session makes a retry
 * apply at most once), answered once this node has applied its entry. Used
 * by the node's leases and locks ports.
 *
 * @module
 */
import { ProposalDroppedError } from "../raft/errors.ts";
import {
  KvOutcomeUnknownError,
  KvUnavailableError,
} from "../services/kv/api.ts";
import { decodeProposalResult } from "../services/replicated_state.ts";
import { ProposalOutcomeUnknownError } from "./raft_runner.ts";

/** How long a dropped or unknown proposal is retried, ms. */
export const PROPOSAL_RETRY_WINDOW_MS = 20_000;
/** Pause between retries, ms. */
const PROPOSAL_RETRY_PAUSE_MS = 100;

/** A service's apply result: applied, or refused with a reason. */
export type ServiceResult =
  | { readonly ok: true; readonly index: number }
  | {
    readonly ok: false;
    readonly index: number;
    readonly reason: string;
    readonly message: string;
  };

/** What {@linkcode proposeWithSession} needs. */
export interface SessionProposal {
  /** Proposes an entry (forwarded to the leader) and answers its apply result. */
  readonly propose: (data: Uint8Array) => Promise<unknown>;
  /** The envelope, with the session, to propose. */
  readonly data: Uint8Array;
  /** The command's name, for messages. */
  readonly what: string;
  /** Resolves once this node has applied entry `index` (bounded). */
  readonly caughtUp: (index: number) => Promise<void>;
  /** The typed error of a refusal by apply (nothing changed), with its details if any. */
  readonly refused: (
    reason: string,
    message: string,
    details?: Readonly<Record<string, unknown>>,
  ) => Error;
}

/**
 * Proposes `proposal.data` and answers the applied result.
 *
 * @throws The `refused` error when apply refused the command.
 * @throws {KvOutcomeUnknownError} When it may have applied but no answer came (or the session was reused or evicted).
 * @throws {KvUnavailableError} When no proposal was accepted within the retry window.
 */
export async function proposeWithSession<R extends ServiceResult>(
  proposal: SessionProposal,
): Promise<Extract<R, { ok: true }>> {
  const deadline = Date.now() + PROPOSAL_RETRY_WINDOW_MS;
  let proposed = false;
  for (;;) {
    try {
      const result = decodeProposalResult(
        await proposal.propose(proposal.data),
      ) as R;
      await proposal.caughtUp(result.index);
      if (result.ok) return result as Extract<R, { ok: true }>;
      if (
        result.reason === "sessionReused" || result.reason === "sessionExpired"
      ) {
        throw new KvOutcomeUnknownError(result.message);
      }
      throw proposal.refused(
        result.reason,
        result.message,
        (result as { details?: Readonly<Record<string, unknown>> }).details,
      );
    } catch (error) {
      const unknown = error instanceof ProposalOutcomeUnknownError;
      if (!unknown && !(error instanceof ProposalDroppedError)) throw error;
      proposed ||= unknown;
      if (Date.now() >= deadline) {
        const message = `Cannot ${proposal.what}: ${(error as Error).message}`;
        throw proposed
          ? new KvOutcomeUnknownError(message, { cause: error })
          : new KvUnavailableError(message, { cause: error });
      }
      await new Promise((resolve) =>
        setTimeout(resolve, PROPOSAL_RETRY_PAUSE_MS)
      );
    }
  }
}

/** Longest wait for this node to apply its own proposal before answering, in ms. */
export const CATCH_UP_MS_MAX = 5_000;

/**
 * Waits until `store` applied entry `index`, polling, at most
 * {@linkcode CATCH_UP_MS_MAX} (the answer then reads a state that may not
 * include it yet: a follower far behind).
 */
export async function appliedThrough(
  store: { appliedIndex(): number | bigint },
  index: number,
): Promise<void> {
  const deadline = Date.now() + CATCH_UP_MS_MAX;
  while (Number(store.appliedIndex()) < index && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
