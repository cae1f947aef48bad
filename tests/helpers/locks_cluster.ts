/**
 * A real 3-node Raft cluster in one process (in-memory network, memory
 * storage) whose state machines register the locks service (envelope id 5)
 * and a stand-in leases service that writes and ends lease records (until
 * the leases service is in the service table), each node with a
 * {@linkcode NodeApi} carrying a {@linkcode NodeLocks} port and its HTTP app.
 * Used by the locks and elections HTTP tests.
 *
 * @module
 */
import type { Hono } from "hono";
import { encode } from "@msgpack/msgpack";
import { KvStateMachine } from "../../src/services/state_machine.ts";
import { ChangeFeed } from "../../src/state/change_feed.ts";
import { encodeEnvelope } from "../../src/state/envelope.ts";
import { MemoryStateStore } from "../../src/storage/memory_state_store.ts";
import { KvReplicatedState } from "../../src/services/replicated_state.ts";
import type { NodeApi } from "../../src/node/node_api.ts";
import { RaftKvBackend } from "../../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../../src/node/raft_runner.ts";
import { NodeLocks } from "../../src/node/node_locks.ts";
import { nodeId } from "../../src/raft/types.ts";
import { MemoryLogStore } from "../../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../../src/transport/memory_transport.ts";
import { createHttpApp } from "../../src/frontends/http/app.ts";
import {
  FAKE_LEASES_ID,
  fakeLeases,
} from "../../src/services/locks/harness_test.ts";
import { waitFor } from "./wait_for.ts";
import { TEST_TOKEN } from "./http_cluster.ts";

export { TEST_TOKEN };

const DATABASE_ID = "00000000-0000-4000-8000-000000000000";

/** One node: runner, state, locks port and app. */
export interface LocksNode {
  readonly runner: RaftRunner;
  readonly state: KvReplicatedState;
  readonly feed: ChangeFeed;
  readonly locks: NodeLocks;
  readonly api: NodeApi & { readonly locks: NodeLocks };
  readonly app: Hono;
}

/** Three nodes with the locks service. */
export class LocksCluster {
  readonly network = new InMemoryNetwork();
  readonly nodes: LocksNode[] = [];

  leader(): LocksNode | undefined {
    return this.nodes.find((n) => n.runner.status().role === "leader");
  }

  follower(): LocksNode {
    const leader = this.leader();
    return this.nodes.find((n) => n !== leader)!;
  }

  /** Grants lease `id` (writes its record through Raft). */
  async grantLease(id: string): Promise<void> {
    await this.#leases(["grant", id]);
  }

  /** Ends leases in one entry, as revoke or expiry does. */
  async endLeases(...ids: string[]): Promise<void> {
    await this.#leases(["end", ids]);
  }

  async #leases(command: unknown): Promise<void> {
    await this.follower().runner.propose(
      encodeEnvelope({ serviceId: FAKE_LEASES_ID, payload: encode(command) }),
    );
  }

  /** Every node's locks rows, to check that a refusal changed nothing. */
  locksRows(node: LocksNode): string {
    const rows = node.state.kv.store.scan({
      start: new Uint8Array([0xff, 0x6d]),
      end: new Uint8Array([0xff, 0x6e]),
      limit: 100_000,
    });
    return JSON.stringify(rows.map((r) => [[...r.key], [...r.value]]));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.runner.stop()));
  }
}

function nodeApi(
  runner: RaftRunner,
  state: KvReplicatedState,
  locks: NodeLocks,
): NodeApi & { readonly locks: NodeLocks } {
  const unsupported = () =>
    Promise.reject(new Error("Not served by the locks test cluster"));
  return {
    backend: new RaftKvBackend(runner, state, DATABASE_ID),
    locks,
    status: () => {
      throw new Error("Not served by the locks test cluster");
    },
    health: () => ({ ok: true, reason: null }),
    metrics: () => "",
    clientTicket: () => "",
    addLearner: unsupported,
    promote: unsupported,
    remove: unsupported,
    transferLeader: unsupported,
  };
}

/** Starts the cluster and waits for a leader every node knows. */
export async function startLocksCluster(
  options: {
    readonly observeStreamsMax?: number;
    /** Entries each node's change feed keeps (default: the feed's). */
    readonly feedEntriesMax?: number;
  } = {},
): Promise<LocksCluster> {
  const cluster = new LocksCluster();
  const ids = ["n1", "n2", "n3"].map(nodeId);
  for (const id of ids) {
    const feed = new ChangeFeed(
      options.feedEntriesMax === undefined
        ? {}
        : { entriesMax: options.feedEntriesMax },
    );
    const state = new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore(), {}, {
        changes: feed,
        // The locks service is in the service table; the stand-in leases
        // service comes in beside it.
        extra: [{ id: FAKE_LEASES_ID, service: fakeLeases({}) }],
      }),
    );
    const runner = new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: cluster.network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 2000,
    });
    const locks = new NodeLocks({
      propose: (data) => runner.propose(data),
      readIndex: () => runner.readIndex(),
      store: state.kv.store,
      feed,
      ...(options.observeStreamsMax === undefined
        ? {}
        : { observeStreamsMax: options.observeStreamsMax }),
    });
    const api = nodeApi(runner, state, locks);
    const app = createHttpApp({
      node: api,
      tokens: [TEST_TOKEN],
      logError: () => {},
    });
    cluster.nodes.push({ runner, state, feed, locks, api, app });
  }
  for (const node of cluster.nodes) node.runner.start();
  try {
    await waitFor("an agreed leader", () => {
      const leader = cluster.leader();
      return leader !== undefined &&
        cluster.nodes.every((n) =>
          n.runner.status().leader === leader.runner.status().leader
        );
    }, 5000);
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
