/**
 * The conformance suite every {@linkcode LogStore} must pass; the in-memory
 * store is the reference. Registers one `Deno.test` per behaviour.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AssertionError } from "../base/assert.ts";
import type {
  Entry,
  EntryType,
  LogIndex,
  NodeId,
  Term,
} from "../raft/types.ts";
import { LogCompactedError, LogUnavailableError } from "./errors.ts";
import type { LogStore, SnapshotMeta } from "./log_store.ts";

/** A store under test and how to dispose of it. */
export interface LogStoreFixture {
  /** A fresh, empty store. */
  readonly store: LogStore;
  /**
   * Closes `store` and opens the same durable store again. Absent for
   * stores that keep nothing across a close (the persistence test is then
   * not registered).
   */
  readonly reopen?: (store: LogStore) => LogStore;
  /** Closes the latest store and removes its files. */
  readonly cleanup: () => Promise<void>;
}

/** Builds a fixture with a fresh store. */
export type LogStoreFactory = () => Promise<LogStoreFixture>;

/** An entry whose data is derived from its index, so reads can be checked. */
export function makeEntry(
  index: number,
  term: number,
  sizeBytes = 8,
  type: EntryType = "normal",
): Entry {
  const data = new Uint8Array(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) {
    data[i] = (index * 31 + term * 7 + i) & 0xff;
  }
  return { index: index as LogIndex, term: term as Term, type, data };
}

/** Entries `from..to` inclusive, all in `term`. */
export function makeEntries(
  from: number,
  to: number,
  term: number,
  sizeBytes = 8,
): Entry[] {
  const entries: Entry[] = [];
  for (let index = from; index <= to; index++) {
    entries.push(makeEntry(index, term, sizeBytes));
  }
  return entries;
}

function meta(
  index: number,
  term: number,
  voters: string[] = ["n1"],
  votersOutgoing: string[] = [],
): SnapshotMeta {
  return {
    index: index as LogIndex,
    term: term as Term,
    confState: {
      voters: voters as NodeId[],
      votersOutgoing: votersOutgoing as NodeId[],
      learners: [],
    },
  };
}

const ALL = Number.MAX_SAFE_INTEGER;

function at(n: number): LogIndex {
  return n as LogIndex;
}

type Case = (store: LogStore, fixture: LogStoreFixture) => void;

const cases: Record<string, Case> = {
  "an empty store spans nothing and has term 0 at index 0": (store) => {
    assert.equal(store.firstIndex(), 1);
    assert.equal(store.lastIndex(), 0);
    assert.equal(store.term(at(0)), 0);
    assert.deepEqual(store.hardState(), { term: 0, vote: null, commit: 0 });
    assert.deepEqual(store.snapshotMeta(), meta(0, 0, []));
    assert.deepEqual(store.entries(at(1), at(1), ALL), []);
  },
  "append() stores entries that entries() returns in order": (store) => {
    const batch = [...makeEntries(1, 3, 1), makeEntry(4, 2, 0, "confChange")];
    store.append(batch);
    assert.equal(store.lastIndex(), 4);
    assert.deepEqual(store.entries(at(1), at(5), ALL), batch);
    assert.deepEqual(store.entries(at(2), at(4), ALL), batch.slice(1, 3));
  },
  "append() truncates a conflicting suffix first": (store) => {
    store.append(makeEntries(1, 5, 1));
    store.append(makeEntries(3, 4, 2));
    assert.equal(store.lastIndex(), 4);
    assert.deepEqual(store.entries(at(1), at(5), ALL), [
      ...makeEntries(1, 2, 1),
      ...makeEntries(3, 4, 2),
    ]);
    assert.throws(() => store.term(at(5)), LogUnavailableError);
  },
  "append() of an empty batch changes nothing": (store) => {
    store.append(makeEntries(1, 2, 1));
    store.append([]);
    assert.equal(store.lastIndex(), 2);
  },
  "append() refuses batches not contiguous with the log": (store) => {
    store.append(makeEntries(1, 3, 2));
    const bad: Record<string, Entry[]> = {
      "gap after the log": makeEntries(5, 6, 2),
      "gap within the batch": [makeEntry(4, 2), makeEntry(6, 2)],
      "decreasing term": [makeEntry(4, 3), makeEntry(5, 2)],
      "term below the previous entry": [makeEntry(4, 1)],
    };
    for (const [what, batch] of Object.entries(bad)) {
      assert.throws(() => store.append(batch), AssertionError, what);
    }
    assert.equal(store.lastIndex(), 3);
    store.compact(meta(2, 2));
    assert.throws(() => store.append(makeEntries(2, 4, 2)), AssertionError);
    assert.deepEqual(store.entries(at(3), at(4), ALL), makeEntries(3, 3, 2));
  },
  "append() keeps its own copy of the data": (store) => {
    const entry = makeEntry(1, 1);
    store.append([entry]);
    entry.data.fill(0);
    const [read] = store.entries(at(1), at(2), ALL);
    assert.deepEqual(read, makeEntry(1, 1));
  },
  "entries() stops at maxBytes but returns at least one entry": (store) => {
    const batch = makeEntries(1, 5, 1, 100);
    store.append(batch);
    assert.deepEqual(store.entries(at(1), at(6), 0), batch.slice(0, 1));
    assert.deepEqual(store.entries(at(1), at(6), 99), batch.slice(0, 1));
    assert.deepEqual(store.entries(at(1), at(6), 200), batch.slice(0, 2));
    assert.deepEqual(store.entries(at(1), at(6), 299), batch.slice(0, 2));
    assert.deepEqual(store.entries(at(2), at(6), 500), batch.slice(1));
    assert.deepEqual(store.entries(at(3), at(3), 0), []);
  },
  "entries() reads long ranges whole and bounded": (store) => {
    const batch = makeEntries(1, 600, 1, 8);
    store.append(batch);
    assert.deepEqual(store.entries(at(1), at(601), ALL), batch);
    assert.deepEqual(
      store.entries(at(2), at(601), 300 * 8),
      batch.slice(1, 301),
    );
  },
  "entries() throws typed errors outside the log": (store) => {
    store.append(makeEntries(1, 5, 1));
    store.compact(meta(2, 1));
    assert.throws(() => store.entries(at(2), at(4), ALL), LogCompactedError);
    assert.throws(() => store.entries(at(3), at(7), ALL), LogUnavailableError);
    assert.throws(() => store.entries(at(4), at(3), ALL), RangeError);
    assert.throws(() => store.entries(at(3), at(4), -1), RangeError);
    assert.deepEqual(store.entries(at(3), at(6), ALL), makeEntries(3, 5, 1));
  },
  "term() answers for entries and the snapshot index": (store) => {
    store.append([...makeEntries(1, 2, 1), ...makeEntries(3, 4, 3)]);
    assert.deepEqual([1, 2, 3, 4].map((i) => store.term(at(i))), [1, 1, 3, 3]);
    store.compact(meta(2, 1));
    assert.equal(store.term(at(2)), 1);
    assert.throws(() => store.term(at(1)), LogCompactedError);
    assert.throws(() => store.term(at(5)), LogUnavailableError);
  },
  "compact() drops entries up to the snapshot and keeps the rest": (store) => {
    store.append(makeEntries(1, 6, 1));
    store.compact(meta(4, 1, ["n1", "n2"]));
    assert.equal(store.firstIndex(), 5);
    assert.equal(store.lastIndex(), 6);
    assert.deepEqual(store.snapshotMeta(), meta(4, 1, ["n1", "n2"]));
    assert.deepEqual(store.entries(at(5), at(7), ALL), makeEntries(5, 6, 1));
    assert.throws(() => store.compact(meta(3, 1)), LogCompactedError);
    store.compact(meta(4, 1, ["n1", "n2", "n3"]));
    assert.equal(store.snapshotMeta().confState.voters.length, 3);
    store.compact(meta(6, 1));
    assert.equal(store.firstIndex(), 7);
    assert.equal(store.lastIndex(), 6);
    assert.deepEqual(store.entries(at(7), at(7), ALL), []);
  },
  "compact() ahead of the log leaves it empty after the snapshot": (store) => {
    store.append(makeEntries(1, 3, 1));
    store.compact(meta(10, 4));
    assert.equal(store.firstIndex(), 11);
    assert.equal(store.lastIndex(), 10);
    assert.equal(store.term(at(10)), 4);
    assert.throws(() => store.append(makeEntries(12, 12, 4)), AssertionError);
    store.append(makeEntries(11, 12, 5));
    assert.deepEqual(
      store.entries(at(11), at(13), ALL),
      makeEntries(11, 12, 5),
    );
  },
  "compact() with a conflicting term drops the whole log": (store) => {
    store.append(makeEntries(1, 5, 1));
    store.compact(meta(3, 2));
    assert.equal(store.firstIndex(), 4);
    assert.equal(store.lastIndex(), 3);
    assert.equal(store.term(at(3)), 2);
    assert.throws(() => store.term(at(4)), LogUnavailableError);
  },
  "save() stores hard state and entries together": (store) => {
    const hardState = {
      term: 3 as Term,
      vote: "n2" as NodeId,
      commit: 2 as LogIndex,
    };
    store.save({ hardState, entries: makeEntries(1, 3, 3) });
    assert.deepEqual(store.hardState(), hardState);
    assert.equal(store.lastIndex(), 3);
    store.setHardState({ ...hardState, vote: null });
    assert.equal(store.hardState().vote, null);
    assert.throws(
      () =>
        store.save({
          hardState: { ...hardState, term: 9 as Term },
          entries: makeEntries(5, 5, 3),
        }),
      AssertionError,
    );
    assert.equal(store.hardState().term, 3, "a refused save stores nothing");
  },
};

const persistence: Case = (first, fixture) => {
  assert.ok(fixture.reopen);
  let store = first;
  const hardState = {
    term: 4 as Term,
    vote: "n3" as NodeId,
    commit: 7 as LogIndex,
  };
  store.save({ hardState, entries: makeEntries(1, 8, 2, 40) });
  store.append(makeEntries(6, 9, 4, 40));
  store.compact(meta(3, 2, ["n1", "n3"], ["n1", "n2"]));
  store = fixture.reopen(store);
  assert.deepEqual(store.hardState(), hardState);
  assert.deepEqual(
    store.snapshotMeta(),
    meta(3, 2, ["n1", "n3"], ["n1", "n2"]),
  );
  assert.equal(store.firstIndex(), 4);
  assert.equal(store.lastIndex(), 9);
  assert.equal(store.term(at(9)), 4);
  assert.deepEqual(store.entries(at(4), at(10), ALL), [
    ...makeEntries(4, 5, 2, 40),
    ...makeEntries(6, 9, 4, 40),
  ]);
  store.compact(meta(20, 5));
  store = fixture.reopen(store);
  assert.equal(store.lastIndex(), 20);
  assert.equal(store.term(at(20)), 5);
  store.close();
};

/** Options of {@linkcode runLogStoreConformance}. */
export interface ConformanceOptions {
  /** The store keeps its data across close and reopen; the fixture must provide `reopen`. Default false. */
  readonly durable?: boolean;
}

/**
 * Registers the conformance tests for one {@linkcode LogStore} implementation.
 *
 * @param name The implementation's name, prefixed to every test name.
 * @param factory Builds a fixture with a fresh store for each test.
 * @param options What else the implementation promises.
 */
export function runLogStoreConformance(
  name: string,
  factory: LogStoreFactory,
  options: ConformanceOptions = {},
): void {
  const all: [string, Case][] = Object.entries(cases);
  if (options.durable === true) {
    all.push(["reopen() keeps hard state, snapshot and entries", persistence]);
  }
  for (const [title, body] of all) {
    Deno.test(`${name}: ${title}`, async () => {
      const fixture = await factory();
      try {
        body(fixture.store, fixture);
      } finally {
        await fixture.cleanup();
      }
    });
  }
}
