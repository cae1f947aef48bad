/// <reference lib="deno.unstable" />
import assert from "node:assert/strict";
import { nodeId } from "../src/raft/types.ts";
import { peerTransportConformance } from "./helpers/transport_conformance.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { makeClusterKey } from "./helpers/transport_cluster.ts";
import { meshQuicNodes, startQuicNode } from "./helpers/transport_quic.ts";
import { append } from "./helpers/transport_messages.ts";

const clusterKey = await makeClusterKey();

peerTransportConformance("QuicTransport", async ({ queueCapacity }) => {
  const limits = {
    queueCapacity,
    connectTimeoutMs: 500,
    handshakeTimeoutMs: 500,
  };
  const a = await startQuicNode(clusterKey, limits);
  const b = await startQuicNode(clusterKey, limits);
  meshQuicNodes([a, b]);
  // A peer with an address where nothing listens.
  const nowhere = nodeId("a".repeat(52));
  a.transport.setPeer({ ...b.address, nodeId: nowhere, port: 9 });
  return {
    a: a.transport,
    b: b.transport,
    unreachablePeer: nowhere,
    close: async () => {
      await a.transport.close();
      await b.transport.close();
    },
  };
});

Deno.test("QuicTransport: messages flow both ways over reused connections", async () => {
  const a = await startQuicNode(clusterKey);
  const b = await startQuicNode(clusterKey);
  try {
    meshQuicNodes([a, b]);
    const atA: number[] = [];
    const atB: number[] = [];
    a.transport.onMessage((m) => atA.push(m.type === "app" ? m.index : -1));
    b.transport.onMessage((m) => atB.push(m.type === "app" ? m.index : -1));
    for (let i = 1; i <= 100; i++) {
      a.transport.send(
        b.address.nodeId,
        append(a.address.nodeId, b.address.nodeId, i),
      );
      b.transport.send(
        a.address.nodeId,
        append(b.address.nodeId, a.address.nodeId, i),
      );
    }
    await waitFor(
      "200 messages",
      () => atA.length === 100 && atB.length === 100,
    );
    assert.deepEqual(atB, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(b.transport.stats.connections, 1);
    assert.equal(a.transport.stats.connections, 1);
    assert.equal(a.log.filter((e) => e.code === "authenticated").length, 1);
  } finally {
    await a.transport.close();
    await b.transport.close();
  }
});
