/**
 * A real 3-node Raft cluster in one process (in-memory network, memory
 * storage) with a {@linkcode NodeApi} per node and, optionally, the HTTP
 * app of each node served on 127.0.0.1:0. Used by the HTTP, client and CLI
 * tests.
 *
 * The admin calls are real where the runner offers them (transfer-leader);
 * add-learner, promote and remove check leadership and membership like the
 * node will (promote through the node's own rule, `checkPromotion`), then
 * only record the call: the membership machinery itself is
 * the node runtime's, tested there.
 *
 * @module
 */
import type { Hono } from "hono";
import { formatTicket } from "../../src/cluster/ticket.ts";
import { KvStateMachine } from "../../src/state/state_machine.ts";
import { MemoryStateStore } from "../../src/storage/memory_state_store.ts";
import {
  KvReplicatedState,
  type KvStateResult,
} from "../../src/state/replicated_state.ts";
import {
  ClusterAdminError,
  type ClusterStatus,
  type HealthStatus,
  type NodeAddress,
  type NodeApi,
} from "../../src/node/node_api.ts";
import { checkPromotion } from "../../src/node/admin_validation.ts";
import {
  RaftKvBackend,
  type RaftKvBackendOptions,
} from "../../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../../src/node/raft_runner.ts";
import { type NodeId, nodeId } from "../../src/raft/types.ts";
import { MemoryLogStore } from "../../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../../src/transport/memory_transport.ts";
import { createHttpApp, serveHttpApp } from "../../src/frontends/http/app.ts";

export const TEST_TOKEN = "test-token-0123456789";
export const OTHER_TOKEN = "rotated-token-abcdef";
const DATABASE_ID = "00000000-0000-4000-8000-000000000000";

/** One in-process node with its NodeApi and, when served, its URL. */
export class TestNode implements NodeApi {
  readonly id: NodeId;
  readonly runner: RaftRunner<KvStateResult>;
  readonly backend: RaftKvBackend;
  readonly cluster: TestCluster;
  /** Admin calls that passed the leadership and membership checks. */
  readonly adminCalls: string[] = [];
  url: string | null = null;
  server: Deno.HttpServer<Deno.NetAddr> | null = null;

  constructor(
    cluster: TestCluster,
    id: NodeId,
    backendOptions: RaftKvBackendOptions = {},
  ) {
    this.cluster = cluster;
    this.id = id;
    const state = new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore()),
    );
    this.runner = new RaftRunner({
      id,
      voters: cluster.ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: cluster.network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 2000,
    });
    this.backend = new RaftKvBackend(
      this.runner,
      state,
      DATABASE_ID,
      backendOptions,
    );
  }

  status(): ClusterStatus {
    const s = this.runner.status();
    const leaderNode = this.cluster.nodes.find((n) => n.id === s.leader);
    const member = (id: NodeId, role: "voter" | "learner") => {
      const match = s.progress?.get(id)?.match ?? null;
      return {
        id,
        role,
        match,
        lag: match === null ? null : Math.max(0, s.commit - match),
        httpUrl: this.cluster.nodes.find((n) => n.id === id)?.url ?? null,
      };
    };
    return {
      clusterId: DATABASE_ID,
      nodeId: this.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      leaderHttpUrl: leaderNode?.url ?? null,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      snapshotIndex: s.snapshotIndex,
      joint: s.conf.votersOutgoing.length > 0,
      members: [
        ...s.conf.voters.map((id) => member(id, "voter")),
        ...s.conf.learners.map((id) => member(id, "learner")),
      ],
    };
  }

  health(): HealthStatus {
    return this.runner.status().leader === null
      ? { ok: false, reason: "No leader known" }
      : { ok: true, reason: null };
  }

  metrics(): string {
    const s = this.runner.status();
    return [
      "# HELP aspen_raft_term Current Raft term.",
      "# TYPE aspen_raft_term gauge",
      `aspen_raft_term ${s.term}`,
      "# TYPE aspen_raft_commit_index gauge",
      `aspen_raft_commit_index ${s.commit}`,
      "",
    ].join("\n");
  }

  clientTicket(): string {
    return formatTicket({
      kind: "client",
      clusterId: new Uint8Array(32).fill(7),
      nodes: this.cluster.nodes.map((node, i) => ({
        nodeKey: new Uint8Array(32).fill(i + 1),
        httpUrls: node.url === null ? [] : [node.url],
        quicAddresses: [],
      })),
    });
  }

  #requireLeader(): void {
    const s = this.runner.status();
    if (s.role !== "leader") {
      const leader = this.cluster.nodes.find((n) => n.id === s.leader);
      throw new ClusterAdminError(
        "notLeader",
        `Cannot change membership on '${this.id}' as it is not the leader`,
        leader?.url ?? null,
      );
    }
  }

  #requireMember(id: string): void {
    const { conf } = this.runner.status();
    if (![...conf.voters, ...conf.learners].includes(nodeId(id))) {
      throw new ClusterAdminError("unknownNode", `Unknown node '${id}'`);
    }
  }

  addLearner(address: NodeAddress): Promise<void> {
    this.#requireLeader();
    this.adminCalls.push(`addLearner ${address.nodeId}`);
    return Promise.resolve();
  }

  promote(id: string): Promise<void> {
    this.#requireLeader();
    this.#requireMember(id);
    // The node's own promote rule (learner, tracked, caught up), not a copy.
    checkPromotion(nodeId(id), this.runner.status());
    this.adminCalls.push(`promote ${id}`);
    return Promise.resolve();
  }

  remove(id: string): Promise<void> {
    this.#requireLeader();
    this.#requireMember(id);
    this.adminCalls.push(`remove ${id}`);
    return Promise.resolve();
  }

  async transferLeader(id: string): Promise<void> {
    this.#requireLeader();
    this.#requireMember(id);
    this.runner.transferLeader(nodeId(id));
    await this.cluster.waitFor(
      `leadership on '${id}'`,
      () => this.cluster.leader()?.id === id,
    );
  }
}

/** Options of {@linkcode startTestCluster}. */
export interface TestClusterOptions {
  /** Serve each node's app on 127.0.0.1:0. Default false. */
  readonly serve?: boolean;
  readonly bodyLimitBytes?: number;
  readonly kvConnect?: Hono;
  /** Options of every node's backend (planted bugs). */
  readonly backend?: RaftKvBackendOptions;
  /** Admin-scope tokens; default: the data tokens (one scope). */
  readonly adminTokens?: readonly string[];
}

/** Three nodes on one in-memory network. */
export class TestCluster {
  readonly ids: NodeId[] = ["n1", "n2", "n3"].map(nodeId);
  readonly network = new InMemoryNetwork();
  readonly nodes: TestNode[] = [];
  readonly apps: Hono[] = [];

  leader(): TestNode | undefined {
    return this.nodes.find((n) => n.runner.status().role === "leader");
  }

  follower(): TestNode {
    const leader = this.leader();
    return this.nodes.find((n) => n !== leader)!;
  }

  /** Polls `predicate` every 10 ms for at most `timeoutMs`. */
  async waitFor(
    what: string,
    predicate: () => boolean,
    timeoutMs = 5000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${what}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** Waits until every node knows the same leader. */
  async settled(): Promise<TestNode> {
    await this.waitFor("an agreed leader", () => {
      const leader = this.leader();
      return leader !== undefined &&
        this.nodes.every((n) => n.runner.status().leader === leader.id);
    });
    return this.leader()!;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map(async (n) => {
      n.backend.stopQueues();
      await n.server?.shutdown();
      await n.runner.stop();
    }));
  }
}

/** Starts the cluster, waits for a leader known by every node. */
export async function startTestCluster(
  options: TestClusterOptions = {},
): Promise<TestCluster> {
  const cluster = new TestCluster();
  for (const id of cluster.ids) {
    cluster.nodes.push(new TestNode(cluster, id, options.backend));
  }
  for (const node of cluster.nodes) {
    const app = createHttpApp({
      node,
      tokens: [TEST_TOKEN, OTHER_TOKEN],
      ...(options.adminTokens === undefined
        ? {}
        : { adminTokens: options.adminTokens }),
      bodyLimitBytes: options.bodyLimitBytes,
      kvConnect: options.kvConnect,
      logError: () => {},
    });
    cluster.apps.push(app);
    if (options.serve) {
      node.server = serveHttpApp(app);
      node.url = `http://127.0.0.1:${node.server.addr.port}`;
    }
    node.runner.start();
    node.backend.startQueues();
  }
  try {
    await cluster.settled();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
