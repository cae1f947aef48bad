import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { encodeKvEntry as encodeCommand } from "../entries.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { KvStateMachine } from "../state_machine.ts";
import type { LogIndex } from "../../raft/types.ts";
import type { KvResendMark } from "../../model/types.ts";

const CLIENT_ID = "dp:a";
const encoder = new TextEncoder();

function stockSet(n: number, digest: Uint8Array): Uint8Array {
  return encodeCommand({
    type: "atomic",
    operation: {
      checks: [],
      mutations: [{
        type: "set",
        key: encodeKey(["k", n]),
        value: { encoding: "bytes", data: new Uint8Array([n]) },
        expireAtMs: null,
      }],
      enqueues: [],
      resend: { clientId: CLIENT_ID, digest, mergeable: true, atMs: 1000 + n },
    },
  });
}

function recordKey(digest: Uint8Array): Uint8Array {
  return new Uint8Array([
    0xff,
    0x6b,
    0x71,
    ...encoder.encode(CLIENT_ID),
    0,
    ...digest,
  ]);
}

Deno.test("KvStateMachine.apply() of a delivery mark stores the record re-encoded with delivered = true, byte for byte", () => {
  const store = new MemoryStateStore();
  const kv = new KvStateMachine(store);
  const digests = [1, 2, 3].map((n) => new Uint8Array(32).fill(n));
  let index = 0;
  const marks: KvResendMark[] = digests.map((digest, n) => {
    kv.apply(++index as LogIndex, stockSet(n, digest));
    return { clientId: CLIENT_ID, digest, index };
  });
  const before = digests.map((digest) => store.get(recordKey(digest))!.value);
  // The second mark names an index the record no longer holds: ignored.
  kv.apply(
    ++index as LogIndex,
    encodeCommand({
      type: "resendDelivered",
      marks: [marks[0]!, { ...marks[1]!, index: 99 }, marks[2]!],
    }),
  );
  for (const [n, digest] of digests.entries()) {
    const after = store.get(recordKey(digest))!.value;
    const [result, atMs, recordIndex, delivered] = decode(before[n]!) as [
      unknown,
      number,
      number,
      boolean,
    ];
    assert.equal(delivered, false);
    const expected = n === 1
      ? before[n]!
      : encode([result, atMs, recordIndex, true]);
    assert.deepEqual(after, expected);
  }
  // A marked record answers no resend: the same write applies again.
  const again = kv.apply(++index as LogIndex, stockSet(0, digests[0]!));
  assert.equal(again.ok, true);
  assert.equal(again.index, index);
  // The unmarked one still answers its resend with the first result.
  const resent = kv.apply(++index as LogIndex, stockSet(1, digests[1]!));
  assert.equal(resent.index, 2);
});
