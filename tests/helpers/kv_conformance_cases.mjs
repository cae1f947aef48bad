/**
 * The data cases of the Deno KV conformance suite: get/set/delete, getMany,
 * list, atomic checks, sum/min/max, several mutations on one key,
 * versionstamps, expireIn, commitVersionstamp and watch. The size limits are
 * in `kv_conformance_limits.mjs`. Each case receives a {@linkcode CaseContext}
 * and throws on the first failed expectation; its keys live under
 * `[namespace, case id]`, so runs of several clients share a database.
 *
 * Dependency-free ES: it runs in Deno and under Node (for `npm:@deno/kv`).
 *
 * @module
 */
import {
  assert,
  assertRejects,
  sleep,
  withTimeout,
} from "./kv_conformance_assert.mjs";

/**
 * @typedef {object} CaseContext
 * @property {any} kv The client, with Deno.Kv's shape.
 * @property {(...parts: unknown[]) => unknown[]} key `[namespace, case id, ...parts]`.
 * @property {(n: bigint) => unknown} u64 Makes the client's KvU64.
 * @property {(actual: unknown, expected: unknown, what: string) => void} same
 * @property {(value: unknown) => boolean} isU64
 */

/**
 * @typedef {object} ConformanceCase
 * @property {string} id Short key segment, unique.
 * @property {string} name What the case checks.
 * @property {"commitVersionstamp" | "promptExpiry"} [requires] A feature the client must declare.
 * @property {(t: CaseContext) => Promise<void>} run
 */

const VERSIONSTAMP_PATTERN = /^[0-9a-f]{20}$/;
/** How long a watch may take to report a change. */
const WATCH_FRAME_TIMEOUT_MS = 5_000;
/** How long an expired key may stay readable where expiry is prompt. */
const EXPIRY_WAIT_MS_MAX = 5_000;

/**
 * @param {any} iterator
 * @returns {Promise<any[]>}
 */
async function collect(iterator) {
  const entries = [];
  for await (const entry of iterator) entries.push(entry);
  return entries;
}

/**
 * Writes `["l", i] = i * 10` for i = 0…9 and returns the last part of each
 * listed key, for list cases.
 *
 * @param {CaseContext} t
 */
async function tenKeys(t) {
  const op = t.kv.atomic();
  for (let i = 0; i < 10; i++) op.set(t.key("l", i), i * 10);
  const result = await op.commit();
  assert(result.ok, "writing the ten keys succeeded");
  /** @param {any} iterator */
  return async (iterator) =>
    (await collect(iterator)).map((entry) => entry.key[3]);
}

/** @type {ConformanceCase[]} */
export const DATA_CASES = [
  {
    id: "sg",
    name: "set() then get() returns the value, key and versionstamp",
    async run(t) {
      const result = await t.kv.set(t.key("a"), "hello");
      assert(result.ok === true, "set answers ok: true");
      assert(
        VERSIONSTAMP_PATTERN.test(result.versionstamp),
        `versionstamp is 20 hex characters: ${result.versionstamp}`,
      );
      const entry = await t.kv.get(t.key("a"));
      t.same(entry.key, t.key("a"), "key");
      t.same(entry.value, "hello", "value");
      t.same(entry.versionstamp, result.versionstamp, "versionstamp");
    },
  },
  {
    id: "ga",
    name: "get() of an absent key returns null value and versionstamp",
    async run(t) {
      const entry = await t.kv.get(t.key("absent"));
      t.same(entry.key, t.key("absent"), "key");
      t.same(entry.value, null, "value");
      t.same(entry.versionstamp, null, "versionstamp");
    },
  },
  {
    id: "del",
    name: "delete() removes a key and succeeds on an absent key",
    async run(t) {
      await t.kv.set(t.key("a"), 1);
      t.same(await t.kv.delete(t.key("a")), undefined, "delete answers");
      t.same((await t.kv.get(t.key("a"))).value, null, "after delete");
      await t.kv.delete(t.key("never"));
    },
  },
  {
    id: "gm",
    name: "getMany() answers in request order, absent keys included",
    async run(t) {
      const one = await t.kv.set(t.key(1), "one");
      const two = await t.kv.set(t.key(2), "two");
      const entries = await t.kv.getMany([t.key(2), t.key(3), t.key(1)]);
      t.same(entries.map((e) => e.value), ["two", null, "one"], "values");
      t.same(
        entries.map((e) => e.versionstamp),
        [two.versionstamp, null, one.versionstamp],
        "versionstamps",
      );
      t.same(entries.map((e) => e.key), [t.key(2), t.key(3), t.key(1)], "keys");
    },
  },
  {
    id: "lp",
    name: "list() by prefix, start and end returns keys in order",
    async run(t) {
      const keysOf = await tenKeys(t);
      const all = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
      t.same(await keysOf(t.kv.list({ prefix: t.key("l") })), all, "prefix");
      t.same(
        await keysOf(t.kv.list({ start: t.key("l", 3), end: t.key("l", 6) })),
        [3, 4, 5],
        "start/end",
      );
      t.same(
        await keysOf(t.kv.list({ prefix: t.key("l"), start: t.key("l", 7) })),
        [7, 8, 9],
        "prefix/start",
      );
      t.same(
        await keysOf(t.kv.list({ prefix: t.key("l"), end: t.key("l", 2) })),
        [0, 1],
        "prefix/end",
      );
      t.same(await keysOf(t.kv.list({ prefix: t.key("none") })), [], "empty");
      const entries = await collect(t.kv.list({ prefix: t.key("l") }));
      t.same(entries[4].value, 40, "value of a listed entry");
      const got = await t.kv.get(t.key("l", 4));
      t.same(entries[4].versionstamp, got.versionstamp, "listed versionstamp");
    },
  },
  {
    id: "lo",
    name: "list() options limit, reverse and batchSize",
    async run(t) {
      const keysOf = await tenKeys(t);
      const prefix = { prefix: t.key("l") };
      t.same(await keysOf(t.kv.list(prefix, { limit: 3 })), [0, 1, 2], "limit");
      t.same(
        await keysOf(t.kv.list(prefix, { reverse: true, limit: 4 })),
        [9, 8, 7, 6],
        "reverse/limit",
      );
      t.same(
        await keysOf(t.kv.list(prefix, { batchSize: 2 })),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        "batchSize 2",
      );
      t.same(
        await keysOf(t.kv.list(prefix, { batchSize: 3, reverse: true })),
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        "batchSize 3, reverse",
      );
    },
  },
  {
    id: "lc",
    name: "list() cursor resumes after the last entry, forward and reverse",
    async run(t) {
      const keysOf = await tenKeys(t);
      const prefix = { prefix: t.key("l") };
      const first = t.kv.list(prefix, { limit: 4 });
      t.same(await keysOf(first), [0, 1, 2, 3], "first page");
      t.same(
        await keysOf(t.kv.list(prefix, { cursor: first.cursor, limit: 3 })),
        [4, 5, 6],
        "resumed page",
      );
      const back = t.kv.list(prefix, { limit: 2, reverse: true });
      t.same(await keysOf(back), [9, 8], "first reverse page");
      t.same(
        await keysOf(t.kv.list(prefix, { cursor: back.cursor, reverse: true })),
        [7, 6, 5, 4, 3, 2, 1, 0],
        "resumed reverse page",
      );
      const range = t.kv.list({ start: t.key("l", 2), end: t.key("l", 8) }, {
        limit: 2,
      });
      t.same(await keysOf(range), [2, 3], "first range page");
      t.same(
        await keysOf(
          t.kv.list({ start: t.key("l", 2), end: t.key("l", 8) }, {
            cursor: range.cursor,
          }),
        ),
        [4, 5, 6, 7],
        "resumed range page",
      );
    },
  },
  {
    id: "ko",
    name: "list() orders key parts by type, then value",
    async run(t) {
      const parts = [
        new Uint8Array([1]),
        new Uint8Array([1, 0]),
        "",
        "a",
        "b",
        -5n,
        0n,
        7n,
        -Infinity,
        -1.5,
        0,
        2,
        Infinity,
        false,
        true,
      ];
      const op = t.kv.atomic();
      for (const part of [...parts].reverse()) op.set(t.key(part), 1);
      assert((await op.commit()).ok, "writing the keys succeeded");
      const listed = await collect(t.kv.list({ prefix: t.key() }));
      t.same(listed.map((entry) => entry.key[2]), parts, "order");
    },
  },
  {
    id: "ac",
    name: "atomic() checks: matching versionstamps commit, stale ones do not",
    async run(t) {
      const set = await t.kv.set(t.key("c"), 1);
      const ok = await t.kv.atomic()
        .check({ key: t.key("c"), versionstamp: set.versionstamp })
        .set(t.key("c"), 2)
        .commit();
      assert(ok.ok === true, "check with the current versionstamp commits");
      t.same(
        await t.kv.atomic()
          .check({ key: t.key("c"), versionstamp: set.versionstamp })
          .set(t.key("c"), 3)
          .set(t.key("other"), 3)
          .commit(),
        { ok: false },
        "check with a stale versionstamp",
      );
      t.same((await t.kv.get(t.key("c"))).value, 2, "value after the failure");
      t.same((await t.kv.get(t.key("other"))).value, null, "nothing applied");
      const absent = await t.kv.atomic()
        .check({ key: t.key("new"), versionstamp: null })
        .set(t.key("new"), 1)
        .commit();
      assert(absent.ok === true, "check for an absent key commits");
      t.same(
        await t.kv.atomic()
          .check({ key: t.key("new"), versionstamp: null })
          .set(t.key("new"), 2)
          .commit(),
        { ok: false },
        "check for absence of a present key",
      );
      const current = await t.kv.get(t.key("c"));
      t.same(
        await t.kv.atomic()
          .check(current, { key: t.key("new"), versionstamp: null })
          .delete(t.key("c"))
          .commit(),
        { ok: false },
        "one failing check of two",
      );
      t.same((await t.kv.get(t.key("c"))).value, 2, "nothing deleted");
      const both = await t.kv.atomic().check(current).delete(t.key("c"))
        .commit();
      assert(both.ok === true, "a check with the entry read commits");
    },
  },
  {
    id: "ar",
    name: "sum(), min() and max() on KvU64, with wrapping and absent keys",
    async run(t) {
      await t.kv.atomic().sum(t.key("n"), 5n).commit();
      await t.kv.atomic().sum(t.key("n"), 7n).commit();
      t.same((await t.kv.get(t.key("n"))).value, t.u64(12n), "sum");
      await t.kv.atomic().sum(t.key("w"), 0xffffffffffffffffn).commit();
      await t.kv.atomic().sum(t.key("w"), 2n).commit();
      t.same((await t.kv.get(t.key("w"))).value, t.u64(1n), "sum wraps");
      await t.kv.atomic().min(t.key("lo"), 10n).commit();
      await t.kv.atomic().min(t.key("lo"), 3n).commit();
      await t.kv.atomic().min(t.key("lo"), 8n).commit();
      t.same((await t.kv.get(t.key("lo"))).value, t.u64(3n), "min");
      await t.kv.atomic().max(t.key("hi"), 3n).commit();
      await t.kv.atomic().max(t.key("hi"), 9n).commit();
      await t.kv.atomic().max(t.key("hi"), 4n).commit();
      t.same((await t.kv.get(t.key("hi"))).value, t.u64(9n), "max");
      await t.kv.set(t.key("s"), t.u64(40n));
      await t.kv.atomic().sum(t.key("s"), 2n).commit();
      t.same(
        (await t.kv.get(t.key("s"))).value,
        t.u64(42n),
        "sum on a set u64",
      );
      assert(t.isU64((await t.kv.get(t.key("s"))).value), "reads a KvU64");
    },
  },
  {
    id: "am",
    name: "sum(), min() and max() on a non-U64 value fail and change nothing",
    async run(t) {
      const set = await t.kv.set(t.key("str"), "not a number");
      for (const op of /** @type {const} */ (["sum", "min", "max"])) {
        await assertRejects(
          () => t.kv.atomic()[op](t.key("str"), 1n).set(t.key("x"), 1).commit(),
          `Failed to perform '${op}' mutation on a non-U64 value in the database`,
          op,
        );
      }
      const after = await t.kv.get(t.key("str"));
      t.same(after.value, "not a number", "value after");
      t.same(after.versionstamp, set.versionstamp, "versionstamp after");
      t.same((await t.kv.get(t.key("x"))).value, null, "nothing applied");
    },
  },
  {
    id: "mk",
    name: "several mutations on one key apply in order within one atomic",
    async run(t) {
      await t.kv.atomic().set(t.key("a"), 1).set(t.key("a"), 2).commit();
      t.same((await t.kv.get(t.key("a"))).value, 2, "set, set");
      await t.kv.atomic().set(t.key("b"), 1).delete(t.key("b")).commit();
      t.same((await t.kv.get(t.key("b"))).value, null, "set, delete");
      await t.kv.atomic().delete(t.key("a")).set(t.key("a"), 3).commit();
      t.same((await t.kv.get(t.key("a"))).value, 3, "delete, set");
      await t.kv.atomic().sum(t.key("n"), 2n).sum(t.key("n"), 3n).commit();
      t.same((await t.kv.get(t.key("n"))).value, t.u64(5n), "sum, sum");
      await t.kv.atomic().set(t.key("m"), t.u64(5n)).sum(t.key("m"), 3n)
        .max(t.key("m"), 6n).commit();
      t.same((await t.kv.get(t.key("m"))).value, t.u64(8n), "set, sum, max");
      await t.kv.atomic().min(t.key("m"), 1n).set(t.key("m"), "text").commit();
      t.same((await t.kv.get(t.key("m"))).value, "text", "min, set");
    },
  },
  {
    id: "vs",
    name:
      "versionstamps increase, no-op commits get distinct ones, one atomic shares one",
    async run(t) {
      const a = await t.kv.set(t.key("v"), 1);
      const b = await t.kv.set(t.key("v"), 1);
      const c = await t.kv.atomic().commit();
      const d = await t.kv.atomic().commit();
      assert(c.ok && d.ok, "empty atomics commit");
      const stamps = [a, b, c, d].map((r) => r.versionstamp);
      for (const stamp of stamps) {
        assert(VERSIONSTAMP_PATTERN.test(stamp), `format of ${stamp}`);
      }
      for (let i = 1; i < stamps.length; i++) {
        assert(
          stamps[i - 1] < stamps[i],
          `versionstamps increase: ${stamps.join(", ")}`,
        );
      }
      t.same((await t.kv.get(t.key("v"))).versionstamp, b.versionstamp, "read");
      const both = await t.kv.atomic().set(t.key("x"), 1).set(t.key("y"), 2)
        .commit();
      const [x, y] = await t.kv.getMany([t.key("x"), t.key("y")]);
      t.same([x.versionstamp, y.versionstamp], [
        both.versionstamp,
        both.versionstamp,
      ], "one atomic, one versionstamp");
    },
  },
  {
    id: "ei",
    name: "set() with expireIn keeps the value readable before it expires",
    async run(t) {
      const result = await t.kv.set(t.key("e"), "soon", { expireIn: 60_000 });
      t.same((await t.kv.get(t.key("e"))).value, "soon", "value");
      t.same(
        (await t.kv.get(t.key("e"))).versionstamp,
        result.versionstamp,
        "versionstamp",
      );
      await t.kv.atomic().set(t.key("f"), "also", { expireIn: 60_000 })
        .commit();
      t.same((await t.kv.get(t.key("f"))).value, "also", "atomic value");
    },
  },
  {
    id: "ex",
    name:
      `set() with expireIn 100 ms: the key is gone within ${EXPIRY_WAIT_MS_MAX} ms`,
    requires: "promptExpiry",
    async run(t) {
      await t.kv.set(t.key("e"), "soon", { expireIn: 100 });
      await t.kv.set(t.key("keep"), "stay");
      const deadline = Date.now() + EXPIRY_WAIT_MS_MAX;
      while ((await t.kv.get(t.key("e"))).value !== null) {
        assert(Date.now() < deadline, "the key expired in time");
        await sleep(100);
      }
      t.same((await t.kv.get(t.key("keep"))).value, "stay", "other key");
    },
  },
  {
    id: "cv",
    name: "commitVersionstamp() in a key becomes the commit's versionstamp",
    requires: "commitVersionstamp",
    async run(t) {
      const result = await t.kv.atomic()
        .set(t.key("log", t.kv.commitVersionstamp()), "first")
        .commit();
      const second = await t.kv.atomic()
        .set(t.key("log", t.kv.commitVersionstamp()), "second")
        .commit();
      const entries = await collect(t.kv.list({ prefix: t.key("log") }));
      t.same(
        entries.map((entry) => [entry.key[3], entry.value, entry.versionstamp]),
        [
          [result.versionstamp, "first", result.versionstamp],
          [second.versionstamp, "second", second.versionstamp],
        ],
        "entries",
      );
    },
  },
  {
    id: "wa",
    name: "watch() reports current values first, then every change",
    async run(t) {
      await t.kv.set(t.key("w1"), "initial");
      const reader = t.kv.watch([t.key("w1"), t.key("w2")]).getReader();
      const next = async (/** @type {string} */ what) => {
        const frame = await withTimeout(
          reader.read(),
          WATCH_FRAME_TIMEOUT_MS,
          what,
        );
        assert(!frame.done, `${what}: the stream ended`);
        return frame.value.map((/** @type {any} */ e) => e.value);
      };
      try {
        t.same(await next("first frame"), ["initial", null], "first frame");
        await t.kv.set(t.key("w2"), "second");
        t.same(await next("after set"), ["initial", "second"], "after set");
        await t.kv.delete(t.key("w1"));
        t.same(await next("after delete"), [null, "second"], "after delete");
      } finally {
        await reader.cancel();
      }
    },
  },
  {
    id: "wn",
    name: "watch() of absent keys reports a first frame of nulls",
    async run(t) {
      const reader = t.kv.watch([t.key("none")]).getReader();
      try {
        const frame = await withTimeout(
          reader.read(),
          WATCH_FRAME_TIMEOUT_MS,
          "first frame",
        );
        assert(!frame.done, "the stream ended");
        t.same(
          frame.value.map((/** @type {any} */ e) => [e.value, e.versionstamp]),
          [[null, null]],
          "first frame",
        );
      } finally {
        await reader.cancel();
      }
    },
  },
];
