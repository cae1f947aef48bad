import assert from "node:assert/strict";
import {
  KvInvalidError,
  KvLimitError,
  type KvUnsupportedError,
} from "./errors.ts";
import { KV_LIMITS, validateAtomic, validateWatchKeys } from "./limits.ts";
import type { KvAtomicOperation, KvEnqueue, KvMutation } from "./types.ts";

const key = (length: number) => new Uint8Array(length).fill(0x61);
const set = (keyLength: number, valueLength: number): KvMutation => ({
  type: "set",
  key: key(keyLength),
  value: { encoding: "bytes", data: new Uint8Array(valueLength) },
});
const op = (parts: Partial<KvAtomicOperation>): KvAtomicOperation => ({
  checks: [],
  mutations: [],
  enqueues: [],
  ...parts,
});
const enqueue = (parts: Partial<KvEnqueue>): KvEnqueue => ({
  payload: new Uint8Array(1),
  deadlineMs: 1000,
  keysIfUndelivered: [],
  backoffSchedule: null,
  ...parts,
});

Deno.test("validateAtomic() accepts operations at Deno's limits", () => {
  validateAtomic(
    op({
      mutations: [set(KV_LIMITS.writeKeyBytesMax, KV_LIMITS.valueBytesMax)],
    }),
  );
  validateAtomic(
    op({
      checks: Array.from(
        { length: 100 },
        () => ({ key: key(1), versionstamp: null }),
      ),
    }),
  );
  validateAtomic(
    op({
      mutations: Array.from(
        { length: 1000 },
        () => ({ type: "delete", key: key(1) }),
      ),
    }),
  );
  validateAtomic(op({}));
});

Deno.test("validateAtomic() throws Deno's errors past the limits", async (t) => {
  const cases: Array<
    [
      string,
      KvAtomicOperation,
      typeof KvLimitError | typeof KvInvalidError | typeof KvUnsupportedError,
      string,
    ]
  > = [
    [
      "key too large",
      op({ mutations: [set(2049, 1)] }),
      KvLimitError,
      "Key too large for write (max 2048 bytes)",
    ],
    [
      "value too large",
      op({ mutations: [set(1, 65537)] }),
      KvLimitError,
      "Value too large (max 65536 bytes)",
    ],
    [
      "too many checks",
      op({
        checks: Array.from(
          { length: 101 },
          () => ({ key: key(1), versionstamp: null }),
        ),
      }),
      KvLimitError,
      "Too many checks (max 100)",
    ],
    [
      "too many mutations",
      op({
        mutations: Array.from(
          { length: 1001 },
          () => ({ type: "delete", key: key(1) }) as KvMutation,
        ),
      }),
      KvLimitError,
      "Too many mutations (max 1000)",
    ],
    [
      "mutations plus enqueues",
      op({
        mutations: Array.from(
          { length: 1000 },
          () => ({ type: "delete", key: key(1) }) as KvMutation,
        ),
        enqueues: [enqueue({})],
      }),
      KvLimitError,
      "Too many mutations (max 1000)",
    ],
    [
      "total size",
      op({ mutations: Array.from({ length: 13 }, () => set(10, 65000)) }),
      KvLimitError,
      "Total mutation size too large (max 819200 bytes)",
    ],
    [
      "total key size",
      op({ mutations: Array.from({ length: 41 }, () => set(2000, 1)) }),
      KvLimitError,
      "Total key size too large (max 81920 bytes)",
    ],
    [
      "empty key",
      op({ mutations: [{ type: "delete", key: key(0) }] }),
      KvInvalidError,
      "key cannot be empty",
    ],
    [
      "short versionstamp",
      op({ checks: [{ key: key(1), versionstamp: new Uint8Array(9) }] }),
      KvInvalidError,
      "Invalid check",
    ],
    [
      "le64 of 7 bytes",
      op({
        mutations: [{
          type: "sum",
          key: key(1),
          value: { encoding: "le64", data: new Uint8Array(7) },
        }],
      }),
      KvInvalidError,
      "Invalid mutation 'sum' at index 0: a le64 value must be 8 bytes, received 7",
    ],
    [
      "negative deadline",
      op({ mutations: [{ ...set(1, 1), expireAtMs: -1 } as KvMutation] }),
      KvInvalidError,
      "Invalid mutation 'set' at index 0: 'expireAtMs' must be a non-negative integer: received -1",
    ],
    [
      "too many keysIfUndelivered",
      op({
        enqueues: [enqueue({
          keysIfUndelivered: Array.from({ length: 11 }, () => key(1)),
        })],
      }),
      KvLimitError,
      "Too many keysIfUndelivered (max 10)",
    ],
    [
      "too many backoff intervals",
      op({ enqueues: [enqueue({ backoffSchedule: Array(11).fill(1) })] }),
      KvLimitError,
      "Invalid backoffSchedule, max 10 intervals allowed",
    ],
    [
      "backoff interval over 1 h",
      op({ enqueues: [enqueue({ backoffSchedule: [1, 3_600_001] })] }),
      KvLimitError,
      "Invalid backoffSchedule, interval at index 1 is invalid",
    ],
    [
      "enqueue payload",
      op({ enqueues: [enqueue({ payload: new Uint8Array(65537) })] }),
      KvLimitError,
      "enqueue payload too large (max 65536 bytes)",
    ],
    [
      "invalid queue name",
      op({ enqueues: [enqueue({ queue: "no spaces" })] }),
      KvInvalidError,
      "Invalid queue name: expected up to 64 characters of A-Z, a-z, 0-9, '.', '_', ':', '-': received 'no spaces'",
    ],
    [
      "reserved key (set)",
      op({
        mutations: [{
          type: "set",
          key: new Uint8Array([0xff, 0x71]),
          value: { encoding: "bytes", data: new Uint8Array(1) },
        }],
      }),
      KvInvalidError,
      "Invalid key: keys starting with byte 0xff are reserved",
    ],
    [
      "reserved key (check)",
      op({ checks: [{ key: new Uint8Array([0xff]), versionstamp: null }] }),
      KvInvalidError,
      "Invalid key: keys starting with byte 0xff are reserved",
    ],
    [
      "reserved key (keysIfUndelivered)",
      op({
        enqueues: [enqueue({ keysIfUndelivered: [new Uint8Array([0xff])] })],
      }),
      KvInvalidError,
      "Invalid key: keys starting with byte 0xff are reserved",
    ],
  ];
  for (const [name, operation, error, message] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => validateAtomic(operation, 0),
        (e: unknown) => e instanceof error && (e as Error).message === message,
      );
    });
  }
});

Deno.test("validateAtomic() bounds enqueue delays only when given the proposer's clock", () => {
  const far = op({
    enqueues: [enqueue({ deadlineMs: 1000 + KV_LIMITS.queueDelayMsMax + 1 })],
  });
  assert.throws(
    () => validateAtomic(far, 1000),
    (e: unknown) =>
      e instanceof KvLimitError &&
      e.message === "Delay cannot be greater than 30 days: received 2592000001",
  );
  // At apply time there is no clock: the delay was bounded by the proposer.
  validateAtomic(far);
});

Deno.test("validateAtomic() accepts enqueues, named queues included", () => {
  validateAtomic(op({ enqueues: [enqueue({})] }), 0);
  validateAtomic(op({ enqueues: [enqueue({ queue: "mail.out:1" })] }), 0);
  validateAtomic(op({ enqueues: [enqueue({ queue: "" })] }), 0);
});

Deno.test("KvLimitError is a TypeError carrying the limit", () => {
  try {
    validateWatchKeys(11);
    assert.fail("expected a throw");
  } catch (error) {
    assert.ok(error instanceof TypeError && error instanceof KvLimitError);
    assert.equal(error.limit, "watchedKeys");
    assert.equal(error.max, 10);
    assert.equal(error.message, "Too many keys (max 10)");
  }
  validateWatchKeys(10);
});
