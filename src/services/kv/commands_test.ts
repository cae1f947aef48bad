import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeCommand } from "./commands.ts";
import { decodeKvEntry, encodeKvEntry as encodeCommand } from "../entries.ts";
import { KvInvalidError } from "../../model/errors.ts";
import type { KvCommand, KvMutation } from "../../model/types.ts";
import {
  makeVersionstamp,
  versionstampFromString,
  versionstampIndex,
  versionstampToString,
} from "../../model/versionstamp.ts";
import { logIndex } from "../../raft/types.ts";

const bytes = fc.uint8Array({ maxLength: 8 });
const value = fc.record({
  encoding: fc.constantFrom("v8" as const, "bytes" as const, "le64" as const),
  data: bytes,
});
const mutation: fc.Arbitrary<KvMutation> = fc.oneof(
  fc.record({
    type: fc.constantFrom(
      "set" as const,
      "setSuffixVersionstampedKey" as const,
    ),
    key: bytes,
    value,
    expireAtMs: fc.option(fc.nat()),
  }),
  fc.record({ type: fc.constant("delete" as const), key: bytes }),
  fc.record({
    type: fc.constant("sum" as const),
    key: bytes,
    value,
    sumMin: fc.option(bytes),
    sumMax: fc.option(bytes),
    sumClamp: fc.boolean(),
  }),
  fc.record({
    type: fc.constantFrom("min" as const, "max" as const),
    key: bytes,
    value,
  }),
);
const command: fc.Arbitrary<KvCommand> = fc.oneof(
  fc.record({
    type: fc.constant("atomic" as const),
    operation: fc.record({
      checks: fc.array(
        fc.record({
          key: bytes,
          versionstamp: fc.option(
            fc.uint8Array({ minLength: 10, maxLength: 10 }),
          ),
        }),
        { maxLength: 3 },
      ),
      mutations: fc.array(mutation, { maxLength: 4 }),
      enqueues: fc.array(
        fc.record({
          payload: bytes,
          deadlineMs: fc.nat(),
          keysIfUndelivered: fc.array(bytes, { maxLength: 2 }),
          backoffSchedule: fc.option(fc.array(fc.nat(), { maxLength: 3 })),
        }),
        { maxLength: 2 },
      ),
    }),
  }),
  fc.record({
    type: fc.constant("expire" as const),
    timestampMs: fc.nat(),
    keyCountMax: fc.nat(),
  }),
);

Deno.test("encodeCommand() and decodeCommand() round-trip every command", () => {
  fc.assert(
    fc.property(command, (original) => {
      assert.deepEqual(
        decodeKvEntry(encodeCommand(original)),
        structuredClone(original),
      );
    }),
    { numRuns: 300 },
  );
});

Deno.test("decodeCommand() refuses anything but a command with KvInvalidError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (data) => {
      try {
        decodeCommand(data);
      } catch (error) {
        assert.ok(error instanceof KvInvalidError, String(error));
      }
    }),
    { numRuns: 500 },
  );
  assert.throws(
    () => decodeCommand(new Uint8Array([0x93, 0x02, 0x01, 0xff])),
    KvInvalidError,
  );
});

Deno.test("makeVersionstamp() puts the index big-endian before the counter", async (t) => {
  const cases: Array<[number, number, string]> = [
    [1, 0, "00000000000000010000"],
    [0x0102030405, 7, "00000001020304050007"],
    [Number.MAX_SAFE_INTEGER, 0xffff, "001fffffffffffffffff"],
  ];
  for (const [index, counter, hex] of cases) {
    await t.step(hex, () => {
      const stamp = makeVersionstamp(logIndex(index), counter);
      assert.equal(versionstampToString(stamp), hex);
      assert.deepEqual(versionstampFromString(hex), stamp);
      assert.equal(versionstampIndex(stamp), index);
    });
  }
  assert.throws(() => makeVersionstamp(logIndex(0)), RangeError);
  assert.throws(() => makeVersionstamp(logIndex(1), 0x10000), RangeError);
  assert.throws(() => versionstampFromString("00"), TypeError);
});

Deno.test("encodeCommand() round-trips resends (with and without a session) and delivery marks, and refuses bad ones", () => {
  const digest = new Uint8Array(32).fill(9);
  const resend = { clientId: "dp:x", digest, mergeable: true, atMs: 12 };
  const commands: KvCommand[] = [
    {
      type: "atomic",
      operation: { checks: [], mutations: [], enqueues: [], resend },
    },
    {
      type: "atomic",
      operation: {
        checks: [],
        mutations: [],
        enqueues: [],
        session: { clientId: "node-a", seq: 3 },
        resend: { ...resend, mergeable: false },
      },
    },
    {
      type: "resendDelivered",
      marks: [{ clientId: "dp:x", digest, index: 7 }],
    },
  ];
  for (const command of commands) {
    assert.deepEqual(decodeKvEntry(encodeCommand(command)), command);
  }
  const bad: KvCommand = {
    type: "resendDelivered",
    marks: [{ clientId: "dp:x", digest: new Uint8Array(3), index: 7 }],
  };
  assert.throws(() => decodeKvEntry(encodeCommand(bad)), KvInvalidError);
});

Deno.test("encodeCommand() round-trips an atomic operation's pub/sub step, with and without coordination checks and resends", () => {
  const name = fc.stringMatching(/^[a-z0-9._-]{1,8}$/);
  const step = fc.record({
    nowMs: fc.nat(),
    publishes: fc.array(
      fc.record({
        topic: name,
        producerId: fc.option(name),
        value: bytes,
        encoding: fc.constantFrom("v8" as const, "bytes" as const),
        key: fc.option(fc.string({ maxLength: 4 })),
        headers: fc.array(fc.tuple(name, fc.string({ maxLength: 4 })), {
          maxLength: 2,
        }),
        partition: fc.option(fc.nat(255)),
        sequence: fc.option(fc.nat()),
        deliverAtMs: fc.option(fc.nat()),
      }),
      { maxLength: 3 },
    ),
    acks: fc.array(
      fc.record({
        topic: name,
        group: name,
        memberId: name,
        generation: fc.nat(),
        partition: fc.nat(255),
        offset: fc.nat(),
      }),
      { maxLength: 3 },
    ),
  });
  fc.assert(
    fc.property(
      step,
      fc.boolean(),
      fc.boolean(),
      (pubsub, withCoordination, withResend) => {
        const original: KvCommand = {
          type: "atomic",
          operation: {
            checks: [],
            mutations: [],
            enqueues: [],
            ...(withCoordination
              ? {
                coordinationChecks: [{
                  kind: "lease" as const,
                  lease: "0123456789abcdef",
                  position: 0,
                }],
              }
              : {}),
            ...(withResend
              ? {
                resend: {
                  clientId: "c",
                  digest: new Uint8Array(32),
                  mergeable: false,
                  atMs: 1,
                },
              }
              : {}),
            pubsub,
          },
        };
        assert.deepEqual(
          decodeKvEntry(encodeCommand(original)),
          structuredClone(original),
        );
      },
    ),
    { numRuns: 200 },
  );
});
