import assert from "node:assert/strict";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  decodeAtomicWrite,
  decodeAtomicWriteOutput,
  decodeSnapshotRead,
  decodeWatch,
  encodeAtomicWrite,
  encodeAtomicWriteOutput,
  encodeSnapshotRead,
  encodeWatch,
  type PbAtomicWrite,
  ProtobufDecodeError,
} from "./proto.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("encodeAtomicWrite() and decodeAtomicWrite() round-trip every field", () => {
  const message: PbAtomicWrite = {
    checks: [{ key: bytes(1), versionstamp: new Uint8Array(10).fill(3) }],
    mutations: [{
      key: bytes(2),
      value: { data: bytes(9, 9), encoding: 3 },
      mutationType: 3,
      expireAtMs: 1_700_000_000_000n,
      sumMin: bytes(1),
      sumMax: bytes(2),
      sumClamp: true,
    }],
    enqueues: [{
      payload: bytes(5),
      deadlineMs: 42n,
      keysIfUndelivered: [bytes(6), bytes(7)],
      backoffSchedule: [100, 1000, 5000],
    }],
  };
  assert.deepEqual(decodeAtomicWrite(encodeAtomicWrite(message)), message);
  const read = {
    ranges: [{ start: bytes(1), end: bytes(2), limit: 7, reverse: true }],
  };
  assert.deepEqual(decodeSnapshotRead(encodeSnapshotRead(read)), read);
  const watch = { keys: [bytes(1), bytes(2, 3)] };
  assert.deepEqual(decodeWatch(encodeWatch(watch)), watch);
});

Deno.test("decodeAtomicWriteOutput() reads packed and unpacked failed_checks and skips unknown fields", () => {
  const packed = encodeAtomicWriteOutput({
    status: 2,
    versionstamp: new Uint8Array(0),
    failedChecks: [0, 300],
  });
  assert.deepEqual(decodeAtomicWriteOutput(packed).failedChecks, [0, 300]);
  const unpacked = new BinaryWriter()
    .tag(1, WireType.Varint).int32(2)
    .tag(4, WireType.Varint).uint32(1)
    .tag(4, WireType.Varint).uint32(5)
    .tag(99, WireType.LengthDelimited).bytes(bytes(1, 2, 3))
    .finish();
  assert.deepEqual(decodeAtomicWriteOutput(unpacked), {
    status: 2,
    versionstamp: new Uint8Array(0),
    failedChecks: [1, 5],
  });
});

Deno.test("decodeSnapshotRead() refuses malformed input with ProtobufDecodeError", () => {
  for (
    const input of [
      bytes(0x0a, 0x05, 0x01),
      bytes(0x08, 0x01),
      bytes(0x0a, 0x02, 0x18, 0xff),
      bytes(0x07),
    ]
  ) {
    assert.throws(() => decodeSnapshotRead(input), ProtobufDecodeError);
  }
});
