/**
 * Membership administration on the leader: add a learner, promote it,
 * remove a member (and revoke its credential through the log), transfer
 * leadership, and the optional auto-promotion of caught-up learners. Raft's
 * refusals become {@linkcode ClusterAdminError}s naming the leader's URL.
 *
 * @module
 */
import type { Scheduled, Scheduler } from "../base/clock.ts";
import type { MemberDirectory } from "../cluster/member_directory.ts";
import { shortNodeId } from "../cluster/identity.ts";
import { ConfChangeError } from "../raft/confchange.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import { type NodeId, nodeId } from "../raft/types.ts";
import {
  encodeRevokeCommand,
  type KvReplicatedState,
} from "../services/replicated_state.ts";
import {
  checkPromotion,
  PROMOTE_LAG_MAX,
  validateMemberId,
  validateNodeAddress,
  validateNodeId,
} from "./admin_validation.ts";
import { ClusterAdminError, type NodeAddress } from "./node_api.ts";
import type { RaftRunner } from "./raft_runner.ts";

/** Attempts to propose a removed member's revocation (0.2 s apart) before remove() fails. */
const REVOKE_ATTEMPTS_MAX = 25;

/** How often the leader looks for a caught-up learner to promote, with autoPromote. */
const AUTO_PROMOTE_INTERVAL_MS = 500;

/** Options of {@linkcode NodeAdmin}. */
export interface NodeAdminOptions {
  readonly id: NodeId;
  readonly runner: RaftRunner;
  readonly directory: MemberDirectory;
  readonly state: KvReplicatedState;
  /** The transport's side: revoked peers are dropped. */
  readonly transport: { removePeer(id: NodeId): void };
  /**
   * The revoked node ids the transport's handshakes read (shared, filled
   * from the log here).
   */
  readonly revoked: Set<string>;
  /** Promote caught-up learners by itself (leader only). */
  readonly autoPromote: boolean;
  /** Timers of auto-promotion and of the revocation retries. */
  readonly scheduler: Scheduler;
  readonly log: (line: string) => void;
}

/** The leader's membership administration. */
export class NodeAdmin {
  readonly #options: NodeAdminOptions;
  #promoteTimer: Scheduled | null = null;
  #stopped = false;

  constructor(options: NodeAdminOptions) {
    this.#options = options;
    for (const id of options.state.revoked()) options.revoked.add(id);
    options.state.onRevoked((ids) => this.#revokedChanged(ids));
    if (options.autoPromote) {
      this.#promoteTimer = options.scheduler.every(
        AUTO_PROMOTE_INTERVAL_MS,
        () => this.#autoPromote(),
      );
    }
  }

  /** Stops auto-promotion and the revocation retries. */
  stop(): void {
    this.#stopped = true;
    this.#promoteTimer?.cancel();
    this.#promoteTimer = null;
  }

  addLearner(address: NodeAddress): Promise<void> {
    return this.#admin(() => {
      const valid = this.#validateNewMember(address);
      this.requireLeader();
      // Proposed first: if Raft refuses (a change is pending), nothing else
      // has changed.
      this.#options.runner.proposeConfChange({
        type: "addLearner",
        node: nodeId(valid.nodeId),
      });
      this.#options.directory.merge([valid]);
    });
  }

  promote(id: string): Promise<void> {
    return this.#admin(() => {
      const target = nodeId(validateNodeId(id));
      this.requireLeader();
      checkPromotion(target, this.#options.runner.status());
      this.#options.runner.proposeConfChange({ type: "promote", node: target });
    });
  }

  /**
   * Removes a member, then revokes its credential through the log: every
   * node refuses its handshakes from then on, for good (it may rejoin only
   * with a new identity).
   */
  async remove(id: string): Promise<void> {
    const runner = this.#options.runner;
    await this.#admin(() => {
      const target = validateMemberId(id, runner.status().conf, "member");
      this.requireLeader();
      runner.proposeConfChange({ type: "remove", node: nodeId(target) });
    });
    // The leader may step down meanwhile (removing itself): retry, bounded;
    // the proposal is forwarded to whoever leads.
    for (let attempt = 1;; attempt++) {
      try {
        await runner.propose(encodeRevokeCommand(id));
        return;
      } catch (error) {
        if (attempt >= REVOKE_ATTEMPTS_MAX || this.#stopped) throw error;
        await new Promise<void>((resolve) =>
          this.#options.scheduler.after(200, resolve)
        );
      }
    }
  }

  transferLeader(id: string): Promise<void> {
    return this.#admin(() => {
      const target = validateMemberId(
        id,
        this.#options.runner.status().conf,
        "voter",
      );
      this.requireLeader();
      this.#options.runner.transferLeader(nodeId(target));
    });
  }

  /** Node ids whose handshakes this node refuses (revoked members), as replicated here. */
  revokedNodes(): string[] {
    return [...this.#options.revoked];
  }

  /** @throws {ClusterAdminError} "notLeader" (with the leader's URL) on a follower or candidate. */
  requireLeader(): void {
    const status = this.#options.runner.status();
    if (status.role === "leader") return;
    throw new ClusterAdminError(
      "notLeader",
      `Node '${shortNodeId(this.#options.id)}' is not the leader`,
      this.#options.directory.httpUrl(status.leader),
    );
  }

  /** The replicated revoked set changed: update the handshake's view and drop the peers. */
  #revokedChanged(ids: readonly string[]): void {
    const { revoked, transport, id: self } = this.#options;
    for (const id of ids) {
      if (revoked.has(id)) continue;
      revoked.add(id);
      if (id !== self) transport.removePeer(nodeId(id));
      this.#options.log(`revoked the credential of '${shortNodeId(id)}'`);
    }
  }

  /**
   * The validated address of a node that is not yet a member.
   *
   * @throws {ClusterAdminError} "invalid" for a bad field or this node's own
   *   id, "alreadyMember" for an existing member.
   */
  #validateNewMember(address: NodeAddress): NodeAddress {
    const valid = validateNodeAddress(address);
    if (valid.nodeId === this.#options.id) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot add this node as a learner of itself",
      );
    }
    const conf = this.#options.runner.status().conf;
    if (
      [...conf.voters, ...conf.votersOutgoing, ...conf.learners].includes(
        nodeId(valid.nodeId),
      )
    ) {
      throw new ClusterAdminError(
        "alreadyMember",
        `Cannot add '${
          shortNodeId(valid.nodeId)
        }' as a learner as it is already a member`,
      );
    }
    return valid;
  }

  /** With autoPromote, the leader promotes one caught-up learner at a time. */
  #autoPromote(): void {
    const s = this.#options.runner.status();
    if (s.role !== "leader" || s.conf.votersOutgoing.length > 0) return;
    for (const learner of s.conf.learners) {
      const match = s.progress?.get(learner)?.match ?? 0;
      if (s.commit - match > PROMOTE_LAG_MAX) continue;
      this.promote(learner).then(
        () =>
          this.#options.log(`auto-promoted ${shortNodeId(learner)} to voter`),
        () => {}, // A pending change: the next round retries.
      );
      return;
    }
  }

  /** Runs an admin action on the leader, turning Raft refusals into admin errors. */
  #admin(action: () => void): Promise<void> {
    const leaderUrl = () =>
      this.#options.directory.httpUrl(this.#options.runner.status().leader);
    try {
      action();
      return Promise.resolve();
    } catch (error) {
      if (error instanceof ProposalDroppedError) {
        return Promise.reject(
          new ClusterAdminError("notLeader", error.message, leaderUrl()),
        );
      }
      if (error instanceof ConfChangeError) {
        return Promise.reject(
          new ClusterAdminError("changePending", error.message, leaderUrl()),
        );
      }
      return Promise.reject(error);
    }
  }
}
