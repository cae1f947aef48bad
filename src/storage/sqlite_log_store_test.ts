import assert from "node:assert/strict";
import {
  SqliteLogStore,
  type SqliteLogStoreOptions,
} from "./sqlite_log_store.ts";
import type { LogStore } from "./log_store.ts";
import { runLogStoreConformance } from "./log_store_conformance.ts";

/** A fresh SQLite store in a temp folder; `cleanup` closes the latest handle and removes the folder. */
export async function sqliteFixture(
  options: Partial<SqliteLogStoreOptions> = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "aspen_log_" });
  const path = `${dir}/log.db`;
  const open = () => SqliteLogStore.open({ ...options, path });
  const store = open();
  let latest: LogStore = store;
  return {
    dir,
    path,
    store,
    reopen: (store: LogStore) => {
      store.close();
      latest = open();
      return latest;
    },
    cleanup: async () => {
      latest.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

runLogStoreConformance("SqliteLogStore", () => sqliteFixture(), {
  durable: true,
});
runLogStoreConformance(
  "SqliteLogStore (tail verification)",
  () => sqliteFixture({ verifyTailEntries: 2 }),
  { durable: true },
);

Deno.test("SqliteLogStore.durability() reports WAL and synchronous=FULL", async () => {
  const fixture = await sqliteFixture();
  try {
    assert.deepEqual(fixture.store.durability(), {
      journalMode: "wal",
      synchronous: 2,
    });
  } finally {
    await fixture.cleanup();
  }
});
