/**
 * ReadIndex (a strong read's wait, `readOnly: "safe"`) on the real
 * `RaftRunner` over the in-memory transport (messages still go through the
 * wire codec and are delivered asynchronously), with a memory log store and
 * the KV state on a memory state store, so no disk is involved:
 *
 * - baseline: `await Promise.resolve()` (one microtask: the floor of any
 *   asynchronous answer);
 * - a one-node cluster's `readIndex()` (confirmed by itself, one ready loop);
 * - a one-node `propose()` of a one-set atomic with a 256-byte value
 *   (appended, "persisted" to memory, committed, applied, answered);
 * - a three-node cluster's `readIndex()` on the leader (one heartbeat round
 *   to a quorum) and on a follower (forwarded to the leader and back).
 *
 * Every runner is stopped at unload. Run: deno task bench, or
 * npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env --unstable-kv bench/read_index_bench.ts
 *
 * @module
 */
import { encodeKey } from "../src/model/key_codec.ts";
import { type NodeId, nodeId } from "../src/raft/types.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { encodeKvEntry } from "../src/services/entries.ts";
import {
  decodeApplyResult,
  KvReplicatedState,
} from "../src/services/replicated_state.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";

const VALUE_BYTES = 256;
/** Distinct keys the proposals cycle through, so the state stays bounded. */
const KEY_SPACE = 10_000;
/** Milliseconds per tick: the runner's default. */
const TICK_MS = 100;
/** How long a cluster may take to elect its leader before the bench gives up. */
const ELECTION_WAIT_MS = 15_000;

const runners: RaftRunner[] = [];
globalThis.addEventListener("unload", () => {
  // stop() cancels the tick timer and the wake channel at once; the rest
  // (failing what still waits, closing the transport) needs no await here.
  for (const runner of runners) void runner.stop();
});

function startCluster(ids: readonly NodeId[]): RaftRunner[] {
  const network = new InMemoryNetwork();
  const cluster = ids.map((id) =>
    new RaftRunner({
      id,
      voters: ids,
      logStore: new MemoryLogStore(),
      stateMachine: new KvReplicatedState(
        new KvStateMachine(new MemoryStateStore()),
      ),
      transport: network.connect(id),
      tickMs: TICK_MS,
    })
  );
  runners.push(...cluster);
  for (const runner of cluster) runner.start();
  // No need to wait out an election timeout: the first node campaigns now.
  cluster[0]!.campaign();
  return cluster;
}

/** Waits (bounded) until one runner leads and has committed an entry of its term. */
async function leaderOf(cluster: readonly RaftRunner[]): Promise<RaftRunner> {
  const deadline = Date.now() + ELECTION_WAIT_MS;
  let runner: RaftRunner | undefined;
  while (
    (runner = cluster.find((r) => r.status().role === "leader")) === undefined
  ) {
    if (Date.now() > deadline) {
      throw new Error(
        `Cannot run the bench as no leader was elected within ${ELECTION_WAIT_MS} ms`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // A leader serves ReadIndex only once it committed an entry of its term.
  await runner.readIndex();
  return runner;
}

const value = new Uint8Array(VALUE_BYTES).fill(9);
const proposals = Array.from({ length: KEY_SPACE }, (_, i) =>
  encodeKvEntry({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "set",
        key: encodeKey(["bench", i]),
        value: { encoding: "bytes", data: value },
      }],
      enqueues: [],
    },
  }));
let proposed = 0;

const single = await leaderOf(startCluster([nodeId("s1")]));
const three = startCluster(["n1", "n2", "n3"].map(nodeId));
const leader = await leaderOf(three);
const follower = three.find((runner) => runner !== leader)!;
// The follower must know its leader before it can forward.
await follower.readIndex();
if (!decodeApplyResult(await single.propose(proposals[0]!)).ok) {
  throw new Error("Cannot run the bench as a proposal failed");
}

const group = "ReadIndex";
Deno.bench({
  name: "await Promise.resolve()",
  group,
  baseline: true,
  async fn() {
    await Promise.resolve();
  },
});
Deno.bench({
  name: "one node: readIndex()",
  group,
  async fn() {
    await single.readIndex();
  },
});
Deno.bench({
  name: `one node: propose() of a put (${
    proposals[0]!.length
  }-byte entry, ${VALUE_BYTES}-byte value)`,
  group,
  async fn() {
    const result = await single.propose(proposals[proposed++ % KEY_SPACE]!);
    if (!decodeApplyResult(result).ok) {
      throw new Error("Cannot run the bench as a proposal failed");
    }
  },
});
Deno.bench({
  name: "three nodes: readIndex() on the leader",
  group,
  async fn() {
    await leader.readIndex();
  },
});
Deno.bench({
  name: "three nodes: readIndex() on a follower (forwarded)",
  group,
  async fn() {
    await follower.readIndex();
  },
});
