/// <reference lib="deno.unstable" />
/**
 * Every bad input the issue lists, against a real QUIC listener on
 * 127.0.0.1: each is refused with a logged reason, nothing reaches the Raft
 * handler, and the node keeps serving a good peer afterwards.
 */
import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { initiateHandshake } from "../src/cluster/handshake.ts";
import { createJoinToken } from "../src/cluster/credential.ts";
import { encodeFrame } from "../src/protocol/frame.ts";
import { StreamChannel } from "../src/transport/stream_channel.ts";
import type { Message } from "../src/raft/types.ts";
import { waitFor } from "./helpers/wait_for.ts";
import {
  makeClusterKey,
  makeMember,
  type TestMember,
} from "./helpers/transport_cluster.ts";
import {
  type QuicTestNode,
  rawConnect,
  startQuicNode,
  within,
} from "./helpers/transport_quic.ts";
import { append, heartbeat } from "./helpers/transport_messages.ts";
import type { QuicTransportOptions } from "../src/transport/quic_options.ts";

const clusterKey = await makeClusterKey();
const joinToken = createJoinToken();

/** A server node that records what reaches Raft, and a good peer to prove it still serves. */
async function withServer(
  body: (server: QuicTestNode, raft: Message[]) => Promise<void>,
  options: Partial<QuicTransportOptions> = {},
): Promise<void> {
  const serverMember = await makeMember(clusterKey, {
    joinTokens: [joinToken],
  });
  const server = await startQuicNode(clusterKey, {
    member: serverMember,
    ...options,
  });
  const raft: Message[] = [];
  server.transport.onMessage((message) => raft.push(message));
  try {
    await body(server, raft);
    // The node keeps serving: a good peer authenticates and is heard.
    const good = await startQuicNode(clusterKey);
    try {
      good.transport.setPeer(server.address);
      const before = raft.length;
      good.transport.send(
        server.address.nodeId,
        heartbeat(good.address.nodeId, server.address.nodeId, 7),
      );
      await waitFor(
        "a good peer's heartbeat",
        () => raft.length === before + 1,
        4000,
      );
    } finally {
      await good.transport.close();
    }
  } finally {
    await server.transport.close();
  }
}

function logged(server: QuicTestNode, code: string): Promise<void> {
  return waitFor(
    `a '${code}' log`,
    () =>
      server.log.some((event) => event.code === code && event.level === "warn"),
    4000,
  );
}

/** Authenticates a raw client as `member` and returns its message channel. */
async function authenticatedChannel(
  server: QuicTestNode,
  member: TestMember,
  options: { purpose?: "raft" | "join"; joinToken?: Uint8Array } = {},
): Promise<
  {
    connection: Deno.QuicConn;
    channel: StreamChannel;
    writer: (bytes: Uint8Array) => Promise<void>;
  }
> {
  const connection = await rawConnect(server);
  const stream = await connection.createBidirectionalStream();
  const channel = new StreamChannel(stream, 16 * 1024 * 1024);
  await initiateHandshake(channel, member.context, {
    expectedNodeKey: server.address.nodeKey,
    certificateHash: server.address.certificateHash,
    ...options,
  });
  return {
    connection,
    channel,
    writer: (bytes) => channel.writeFrames([bytes]),
  };
}

async function closedReason(connection: Deno.QuicConn): Promise<string> {
  const info = await within(connection.closed, 4000, "the server to close");
  return info.reason;
}

Deno.test("QUIC refuses garbage bytes before the handshake", () =>
  withServer(async (server, raft) => {
    const connection = await rawConnect(server);
    const stream = await connection.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    await writer.write(encodeFrame(new Uint8Array([0xc1, 0xff, 0x00])));
    await logged(server, "malformedPayload");
    assert.match(await closedReason(connection), /malformedPayload/);
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC refuses garbage bytes from an authenticated peer", () =>
  withServer(async (server, raft) => {
    const member = await makeMember(clusterKey);
    const { connection, writer } = await authenticatedChannel(server, member);
    await writer(
      encodeFrame(new TextEncoder().encode("garbage, not msgpack \xc1")),
    );
    await logged(server, "malformedPayload");
    await closedReason(connection);
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC refuses a truncated frame", () =>
  withServer(async (server, raft) => {
    const connection = await rawConnect(server);
    const stream = await connection.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    const frame = encodeFrame(
      encode([
        1,
        1,
        "raft",
        new Uint8Array(32),
        new Uint8Array(32),
        new Uint8Array(32),
      ]),
    );
    await writer.write(frame.subarray(0, frame.length - 10));
    await writer.close(); // the stream ends inside the frame
    await logged(server, "truncatedFrame");
    await closedReason(connection);
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC refuses an oversize length prefix without allocating it", () =>
  withServer(async (server, raft) => {
    const connection = await rawConnect(server);
    const stream = await connection.createBidirectionalStream();
    await stream.writable.getWriter().write(
      new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
    );
    await logged(server, "frameTooLarge");
    assert.match(await closedReason(connection), /frameTooLarge/);
    assert.equal(raft.length, 0);
  }, { maxFrameBytes: 1024 * 1024 }));

Deno.test("QUIC refuses a valid frame of unknown type", () =>
  withServer(async (server, raft) => {
    const member = await makeMember(clusterKey);
    const { connection, writer } = await authenticatedChannel(server, member);
    await writer(
      encodeFrame(
        encode([0, 250, member.identity.nodeId, server.address.nodeId, 1]),
      ),
    );
    await logged(server, "unknownMessageType");
    await closedReason(connection);
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC refuses a wrong ALPN", () =>
  withServer(async (server, raft) => {
    await assert.rejects(
      within(rawConnect(server, "http/1.1"), 5000, "the ALPN refusal"),
    );
    assert.equal(raft.length, 0);
    assert.equal(server.transport.stats.connections, 0);
  }));

Deno.test("QUIC refuses a peer with another cluster's credential", () =>
  withServer(async (server, raft) => {
    const stranger = await startQuicNode(await makeClusterKey());
    try {
      stranger.transport.setPeer(server.address);
      const unreachable: string[] = [];
      stranger.transport.onUnreachable((peer) => unreachable.push(peer));
      stranger.transport.send(
        server.address.nodeId,
        append(stranger.address.nodeId, server.address.nodeId, 1),
      );
      await logged(server, "wrongCluster");
      await waitFor("an unreachable report", () => unreachable.length > 0);
      assert.equal(raft.length, 0);
    } finally {
      await stranger.transport.close();
    }
  }));

Deno.test("QUIC refuses a revoked peer", () =>
  withServer(async (server, raft) => {
    const peer = await startQuicNode(clusterKey);
    try {
      server.member.revoked.add(peer.address.nodeId);
      peer.transport.setPeer(server.address);
      peer.transport.send(
        server.address.nodeId,
        heartbeat(peer.address.nodeId, server.address.nodeId),
      );
      await logged(server, "revoked");
      assert.equal(raft.length, 0);
    } finally {
      await peer.transport.close();
    }
  }));

Deno.test("QUIC cuts off a peer revoked after its handshake at its next frame", () =>
  withServer(async (server, raft) => {
    const peer = await startQuicNode(clusterKey);
    try {
      peer.transport.setPeer(server.address);
      peer.transport.send(
        server.address.nodeId,
        heartbeat(peer.address.nodeId, server.address.nodeId, 1),
      );
      await waitFor("the heartbeat before", () => raft.length === 1, 4000);
      server.member.revoked.add(peer.address.nodeId);
      peer.transport.send(
        server.address.nodeId,
        heartbeat(peer.address.nodeId, server.address.nodeId, 2),
      );
      await logged(server, "revoked");
      assert.equal(raft.length, 1);
    } finally {
      await peer.transport.close();
    }
  }));

Deno.test("QUIC refuses a bad handshake signature", () =>
  withServer(async (server, raft) => {
    const member = await makeMember(clusterKey);
    const impostor = await makeMember(clusterKey);
    const forged = {
      ...member,
      context: {
        ...member.context,
        identity: { ...member.identity, sign: impostor.identity.sign },
      },
    };
    const connection = await rawConnect(server);
    const channel = new StreamChannel(
      await connection.createBidirectionalStream(),
      1024 * 1024,
    );
    await assert.rejects(
      initiateHandshake(channel, forged.context, {
        expectedNodeKey: server.address.nodeKey,
        certificateHash: server.address.certificateHash,
      }),
    );
    assert.match(await closedReason(connection), /badSignature/);
    await logged(server, "badSignature");
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC refuses Raft traffic on a connection admitted by a join token", () =>
  withServer(async (server, raft) => {
    const joiner = await makeMember(clusterKey, { credential: false });
    const { connection, channel } = await authenticatedChannel(server, joiner, {
      purpose: "join",
      joinToken,
    });
    await channel.send({
      kind: "raft",
      message: heartbeat(joiner.identity.nodeId, server.address.nodeId),
    });
    await logged(server, "joinTokenForRaft");
    assert.match(await closedReason(connection), /join token/);
    assert.equal(raft.length, 0);
  }));

Deno.test("QUIC closes a silent connection at the handshake timeout", () =>
  withServer(async (server, raft) => {
    const connection = await rawConnect(server);
    assert.match(await closedReason(connection), /Handshake timed out/);
    await logged(server, "handshakeTimeout");
    assert.equal(server.transport.stats.pendingHandshakes, 0);
    assert.equal(raft.length, 0);
  }, { handshakeTimeoutMs: 300 }));

Deno.test("QUIC survives a connection flood, refusing past maxPendingHandshakes", () =>
  withServer(async (server, raft) => {
    const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1" });
    try {
      const attempts = await Promise.allSettled(
        Array.from(
          { length: 12 },
          () =>
            within(rawConnect(server, "aspen/1", endpoint), 4000, "connect"),
        ),
      );
      await logged(server, "maxPendingHandshakes");
      assert.ok(server.transport.stats.pendingHandshakes <= 3);
      assert.ok(
        (server.transport.stats.refused["maxPendingHandshakes"] ?? 0) >= 1,
      );
      await waitFor(
        "handshake timeouts",
        () => server.transport.stats.pendingHandshakes === 0,
        4000,
      );
      for (const attempt of attempts) {
        if (attempt.status === "fulfilled") attempt.value.close();
      }
      assert.equal(raft.length, 0);
    } finally {
      endpoint.close();
    }
  }, { maxPendingHandshakes: 3, handshakeTimeoutMs: 300 }));

Deno.test("QUIC refuses peer connections past maxPeerConnections", () =>
  withServer(async (server) => {
    const member = await makeMember(clusterKey);
    const first = await authenticatedChannel(server, member);
    const second = await within(rawConnect(server), 5000, "the connection");
    assert.match(await closedReason(second), /maxPeerConnections/);
    await logged(server, "maxPeerConnections");
    first.connection.close();
    await waitFor(
      "the slot to free",
      () => server.transport.stats.connections === 0,
    );
  }, { maxPeerConnections: 1 }));

Deno.test("QUIC keeps peer slots free of idle h3 connections, closing those past their budget", () =>
  withServer(async (server, raft) => {
    const endpoint = new Deno.QuicEndpoint({ hostname: "127.0.0.1" });
    const idle: Deno.QuicConn[] = [];
    try {
      // Twice the client budget of idle h3 connections that never upgrade.
      for (let i = 0; i < 8; i++) {
        const attempt = await within(
          rawConnect(server, "h3", endpoint),
          4000,
          "an h3 connection",
        ).catch(() => undefined);
        if (attempt !== undefined) idle.push(attempt);
      }
      await logged(server, "maxClientConnections");
      assert.ok(server.transport.stats.clients <= 4);
      // A real peer still gets in while the client budget is full.
      const peer = await startQuicNode(clusterKey);
      try {
        peer.transport.setPeer(server.address);
        peer.transport.send(
          server.address.nodeId,
          heartbeat(peer.address.nodeId, server.address.nodeId, 3),
        );
        await waitFor("the peer's heartbeat", () => raft.length === 1, 8000);
      } finally {
        await peer.transport.close();
      }
    } finally {
      for (const connection of idle) connection.close();
      endpoint.close();
    }
  }, {
    maxClientConnections: 4,
    maxPeerConnections: 2,
    handshakeTimeoutMs: 20_000,
  }));

Deno.test("QUIC closes an h3 connection that never upgrades at the handshake deadline", () =>
  withServer(async (server) => {
    const connection = await within(
      rawConnect(server, "h3"),
      4000,
      "an h3 connection",
    );
    assert.match(await closedReason(connection), /Handshake timed out/);
    await logged(server, "handshakeTimeout");
    await waitFor(
      "the client slot to free",
      () =>
        server.transport.stats.pendingHandshakes === 0 &&
        server.transport.stats.clients === 0,
    );
  }, { handshakeTimeoutMs: 400 }));

Deno.test("QUIC refuses a large frame before the handshake, without buffering it", () =>
  withServer(async (server, raft) => {
    const connection = await rawConnect(server);
    const stream = await connection.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    // Announce 1 MiB (under the 16 MiB limit for authenticated peers) and
    // send part of it: a stranger gets a few KiB, not 16 MiB.
    const header = new Uint8Array([0, 0x10, 0, 0]);
    await writer.write(header);
    await writer.write(new Uint8Array(64 * 1024)).catch(() => {});
    assert.match(await closedReason(connection), /frameTooLarge/);
    await logged(server, "frameTooLarge");
    assert.equal(server.transport.stats.pendingHandshakes, 0);
    assert.equal(raft.length, 0);
  }, { handshakeTimeoutMs: 20_000 }));
