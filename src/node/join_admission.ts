/**
 * The server side of joining (the token format and the joining node's side
 * are in `join.ts`): a founding node issues join tickets, and the leader
 * admits a join: it checks the token, records its single use through the
 * log, replicates the new member's address, adds it as a learner and
 * answers with its credential and the cluster's description.
 *
 * @module
 */
import { deriveToken } from "../cluster/access_tokens.ts";
import { shortNodeId } from "../cluster/identity.ts";
import { importSigningKey, type SigningKey } from "../cluster/keys.ts";
import type { MemberDirectory } from "../cluster/member_directory.ts";
import { formatTicket } from "../cluster/ticket.ts";
import { type NodeId, nodeId } from "../raft/types.ts";
import {
  decodeProposalResult,
  encodeJoinTokenCommand,
  encodeMemberCommand,
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_USED,
  type KvReplicatedState,
} from "../services/replicated_state.ts";
import { decodeBase64Url } from "../base/base64.ts";
import type { NodeAdmin } from "./admin.ts";
import { validateNodeAddress } from "./admin_validation.ts";
import { DATA_FILES } from "./data_dir.ts";
import {
  clusterIdBytes,
  credentialFor,
  issueJoinToken,
  JoinRefusedError,
  type JoinRequest,
  type JoinResponse,
  verifyJoinToken,
} from "./join.ts";
import { ClusterAdminError } from "./node_api.ts";
import type { RaftRunner } from "./raft_runner.ts";

/** Members named in a ticket, at most. */
const TICKET_NODES_MAX = 16;

/** Options of {@linkcode JoinAdmission}. */
export interface JoinAdmissionOptions {
  readonly id: NodeId;
  readonly dataDir: string;
  /** The cluster's id (base32) and database id, from the cluster file. */
  readonly clusterId: string;
  readonly databaseId: string;
  readonly runner: RaftRunner;
  readonly state: KvReplicatedState;
  readonly directory: MemberDirectory;
  readonly admin: NodeAdmin;
}

/** The ticket's view of the known members (at most 16). */
export function ticketNodes(directory: MemberDirectory): {
  nodeKey: Uint8Array;
  httpUrls: string[];
  quicAddresses: string[];
}[] {
  return directory.list().slice(0, TICKET_NODES_MAX).map((m) => ({
    nodeKey: decodeBase64Url(m.nodeKey),
    httpUrls: [m.httpUrl],
    quicAddresses: [`${m.quicHost}:${m.quicPort}`],
  }));
}

/** Join tickets and join admission. */
export class JoinAdmission {
  readonly #options: JoinAdmissionOptions;

  constructor(options: JoinAdmissionOptions) {
    this.#options = options;
  }

  /** A join ticket: a client ticket plus a join token signed by the cluster key. */
  async joinTicket(): Promise<string> {
    const clusterKey = await this.#clusterKey();
    const token = await issueJoinToken(clusterKey, Date.now());
    return formatTicket({
      kind: "join",
      clusterId: clusterKey.publicKey,
      nodes: ticketNodes(this.#options.directory),
      joinToken: token,
    });
  }

  /**
   * Admits a joining node (leader only): replicates its address, adds it as a
   * learner, and returns its credential and the cluster's description.
   *
   * @throws {JoinRefusedError} When the token is refused.
   * @throws {ClusterAdminError} "notLeader" (with the leader's URL) or "changePending".
   */
  async handleJoin(request: JoinRequest): Promise<JoinResponse> {
    const { runner, state, directory, admin } = this.#options;
    const nowMs = Date.now();
    const token = await verifyJoinToken(
      decodeBase64Url(request.token),
      clusterIdBytes(this.#options.clusterId),
      nowMs,
    );
    admin.requireLeader();
    const address = validateNodeAddress(request.address);
    if (address.nodeId === this.#options.id) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot admit a node with this node's own id",
      );
    }
    // validateNodeAddress checked that the node id is its key's id, so a
    // revoked key cannot come back under another id.
    if (state.revoked().includes(address.nodeId)) {
      throw new JoinRefusedError(
        `Node '${
          shortNodeId(address.nodeId)
        }' was removed and its identity is revoked: join with a new data folder`,
      );
    }
    const clusterKey = await this.#clusterKey();
    // A token admits one node: its use is recorded through the log first,
    // so no other leader, now or later, accepts it again.
    const used = decodeProposalResult(
      await runner.propose(
        encodeJoinTokenCommand(token.nonce, token.expiresAtMs, nowMs),
      ),
    );
    if (used === JOIN_TOKEN_USED) {
      throw new JoinRefusedError("Join token was used already");
    }
    if (used !== JOIN_TOKEN_FRESH) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot admit the join as too many unexpired join tokens are recorded: retry later",
      );
    }
    const credential = await credentialFor(clusterKey, address.nodeKey);
    // Everyone learns where the node is before it becomes a member.
    await runner.propose(encodeMemberCommand(address));
    const conf = runner.status().conf;
    if (![...conf.voters, ...conf.learners].includes(nodeId(address.nodeId))) {
      await admin.addLearner(address);
    }
    return {
      clusterId: this.#options.clusterId,
      databaseId: this.#options.databaseId,
      credential,
      voters: [...runner.status().conf.voters],
      members: directory.list(),
      tokens: await this.#clusterTokens(),
    };
  }

  /** The data and admin tokens derived from the cluster key (see access_tokens.ts). */
  async #clusterTokens(): Promise<{ data: string; admin: string }> {
    const key = await Deno.readFile(
      `${this.#options.dataDir}/${DATA_FILES.clusterKey}`,
    );
    return { data: deriveToken(key, "data"), admin: deriveToken(key, "admin") };
  }

  /** @throws {ClusterAdminError} "invalid" on a node without the cluster key. */
  async #clusterKey(): Promise<SigningKey> {
    try {
      return await importSigningKey(
        await Deno.readFile(
          `${this.#options.dataDir}/${DATA_FILES.clusterKey}`,
        ),
      );
    } catch (error) {
      throw new ClusterAdminError(
        "invalid",
        `This node holds no cluster key and cannot issue join tickets or admit joins (joined nodes never receive it): use a node that founded the cluster, leading for a join: ${
          (error as Error).message
        }`,
      );
    }
  }
}
