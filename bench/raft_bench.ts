/**
 * Throughput of the Raft core alone: a 3-node cluster with messages handed
 * directly between cores (no I/O, no serialization), proposals in batches of
 * 1, 16 and 256 per round. Entries/s = iterations/s × batch size.
 */
import { RaftNode } from "../src/raft/raft_node.ts";
import type { Message, NodeId } from "../src/raft/types.ts";
import { SeededRandom } from "../src/sim/random.ts";

const ids = ["n1", "n2", "n3"] as NodeId[];
const payload = new Uint8Array(64);

class Cluster {
  readonly nodes = new Map<NodeId, RaftNode>();

  constructor() {
    for (const id of ids) {
      this.nodes.set(
        id,
        new RaftNode({
          id,
          voters: ids,
          random: new SeededRandom(1, id),
          maxUncommittedBytes: 1 << 30,
        }),
      );
    }
    this.nodes.get(ids[0]!)!.campaign();
    this.stabilize();
  }

  /** Runs Ready loops and delivers messages until nothing moves. */
  stabilize(): void {
    let moved = true;
    while (moved) {
      moved = false;
      const outbox: Message[] = [];
      for (const node of this.nodes.values()) {
        if (!node.hasReady()) continue;
        moved = true;
        const ready = node.ready();
        for (const message of ready.messages) outbox.push(message);
        node.advance();
      }
      for (const message of outbox) this.nodes.get(message.to)?.step(message);
    }
  }

  round(batch: number): void {
    const leader = this.nodes.get(ids[0]!)!;
    for (let i = 0; i < batch; i++) leader.propose(payload);
    this.stabilize();
  }
}

/** Proposals per fresh cluster, so the in-memory log stays bounded. */
const entriesPerCluster = 200_000;

for (const batch of [1, 16, 256]) {
  let cluster = new Cluster();
  let proposed = 0;
  Deno.bench({
    name: `3-node core, batch of ${batch} (entries/s = iter/s × ${batch})`,
    group: "raft-throughput",
    baseline: batch === 1,
    fn(b) {
      if (proposed >= entriesPerCluster) {
        cluster = new Cluster();
        proposed = 0;
      }
      b.start();
      cluster.round(batch);
      b.end();
      proposed += batch;
    },
  });
}
