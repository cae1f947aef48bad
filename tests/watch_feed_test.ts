/**
 * Watches on the change feed (issue 14): a watch reads its keys once and
 * then follows the feed (no re-read per applied entry); one that falls
 * behind the feed's window, or whose state a snapshot replaced, re-reads and
 * yields the latest value; and a Raft node bounds watches on every front end
 * (HTTP, KV Connect, WebTransport) as the local backend does, with typed
 * refusals.
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { encodeKey } from "../src/model/key_codec.ts";
import type { KvEntry, KvRow } from "../src/model/types.ts";
import { LocalKvBackend } from "../src/server/local_backend.ts";
import type { KvBackend } from "../src/services/kv/api.ts";
import { RaftKvBackend } from "../src/node/raft_kv_backend.ts";
import { RaftRunner } from "../src/node/raft_runner.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { ChangeFeed } from "../src/state/change_feed.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { MemoryLogStore } from "../src/storage/memory_log_store.ts";
import { InMemoryNetwork } from "../src/transport/memory_transport.ts";
import { type LogIndex, nodeId, type Term } from "../src/raft/types.ts";
import { makeVersionstamp } from "../src/model/versionstamp.ts";
import { encodeWatch, kvConnectApp } from "../src/frontends/kv_connect/mod.ts";
import { serveClientSession } from "../src/frontends/webtransport/sessions.ts";
import { encodeFrame, FrameDecoder } from "../src/protocol/frame.ts";
import { setOperation } from "./helpers/node_kv.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { startTestCluster, TEST_TOKEN } from "./helpers/http_cluster.ts";

const KEY = encodeKey(["w"]);
const decoder = new TextDecoder();
const DEADLINE_MS = 20_000;

function text(entry: KvEntry | null | undefined): string | null {
  return entry === null || entry === undefined
    ? null
    : decoder.decode(entry.value.data);
}

async function next<T>(iterator: AsyncIterator<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out: ${what}`)),
      DEADLINE_MS,
    );
  });
  try {
    const result = await Promise.race([iterator.next(), deadline]);
    assert.equal(result.done, false);
    return result.value as T;
  } finally {
    clearTimeout(timer);
  }
}

async function oneNode() {
  const network = new InMemoryNetwork();
  const id = nodeId("n1");
  const state = new KvReplicatedState(
    new KvStateMachine(new MemoryStateStore(), {}, {
      changes: new ChangeFeed(),
    }),
  );
  const runner = new RaftRunner({
    id,
    voters: [id],
    logStore: new MemoryLogStore(),
    stateMachine: state,
    transport: network.connect(id),
    tickMs: 10,
    requestTimeoutMs: 5000,
  });
  runner.start();
  await waitFor("a leader", () => runner.status().role === "leader", 20_000);
  const backend = new RaftKvBackend(
    runner,
    state,
    "00000000-0000-4000-8000-000000000000",
  );
  return { runner, state, backend };
}

Deno.test("a Raft watch reads its keys once, then follows the feed instead of re-reading on every applied entry", async () => {
  const { runner, state, backend } = await oneNode();
  const abort = new AbortController();
  try {
    const machine = state.kv;
    const get = machine.get.bind(machine);
    let reads = 0;
    machine.get = (key: Uint8Array) => {
      reads++;
      return get(key);
    };
    const iterator = backend.watch([KEY], abort.signal)[Symbol.asyncIterator]();
    assert.equal(text((await next(iterator, "the first frame"))[0]), null);
    for (let i = 0; i < 20; i++) {
      assert.equal(
        (await backend.commit(setOperation(`other${i}`, "x"))).ok,
        true,
      );
    }
    assert.equal((await backend.commit(setOperation("w", "v1"))).ok, true);
    assert.equal(text((await next(iterator, "the change"))[0]), "v1");
    assert.equal(reads, 1, "one read for the first frame, none per entry");
  } finally {
    abort.abort();
    await runner.stop();
  }
});

Deno.test("a watch that fell behind the feed's window re-reads and yields the latest value", async () => {
  using backend = new LocalKvBackend({
    expirySweepIntervalMs: 0,
    changeFeed: { entriesMax: 2 },
  });
  const abort = new AbortController();
  const iterator = backend.watch([KEY], abort.signal)[Symbol.asyncIterator]();
  try {
    assert.equal(text((await next(iterator, "the first frame"))[0]), null);
    const start = backend.changes.revision;
    for (let i = 1; i <= 10; i++) {
      await backend.commit(setOperation("w", `v${i}`));
    }
    assert.ok(backend.changes.oldestRevision > start, "the window moved on");
    assert.equal(text((await next(iterator, "the latest value"))[0]), "v10");
  } finally {
    abort.abort();
    await iterator.return?.();
  }
});

Deno.test("a watch re-reads after a snapshot replaced the state", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const abort = new AbortController();
  const iterator = backend.watch([KEY], abort.signal)[Symbol.asyncIterator]();
  try {
    assert.equal(text((await next(iterator, "the first frame"))[0]), null);
    // A snapshot from another replica that has ["w"] = "snap" at index 50.
    const source = new KvStateMachine(new MemoryStateStore());
    const row: KvRow = {
      key: KEY,
      value: new TextEncoder().encode("snap"),
      encoding: "bytes",
      versionstamp: makeVersionstamp(50 as LogIndex),
      expireAtMs: null,
    };
    source.store.apply({
      puts: [row],
      deletes: [],
      appliedIndex: 50 as LogIndex,
    });
    const data = new KvReplicatedState(source).snapshotData();
    new KvReplicatedState(backend.stateMachine).installSnapshot({
      meta: {
        index: 50 as LogIndex,
        term: 1 as Term,
        confState: { voters: [], learners: [] },
      } as never,
      data,
    });
    assert.equal(
      text((await next(iterator, "the snapshot's value"))[0]),
      "snap",
    );
  } finally {
    abort.abort();
    await iterator.return?.();
  }
});

/** A WebTransport session in memory: the test opens streams, the server serves them. */
function memorySession() {
  const incoming = new TransformStream<WebTransportBidirectionalStream>();
  const closed = Promise.withResolvers<WebTransportCloseInfo>();
  const writer = incoming.writable.getWriter();
  const session = {
    incomingBidirectionalStreams: incoming.readable,
    closed: closed.promise,
  } as unknown as WebTransport;
  return {
    session,
    async open(request: unknown) {
      const up = new TransformStream<Uint8Array, Uint8Array>();
      const down = new TransformStream<Uint8Array, Uint8Array>();
      await writer.write(
        {
          readable: up.readable,
          writable: down.writable,
        } as unknown as WebTransportBidirectionalStream,
      );
      const w = up.writable.getWriter();
      await w.write(encodeFrame(encode(request)));
      const reader = down.readable.getReader();
      const frames = new FrameDecoder(1024 * 1024);
      let queued: Uint8Array[] = [];
      return {
        async read(): Promise<Record<string, unknown>> {
          while (queued.length === 0) {
            const { done, value } = await reader.read();
            if (done) throw new Error("stream ended");
            queued = frames.push(value);
          }
          return decode(queued.shift()!) as Record<string, unknown>;
        },
      };
    },
    close() {
      closed.resolve({ closeCode: 0, reason: "" });
    },
  };
}

function httpWatch(app: { request: typeof fetch }, key: string) {
  return app.request("http://127.0.0.1/v1/kv/watch", {
    method: "POST",
    headers: {
      authorization: `Bearer ${TEST_TOKEN}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ keys: [[key]] }),
  });
}

Deno.test("a Raft node refuses a watch past its bound on every front end, and a closed watch frees its slot", async () => {
  const cluster = await startTestCluster({ backend: { watchersMax: 2 } });
  const wt = memorySession();
  const open: Response[] = [];
  try {
    const node = cluster.leader()!;
    const app = cluster.apps[cluster.nodes.indexOf(node)]!;
    // The node's stream budget is far larger: the backend's bound refuses.
    const first = await httpWatch(app as never, "a");
    assert.equal(first.status, 200);
    open.push(first);
    void serveClientSession(wt.session, node.backend as KvBackend, [
      TEST_TOKEN,
    ]);
    const stream = await wt.open({
      method: "watch",
      token: TEST_TOKEN,
      keys: [KEY],
    });
    assert.ok(Array.isArray((await stream.read()).entries));
    await waitFor("two watches", () => watchesOpen(node.backend) === 2);

    const overHttp = await httpWatch(app as never, "b");
    assert.equal(overHttp.status, 503);
    assert.equal((await overHttp.json()).error.code, "unavailable");

    const kvConnect = kvConnectApp({
      backend: node.backend,
      tokens: [TEST_TOKEN],
      path: "/kv",
      selfUrl: "http://127.0.0.1",
    });
    const overKv = await kvConnect.request("http://127.0.0.1/kv/strong/watch", {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_TOKEN}`,
        "content-type": "application/x-protobuf",
        "x-denokv-version": "3",
        "x-denokv-database-id": node.backend.databaseId,
      },
      body: encodeWatch({ keys: [KEY] }) as BodyInit,
    });
    assert.equal(overKv.status, 503);
    await overKv.body?.cancel();

    const overWt = await wt.open({
      method: "watch",
      token: TEST_TOKEN,
      keys: [KEY],
    });
    assert.deepEqual(
      (await overWt.read()).error,
      {
        code: "unavailable",
        message: "Cannot watch: 2 watches are open already",
      },
    );

    // Closing the HTTP watch frees its slot.
    await open.pop()!.body!.cancel();
    await waitFor("a freed slot", () => watchesOpen(node.backend) === 1);
    const again = await httpWatch(app as never, "c");
    assert.equal(again.status, 200);
    open.push(again);
  } finally {
    for (const response of open) await response.body?.cancel();
    wt.close();
    await cluster.stop();
  }
});

function watchesOpen(backend: RaftKvBackend): number {
  return backend.watchesOpen;
}
