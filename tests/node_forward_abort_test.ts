/**
 * Issue 12 item 7: a proposal a follower forwarded to a leader that then
 * dies fails (outcome unknown, so the caller retries through its session)
 * as soon as the follower learns the leader changed, not at the request
 * deadline. And a QUIC request fails at once when its signal is aborted.
 */
import assert from "node:assert/strict";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { encodeKvEntry } from "../src/services/entries.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { type NodeId, nodeId } from "../src/raft/types.ts";

import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { abortReason, RequestAbortedError } from "../src/transport/errors.ts";
import type {
  MessageHandler,
  PeerTransport,
  RequestHandler,
  RequestOptions,
  SendOutcome,
  UnreachableHandler,
} from "../src/transport/types.ts";
import type { PeerRequest } from "../src/protocol/envelope.ts";
import type { Message } from "../src/raft/types.ts";
import { ProposalDroppedError } from "../src/raft/errors.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import {
  ProposalOutcomeUnknownError,
  RaftRunner,
} from "../src/node/raft_runner.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { makeClusterKey } from "./helpers/transport_cluster.ts";
import { meshQuicNodes, startQuicNode } from "./helpers/transport_quic.ts";

const IDS = ["n1", "n2", "n3"].map(nodeId);

/** A transport whose requests to `swallowTo` are sent and never answered (a leader that died holding them). */
class SwallowingTransport implements PeerTransport {
  readonly localId: NodeId;
  swallowTo: NodeId | null = null;
  swallowed = 0;
  readonly #inner: PeerTransport;

  constructor(inner: PeerTransport) {
    this.#inner = inner;
    this.localId = inner.localId;
  }

  send(to: NodeId, message: Message): SendOutcome {
    return this.#inner.send(to, message);
  }
  onMessage(handler: MessageHandler): void {
    this.#inner.onMessage(handler);
  }
  onUnreachable(handler: UnreachableHandler): void {
    this.#inner.onUnreachable(handler);
  }
  onRequest(handler: RequestHandler): void {
    this.#inner.onRequest(handler);
  }
  request(
    to: NodeId,
    request: PeerRequest,
    options?: RequestOptions,
  ): Promise<Uint8Array> {
    if (to !== this.swallowTo) return this.#inner.request(to, request, options);
    this.swallowed++;
    return new Promise((_, reject) => {
      const timer = setTimeout(
        () => reject(new Error("request deadline")),
        options?.timeoutMs ?? 5000,
      );
      options?.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(
          new RequestAbortedError(
            to,
            request.method,
            abortReason(options.signal!),
          ),
        );
      }, { once: true });
    });
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}

Deno.test("a proposal forwarded to a leader that dies fails as soon as a new leader is known", async () => {
  const network = new InMemoryNetwork();
  const transports = IDS.map((id) =>
    new SwallowingTransport(network.connect(id))
  );
  const runners = IDS.map((id, i) => {
    const runner = new RaftRunner({
      id,
      voters: IDS,
      logStore: new MemoryLogStore(),
      stateMachine: new KvReplicatedState(
        new KvStateMachine(new MemoryStateStore()),
      ),
      transport: transports[i]!,
      tickMs: 10,
      // Far longer than an election: the old code waited all of it.
      requestTimeoutMs: 30_000,
    });
    runner.start();
    return runner;
  });
  try {
    const { leader, follower } = await leaderAndFollower(runners);
    transports[follower]!.swallowTo = IDS[leader]!;
    const outcome = runners[follower]!.propose(
      encodeKvEntry({ type: "resendDelivered", marks: [] }),
    ).then(
      () => null,
      (error: Error) => error,
    );
    await waitFor("the forward", () => transports[follower]!.swallowed === 1);
    // The leader dies: cut from everyone.
    for (const id of IDS) {
      if (id !== IDS[leader]) network.setLinkCut(IDS[leader]!, id, true);
    }
    const error = await Promise.race([
      outcome,
      new Promise<string>((resolve) =>
        setTimeout(() => resolve("still waiting"), 20_000)
      ),
    ]);
    assert.ok(
      error instanceof ProposalOutcomeUnknownError,
      `expected outcome unknown, got ${String(error)}`,
    );
    assert.match(error.message, /leader/);
    assert.notEqual(runners[follower]!.status().leader, IDS[leader]);
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
  }
});

Deno.test("a strong read pending at a follower when the leader dies fails (retryably) as soon as the leader changes", async () => {
  const network = new InMemoryNetwork();
  const runners = IDS.map((id) => {
    const runner = new RaftRunner({
      id,
      voters: IDS,
      logStore: new MemoryLogStore(),
      stateMachine: new KvReplicatedState(
        new KvStateMachine(new MemoryStateStore()),
      ),
      transport: network.connect(id),
      tickMs: 10,
      requestTimeoutMs: 30_000,
    });
    runner.start();
    return runner;
  });
  try {
    const { leader, follower } = await leaderAndFollower(runners);
    // The leader dies with the follower's read on its way to it.
    for (const id of IDS) {
      if (id !== IDS[leader]) network.setLinkCut(IDS[leader]!, id, true);
    }
    const outcome = runners[follower]!.readIndex().then(
      () => null,
      (error: Error) => error,
    );
    const error = await Promise.race([
      outcome,
      new Promise<string>((resolve) =>
        setTimeout(() => resolve("still waiting"), 20_000)
      ),
    ]);
    assert.ok(
      error instanceof ProposalDroppedError,
      `expected a retryable refusal, got ${String(error)}`,
    );
    assert.match(error.message, /leader changed/);
  } finally {
    await Promise.all(runners.map((r) => r.stop()));
  }
});

Deno.test("QuicTransport fails a request at once when its signal is aborted", async () => {
  const clusterKey = await makeClusterKey();
  const a = await startQuicNode(clusterKey);
  const b = await startQuicNode(clusterKey);
  try {
    meshQuicNodes([a, b]);
    let asked = 0;
    b.transport.onRequest(() => {
      asked++;
      return new Promise(() => {}); // never answers
    });
    const abort = new AbortController();
    const result = a.transport.request(b.address.nodeId, {
      method: "forwardProposal",
      data: new Uint8Array([1]),
    }, { timeoutMs: 60_000, signal: abort.signal }).then(
      () => null,
      (error: Error) => error,
    );
    await waitFor("the request to arrive", () => asked === 1);
    abort.abort(new Error("the leader changed"));
    const error = await result;
    assert.ok(error instanceof RequestAbortedError, String(error));
    assert.match(error.message, /the leader changed/);
  } finally {
    await a.transport.close();
    await b.transport.close();
  }
});

/**
 * A leader and a follower that already knows it (right after an election a
 * follower may not have heard the leader's first heartbeat yet).
 */
async function leaderAndFollower(
  runners: readonly RaftRunner[],
): Promise<{ leader: number; follower: number }> {
  const pick = () => {
    const leader = runners.findIndex((r) => r.status().role === "leader");
    const follower = runners.findIndex((r, i) =>
      leader >= 0 && i !== leader && r.status().leader === IDS[leader]
    );
    return { leader, follower };
  };
  await waitFor("a leader and a follower that knows it", () => {
    const { leader, follower } = pick();
    return leader >= 0 && follower >= 0;
  });
  const found = pick();
  assert.ok(found.leader >= 0 && found.follower >= 0);
  return found;
}
