/**
 * The size-limit cases of the Deno KV conformance suite: each limit is
 * accepted at its bound and refused one past it with Deno's own error
 * message, and a refused write changes nothing. Stock Deno refuses before
 * sending; other clients send, so there the server's message is checked.
 *
 * Dependency-free ES: it runs in Deno and under Node (for `npm:@deno/kv`).
 *
 * @module
 */
import {
  assert,
  assertRejects,
  withTimeout,
} from "./kv_conformance_assert.mjs";

/** @typedef {import("./kv_conformance_cases.mjs").CaseContext} CaseContext */
/** @typedef {import("./kv_conformance_cases.mjs").ConformanceCase} ConformanceCase */

const VALUE_BYTES_MAX = 65536;
const WRITE_KEY_BYTES_MAX = 2048;
const READ_KEY_BYTES_MAX = 2049;
const WATCH_FRAME_TIMEOUT_MS = 5_000;

/**
 * Encoded size of a key made of ASCII strings (tag, bytes, terminator).
 *
 * @param {unknown[]} key
 */
function stringKeyBytes(key) {
  let size = 0;
  for (const part of key) {
    assert(
      typeof part === "string" &&
        [...part].every((c) => c.charCodeAt(0) > 0 && c.charCodeAt(0) < 128),
      `sized keys are made of ASCII strings: ${String(part)}`,
    );
    size += part.length + 2;
  }
  return size;
}

/**
 * A key of exactly `bytes` encoded bytes under `[namespace, id, tag]`.
 *
 * @param {CaseContext} t
 * @param {string} tag
 * @param {number} bytes
 */
function keyOfBytes(t, tag, bytes) {
  const base = t.key(tag);
  const fill = bytes - stringKeyBytes(base) - 2;
  assert(fill >= 0, `a key of ${bytes} bytes fits its prefix`);
  const key = [...base, "x".repeat(fill)];
  assert(stringKeyBytes(key) === bytes, `key of ${bytes} bytes`);
  return key;
}

/** @type {ConformanceCase[]} */
export const LIMIT_CASES = [
  {
    id: "lv",
    name: `value limit: ${VALUE_BYTES_MAX} bytes accepted, one more refused`,
    async run(t) {
      await t.kv.set(t.key("ok"), new Uint8Array(VALUE_BYTES_MAX).fill(7));
      const got = await t.kv.get(t.key("ok"));
      assert(got.value?.length === VALUE_BYTES_MAX, "the largest value reads");
      for (
        const [what, value] of [
          ["bytes", new Uint8Array(VALUE_BYTES_MAX + 1)],
          ["string", "x".repeat(VALUE_BYTES_MAX)],
        ]
      ) {
        await assertRejects(
          () => t.kv.set(t.key("big"), value),
          `Value too large (max ${VALUE_BYTES_MAX} bytes)`,
          `${what} value`,
        );
      }
      t.same((await t.kv.get(t.key("big"))).value, null, "nothing written");
    },
  },
  {
    id: "lk",
    name:
      `key limits: ${WRITE_KEY_BYTES_MAX} bytes to write, ${READ_KEY_BYTES_MAX} to read`,
    async run(t) {
      const largest = keyOfBytes(t, "k", WRITE_KEY_BYTES_MAX);
      await t.kv.set(largest, "fits");
      t.same((await t.kv.get(largest)).value, "fits", "the largest key reads");
      const over = keyOfBytes(t, "k", WRITE_KEY_BYTES_MAX + 1);
      await assertRejects(
        () => t.kv.set(over, 1),
        `Key too large for write (max ${WRITE_KEY_BYTES_MAX} bytes)`,
        "set",
      );
      await assertRejects(
        () => t.kv.atomic().set(t.key("small"), 1).delete(over).commit(),
        `Key too large for write (max ${WRITE_KEY_BYTES_MAX} bytes)`,
        "delete in an atomic",
      );
      t.same((await t.kv.get(t.key("small"))).value, null, "nothing written");
      const readable = keyOfBytes(t, "k", READ_KEY_BYTES_MAX + 1);
      await assertRejects(
        () => t.kv.get(readable),
        `Key too large for read (max ${READ_KEY_BYTES_MAX} bytes)`,
        `get of ${READ_KEY_BYTES_MAX + 1} bytes`,
      );
    },
  },
  {
    id: "lke",
    name: "an empty key is refused",
    async run(t) {
      await assertRejects(
        () => t.kv.set([], 1),
        "key cannot be empty",
        "empty key",
      );
    },
  },
  {
    id: "lkr",
    name:
      `get() of a ${READ_KEY_BYTES_MAX}-byte key is refused: its range end has ${
        READ_KEY_BYTES_MAX + 1
      } bytes`,
    async run(t) {
      await assertRejects(
        () => t.kv.get(keyOfBytes(t, "k", READ_KEY_BYTES_MAX)),
        `Key too large for read (max ${READ_KEY_BYTES_MAX} bytes)`,
        "get",
      );
    },
  },
  {
    id: "lr",
    name: "getMany() limit: 10 keys accepted, 11 refused",
    async run(t) {
      const keys = Array.from({ length: 11 }, (_, i) => t.key(i));
      const ten = await t.kv.getMany(keys.slice(0, 10));
      assert(ten.length === 10, "ten entries");
      await assertRejects(
        () => t.kv.getMany(keys),
        "Too many ranges (max 10)",
        "getMany of 11",
      );
    },
  },
  {
    id: "lm",
    name: "mutation limit: 1000 accepted, 1001 refused",
    async run(t) {
      const op = t.kv.atomic();
      for (let i = 0; i < 1000; i++) op.set(t.key("m", i), i);
      assert((await op.commit()).ok, "1000 mutations commit");
      t.same((await t.kv.get(t.key("m", 999))).value, 999, "the last applied");
      const over = t.kv.atomic();
      for (let i = 0; i < 1001; i++) over.set(t.key("n", i), i);
      await assertRejects(
        () => over.commit(),
        "Too many mutations (max 1000)",
        "1001 mutations",
      );
      t.same((await t.kv.get(t.key("n", 0))).value, null, "nothing written");
    },
  },
  {
    id: "lch",
    name: "check limit: 100 accepted, 101 refused",
    async run(t) {
      const op = t.kv.atomic();
      for (let i = 0; i < 100; i++) {
        op.check({ key: t.key("c", i), versionstamp: null });
      }
      assert((await op.set(t.key("a"), 1).commit()).ok, "100 checks commit");
      const over = t.kv.atomic();
      for (let i = 0; i < 101; i++) {
        over.check({ key: t.key("c", i), versionstamp: null });
      }
      await assertRejects(
        () => over.set(t.key("b"), 1).commit(),
        "Too many checks (max 100)",
        "101 checks",
      );
      t.same((await t.kv.get(t.key("b"))).value, null, "nothing written");
    },
  },
  {
    id: "lt",
    name: "total mutation size limit: 819200 bytes",
    async run(t) {
      const value = new Uint8Array(65_000);
      const op = t.kv.atomic();
      for (let i = 0; i < 12; i++) op.set(t.key("ok", i), value);
      assert((await op.commit()).ok, "12 values of 65000 bytes commit");
      const over = t.kv.atomic();
      for (let i = 0; i < 13; i++) over.set(t.key("no", i), value);
      await assertRejects(
        () => over.commit(),
        "Total mutation size too large (max 819200 bytes)",
        "13 values of 65000 bytes",
      );
      t.same((await t.kv.get(t.key("no", 0))).value, null, "nothing written");
    },
  },
  {
    id: "lks",
    name: "total key size limit: 81920 bytes",
    async run(t) {
      const op = t.kv.atomic();
      for (let i = 0; i < 40; i++) op.set(keyOfBytes(t, `ok${i}`, 2000), i);
      assert((await op.commit()).ok, "40 keys of 2000 bytes commit");
      const over = t.kv.atomic();
      for (let i = 0; i < 41; i++) over.set(keyOfBytes(t, `no${i}`, 2000), i);
      await assertRejects(
        () => over.commit(),
        "Total key size too large (max 81920 bytes)",
        "41 keys of 2000 bytes",
      );
      const first = keyOfBytes(t, "no0", 2000);
      t.same((await t.kv.get(first)).value, null, "nothing written");
    },
  },
  {
    id: "lb",
    name: "list() batchSize limit: 1000 accepted, 1001 refused",
    async run(t) {
      await t.kv.set(t.key("a"), 1);
      const entries = [];
      const list = t.kv.list({ prefix: t.key() }, { batchSize: 1000 });
      for await (const entry of list) entries.push(entry);
      assert(entries.length === 1, "batchSize 1000 lists");
      await assertRejects(
        async () => {
          const iterator = t.kv.list({ prefix: t.key() }, { batchSize: 1001 });
          for await (const _ of iterator) { /* drain */ }
        },
        "Too many entries (max 1000)",
        "batchSize 1001",
      );
    },
  },
  {
    id: "lw",
    name: "watch() limit: 10 keys accepted, 11 refused",
    async run(t) {
      const keys = Array.from({ length: 11 }, (_, i) => t.key(i));
      await t.kv.set(keys[0], "present");
      const reader = t.kv.watch(keys.slice(0, 10)).getReader();
      try {
        const frame = await withTimeout(
          reader.read(),
          WATCH_FRAME_TIMEOUT_MS,
          "watch of 10",
        );
        assert(frame.value?.length === 10, "first frame of 10 entries");
      } finally {
        await reader.cancel();
      }
      await assertRejects(
        async () => {
          const eleven = t.kv.watch(keys).getReader();
          try {
            await withTimeout(
              eleven.read(),
              WATCH_FRAME_TIMEOUT_MS,
              "watch of 11",
            );
          } finally {
            await eleven.cancel().catch(() => {});
          }
        },
        "Too many keys (max 10)",
        "watch of 11",
      );
    },
  },
  {
    id: "lq",
    name: "enqueue() delay limit: 30 days",
    async run(t) {
      const delay = 31 * 24 * 60 * 60 * 1000;
      await assertRejects(
        () => t.kv.enqueue("late", { delay }),
        "Delay cannot be greater than 30 days",
        "enqueue",
      );
    },
  },
];
