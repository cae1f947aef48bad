/**
 * The {@linkcode PeerTransport} conformance suite, run against every
 * implementation (in-memory, QUIC). The in-memory one is the reference.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Message, NodeId } from "../../src/raft/types.ts";
import type { PeerTransport } from "../../src/transport/types.ts";
import {
  PeerUnreachableError,
  RemoteError,
  TransportClosedError,
} from "../../src/transport/errors.ts";
import { append, heartbeat } from "./transport_messages.ts";
import { waitFor } from "./wait_for.ts";

/** Two connected transports, plus the id of a peer nobody serves. */
export interface TransportPair {
  readonly a: PeerTransport;
  readonly b: PeerTransport;
  readonly unreachablePeer: NodeId;
  /** Closes both and frees everything the pair holds. */
  close(): Promise<void>;
}

/** Makes a fresh pair; `queueCapacity` bounds every per-peer queue. */
export type TransportPairFactory = (
  options: { queueCapacity: number },
) => Promise<TransportPair>;

function collect(transport: PeerTransport): Message[] {
  const received: Message[] = [];
  transport.onMessage((message) => received.push(message));
  return received;
}

/** Registers the suite's tests under `name`. */
export function peerTransportConformance(
  name: string,
  makePair: TransportPairFactory,
): void {
  const test = (
    title: string,
    body: (pair: TransportPair) => Promise<void>,
    queueCapacity = 1024,
  ) =>
    Deno.test(`${name}: ${title}`, async () => {
      const pair = await makePair({ queueCapacity });
      try {
        await body(pair);
      } finally {
        await pair.close();
      }
    });

  test("send() delivers every message in order, intact", async ({ a, b }) => {
    const received = collect(b);
    const sent = Array.from(
      { length: 200 },
      (_, i) => append(a.localId, b.localId, i + 1),
    );
    for (const message of sent) {
      assert.equal(a.send(b.localId, message), "queued");
    }
    await waitFor("200 messages", () => received.length === sent.length);
    assert.deepEqual(received, sent);
  });

  test(
    "send() coalesces heartbeats and drops past capacity, reporting the peer unreachable",
    async ({ a, b }) => {
      const received = collect(b);
      const unreachable: string[] = [];
      a.onUnreachable((peer) => unreachable.push(peer));
      const outcomes = [
        a.send(b.localId, heartbeat(a.localId, b.localId, 1)),
        a.send(b.localId, heartbeat(a.localId, b.localId, 2)),
        a.send(b.localId, append(a.localId, b.localId, 1)),
        a.send(b.localId, append(a.localId, b.localId, 2)),
        a.send(b.localId, append(a.localId, b.localId, 3)),
        a.send(b.localId, append(a.localId, b.localId, 4)),
      ];
      assert.deepEqual(outcomes, [
        "queued",
        "coalesced",
        "queued",
        "queued",
        "queued",
        "dropped",
      ]);
      assert.deepEqual(unreachable, [b.localId]);
      await waitFor("4 messages", () => received.length === 4);
      assert.equal(received[0]?.type, "heartbeat");
      assert.equal(received[0]?.type === "heartbeat" && received[0].commit, 2);
    },
    4,
  );

  test("request() returns the peer's data and rebuilds its errors", async ({ a, b }) => {
    b.onRequest((request, from) => {
      assert.equal(from, a.localId);
      if (request.method === "forwardProposal") {
        return Promise.resolve({ ok: true, data: request.data.toReversed() });
      }
      return Promise.resolve({
        ok: false,
        code: "notLeader",
        message: "Not the leader",
        leader: "node-z",
      });
    });
    const data = await a.request(b.localId, {
      method: "forwardProposal",
      data: new Uint8Array([1, 2, 3]),
    });
    assert.deepEqual(data, new Uint8Array([3, 2, 1]));
    await assert.rejects(
      a.request(b.localId, {
        method: "forwardReadIndex",
        context: new Uint8Array(1),
      }),
      (error: unknown) =>
        error instanceof RemoteError && error.code === "notLeader" &&
        error.leader === "node-z",
    );
  });

  test("send() to an unreachable peer reports it and request() throws PeerUnreachableError", async (pair) => {
    const unreachable: string[] = [];
    pair.a.onUnreachable((peer) => unreachable.push(peer));
    pair.a.send(
      pair.unreachablePeer,
      heartbeat(pair.a.localId, pair.unreachablePeer),
    );
    await waitFor(
      "an unreachable report",
      () => unreachable.includes(pair.unreachablePeer),
    );
    await assert.rejects(
      pair.a.request(pair.unreachablePeer, {
        method: "forwardProposal",
        data: new Uint8Array(),
      }, { timeoutMs: 3000 }),
      PeerUnreachableError,
    );
  });

  test("close() drops later sends and refuses requests", async ({ a, b }) => {
    await a.close();
    assert.equal(a.send(b.localId, heartbeat(a.localId, b.localId)), "dropped");
    await assert.rejects(
      a.request(b.localId, {
        method: "forwardProposal",
        data: new Uint8Array(),
      }),
      TransportClosedError,
    );
    await a.close(); // idempotent
  });
}
