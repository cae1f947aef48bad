import assert from "node:assert/strict";
import type { LogIndex, Term } from "../raft/types.ts";
import { SqliteLogStore } from "./sqlite_log_store.ts";
import { LogWriteError, WorkerLogWriter } from "./log_writer.ts";

const entry = (index: number) => ({
  term: 1 as Term,
  index: index as LogIndex,
  type: "normal" as const,
  data: new Uint8Array([index]),
});

Deno.test("WorkerLogWriter saves in order off the main thread, durably", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-writer-" });
  const writer = new WorkerLogWriter(`${dir}/log.sqlite`);
  try {
    await Promise.all([
      writer.save({ entries: [entry(1), entry(2)] }),
      writer.save({
        entries: [entry(3)],
        hardState: { term: 1 as Term, vote: null, commit: 2 as LogIndex },
      }),
    ]);
  } finally {
    await writer.close();
  }
  const store = SqliteLogStore.open({ path: `${dir}/log.sqlite` });
  assert.equal(store.lastIndex(), 3);
  assert.equal(store.hardState().commit, 2);
  store.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("WorkerLogWriter fails every write with a typed error when the log cannot open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-writer-" });
  // A folder where the database file should be: SQLite cannot open it.
  await Deno.mkdir(`${dir}/log.sqlite`);
  const writer = new WorkerLogWriter(`${dir}/log.sqlite`);
  try {
    await assert.rejects(writer.save({ entries: [entry(1)] }), LogWriteError);
    await assert.rejects(writer.save({ entries: [entry(1)] }), LogWriteError);
  } finally {
    await writer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
