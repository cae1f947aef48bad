import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { LogIndex, Term } from "../raft/types.ts";
import {
  StorageCorruptedError,
  StorageFullError,
  StorageIoError,
  StorageReadOnlyError,
} from "./errors.ts";
import { makeEntries } from "./log_store_conformance.ts";
import {
  SqliteLogStore,
  type SqliteLogStoreOptions,
} from "./sqlite_log_store.ts";
import { toStorageError } from "./_sqlite_errors.ts";

const ALL = Number.MAX_SAFE_INTEGER;

/** Runs `body` with the path of a database holding entries 1..10 (term 1) and commit `commit`. */
async function withLog(
  commit: number,
  body: (path: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "aspen_log_" });
  const path = `${dir}/log.db`;
  try {
    const store = SqliteLogStore.open({ path });
    store.save({
      hardState: { term: 1 as Term, vote: null, commit: commit as LogIndex },
      entries: makeEntries(1, 10, 1, 32),
    });
    store.close();
    await body(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Changes stored bytes behind the store's back, as bit rot would. */
function rot(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  db.exec(sql);
  db.close();
}

function openCollecting(
  path: string,
  options: Partial<SqliteLogStoreOptions> = {},
) {
  const warnings: string[] = [];
  const store = SqliteLogStore.open({
    path,
    onWarning: (m) => warnings.push(m),
    ...options,
  });
  return { store, warnings };
}

Deno.test("SqliteLogStore.open() truncates a corrupt tail after the commit index and warns", async () => {
  await withLog(5, (path) => {
    rot(path, "UPDATE entries SET data = x'00' WHERE idx >= 9");
    const { store, warnings } = openCollecting(path);
    assert.equal(store.lastIndex(), 8);
    assert.equal(store.term(8 as LogIndex), 1);
    assert.deepEqual(
      store.entries(1 as LogIndex, 9 as LogIndex, ALL),
      makeEntries(1, 8, 1, 32),
    );
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!,
      /to index 8: entries 9 to 10 failed their checksum/,
    );
    store.append(makeEntries(9, 9, 2));
    store.close();
    const again = openCollecting(path);
    assert.equal(again.store.lastIndex(), 9);
    assert.deepEqual(again.warnings, []);
    again.store.close();
  });
});

Deno.test("SqliteLogStore.open() keeps the end of a dropped tail as the recovery bound, durably", async () => {
  // The reproduction of issue 12 item 3: entries 6..10 may have been
  // acknowledged to a leader although the local commit index is 5.
  await withLog(5, (path) => {
    rot(path, "UPDATE entries SET data = x'00' WHERE idx >= 8");
    const { store, warnings } = openCollecting(path);
    assert.equal(store.lastIndex(), 7);
    assert.deepEqual(store.recoveryBound(), { index: 10, term: 1 });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /entries 8 to 10 failed their checksum/);
    assert.match(warnings[0]!, /votes only for a log .*index 10, term 1/);
    store.close();
    // A second restart before catching up still knows the bound.
    const again = openCollecting(path);
    assert.equal(again.store.lastIndex(), 7);
    assert.deepEqual(again.store.recoveryBound(), { index: 10, term: 1 });
    assert.deepEqual(again.warnings, []);
    again.store.close();
  });
});

Deno.test("SqliteLogStore.recoveryBound() is null for a log that never lost a tail", async () => {
  await withLog(5, (path) => {
    const { store } = openCollecting(path);
    assert.equal(store.recoveryBound(), null);
    store.close();
  });
});

Deno.test("SqliteLogStore.open() with tail verification extends the window over a long bad tail", async () => {
  await withLog(2, (path) => {
    rot(path, "UPDATE entries SET crc = crc + 1 WHERE idx >= 4");
    const { store, warnings } = openCollecting(path, { verifyTailEntries: 2 });
    assert.equal(store.lastIndex(), 3);
    assert.equal(warnings.length, 1);
    store.close();
  });
});

Deno.test("SqliteLogStore.open() throws StorageCorruptedError for corruption in the middle", async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      "bad data",
      "UPDATE entries SET data = x'01' WHERE idx = 4",
      /at index 4: .*later entry \(index 5\) passes/,
    ],
    ["bad term", "UPDATE entries SET term = 2 WHERE idx = 6", /at index 6/],
    [
      "moved row",
      "UPDATE entries SET idx = 11 WHERE idx = 10; UPDATE entries SET idx = 10 WHERE idx = 9",
      /at index 10: entries are missing after index 8|at index 9/,
    ],
    [
      "gap",
      "DELETE FROM entries WHERE idx = 5",
      /at index 5: entries are missing after index 4/,
    ],
    [
      "missing start",
      "DELETE FROM entries WHERE idx = 1",
      /starts at index 2 but the snapshot ends at index 0/,
    ],
    [
      "bad hard state",
      "UPDATE state SET value = replace(value, '\"term\":1', '\"term\":7')",
      /'hardState' row is corrupt/,
    ],
  ];
  for (const [what, sql, message] of cases) {
    await t.step(what, async () => {
      await withLog(0, (path) => {
        rot(path, sql);
        assert.throws(
          () => SqliteLogStore.open({ path }),
          (error: unknown) =>
            error instanceof StorageCorruptedError && error.path === path &&
            message.test(error.message),
        );
      });
    });
  }
});

Deno.test("SqliteLogStore.open() refuses to drop a corrupt tail holding committed entries", async () => {
  await withLog(9, (path) => {
    rot(path, "UPDATE entries SET data = x'00' WHERE idx >= 9");
    assert.throws(
      () => SqliteLogStore.open({ path }),
      (error: unknown) =>
        error instanceof StorageCorruptedError && error.index === 9 &&
        /include committed entries \(commit index 9\)/.test(error.message),
    );
  });
});

Deno.test("SqliteLogStore checks entries outside the verified tail when reading them", async () => {
  await withLog(0, (path) => {
    rot(path, "UPDATE entries SET data = x'02' WHERE idx = 3");
    const { store } = openCollecting(path, { verifyTailEntries: 4 });
    assert.equal(store.lastIndex(), 10);
    assert.deepEqual(
      store.entries(1 as LogIndex, 3 as LogIndex, ALL),
      makeEntries(1, 2, 1, 32),
    );
    assert.throws(
      () => store.entries(1 as LogIndex, 5 as LogIndex, ALL),
      StorageCorruptedError,
    );
    assert.throws(() => store.term(3 as LogIndex), StorageCorruptedError);
    assert.throws(
      () => store.append(makeEntries(11, 11, 1)),
      StorageCorruptedError,
    );
    store.close();
  });
});

Deno.test("SqliteLogStore fails with StorageFullError at its size limit, then refuses writes and keeps its data", async () => {
  await withLog(0, (path) => {
    const store = SqliteLogStore.open({ path, maxSizeBytes: 65536 });
    let next = 11;
    let first: unknown = null;
    for (; next < 10_000 && first === null; next += 10) {
      try {
        store.append(makeEntries(next, next + 9, 1, 1000));
      } catch (error) {
        first = error;
      }
    }
    assert.ok(
      first instanceof StorageFullError,
      `expected StorageFullError, got ${first}`,
    );
    assert.equal((first.cause as { errcode?: number }).errcode, 13);
    const stored = store.lastIndex();
    assert.equal(stored, next - 11);
    assert.throws(
      () =>
        store.setHardState({
          term: 2 as Term,
          vote: null,
          commit: 0 as LogIndex,
        }),
      StorageFullError,
    );
    assert.throws(
      () => store.append(makeEntries(stored + 1, stored + 1, 1)),
      (error: unknown) =>
        error instanceof StorageFullError && error.cause === first,
    );
    assert.equal(
      store.entries(1 as LogIndex, (stored + 1) as LogIndex, ALL).length,
      stored,
    );
    store.close();
    const reopened = SqliteLogStore.open({ path });
    assert.equal(reopened.lastIndex(), stored);
    assert.equal(reopened.hardState().term, 1);
    assert.deepEqual(
      reopened.entries(1 as LogIndex, 11 as LogIndex, ALL),
      makeEntries(1, 10, 1, 32),
    );
    reopened.append(makeEntries(stored + 1, stored + 1, 1));
    reopened.close();
  });
});

function sqliteError(errcode: number, message: string): Error {
  return Object.assign(new Error(message), {
    errcode,
    code: "ERR_SQLITE_ERROR",
    errstr: message,
  });
}

Deno.test("SqliteLogStore turns an injected SQLITE_READONLY into StorageReadOnlyError and stores nothing of the write", async () => {
  // As root, chmod does not stop SQLite from writing (checked by hand on this
  // platform), so the read-only condition is injected through the test-only hook.
  await withLog(0, (path) => {
    let failing = false;
    const store = SqliteLogStore.open({
      path,
      testingFaultHook: () => {
        if (failing) {
          throw sqliteError(8, "attempt to write a readonly database");
        }
      },
    });
    failing = true;
    assert.throws(
      () =>
        store.save({
          hardState: { term: 5 as Term, vote: null, commit: 11 as LogIndex },
          entries: makeEntries(9, 11, 2),
        }),
      StorageReadOnlyError,
    );
    assert.equal(store.lastIndex(), 10);
    assert.equal(store.term(10 as LogIndex), 1);
    failing = false;
    assert.throws(
      () => store.append(makeEntries(11, 11, 1)),
      StorageReadOnlyError,
      "writes stay refused",
    );
    assert.throws(
      () =>
        store.compact({
          index: 2 as LogIndex,
          term: 1 as Term,
          confState: { voters: [], votersOutgoing: [], learners: [] },
        }),
      StorageReadOnlyError,
    );
    store.close();
    const reopened = SqliteLogStore.open({ path });
    assert.equal(reopened.hardState().term, 1);
    assert.deepEqual(
      reopened.entries(1 as LogIndex, 11 as LogIndex, ALL),
      makeEntries(1, 10, 1, 32),
    );
    reopened.close();
  });
});

Deno.test("SqliteLogStore turns an injected failure during compact() into a typed error and keeps the snapshot", async () => {
  await withLog(0, (path) => {
    const store = SqliteLogStore.open({
      path,
      testingFaultHook: (operation) => {
        if (operation === "compact") {
          throw sqliteError(13, "database or disk is full");
        }
      },
    });
    assert.throws(
      () =>
        store.compact({
          index: 4 as LogIndex,
          term: 1 as Term,
          confState: { voters: [], votersOutgoing: [], learners: [] },
        }),
      StorageFullError,
    );
    assert.equal(store.firstIndex(), 1);
    store.close();
    const reopened = SqliteLogStore.open({ path });
    assert.equal(reopened.firstIndex(), 1);
    assert.equal(reopened.snapshotMeta().index, 0);
    reopened.close();
  });
});

Deno.test("toStorageError() maps SQLite codes and Deno permission errors", async (t) => {
  const cases: [string, unknown, (new (...args: never[]) => Error) | null][] = [
    [
      "SQLITE_FULL",
      sqliteError(13, "database or disk is full"),
      StorageFullError,
    ],
    [
      "SQLITE_READONLY_DBMOVED",
      sqliteError(8 | (4 << 8), "readonly"),
      StorageReadOnlyError,
    ],
    [
      "SQLITE_PERM",
      sqliteError(3, "access permission denied"),
      StorageReadOnlyError,
    ],
    [
      "NotCapable",
      new Deno.errors.NotCapable("Requires write access"),
      StorageReadOnlyError,
    ],
    [
      "SQLITE_CORRUPT",
      sqliteError(11, "database disk image is malformed"),
      StorageCorruptedError,
    ],
    [
      "SQLITE_IOERR_FSYNC",
      sqliteError(10 | (4 << 8), "disk I/O error"),
      StorageIoError,
    ],
    ["a bug", new TypeError("x is not a function"), null],
  ];
  for (const [what, error, expected] of cases) {
    await t.step(what, () => {
      const typed = toStorageError(error, "write to", "/data/log.db");
      if (expected === null) return assert.equal(typed, null);
      assert.ok(typed instanceof expected);
      assert.equal(typed.cause, error);
      assert.match(
        typed.message,
        /^Cannot write to the log store at '\/data\/log.db': /,
      );
    });
  }
});
