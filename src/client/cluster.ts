/**
 * {@linkcode AspenCluster}: status and membership administration.
 *
 * @module
 */
import {
  type AddLearnerRequest,
  type MembersResponse,
  ROUTES,
  type StatusResponse,
  type TicketResponse,
} from "../protocol/http_api.ts";
import type { HttpTransport } from "./_transport.ts";
import type { ClusterMember, ClusterStatus, NodeAddress } from "./types.ts";

/**
 * Cluster administration: reads go to any node, changes follow the leader.
 *
 * @example
 * ```ts ignore
 * const status = await client.cluster.status();
 * console.log(status.leader, status.term);
 * ```
 */
export class AspenCluster {
  readonly #transport: HttpTransport;

  /** Used by `connect`. */
  constructor(transport: HttpTransport) {
    this.#transport = transport;
  }

  /** The status of the node that answers (leader, term, indexes, members). */
  async status(): Promise<ClusterStatus> {
    const status = await this.#transport.request(
      "GET",
      ROUTES.clusterStatus,
      undefined,
      "idempotent",
    ) as StatusResponse;
    return status;
  }

  /** The members with their roles (and lag, when the leader answers). */
  async members(): Promise<
    { leader: string | null; members: readonly ClusterMember[] }
  > {
    const reply = await this.#transport.request(
      "GET",
      ROUTES.clusterMembers,
      undefined,
      "idempotent",
    ) as MembersResponse;
    return { leader: reply.leader, members: reply.members };
  }

  /** A client ticket naming the cluster's nodes (no secret). */
  async ticket(): Promise<string> {
    const reply = await this.#transport.request(
      "GET",
      ROUTES.clusterTicket,
      undefined,
      "idempotent",
    ) as TicketResponse;
    return reply.ticket;
  }

  /** Adds a node as a learner. */
  async addLearner(address: NodeAddress): Promise<void> {
    const body: AddLearnerRequest = { ...address };
    await this.#transport.request(
      "POST",
      ROUTES.clusterAddLearner,
      body,
      "write",
    );
  }

  /** Promotes a caught-up learner to voter. */
  async promote(nodeId: string): Promise<void> {
    await this.#transport.request(
      "POST",
      ROUTES.clusterPromote,
      { nodeId },
      "write",
    );
  }

  /** Removes a member (the leader too). */
  async remove(nodeId: string): Promise<void> {
    await this.#transport.request(
      "POST",
      ROUTES.clusterRemove,
      { nodeId },
      "write",
    );
  }

  /** Hands leadership to `nodeId`. */
  async transferLeader(nodeId: string): Promise<void> {
    await this.#transport.request("POST", ROUTES.clusterTransferLeader, {
      nodeId,
    }, "write");
  }
}
