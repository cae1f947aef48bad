import assert from "node:assert/strict";
import fc from "fast-check";
import { AssertionError } from "../base/assert.ts";
import { logIndex } from "../raft/types.ts";
import { encodeKvEntry as encodeCommand } from "./entries.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { SERVICE_IDS } from "./table.ts";
import { decodeKey, encodeKey, type KvKey } from "../model/key_codec.ts";
import { KvInvalidError, KvLimitError } from "../model/errors.ts";
import { MemoryStateStore } from "../storage/memory_state_store.ts";
import { SqliteStateStore } from "../storage/sqlite_state_store.ts";
import { KvStateMachine } from "./state_machine.ts";
import { stateHash } from "../state/state_hash.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvCheck,
  KvMutation,
  KvValue,
} from "../model/types.ts";
import {
  makeVersionstamp,
  versionstampToString,
} from "../model/versionstamp.ts";

const k = (...parts: KvKey) => encodeKey(parts);
function u64(value: bigint): KvValue {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, value, true);
  return { encoding: "le64", data };
}
function readU64(value: KvValue): bigint {
  return new DataView(value.data.buffer, value.data.byteOffset, 8).getBigUint64(
    0,
    true,
  );
}
const text = (value: string): KvValue => ({
  encoding: "bytes",
  data: new TextEncoder().encode(value),
});

class Harness {
  readonly machine = new KvStateMachine(new MemoryStateStore());
  index = 0;
  atomic(mutations: KvMutation[], checks: KvCheck[] = []): KvApplyResult {
    const operation: KvAtomicOperation = { checks, mutations, enqueues: [] };
    return this.machine.apply(
      logIndex(++this.index),
      encodeCommand({ type: "atomic", operation }),
    );
  }
  raw(data: Uint8Array): KvApplyResult {
    return this.machine.apply(logIndex(++this.index), data);
  }
}

Deno.test("KvStateMachine.apply() sets values and stamps them with the entry's index", () => {
  const h = new Harness();
  const result = h.atomic([{ type: "set", key: k("a"), value: text("1") }]);
  assert.ok(result.ok);
  assert.equal(
    versionstampToString(result.versionstamp),
    "00000000000000010000",
  );
  const entry = h.machine.get(k("a"))!;
  assert.deepEqual(entry.value, text("1"));
  assert.deepEqual(entry.versionstamp, makeVersionstamp(logIndex(1)));
  const empty = h.atomic([]);
  assert.ok(empty.ok, "an empty atomic commit succeeds");
  assert.equal(
    versionstampToString(empty.versionstamp),
    "00000000000000020000",
  );
  assert.equal(h.machine.appliedIndex(), 2);
});

Deno.test("KvStateMachine.apply() refuses an index that does not follow the applied one", () => {
  const h = new Harness();
  h.atomic([]);
  assert.throws(
    () =>
      h.machine.apply(
        logIndex(1),
        encodeCommand({ type: "expire", timestampMs: 0, keyCountMax: 1 }),
      ),
    AssertionError,
  );
});

Deno.test("KvStateMachine.apply() decides checks on versionstamps", async (t) => {
  const h = new Harness();
  h.atomic([{ type: "set", key: k("present"), value: text("x") }]);
  const current = makeVersionstamp(logIndex(1));
  const cases: Array<[string, KvCheck[], number[]]> = [
    [
      "null on an absent key passes",
      [{ key: k("absent"), versionstamp: null }],
      [],
    ],
    ["all-zero on an absent key passes", [{
      key: k("absent"),
      versionstamp: new Uint8Array(10),
    }], []],
    ["the current versionstamp passes", [{
      key: k("present"),
      versionstamp: current,
    }], []],
    [
      "null on a present key fails",
      [{ key: k("present"), versionstamp: null }],
      [0],
    ],
    ["a stale versionstamp fails", [{
      key: k("present"),
      versionstamp: makeVersionstamp(logIndex(9)),
    }], [0]],
    ["a versionstamp on an absent key fails", [
      { key: k("absent"), versionstamp: null },
      { key: k("absent"), versionstamp: current },
    ], [1]],
  ];
  for (const [name, checks, failed] of cases) {
    await t.step(name, () => {
      const result = h.atomic([{
        type: "set",
        key: k("written", name),
        value: text("y"),
      }], checks);
      if (failed.length === 0) {
        assert.ok(result.ok);
        assert.notEqual(h.machine.get(k("written", name)), null);
      } else {
        assert.ok(!result.ok);
        assert.equal(result.reason, "checkFailed");
        assert.deepEqual(result.failedChecks, failed);
        assert.equal(
          h.machine.get(k("written", name)),
          null,
          "nothing applied",
        );
        assert.equal(
          h.machine.appliedIndex(),
          h.index,
          "the index still moves on",
        );
      }
    });
  }
});

Deno.test("KvStateMachine.apply() does u64 sum, min and max like Deno KV", async (t) => {
  const max = 2n ** 64n - 1n;
  const cases: Array<
    [string, "sum" | "min" | "max", bigint | null, bigint, bigint]
  > = [
    ["sum on an absent key stores the operand", "sum", null, 5n, 5n],
    ["sum adds", "sum", 40n, 2n, 42n],
    ["sum wraps around 2^64", "sum", max, 2n, 1n],
    ["min is unsigned", "min", max, 3n, 3n],
    ["max is unsigned", "max", 2n ** 63n, 1n, 2n ** 63n],
    ["min on an absent key stores the operand", "min", null, 9n, 9n],
    ["max keeps the larger", "max", 7n, 70n, 70n],
  ];
  for (const [name, type, initial, operand, expected] of cases) {
    await t.step(name, () => {
      const h = new Harness();
      if (initial !== null) {
        h.atomic([{ type: "set", key: k("n"), value: u64(initial) }]);
      }
      const result = h.atomic([{ type, key: k("n"), value: u64(operand) }]);
      assert.ok(result.ok);
      assert.equal(readU64(h.machine.get(k("n"))!.value), expected);
    });
  }
});

Deno.test("KvStateMachine.apply() fails the whole operation on a type mismatch", async (t) => {
  const cases: Array<[string, KvMutation, string]> = [
    [
      "sum on a bytes value",
      { type: "sum", key: k("s"), value: u64(1n) },
      "Failed to perform 'sum' mutation on a non-U64 value in the database",
    ],
    [
      "max with a bytes operand",
      { type: "max", key: k("n"), value: text("x") },
      "Failed to perform 'max' mutation on a non-U64 operand",
    ],
    ["sum with min/max parameters", {
      type: "sum",
      key: k("n"),
      value: u64(1n),
      sumMin: new Uint8Array([1]),
    }, "Cannot use min/max parameters with KvU64 operands"],
  ];
  for (const [name, mutation, message] of cases) {
    await t.step(name, () => {
      const h = new Harness();
      h.atomic([{ type: "set", key: k("s"), value: text("str") }, {
        type: "set",
        key: k("n"),
        value: u64(1n),
      }]);
      const before = stateHash(h.machine.store);
      const result = h.atomic([{
        type: "set",
        key: k("other"),
        value: text("x"),
      }, mutation]);
      assert.ok(!result.ok);
      assert.equal(result.reason, "typeMismatch");
      assert.equal(result.message, message);
      assert.equal(
        h.machine.get(k("other")),
        null,
        "the earlier set is not applied",
      );
      assert.notEqual(
        stateHash(h.machine.store),
        before,
        "only the applied index moved",
      );
      assert.equal(readU64(h.machine.get(k("n"))!.value), 1n);
    });
  }
});

Deno.test("KvStateMachine.apply() applies repeated keys in order", async (t) => {
  const cases: Array<[string, KvMutation[], bigint | null]> = [
    ["set then sums", [
      { type: "set", key: k("c"), value: u64(1n) },
      { type: "sum", key: k("c"), value: u64(2n) },
      { type: "sum", key: k("c"), value: u64(3n) },
    ], 6n],
    ["set then delete", [{ type: "set", key: k("c"), value: u64(1n) }, {
      type: "delete",
      key: k("c"),
    }], null],
    ["delete then sum", [{ type: "delete", key: k("c") }, {
      type: "sum",
      key: k("c"),
      value: u64(4n),
    }], 4n],
    ["sum then set", [{ type: "sum", key: k("c"), value: u64(4n) }, {
      type: "set",
      key: k("c"),
      value: u64(8n),
    }], 8n],
  ];
  for (const [name, mutations, expected] of cases) {
    await t.step(name, () => {
      const h = new Harness();
      h.atomic([{ type: "set", key: k("c"), value: u64(100n) }]);
      assert.ok(h.atomic(mutations).ok);
      const entry = h.machine.get(k("c"));
      assert.equal(entry === null ? null : readU64(entry.value), expected);
    });
  }
});

Deno.test("KvStateMachine.apply() appends the versionstamp for setSuffixVersionstampedKey", () => {
  const h = new Harness();
  h.atomic([]);
  const result = h.atomic([{
    type: "setSuffixVersionstampedKey",
    key: k("log"),
    value: text("x"),
  }]);
  assert.ok(result.ok);
  const [entry] = h.machine.list({ prefix: k("log") }, { limit: 10 }).entries;
  assert.deepEqual(decodeKey(entry!.key), ["log", "00000000000000020000"]);
  assert.deepEqual(entry!.versionstamp, result.versionstamp);
});

Deno.test("KvStateMachine.apply() expires exactly the keys due at the command's timestamp", () => {
  const h = new Harness();
  h.atomic([
    { type: "set", key: k("a"), value: text("1"), expireAtMs: 1000 },
    { type: "set", key: k("b"), value: text("1"), expireAtMs: 2000 },
    { type: "set", key: k("c"), value: text("1"), expireAtMs: 1000 },
    { type: "set", key: k("d"), value: text("1") },
  ]);
  // Sum clears a deadline, as in Deno KV.
  h.atomic([{ type: "set", key: k("e"), value: u64(1n), expireAtMs: 10 }, {
    type: "sum",
    key: k("e"),
    value: u64(1n),
  }]);
  const present = () =>
    ["a", "b", "c", "d", "e"].filter((name) => h.machine.get(k(name)) !== null);
  const expire = (timestampMs: number, keyCountMax: number) =>
    h.raw(encodeCommand({ type: "expire", timestampMs, keyCountMax }));
  const first = expire(999, 100);
  assert.ok(first.ok && first.expiredKeyCount === 0);
  assert.deepEqual(
    present(),
    ["a", "b", "c", "d", "e"],
    "reads ignore deadlines",
  );
  const second = expire(1500, 1);
  assert.ok(second.ok && second.expiredKeyCount === 1);
  assert.deepEqual(present(), ["b", "c", "d", "e"]);
  expire(2000, 100);
  assert.deepEqual(present(), ["d", "e"]);
});

/** An envelope of the kv service around raw payload bytes. */
function kvPayload(payload: Uint8Array): Uint8Array {
  return encodeEnvelope({ serviceId: SERVICE_IDS.kv, payload });
}

Deno.test("KvStateMachine.apply() turns bad commands into failure results", async (t) => {
  const big = new Uint8Array(65537);
  const cases: Array<[string, Uint8Array, string, RegExp]> = [
    [
      "garbage bytes",
      kvPayload(new Uint8Array([0xc1, 0x00])),
      "invalidCommand",
      /Cannot decode command/,
    ],
    [
      "trailing bytes",
      new Uint8Array([
        ...encodeCommand({ type: "expire", timestampMs: 1, keyCountMax: 1 }),
        0,
      ]),
      "invalidCommand",
      /Cannot decode command/,
    ],
    [
      "unknown command",
      kvPayload(new Uint8Array([0x91, 0x09])),
      "invalidCommand",
      /unknown command/,
    ],
    [
      "empty key",
      encodeCommand({
        type: "atomic",
        operation: {
          checks: [],
          mutations: [{ type: "delete", key: new Uint8Array() }],
          enqueues: [],
        },
      }),
      "invalidCommand",
      /key cannot be empty/,
    ],
    [
      "value too large",
      encodeCommand({
        type: "atomic",
        operation: {
          checks: [],
          mutations: [{
            type: "set",
            key: k("a"),
            value: { encoding: "bytes", data: big },
          }],
          enqueues: [],
        },
      }),
      "limitExceeded",
      /Value too large \(max 65536 bytes\)/,
    ],
    [
      "enqueue to an invalid queue name",
      encodeCommand({
        type: "atomic",
        operation: {
          checks: [],
          mutations: [],
          enqueues: [{
            payload: new Uint8Array(1),
            deadlineMs: 0,
            keysIfUndelivered: [],
            backoffSchedule: null,
            queue: "not valid",
          }],
        },
      }),
      "invalidCommand",
      /Invalid queue name/,
    ],
    [
      "V8 sum",
      encodeCommand({
        type: "atomic",
        operation: {
          checks: [],
          mutations: [{
            type: "sum",
            key: k("a"),
            value: {
              encoding: "v8",
              data: new Uint8Array([0xff, 0x0f, 0x49, 0x02]),
            },
          }],
          enqueues: [],
        },
      }),
      "unsupported",
      /V8/,
    ],
  ];
  for (const [name, data, reason, message] of cases) {
    await t.step(name, () => {
      const h = new Harness();
      const result = h.raw(data);
      assert.ok(!result.ok);
      assert.equal(result.reason, reason);
      assert.match(result.message, message);
      assert.equal(h.machine.appliedIndex(), 1);
    });
  }
});

Deno.test("KvStateMachine.list() pages with Deno's cursors", () => {
  const h = new Harness();
  h.atomic(
    ["a", "b", "c"].map((name) => ({
      type: "set",
      key: k("p", name),
      value: text(name),
    })),
  );
  h.atomic([{ type: "set", key: k("q"), value: text("q") }, {
    type: "set",
    key: k("p"),
    value: text("p"),
  }]);
  const names = (entries: { key: Uint8Array }[]) =>
    entries.map((e) => decodeKey(e.key)[1]);
  // Cursor strings observed from Deno 2.9.6's own kv.list() over the same keys.
  const page = h.machine.list({ prefix: k("p") }, { limit: 2 });
  assert.deepEqual(names(page.entries), ["a", "b"]);
  assert.equal(page.cursor, "AmIA");
  assert.deepEqual(
    names(
      h.machine.list({ prefix: k("p") }, { limit: 2, cursor: page.cursor! })
        .entries,
    ),
    ["c"],
  );
  const back = h.machine.list({ prefix: k("p") }, { limit: 2, reverse: true });
  assert.deepEqual(names(back.entries), ["c", "b"]);
  assert.equal(back.cursor, "AmIA");
  assert.deepEqual(
    names(
      h.machine.list({ prefix: k("p") }, {
        limit: 5,
        reverse: true,
        cursor: back.cursor!,
      }).entries,
    ),
    ["a"],
  );
  assert.deepEqual(
    names(
      h.machine.list({ start: k("p", "b"), end: k("p", "z") }, { limit: 5 })
        .entries,
    ),
    ["b", "c"],
  );
  assert.deepEqual(
    names(
      h.machine.list({ prefix: k("p"), start: k("p", "b") }, { limit: 5 })
        .entries,
    ),
    ["b", "c"],
  );
  assert.deepEqual(
    names(
      h.machine.list({ prefix: k("p"), end: k("p", "b") }, { limit: 5 })
        .entries,
    ),
    ["a"],
  );
});

Deno.test("KvStateMachine reads refuse what Deno refuses", async (t) => {
  const h = new Harness();
  const cases: Array<
    [string, () => unknown, typeof KvInvalidError | typeof KvLimitError, string]
  > = [
    [
      "start outside prefix",
      () => h.machine.list({ prefix: k("p"), start: k("q") }, { limit: 1 }),
      KvInvalidError,
      "Start key is not in the keyspace defined by prefix",
    ],
    [
      "end equal to prefix",
      () => h.machine.list({ prefix: k("p"), end: k("p") }, { limit: 1 }),
      KvInvalidError,
      "End key is not in the keyspace defined by prefix",
    ],
    [
      "start after end",
      () => h.machine.list({ start: k("b"), end: k("a") }, { limit: 1 }),
      KvInvalidError,
      "Start key is greater than end key",
    ],
    [
      "no selector",
      () => h.machine.list({}, { limit: 1 }),
      KvInvalidError,
      "Invalid range",
    ],
    [
      "bad cursor",
      () => h.machine.list({ prefix: k("p") }, { limit: 1, cursor: "!!" }),
      KvInvalidError,
      "invalid cursor",
    ],
    [
      "cursor before start",
      () =>
        h.machine.list({ prefix: k("p"), start: k("p", "m") }, {
          limit: 1,
          cursor: "AmEA",
        }),
      KvInvalidError,
      "cursor out of bounds",
    ],
    [
      "limit over 1000",
      () => h.machine.list({ prefix: k("p") }, { limit: 1001 }),
      KvLimitError,
      "Too many entries (max 1000)",
    ],
    [
      "limit zero",
      () => h.machine.list({ prefix: k("p") }, { limit: 0 }),
      KvInvalidError,
      "limit must be greater than 0",
    ],
    [
      "key too large",
      () => h.machine.get(new Uint8Array(2050)),
      KvLimitError,
      "Key too large for read (max 2049 bytes)",
    ],
    [
      "too many keys",
      () => h.machine.getMany(Array.from({ length: 11 }, (_, i) => k(i))),
      KvLimitError,
      "Too many ranges (max 10)",
    ],
  ];
  for (const [name, read, error, message] of cases) {
    await t.step(name, () => {
      assert.throws(
        read,
        (e: unknown) => e instanceof error && (e as Error).message === message,
      );
    });
  }
});

Deno.test("KvStateMachine gives byte-identical state on memory and SQLite for the same log", () => {
  const directory = Deno.makeTempDirSync({ prefix: "aspen_kv_determinism_" });
  try {
    const keyName = fc.constantFrom("a", "b", "c", "d");
    const mutation: fc.Arbitrary<KvMutation> = fc.oneof(
      fc.record({
        type: fc.constant("set" as const),
        key: keyName.map((n) => k("x", n)),
        value: fc.oneof(
          fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(u64),
          fc.string().map(text),
        ),
        expireAtMs: fc.option(fc.nat(100)),
      }),
      fc.record({
        type: fc.constantFrom("sum" as const, "min" as const, "max" as const),
        key: keyName.map((n) => k("x", n)),
        value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(u64),
      }),
      fc.record({
        type: fc.constant("delete" as const),
        key: keyName.map((n) => k("x", n)),
      }),
      fc.record({
        type: fc.constant("setSuffixVersionstampedKey" as const),
        key: keyName.map((n) => k("log", n)),
        value: fc.string().map(text),
      }),
    );
    const command = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          mutations: fc.array(mutation, { maxLength: 6 }),
          checks: fc.array(
            fc.record({
              key: keyName.map((n) => k("x", n)),
              versionstamp: fc.option(
                fc.nat(40).map((i) => makeVersionstamp(logIndex(i + 1))),
              ),
            }),
            { maxLength: 2 },
          ),
        }).map(({ mutations, checks }) =>
          encodeCommand({
            type: "atomic",
            operation: { checks, mutations, enqueues: [] },
          })
        ),
      },
      {
        weight: 1,
        arbitrary: fc.nat(100).map((timestampMs) =>
          encodeCommand({ type: "expire", timestampMs, keyCountMax: 2 })
        ),
      },
    );
    let run = 0;
    fc.assert(
      fc.property(fc.array(command, { minLength: 1, maxLength: 40 }), (log) => {
        const memory = new KvStateMachine(new MemoryStateStore());
        const sqlite = new SqliteStateStore({
          path: `${directory}/run${run++}.sqlite`,
        });
        try {
          const onSqlite = new KvStateMachine(sqlite);
          log.forEach((data, i) => {
            const a = memory.apply(logIndex(i + 1), data);
            const b = onSqlite.apply(logIndex(i + 1), data);
            assert.deepEqual(b, a);
          });
          assert.equal(stateHash(sqlite), stateHash(memory.store));
        } finally {
          sqlite.close();
        }
      }),
      { numRuns: 25 },
    );
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});
