/**
 * One budget for every long-lived stream (issue 13, finding 6): HTTP
 * watches, KV Connect watches, queue listens and WebTransport watch streams
 * share the node's bound and each token's bound; past the token's a stream
 * is refused with 429 (`tooManyStreams`), past the node's with 503, and a
 * closed stream frees its slot.
 */
import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { encodeWatch } from "../src/frontends/kv_connect/mod.ts";
import {
  StreamBudget,
  StreamBudgetError,
} from "../src/frontends/common/stream_budget.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { decodeBase64Url } from "../src/base/base64.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode } from "../src/server/serve.ts";
import { encodeFrame, FrameDecoder } from "../src/protocol/frame.ts";
import { decode } from "@msgpack/msgpack";
import { waitFor } from "./helpers/wait_for.ts";

const HOST = "127.0.0.1";
const TOKEN_A = "stream-token-a-0123456789";
const TOKEN_B = "stream-token-b-0123456789";

Deno.test("StreamBudget bounds the node and each token, and a release is idempotent", () => {
  const budget = new StreamBudget(3, 2);
  const a1 = budget.acquire("a");
  budget.acquire("a");
  assert.throws(
    () => budget.acquire("a"),
    (e) => e instanceof StreamBudgetError && e.scope === "token",
  );
  budget.acquire("b");
  assert.throws(
    () => budget.acquire("c"),
    (e) => e instanceof StreamBudgetError && e.scope === "node",
  );
  a1.release();
  a1.release();
  assert.equal(budget.open, 2);
  budget.acquire("c");
  assert.equal(budget.open, 3);
  assert.throws(() => new StreamBudget(0, 1), RangeError);
});

Deno.test("HTTP watch, KV Connect watch, queue listen and WebTransport share one stream budget per node and per token", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-streams-" });
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: dir,
      httpPort: freeTcpPorts(HOST, 1)[0]!,
      quicPort: 0,
      tickMs: 20,
      tokens: [TOKEN_A, TOKEN_B],
      streamsMax: 4,
      streamsPerTokenMax: 3,
    }),
    { log: () => {} },
  );
  const open: Response[] = [];
  let transport: WebTransport | null = null;
  try {
    const deadline = Date.now() + 20_000;
    while (
      serving.node.runner.status().role !== "leader" && Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const httpWatch = (token: string) =>
      fetch(`${serving.url}/v1/kv/watch`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ keys: [["w"]] }),
      });
    const kvConnectWatch = (token: string) =>
      fetch(`${serving.url}/kv/strong/watch`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/x-protobuf",
          "x-denokv-version": "3",
          "x-denokv-database-id": serving.node.backend.databaseId,
        },
        body: encodeWatch({ keys: [encodeKey(["w"])] }) as BodyInit,
      });

    // Token A: an HTTP watch, a KV Connect watch and a WebTransport watch.
    const first = await httpWatch(TOKEN_A);
    assert.equal(first.status, 200);
    open.push(first);
    const second = await kvConnectWatch(TOKEN_A);
    assert.equal(second.status, 200);
    open.push(second);
    transport = new WebTransport(
      `https://127.0.0.1:${serving.node.address.quicPort}/v1/wt`,
      {
        serverCertificateHashes: [{
          algorithm: "sha-256",
          value: decodeBase64Url(
            serving.node.address.certificateHash,
          ) as Uint8Array<ArrayBuffer>,
        }],
      },
    );
    await transport.ready;
    const wt = await transport.createBidirectionalStream();
    const wtWriter = wt.writable.getWriter();
    await wtWriter.write(
      encodeFrame(
        encode({ method: "watch", token: TOKEN_A, keys: [encodeKey(["w"])] }),
      ),
    );
    const wtReader = wt.readable.getReader();
    const wtFirst = await readFrame(wtReader) as { entries?: unknown[] };
    assert.ok(Array.isArray(wtFirst.entries), "the WebTransport watch runs");
    await waitFor(
      "3 open client streams",
      () => serving.streams.open === 3,
      { timeoutMs: 15_000, intervalMs: 20 },
    );

    // A's fourth stream, of any kind, is refused: 429.
    const overToken = await httpWatch(TOKEN_A);
    assert.equal(overToken.status, 429);
    assert.equal((await overToken.json()).error.code, "tooManyStreams");
    const overTokenKv = await kvConnectWatch(TOKEN_A);
    assert.equal(overTokenKv.status, 429);
    await overTokenKv.body?.cancel();
    const listen = await fetch(`${serving.url}/v1/queue/listen`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN_A}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ queue: "jobs", waitMs: 100 }),
    });
    assert.equal(listen.status, 429);
    await listen.body?.cancel();

    // B takes the node's last slot, then the node is full: 503.
    const fourth = await httpWatch(TOKEN_B);
    assert.equal(fourth.status, 200);
    open.push(fourth);
    const overNode = await kvConnectWatch(TOKEN_B);
    assert.equal(overNode.status, 503);
    await overNode.body?.cancel();

    // Closing a stream frees its slot.
    await first.body!.cancel();
    open.shift();
    await waitFor(
      "3 open client streams",
      () => serving.streams.open === 3,
      { timeoutMs: 15_000, intervalMs: 20 },
    );
    const again = await httpWatch(TOKEN_B);
    assert.equal(again.status, 200);
    open.push(again);
    wtReader.releaseLock();
    wtWriter.releaseLock();
  } finally {
    for (const response of open) await response.body?.cancel();
    transport?.close();
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

async function readFrame(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): Promise<unknown> {
  const decoder = new FrameDecoder(1024 * 1024);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) throw new Error("stream ended");
    const frames = decoder.push(value);
    if (frames.length > 0) return decode(frames[0]!);
  }
}
