/**
 * The one conformance suite every {@linkcode StateStore} passes. The
 * in-memory store is the reference; `state_store_test.ts` runs this against
 * each implementation.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { AssertionError } from "../base/assert.ts";
import { logIndex } from "../raft/types.ts";
import type { KvRow } from "../model/types.ts";
import type { SnapshotChunk, StateStore } from "../state/state_store.ts";
import { compareBytes, toHex } from "../base/bytes.ts";
import { makeVersionstamp } from "../model/versionstamp.ts";

/** A store under test, plus how to reopen it (durable stores) and clean up. */
export interface StateStoreHarness {
  readonly store: StateStore;
  /** Closes and reopens the same data; absent for volatile stores. */
  readonly reopen?: () => StateStore;
  readonly dispose: () => void;
}

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

function row(
  key: string,
  value: string,
  index: number,
  expireAtMs: number | null = null,
): KvRow {
  return {
    key: bytes(key),
    value: bytes(value),
    encoding: "bytes",
    versionstamp: makeVersionstamp(logIndex(index)),
    expireAtMs,
  };
}

function rowText(row: KvRow): string {
  return `${toHex(row.key)}=${toHex(row.value)}/${row.encoding}/${
    toHex(row.versionstamp)
  }/${row.expireAtMs}`;
}

const ALL = {
  start: new Uint8Array(0),
  end: new Uint8Array([0xff, 0xff]),
  limit: 1_000_000,
};

function drain(iterator: Iterator<SnapshotChunk>): SnapshotChunk[] {
  const chunks: SnapshotChunk[] = [];
  for (let next = iterator.next(); !next.done; next = iterator.next()) {
    chunks.push(next.value);
  }
  return chunks;
}

/**
 * Registers the conformance tests for one implementation.
 *
 * @param name Shown in test names, e.g. "MemoryStateStore".
 * @param open Creates a fresh, empty store.
 */
export function runStateStoreConformance(
  name: string,
  open: () => StateStoreHarness,
): void {
  const test = (what: string, body: (harness: StateStoreHarness) => void) => {
    Deno.test(`${name}: ${what}`, () => {
      const harness = open();
      try {
        body(harness);
      } finally {
        harness.dispose();
      }
    });
  };

  test("get() and scan() on a fresh store find nothing", ({ store }) => {
    assert.equal(store.get(bytes("a")), null);
    assert.deepEqual(store.scan(ALL), []);
    assert.equal(store.appliedIndex(), 0);
    assert.equal(store.meta("x"), null);
  });

  test("apply() stores rows exactly and moves the applied index", ({ store }) => {
    const stored: KvRow = {
      key: new Uint8Array([2, 0, 0xff, 0]),
      value: new Uint8Array([0, 1, 2, 0xff]),
      encoding: "le64",
      versionstamp: makeVersionstamp(logIndex(7), 3),
      expireAtMs: 1234,
    };
    store.apply({ puts: [stored], deletes: [], appliedIndex: logIndex(7) });
    assert.equal(rowText(store.get(stored.key)!), rowText(stored));
    assert.equal(store.appliedIndex(), 7);
    assert.throws(
      () => store.apply({ puts: [], deletes: [], appliedIndex: logIndex(7) }),
      AssertionError,
    );
  });

  test("scan() returns [start, end) in byte order, reversed and limited", ({ store }) => {
    const keys = ["b", "a", "c\u0000", "c", "d", "\u00ff", "ab"];
    store.apply({
      puts: keys.map((key, i) => row(key, `v${i}`, 1)),
      deletes: [],
      appliedIndex: logIndex(1),
    });
    const sorted = keys.map(bytes).sort(compareBytes).map(toHex);
    assert.deepEqual(store.scan(ALL).map((r) => toHex(r.key)), sorted);
    assert.deepEqual(
      store.scan({ ...ALL, reverse: true }).map((r) => toHex(r.key)),
      [...sorted].reverse(),
    );
    const cases: Array<[string, string, number, boolean, string[]]> = [
      ["a", "c", 10, false, ["a", "ab", "b"]],
      ["a", "c", 2, false, ["a", "ab"]],
      ["a", "c", 2, true, ["b", "ab"]],
      ["ab", "ab", 10, false, []],
      ["c", "d", 10, true, ["c\u0000", "c"]],
      ["zz", "a", 10, false, []],
    ];
    for (const [start, end, limit, reverse, expected] of cases) {
      const found = store.scan({
        start: bytes(start),
        end: bytes(end),
        limit,
        reverse,
      });
      assert.deepEqual(
        found.map((r) => new TextDecoder().decode(r.key)),
        expected,
        `${start}..${end}`,
      );
    }
  });

  test("apply() deletes rows and ignores absent keys", ({ store }) => {
    store.apply({
      puts: [row("a", "1", 1), row("b", "2", 1)],
      deletes: [],
      appliedIndex: logIndex(1),
    });
    store.apply({
      puts: [],
      deletes: [bytes("a"), bytes("zz")],
      appliedIndex: logIndex(2),
    });
    assert.equal(store.get(bytes("a")), null);
    assert.deepEqual(store.scan(ALL).map((r) => r.value), [bytes("2")]);
  });

  test("expiredKeys() follows deadlines through overwrites and deletes", ({ store }) => {
    store.apply({
      puts: [
        row("a", "1", 1, 300),
        row("b", "1", 1, 100),
        row("c", "1", 1, 100),
        row("d", "1", 1),
        row("e", "1", 1, 200),
      ],
      deletes: [],
      appliedIndex: logIndex(1),
    });
    const names = (keys: Uint8Array[]) =>
      keys.map((key) => new TextDecoder().decode(key));
    assert.deepEqual(names(store.expiredKeys(99, 10)), []);
    assert.deepEqual(names(store.expiredKeys(100, 10)), ["b", "c"]);
    assert.deepEqual(names(store.expiredKeys(1000, 10)), ["b", "c", "e", "a"]);
    assert.deepEqual(names(store.expiredKeys(1000, 3)), ["b", "c", "e"]);
    // Overwriting without a deadline clears it; a new deadline replaces the old one.
    store.apply({
      puts: [row("b", "2", 2), row("a", "2", 2, 50)],
      deletes: [bytes("c")],
      appliedIndex: logIndex(2),
    });
    assert.deepEqual(names(store.expiredKeys(1000, 10)), ["a", "e"]);
  });

  test("meta() returns what apply() set", ({ store }) => {
    store.apply({
      puts: [],
      deletes: [],
      appliedIndex: logIndex(1),
      meta: new Map([["conf", bytes("x")]]),
    });
    assert.deepEqual(store.meta("conf"), bytes("x"));
    assert.equal(store.meta("other"), null);
  });

  test("exportSnapshot() is fixed at the applied index and bounded per chunk", ({ store }) => {
    const puts = Array.from(
      { length: 300 },
      (_, i) => row(`k${String(i).padStart(4, "0")}`, "x".repeat(100), 1),
    );
    store.apply({
      puts,
      deletes: [],
      appliedIndex: logIndex(1),
      meta: new Map([["m", bytes("1")]]),
    });
    const iterator = store.exportSnapshot(4096);
    const first = iterator.next();
    store.apply({
      puts: [row("k9999", "late", 2)],
      deletes: [bytes("k0299")],
      appliedIndex: logIndex(2),
    });
    const chunks = [first.value as SnapshotChunk, ...drain(iterator)];
    assert.deepEqual(chunks.map((c) => c.sequence), chunks.map((_, i) => i));
    assert.ok(chunks.length > 5, `expected many chunks, got ${chunks.length}`);
    assert.ok(chunks.every((c) => c.appliedIndex === 1));
    assert.ok(chunks.every((c, i) => c.last === (i === chunks.length - 1)));
    for (const chunk of chunks) {
      const size = chunk.rows.reduce(
        (sum, r) => sum + r.key.length + r.value.length + 32,
        0,
      );
      assert.ok(size < 4096 + 200, `chunk of ${size} bytes`);
    }
    const rows = chunks.flatMap((c) => c.rows.map(rowText));
    assert.deepEqual(rows, puts.map(rowText));
    assert.deepEqual(chunks[0]!.meta.map(([n, v]) => [n, toHex(v)]), [[
      "m",
      "31",
    ]]);
  });

  test("beginInstall() replaces the state atomically on commit only", ({ store }) => {
    const source = [row("a", "1", 5, 10), row("b", "2", 5)];
    store.apply({
      puts: [row("old", "x", 1, 5)],
      deletes: [],
      appliedIndex: logIndex(1),
    });
    const chunks: SnapshotChunk[] = [
      {
        appliedIndex: logIndex(5),
        sequence: 0,
        rows: source.slice(0, 1),
        meta: [["m", bytes("v")]],
        last: false,
      },
      {
        appliedIndex: logIndex(5),
        sequence: 1,
        rows: source.slice(1),
        meta: [],
        last: true,
      },
    ];
    const aborted = store.beginInstall();
    aborted.write(chunks[0]!);
    assert.throws(() => aborted.commit(), RangeError);
    aborted.abort();
    assert.deepEqual(store.scan(ALL).map(rowText), [
      rowText(row("old", "x", 1, 5)),
    ]);
    assert.equal(store.appliedIndex(), 1);

    const installer = store.beginInstall();
    assert.throws(() => store.beginInstall(), RangeError);
    assert.throws(() => installer.write(chunks[1]!), RangeError);
    installer.write(chunks[0]!);
    installer.write(chunks[1]!);
    installer.commit();
    assert.deepEqual(store.scan(ALL).map(rowText), source.map(rowText));
    assert.equal(store.appliedIndex(), 5);
    assert.deepEqual(store.meta("m"), bytes("v"));
    assert.deepEqual(store.expiredKeys(100, 10), [bytes("a")]);
  });

  test("exportSnapshot() then beginInstall() copies a store exactly", (harness) => {
    const target = open();
    try {
      const puts = Array.from(
        { length: 50 },
        (_, i) => row(`k${i}`, "v".repeat(i), 3, i % 3 === 0 ? i : null),
      );
      harness.store.apply({
        puts,
        deletes: [],
        appliedIndex: logIndex(3),
        meta: new Map([["a", bytes("b")]]),
      });
      const installer = target.store.beginInstall();
      for (const chunk of drain(harness.store.exportSnapshot(256))) {
        installer.write(chunk);
      }
      installer.commit();
      assert.deepEqual(
        target.store.scan(ALL).map(rowText),
        harness.store.scan(ALL).map(rowText),
      );
      assert.deepEqual(
        target.store.expiredKeys(1e9, 100),
        harness.store.expiredKeys(1e9, 100),
      );
      assert.equal(target.store.appliedIndex(), 3);
      assert.deepEqual(target.store.meta("a"), bytes("b"));
    } finally {
      target.dispose();
    }
  });

  test("apply() agrees with a Map model on random batches", ({ store }) => {
    const model = new Map<string, KvRow>();
    let index = 0;
    const key = fc.constantFrom("a", "b", "c", "a\u0000", "ab", "b\u00ff", "");
    fc.assert(
      fc.property(
        fc.array(fc.tuple(key, fc.boolean(), fc.option(fc.nat(50))), {
          maxLength: 8,
        }),
        (ops) => {
          index++;
          const puts = new Map<string, KvRow>();
          const deletes = new Map<string, Uint8Array>();
          for (const [name, isPut, deadline] of ops) {
            puts.delete(name);
            deletes.delete(name);
            if (isPut) puts.set(name, row(name, `${index}`, index, deadline));
            else deletes.set(name, bytes(name));
          }
          store.apply({
            puts: [...puts.values()],
            deletes: [...deletes.values()],
            appliedIndex: logIndex(index),
          });
          for (const name of deletes.keys()) model.delete(name);
          for (const [name, r] of puts) model.set(name, r);
          const expected = [...model.values()].sort((a, b) =>
            compareBytes(a.key, b.key)
          ).map(rowText);
          assert.deepEqual(store.scan(ALL).map(rowText), expected);
          const due = [...model.values()].filter((r) =>
            r.expireAtMs !== null && r.expireAtMs <= 25
          )
            .sort((a, b) =>
              a.expireAtMs! - b.expireAtMs! || compareBytes(a.key, b.key)
            ).map((r) => toHex(r.key));
          assert.deepEqual(store.expiredKeys(25, 100).map(toHex), due);
        },
      ),
      { numRuns: 60 },
    );
  });

  test("reopening keeps applied rows and drops an unfinished install", (harness) => {
    if (harness.reopen === undefined) {
      // Volatile stores have nothing to reopen; the check below is for durable ones.
      assert.equal(harness.store.appliedIndex(), 0);
      return;
    }
    harness.store.apply({
      puts: [row("a", "1", 1)],
      deletes: [],
      appliedIndex: logIndex(1),
    });
    const installer = harness.store.beginInstall();
    installer.write({
      appliedIndex: logIndex(9),
      sequence: 0,
      rows: [row("z", "9", 9)],
      meta: [],
      last: false,
    });
    // Simulated crash: the store is closed and reopened without commit or abort.
    const reopened = harness.reopen();
    assert.deepEqual(reopened.scan(ALL).map(rowText), [
      rowText(row("a", "1", 1)),
    ]);
    assert.equal(reopened.appliedIndex(), 1);
    const again = reopened.beginInstall();
    again.write({
      appliedIndex: logIndex(9),
      sequence: 0,
      rows: [],
      meta: [],
      last: true,
    });
    again.commit();
    assert.deepEqual(
      reopened.scan(ALL),
      [],
      "staged rows of the crashed install are gone",
    );
  });

  test("a batch of applies ends at the last applied index, across a reopen", (harness) => {
    harness.store.batch(() => {
      for (let index = 1; index <= 3; index++) {
        harness.store.apply({
          puts: [row(`k${index}`, `${index}`, index)],
          deletes: index === 3 ? [bytes("k1")] : [],
          appliedIndex: logIndex(index),
        });
      }
    });
    assert.equal(harness.store.appliedIndex(), 3);
    const store = harness.reopen?.() ?? harness.store;
    assert.equal(store.appliedIndex(), 3);
    assert.deepEqual(store.scan(ALL).map(rowText), [
      rowText(row("k2", "2", 2)),
      rowText(row("k3", "3", 3)),
    ]);
    if (harness.reopen === undefined) return;
    // A durable store's batch is one transaction: a failed one leaves nothing.
    assert.throws(
      () =>
        store.batch(() => {
          store.apply({
            puts: [row("k4", "4", 4)],
            deletes: [],
            appliedIndex: logIndex(4),
          });
          throw new Error("planted failure");
        }),
      /planted failure/,
    );
    const reopened = harness.reopen();
    assert.equal(reopened.appliedIndex(), 3);
    assert.equal(reopened.get(bytes("k4")), null);
  });
}
