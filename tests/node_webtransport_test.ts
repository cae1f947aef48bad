/** Client streaming over WebTransport on the node's QUIC port: watch. */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { connect } from "../mod.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { decodeBase64Url } from "../src/base/base64.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode } from "../src/server/serve.ts";
import { encodeFrame, FrameDecoder } from "../src/protocol/frame.ts";

async function readFrame(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  decoder: FrameDecoder,
): Promise<unknown> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { done, value } = await reader.read();
    if (done) throw new Error("stream ended");
    const frames = decoder.push(value);
    if (frames.length > 0) return decode(frames[0]!);
  }
  throw new Error("no frame within 10 s");
}

Deno.test("a WebTransport client watches keys on the node's QUIC port and sees each change", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-wt-" });
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: dir,
      httpPort: freeTcpPorts("127.0.0.1", 1)[0]!,
      quicPort: 0,
      tickMs: 20,
    }),
    { log: () => {} },
  );
  let transport: WebTransport | null = null;
  try {
    const node = serving.node;
    const deadline = Date.now() + 10_000;
    while (node.runner.status().role !== "leader" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const token = serving.kvConnectTokens[0]!;
    const client = connect(serving.url, { token });
    await client.kv.set(["watched"], new TextEncoder().encode("one"));

    transport = new WebTransport(
      `https://127.0.0.1:${node.address.quicPort}/v1/wt`,
      {
        serverCertificateHashes: [{
          algorithm: "sha-256",
          value: decodeBase64Url(node.address.certificateHash) as Uint8Array<
            ArrayBuffer
          >,
        }],
      },
    );
    await transport.ready;
    const stream = await transport.createBidirectionalStream();
    const writer = stream.writable.getWriter();
    await writer.write(
      encodeFrame(
        encode({
          method: "watch",
          token,
          keys: [encodeKey(["watched"]), encodeKey(["absent"])],
        }),
      ),
    );
    const reader = stream.readable.getReader();
    const decoder = new FrameDecoder(1024 * 1024);
    type Frame = { entries: ({ value: { data: Uint8Array } } | null)[] };
    const first = await readFrame(reader, decoder) as Frame;
    assert.equal(new TextDecoder().decode(first.entries[0]!.value.data), "one");
    assert.equal(first.entries[1], null);
    await client.kv.set(["watched"], new TextEncoder().encode("two"));
    const second = await readFrame(reader, decoder) as Frame;
    assert.equal(
      new TextDecoder().decode(second.entries[0]!.value.data),
      "two",
    );

    // A bad request on another stream is refused with a typed error frame.
    const ask = async (request: Record<string, unknown>) => {
      const stream = await transport!.createBidirectionalStream();
      const w = stream.writable.getWriter();
      await w.write(encodeFrame(encode(request)));
      w.releaseLock();
      return await readFrame(
        stream.readable.getReader(),
        new FrameDecoder(1024),
      ) as { error: { code: string } };
    };
    const refusal = await ask({ method: "drop-table", token, keys: [] });
    assert.equal(refusal.error.code, "badRequest");
    // Without the cluster token nothing is served.
    const anonymous = await ask({
      method: "watch",
      keys: [encodeKey(["watched"])],
    });
    assert.equal(anonymous.error.code, "unauthorized");
    reader.releaseLock();
    writer.releaseLock();
  } finally {
    transport?.close();
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
