/**
 * The KvBackend conformance suite (issue 14) against every implementation:
 * the in-process LocalKvBackend (the reference) and RaftKvBackend on a 1-node
 * and a 3-node in-memory cluster (the 3-node run writes on the leader and
 * reads and watches on a follower).
 */
import { runKvBackendConformance } from "../src/services/kv/backend_conformance.ts";
import { LocalKvBackend } from "../src/server/local_backend.ts";
import { RaftKvBackend } from "../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { ChangeFeed } from "../src/state/change_feed.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { nodeId } from "../src/raft/types.ts";
import { waitFor } from "./helpers/wait_for.ts";

runKvBackendConformance("LocalKvBackend", ({ watchersMax }) => {
  const backend = new LocalKvBackend({
    watchersMax,
    expirySweepIntervalMs: 0,
  });
  return Promise.resolve({
    backend,
    other: backend,
    watchersMax,
    sweep: () => void backend.sweepExpired(),
    cleanup: () => Promise.resolve(backend.close()),
  });
});

async function raftCluster(size: number, watchersMax: number) {
  const network = new InMemoryNetwork();
  const ids = Array.from({ length: size }, (_, i) => nodeId(`n${i + 1}`));
  const nodes = ids.map((id) => {
    const state = new KvReplicatedState(
      new KvStateMachine(new MemoryStateStore(), {}, {
        changes: new ChangeFeed(),
      }),
    );
    const runner = new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: state,
      transport: network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 5000,
    });
    runner.start();
    const backend = new RaftKvBackend(
      runner,
      state,
      "00000000-0000-4000-8000-000000000000",
      { watchersMax, expiryIntervalMs: 50 },
    );
    backend.startServices();
    return { runner, backend };
  });
  const leader = () => nodes.find((n) => n.runner.status().role === "leader");
  await waitFor("a leader", () => leader() !== undefined, 20_000);
  const first = leader()!;
  const other = nodes.find((n) => n !== first) ?? first;
  return {
    backend: first.backend,
    other: other.backend,
    watchersMax,
    cleanup: async () => {
      for (const node of nodes) {
        node.backend.stopServices();
        await node.runner.stop();
      }
    },
  };
}

runKvBackendConformance(
  "RaftKvBackend on 1 node",
  ({ watchersMax }) => raftCluster(1, watchersMax),
);
runKvBackendConformance(
  "RaftKvBackend on 3 nodes",
  ({ watchersMax }) => raftCluster(3, watchersMax),
);
