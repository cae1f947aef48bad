import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import {
  concatFrames,
  decodeEnvelope,
  encodeEnvelope,
  encodeEnvelopeFrame,
  encodeFrame,
  type Envelope,
  FrameDecoder,
  FrameTooLargeError,
  MESSAGE_SCHEMAS,
  ProtocolError,
} from "../src/protocol/mod.ts";
import { SAMPLE_MESSAGES } from "./helpers/transport_messages.ts";

function protocolError(code: string) {
  return (error: unknown) => {
    assert.ok(
      error instanceof ProtocolError,
      `expected ProtocolError, got ${error}`,
    );
    assert.equal(error.code, code, error.message);
    return true;
  };
}

Deno.test("decodeEnvelope() round-trips every Raft message type", async (t) => {
  for (const [type, message] of Object.entries(SAMPLE_MESSAGES)) {
    await t.step(type, () => {
      const decoded = decodeEnvelope(encodeEnvelope({ kind: "raft", message }));
      assert.deepEqual(decoded, { kind: "raft", message });
    });
  }
  assert.equal(
    Object.keys(SAMPLE_MESSAGES).length,
    Object.keys(MESSAGE_SCHEMAS).length,
  );
});

Deno.test("decodeEnvelope() round-trips handshake, RPC and snapshot envelopes", () => {
  const bytes = new Uint8Array([9, 8, 7]);
  const envelopes: Envelope[] = [
    {
      kind: "hello",
      version: 1,
      purpose: "raft",
      clusterId: bytes,
      nodeKey: bytes,
      nonce: bytes,
    },
    {
      kind: "challenge",
      nodeKey: bytes,
      nonce: bytes,
      credential: bytes,
      certificateRecord: bytes,
      signature: bytes,
    },
    { kind: "proof", credential: null, joinToken: bytes, signature: bytes },
    { kind: "welcome" },
    { kind: "close", code: "badSignature", reason: "Signature did not verify" },
    {
      kind: "request",
      id: 7,
      request: { method: "forwardProposal", data: bytes },
    },
    {
      kind: "request",
      id: 8,
      request: { method: "forwardReadIndex", context: bytes },
    },
    {
      kind: "request",
      id: 9,
      request: {
        method: "join",
        nodeId: "n1",
        nodeKey: bytes,
        quicAddresses: ["127.0.0.1:4433"],
        httpUrls: [],
      },
    },
    { kind: "response", id: 7, result: { ok: true, data: bytes } },
    {
      kind: "response",
      id: 8,
      result: { ok: false, code: "notLeader", message: "No", leader: "n2" },
    },
    { kind: "snapshotChunk", id: 1, offset: 65536, last: true, data: bytes },
  ];
  for (const envelope of envelopes) {
    assert.deepEqual(decodeEnvelope(encodeEnvelope(envelope)), envelope);
  }
});

Deno.test("decodeEnvelope() refuses garbage bytes with a ProtocolError", () => {
  const garbage = [
    new Uint8Array([0xc1]), // never-used MessagePack byte
    new Uint8Array([0xff, 0x00, 0x13, 0x37]),
    new Uint8Array(0),
    new TextEncoder().encode("GET / HTTP/1.1\r\n"),
    new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 claiming 4 billion items
  ];
  for (const bytes of garbage) {
    assert.throws(
      () => decodeEnvelope(bytes),
      (error: unknown) => error instanceof ProtocolError,
    );
  }
  // Valid MessagePack of the wrong shape is refused too.
  assert.throws(
    () => decodeEnvelope(encode({ type: "app" })),
    protocolError("malformedPayload"),
  );
  assert.throws(
    () => decodeEnvelope(encode("hello")),
    protocolError("malformedPayload"),
  );
});

Deno.test("decodeEnvelope() refuses unknown frame kinds and unknown Raft message types", () => {
  assert.throws(
    () => decodeEnvelope(encode([99])),
    protocolError("unknownFrameKind"),
  );
  assert.throws(
    () => decodeEnvelope(encode(["raft"])),
    protocolError("unknownFrameKind"),
  );
  assert.throws(
    () => decodeEnvelope(encode([0, 250, "a", "b", 1])),
    protocolError("unknownMessageType"),
  );
  assert.throws(
    () => decodeEnvelope(encode([6, 1, 250, new Uint8Array(1)])),
    protocolError("unknownMessageType"),
  );
});

Deno.test("decodeEnvelope() refuses wrong field types, naming the field", async (t) => {
  const cases: [string, unknown[], string][] = [
    ["term as string", [0, 7, "a", "b", "1", 0, 0, new Uint8Array()], "term"],
    ["negative commit", [0, 7, "a", "b", 1, -1, 0, new Uint8Array()], "commit"],
    ["fractional term", [0, 7, "a", "b", 1.5, 0, 0, new Uint8Array()], "term"],
    ["empty node id", [0, 7, "", "b", 1, 0, 0, new Uint8Array()], "from"],
    ["reject as number", [0, 5, "a", "b", 1, 1], "reject"],
    ["snapshot voters not node ids", [
      0,
      9,
      "a",
      "b",
      1,
      [1, 1, [3], [], []],
      0,
      new Uint8Array(),
      false,
    ], "meta.confState.voters"],
    ["entries not array", [0, 1, "a", "b", 1, 0, 0, "x", 0], "entries"],
    [
      "entry data not binary",
      [0, 1, "a", "b", 1, 0, 0, [[1, 1, 0, "text"]], 0],
      "entries[0].data",
    ],
    ["entry type unknown", [0, 1, "a", "b", 1, 0, 0, [[
      1,
      1,
      7,
      new Uint8Array(),
    ]], 0], "entries[0].type"],
    ["too few fields", [0, 7, "a", "b", 1], "7 elements"],
    ["too many fields", [0, 11, "a", "b", 1, 2], "4 elements"],
    ["close reason not text", [5, "x", 3], "reason"],
    ["hello nonce not binary", [
      1,
      1,
      "raft",
      new Uint8Array(),
      new Uint8Array(),
      "nonce",
    ], "nonce"],
  ];
  for (const [name, wire, mention] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeEnvelope(encode(wire)), (error: unknown) => {
        assert.ok(error instanceof ProtocolError);
        assert.ok(
          error.message.includes(mention),
          `'${error.message}' should mention '${mention}'`,
        );
        return true;
      });
    });
  }
});

Deno.test("FrameDecoder.push() reassembles frames split and coalesced anywhere", () => {
  const payloads = [
    new Uint8Array([1]),
    new Uint8Array(0),
    new Uint8Array(300).fill(7),
    new Uint8Array([4, 5]),
  ];
  const stream = concatFrames(payloads.map((payload) => encodeFrame(payload)));
  for (const chunkBytes of [1, 2, 3, 5, 7, 64, stream.length]) {
    const decoder = new FrameDecoder();
    const out: Uint8Array[] = [];
    for (let offset = 0; offset < stream.length; offset += chunkBytes) {
      out.push(...decoder.push(stream.slice(offset, offset + chunkBytes)));
    }
    assert.deepEqual(out, payloads, `chunk size ${chunkBytes}`);
    assert.equal(decoder.bufferedBytes, 0);
    decoder.finish();
  }
});

Deno.test("FrameDecoder.finish() refuses a truncated frame", () => {
  const frame = encodeEnvelopeFrame({
    kind: "raft",
    message: SAMPLE_MESSAGES.app,
  });
  for (const cut of [1, 3, 4, frame.length - 1]) {
    const decoder = new FrameDecoder();
    assert.equal(decoder.push(frame.subarray(0, cut)).length, 0);
    assert.throws(() => decoder.finish(), protocolError("truncatedFrame"));
  }
});

Deno.test("FrameDecoder.push() refuses an oversize length prefix before allocating", () => {
  const decoder = new FrameDecoder(1024);
  const header = new Uint8Array([0xff, 0xff, 0xff, 0xf0]);
  assert.throws(() => decoder.push(header), (error: unknown) => {
    assert.ok(error instanceof FrameTooLargeError);
    assert.equal(error.frameBytes, 0xfffffff0);
    assert.equal(error.frameBytesMax, 1024);
    assert.equal(error.code, "frameTooLarge");
    return true;
  });
  // Exactly at the limit is accepted; the default limit is 16 MiB.
  assert.equal(
    new FrameDecoder(4).push(encodeFrame(new Uint8Array(4))).length,
    1,
  );
  assert.throws(
    () => new FrameDecoder().push(new Uint8Array([1, 0, 0, 1])),
    FrameTooLargeError,
  );
  assert.throws(() => encodeFrame(new Uint8Array(5), 4), FrameTooLargeError);
  assert.throws(() => new FrameDecoder(0), RangeError);
});

Deno.test("FrameDecoder.push() keeps earlier payloads intact while buffering more", () => {
  const decoder = new FrameDecoder();
  const first = encodeFrame(new Uint8Array([1, 2, 3]));
  const second = encodeFrame(new Uint8Array(100_000).fill(9));
  const [payload] = decoder.push(concatFrames([first, second.subarray(0, 10)]));
  assert.ok(payload);
  for (let offset = 10; offset < second.length; offset += 999) {
    decoder.push(second.slice(offset, offset + 999));
  }
  assert.deepEqual(payload, new Uint8Array([1, 2, 3]));
  assert.equal(decoder.bufferedBytes, 0);
});
