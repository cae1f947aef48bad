/// <reference lib="deno.unstable" />
/**
 * Peer transport benchmark: codec overhead, then round-trip time and
 * throughput of 100-byte Raft messages, 64 KiB AppendEntries batches and
 * 1 MiB snapshot chunks over one QUIC peer connection, beside plain TCP
 * (`Deno.connect`, same framing and codec), a raw QUIC stream and the
 * in-memory transport, in one run.
 *
 * Full run (network on 127.0.0.1 only):
 *   deno run --unstable-net --allow-net=127.0.0.1 --allow-read bench/transport_bench.ts
 * Under `deno bench` (no network permission) only the codec cases run.
 *
 * @module
 */
import {
  decodeEnvelope,
  encodeEnvelopeFrame,
} from "../src/protocol/envelope.ts";
import { FrameDecoder } from "../src/protocol/frame.ts";
import type { Message, NodeId } from "../src/raft/types.ts";
import { logIndex, nodeId, term } from "../src/raft/types.ts";
import type { PeerTransport } from "../src/transport/types.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { makeClusterKey } from "../tests/helpers/transport_cluster.ts";
import {
  meshQuicNodes,
  rawConnect,
  startQuicNode,
} from "../tests/helpers/transport_quic.ts";

function app(
  from: NodeId,
  to: NodeId,
  index: number,
  entries: number,
  entryBytes: number,
): Message {
  return {
    type: "app",
    from,
    to,
    term: term(1),
    logTerm: term(1),
    index: logIndex(index),
    commit: logIndex(index),
    entries: Array.from({ length: entries }, (_, i) => ({
      term: term(1),
      index: logIndex(index + i + 1),
      type: "normal" as const,
      data: new Uint8Array(entryBytes),
    })),
  };
}

function snap(
  from: NodeId,
  to: NodeId,
  offset: number,
  bytes: number,
): Message {
  return {
    type: "snap",
    from,
    to,
    term: term(1),
    meta: {
      index: logIndex(1),
      term: term(1),
      confState: { voters: [from, to], votersOutgoing: [], learners: [] },
    },
    offset,
    data: new Uint8Array(bytes),
    done: false,
  };
}

const A = nodeId("a".repeat(52));
const B = nodeId("b".repeat(52));
const small = app(A, B, 1, 1, 40); // ~100 bytes on the wire
const smallFrame = encodeEnvelopeFrame({ kind: "raft", message: small });

Deno.bench({
  name: "codec: encode + frame 100-byte AppendEntries",
  group: "codec",
  baseline: true,
}, () => {
  encodeEnvelopeFrame({ kind: "raft", message: small });
});
Deno.bench({
  name: "codec: deframe + decode 100-byte AppendEntries",
  group: "codec",
}, () => {
  const decoder = new FrameDecoder();
  for (const payload of decoder.push(smallFrame)) decodeEnvelope(payload);
});

function codecMicros(): {
  encodeUs: number;
  decodeUs: number;
  wireBytes: number;
} {
  const count = 200_000;
  let start = performance.now();
  for (let i = 0; i < count; i++) {
    encodeEnvelopeFrame({ kind: "raft", message: small });
  }
  const encodeUs = ((performance.now() - start) * 1000) / count;
  const decoder = new FrameDecoder();
  start = performance.now();
  for (let i = 0; i < count; i++) {
    for (const payload of decoder.push(smallFrame)) {
      decodeEnvelope(payload);
    }
  }
  const decodeUs = ((performance.now() - start) * 1000) / count;
  return { encodeUs, decodeUs, wireBytes: smallFrame.length };
}

interface Pair {
  readonly name: string;
  readonly a: PeerTransport;
  readonly b: PeerTransport;
  close(): Promise<void>;
}

/** Mean round trip of a 100-byte AppendEntries answered by an AppendEntries response. */
async function roundTripUs(pair: Pair, count: number): Promise<number> {
  let resolve: () => void = () => {};
  pair.b.onMessage((m) => {
    pair.b.send(m.from, {
      type: "appResp",
      from: m.to,
      to: m.from,
      term: m.term,
      index: logIndex(1),
      reject: false,
      rejectHint: logIndex(0),
      logTerm: m.term,
    });
  });
  pair.a.onMessage(() => resolve());
  for (let i = 0; i < 50; i++) {
    await new Promise<void>((r) => ((resolve = r), pair.a.send(B, small)));
  }
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await new Promise<void>((r) => ((resolve = r), pair.a.send(B, small)));
  }
  return ((performance.now() - start) * 1000) / count;
}

/** Messages per second and MB/s of `message` sent with at most `window` in flight. */
async function throughput(
  pair: Pair,
  message: Message,
  count: number,
  window: number,
): Promise<{ perSecond: number; mbPerSecond: number }> {
  const wireBytes = encodeEnvelopeFrame({ kind: "raft", message }).length;
  let received = 0;
  let wake: () => void = () => {};
  pair.b.onMessage(() => {
    received++;
    wake();
  });
  const start = performance.now();
  let sent = 0;
  const deadline = Date.now() + 60_000;
  while (received < count && Date.now() < deadline) {
    while (sent < count && sent - received < window) {
      if (pair.a.send(B, message) !== "dropped") sent++;
      else break;
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, 50);
    });
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    perSecond: received / seconds,
    mbPerSecond: (received * wireBytes) / seconds / 1e6,
  };
}

/** A PeerTransport-shaped pair over plain TCP with the same framing and codec. */
async function tcpPair(): Promise<Pair> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const server = await accepted;
  client.setNoDelay(true);
  server.setNoDelay(true);
  const side = (
    conn: Deno.TcpConn,
    id: NodeId,
  ): PeerTransport & { loop: Promise<void> } => {
    let handler: (m: Message) => void = () => {};
    const writer = conn.writable.getWriter();
    let chunks: Uint8Array[] = [];
    let scheduled = false;
    const loop = (async () => {
      const decoder = new FrameDecoder();
      try {
        for await (const chunk of conn.readable) {
          for (const payload of decoder.push(chunk)) {
            const envelope = decodeEnvelope(payload);
            if (envelope.kind === "raft") handler(envelope.message);
          }
        }
      } catch { /* closed */ }
    })();
    return {
      localId: id,
      loop,
      send: (_to, message) => {
        chunks.push(encodeEnvelopeFrame({ kind: "raft", message }));
        if (!scheduled) {
          scheduled = true;
          queueMicrotask(() => {
            scheduled = false;
            const batch = chunks;
            chunks = [];
            let total = 0;
            for (const c of batch) total += c.length;
            const out = new Uint8Array(total);
            let at = 0;
            for (const c of batch) (out.set(c, at), (at += c.length));
            writer.write(out).catch(() => {});
          });
        }
        return "queued";
      },
      onMessage: (h) => void (handler = h),
      onUnreachable: () => {},
      onRequest: () => {},
      request: () => Promise.reject(new Error("Not supported")),
      close: () => Promise.resolve(),
    };
  };
  const a = side(client, A);
  const b = side(server, B);
  return {
    name: "tcp",
    a,
    b,
    close: async () => {
      client.close();
      server.close();
      listener.close();
      await Promise.allSettled([a.loop, b.loop]);
    },
  };
}

async function quicPair(): Promise<Pair> {
  const clusterKey = await makeClusterKey();
  const options = { queueCapacity: 4096, snapshotQueueCapacity: 64 };
  const a = await startQuicNode(clusterKey, options);
  const b = await startQuicNode(clusterKey, options);
  meshQuicNodes([a, b]);
  // Messages carry the ids of the bench's fixed nodes; remap to real ids.
  const remap = (
    transport: PeerTransport,
    from: NodeId,
    to: NodeId,
  ): PeerTransport => ({
    localId: transport.localId,
    send: (_to, message) =>
      transport.send(to, { ...message, from, to } as Message),
    onMessage: (h) =>
      transport.onMessage((m) =>
        h({ ...m, from: m.from === from ? A : B } as Message)
      ),
    onUnreachable: (h) => transport.onUnreachable(h),
    onRequest: (h) => transport.onRequest(h),
    request: (_to, r, o) => transport.request(to, r, o),
    close: () => transport.close(),
  });
  return {
    name: "quic",
    a: remap(a.transport, a.address.nodeId, b.address.nodeId),
    b: remap(b.transport, b.address.nodeId, a.address.nodeId),
    close: async () => {
      await a.transport.close();
      await b.transport.close();
    },
  };
}

function memoryPair(): Pair {
  const network = new InMemoryNetwork();
  const a = network.connect(A, { queueCapacity: 4096 });
  const b = network.connect(B, { queueCapacity: 4096 });
  return {
    name: "memory",
    a,
    b,
    close: async () => (await a.close(), await b.close()),
  };
}

/** Raw QUIC stream bulk throughput (no framing, no codec, no auth), MB/s. */
async function rawQuicMbPerSecond(totalBytes: number): Promise<number> {
  const clusterKey = await makeClusterKey();
  const node = await startQuicNode(clusterKey);
  // A second listener that just drains one stream.
  const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1", port: 0 });
  const listener = endpoint.listen({
    cert: node.member.certificate.certificatePem,
    key: node.member.certificate.privateKeyPem,
    alpnProtocols: ["aspen/1"],
  });
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  (async () => {
    const conn = await (await listener.incoming()).accept();
    const { value: stream } = await conn.incomingBidirectionalStreams
      .getReader().read();
    let got = 0;
    for await (const chunk of stream!.readable) {
      got += chunk.length;
      if (got >= totalBytes) break;
    }
    done();
  })();
  const conn = await rawConnect({
    ...node,
    address: { ...node.address, port: endpoint.addr.port },
  });
  const stream = await conn.createBidirectionalStream();
  const writer = stream.writable.getWriter();
  const chunk = new Uint8Array(1024 * 1024);
  const start = performance.now();
  for (let sent = 0; sent < totalBytes; sent += chunk.length) {
    await writer.write(chunk);
  }
  await finished;
  const seconds = (performance.now() - start) / 1000;
  conn.close();
  listener.stop();
  endpoint.close();
  await node.transport.close();
  return totalBytes / seconds / 1e6;
}

async function main(): Promise<void> {
  const codec = codecMicros();
  console.log(
    `codec: ${codec.wireBytes}-byte AppendEntries frame: encode ${
      codec.encodeUs.toFixed(2)
    } µs, decode ${codec.decodeUs.toFixed(2)} µs`,
  );
  const rows: Record<string, string | number>[] = [];
  for (const make of [memoryPair, tcpPair, quicPair]) {
    const pair = await make();
    const rtt = await roundTripUs(pair, 2000);
    const smallRate = await throughput(pair, small, 50_000, 2048);
    const batch = await throughput(pair, app(A, B, 1, 64, 1000), 1000, 64);
    const chunks = await throughput(pair, snap(A, B, 0, 1024 * 1024), 128, 16);
    rows.push({
      transport: pair.name,
      "rtt µs": Math.round(rtt),
      "100B msg/s": Math.round(smallRate.perSecond),
      "64KiB batch MB/s": Math.round(batch.mbPerSecond),
      "1MiB snap MB/s": Math.round(chunks.mbPerSecond),
    });
    await pair.close();
  }
  const raw = await rawQuicMbPerSecond(256 * 1024 * 1024);
  console.table(rows);
  const quic = rows.find((r) => r.transport === "quic")!;
  const tcp = rows.find((r) => r.transport === "tcp")!;
  console.log(`raw QUIC stream bulk: ${raw.toFixed(0)} MB/s`);
  console.log(
    `ratios: QUIC/TCP rtt ${
      (Number(quic["rtt µs"]) / Number(tcp["rtt µs"])).toFixed(2)
    }x, ` +
      `raw QUIC / QUIC snapshot throughput ${
        (raw / Number(quic["1MiB snap MB/s"])).toFixed(2)
      }x, ` +
      `raw QUIC / QUIC 64KiB batch throughput ${
        (raw / Number(quic["64KiB batch MB/s"])).toFixed(2)
      }x`,
  );
}

const net = await Deno.permissions.query({ name: "net", host: "127.0.0.1" });
if (import.meta.main && net.state === "granted" && "QuicEndpoint" in Deno) {
  await main();
} else if (import.meta.main) {
  console.log(
    "transport_bench: network cases skipped (run with --unstable-net --allow-net=127.0.0.1)",
  );
}
