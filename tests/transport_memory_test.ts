import assert from "node:assert/strict";
import { nodeId } from "../src/raft/types.ts";
import { InMemoryNetwork, PeerQueue } from "../src/transport/mod.ts";
import { peerTransportConformance } from "./helpers/transport_conformance.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { append, heartbeat } from "./helpers/transport_messages.ts";

peerTransportConformance("InMemoryTransport", ({ queueCapacity }) => {
  const network = new InMemoryNetwork();
  const a = network.connect(nodeId("node-a"), { queueCapacity });
  const b = network.connect(nodeId("node-b"), { queueCapacity });
  return Promise.resolve({
    a,
    b,
    unreachablePeer: nodeId("node-nowhere"),
    close: async () => {
      await a.close();
      await b.close();
    },
  });
});

Deno.test("InMemoryNetwork.setLinkCut() drops messages both ways and reports unreachable", async () => {
  const network = new InMemoryNetwork();
  const a = network.connect(nodeId("a"));
  const b = network.connect(nodeId("b"));
  const received: string[] = [];
  b.onMessage((message) => received.push(message.type));
  const unreachable: string[] = [];
  a.onUnreachable((peer) => unreachable.push(peer));
  network.setLinkCut(a.localId, b.localId, true);
  a.send(b.localId, append("a", "b", 1));
  await waitFor("unreachable report", () => unreachable.length === 1);
  network.setLinkCut(a.localId, b.localId, false);
  a.send(b.localId, heartbeat("a", "b"));
  await waitFor("delivery after heal", () => received.length === 1);
  assert.deepEqual(received, ["heartbeat"]);
  assert.throws(() => network.connect(nodeId("a")), RangeError);
});

Deno.test("PeerQueue.push() never holds more than its capacity", () => {
  const queue = new PeerQueue(3);
  const outcomes = Array.from(
    { length: 10 },
    (_, i) => queue.push(append("a", "b", i + 1)),
  );
  assert.equal(queue.length, 3);
  assert.equal(outcomes.filter((outcome) => outcome === "dropped").length, 7);
  // A heartbeat cannot join a full queue unless one is queued to coalesce with.
  assert.equal(queue.push(heartbeat("a", "b")), "dropped");
  assert.deepEqual(queue.drain(2).map((m) => m.type === "app" && m.index), [
    0,
    1,
  ]);
  assert.equal(queue.push(heartbeat("a", "b", 1)), "queued");
  assert.equal(queue.push(heartbeat("a", "b", 2)), "coalesced");
  assert.equal(queue.length, 2);
  // A heartbeat carrying a ReadIndex context is never replaced by one without.
  const withContext = heartbeat("a", "b", 3, new Uint8Array([1]));
  assert.equal(queue.push(withContext), "coalesced");
  assert.equal(queue.push(heartbeat("a", "b", 4)), "queued");
  assert.equal(
    queue.push(heartbeat("a", "b", 5, new Uint8Array([2]))),
    "coalesced",
  );
  assert.equal(queue.length, 3);
  assert.equal(queue.clear(), 3);
  assert.throws(() => new PeerQueue(0), RangeError);
});
