/**
 * Property test: random appends (with conflicting truncations), compactions,
 * hard-state writes and reopens applied to both stores and to a trivial
 * array model give the same answers.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Entry, LogIndex, NodeId, Term } from "../raft/types.ts";
import { LogCompactedError, LogUnavailableError } from "./errors.ts";
import type { LogStore, SnapshotMeta } from "./log_store.ts";
import { makeEntry } from "./log_store_conformance.ts";
import { MemoryLogStore } from "./memory_log_store.ts";
import { SqliteLogStore } from "./sqlite_log_store.ts";

/** The model: the snapshot and every entry after it, in a plain array. */
interface Model {
  snapshot: SnapshotMeta;
  log: Entry[];
  hardState: { term: Term; vote: NodeId | null; commit: LogIndex };
}

type Command =
  | {
    kind: "append";
    startFraction: number;
    count: number;
    termBump: number;
    sizeBytes: number;
  }
  | {
    kind: "compact";
    fraction: number;
    ahead: number;
    conflict: boolean;
    voters: number;
  }
  | { kind: "hardState"; term: number; commit: number }
  | { kind: "reopen" };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      startFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      count: fc.integer({ min: 0, max: 6 }),
      termBump: fc.integer({ min: 0, max: 2 }),
      sizeBytes: fc.integer({ min: 0, max: 64 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("compact" as const),
      fraction: fc.double({ min: 0, max: 1, noNaN: true }),
      ahead: fc.integer({ min: 0, max: 3 }),
      conflict: fc.boolean(),
      voters: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("hardState" as const),
      term: fc.nat(20),
      commit: fc.nat(40),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);

function lastIndex(model: Model): number {
  return model.snapshot.index + model.log.length;
}

function termAt(model: Model, index: number): number {
  return index === model.snapshot.index
    ? model.snapshot.term
    : model.log[index - model.snapshot.index - 1]!.term;
}

/** Applies `c` to the model and returns the same call to make on the stores. */
function step(
  model: Model,
  c: Command,
): ((store: LogStore) => void) | "reopen" {
  const last = lastIndex(model);
  switch (c.kind) {
    case "append": {
      const first = model.snapshot.index + 1;
      const start = first +
        Math.floor(c.startFraction * (last + 1 - first + 0.999));
      const term = termAt(model, start - 1) + c.termBump;
      const batch = Array.from(
        { length: c.count },
        (_, i) => makeEntry(start + i, term, c.sizeBytes),
      );
      if (batch.length > 0) {
        model.log = [...model.log.slice(0, start - first), ...batch];
      }
      return (store) => store.append(batch);
    }
    case "compact": {
      const index = model.snapshot.index +
        Math.floor(c.fraction * (last - model.snapshot.index + 0.999)) +
        c.ahead;
      const inLog = index <= last;
      const sameAsSnapshot = index === model.snapshot.index;
      const term = sameAsSnapshot
        ? model.snapshot.term
        : inLog
        ? termAt(model, index) + (c.conflict ? 1 : 0)
        : termAt(model, last) + 1;
      const meta: SnapshotMeta = {
        index: index as LogIndex,
        term: term as Term,
        confState: {
          voters: ["n1", "n2", "n3"].slice(0, c.voters) as NodeId[],
          votersOutgoing: [],
          learners: [],
        },
      };
      const keeps = inLog && termAt(model, index) === term;
      model.log = keeps ? model.log.slice(index - model.snapshot.index) : [];
      model.snapshot = meta;
      return (store) => store.compact(meta);
    }
    case "hardState": {
      const hardState = {
        term: c.term as Term,
        vote: c.term % 2 ? "n1" as NodeId : null,
        commit: c.commit as LogIndex,
      };
      model.hardState = hardState;
      return (store) => store.setHardState(hardState);
    }
    case "reopen":
      return "reopen";
  }
}

/** Everything observable about a store, with errors named. */
function observe(store: LogStore, maxBytes: number): unknown {
  const first = store.firstIndex();
  const last = store.lastIndex();
  const attempt = (f: () => unknown) => {
    try {
      return f();
    } catch (error) {
      if (
        error instanceof LogCompactedError ||
        error instanceof LogUnavailableError
      ) return error.name;
      throw error;
    }
  };
  const terms = [];
  for (let i = Math.max(0, first - 2); i <= last + 1; i++) {
    terms.push(attempt(() => store.term(i as LogIndex)));
  }
  return {
    first,
    last,
    hardState: store.hardState(),
    snapshot: store.snapshotMeta(),
    terms,
    all: store.entries(first, (last + 1) as LogIndex, Number.MAX_SAFE_INTEGER),
    bounded: store.entries(first, (last + 1) as LogIndex, maxBytes),
    before: attempt(() => store.entries((first - 1) as LogIndex, first, 0)),
    after: attempt(() => store.entries(first, (last + 2) as LogIndex, 0)),
  };
}

function observeModel(model: Model, maxBytes: number): unknown {
  const first = model.snapshot.index + 1;
  const last = lastIndex(model);
  const terms = [];
  for (let i = Math.max(0, first - 2); i <= last + 1; i++) {
    terms.push(
      i < model.snapshot.index
        ? "LogCompactedError"
        : i > last
        ? "LogUnavailableError"
        : termAt(model, i),
    );
  }
  const bounded: Entry[] = [];
  let sizeBytes = 0;
  for (const entry of model.log) {
    sizeBytes += entry.data.byteLength;
    if (bounded.length > 0 && sizeBytes > maxBytes) break;
    bounded.push(entry);
  }
  return {
    first,
    last,
    hardState: model.hardState,
    snapshot: model.snapshot,
    terms,
    all: model.log,
    bounded,
    before: "LogCompactedError",
    after: "LogUnavailableError",
  };
}

Deno.test("MemoryLogStore and SqliteLogStore answer as the array model under random operations", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen_log_prop_" });
  let run = 0;
  try {
    fc.assert(
      fc.property(
        fc.array(command, { maxLength: 25 }),
        fc.nat(200),
        (commands, maxBytes) => {
          const path = `${dir}/log_${run++}.db`;
          const model: Model = {
            snapshot: {
              index: 0 as LogIndex,
              term: 0 as Term,
              confState: { voters: [], votersOutgoing: [], learners: [] },
            },
            log: [],
            hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
          };
          const memory = new MemoryLogStore();
          let sqlite = SqliteLogStore.open({ path });
          try {
            for (const c of commands) {
              const call = step(model, c);
              if (call === "reopen") {
                sqlite.close();
                sqlite = SqliteLogStore.open({ path });
              } else {
                call(memory);
                call(sqlite);
              }
              const expected = observeModel(model, maxBytes);
              assert.deepEqual(observe(memory, maxBytes), expected);
              assert.deepEqual(observe(sqlite, maxBytes), expected);
            }
          } finally {
            sqlite.close();
          }
        },
      ),
      { numRuns: 100 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
