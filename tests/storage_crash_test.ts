/**
 * Crash safety of the SQLite log store: a writer child process is killed
 * with SIGKILL at seeded random points; after each kill the log must be a
 * contiguous prefix of what the writer generates, with every batch the
 * writer acknowledged (printed after `save()` returned) present.
 *
 * SIGKILL keeps the OS page cache, so this proves atomicity and
 * acknowledgement ordering, not power-loss durability; for the latter the
 * test asserts on open handles that the journal is WAL and `synchronous` is
 * 2 (FULL). Reproduce a failure with `ASPEN_CRASH_SEED=<seed>`.
 */
import assert from "node:assert/strict";
import type { LogIndex } from "../src/raft/types.ts";
import { SqliteLogStore } from "../src/storage/sqlite_log_store.ts";
import { generatedEntry, generatedTerm } from "./helpers/log_writer.ts";

const KILLS = 50;
/** Longest wait after the writer opened its store before the kill, in ms. */
const KILL_DELAY_MS_MAX = 60;
const SEED = Number(Deno.env.get("ASPEN_CRASH_SEED") ?? 20240611);

/** mulberry32: a small seeded generator, so a failing run can be replayed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function spawnWriter(dir: string, allowWrite = true): Deno.ChildProcess {
  const args = ["run", `--allow-read=${dir}`];
  if (allowWrite) args.push(`--allow-write=${dir}`);
  args.push("tests/helpers/log_writer.ts", dir);
  return new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Reads the child's stdout lines, calling `onLine` for each, until it closes. */
async function readLines(
  child: Deno.ChildProcess,
  onLine: (line: string) => void,
): Promise<void> {
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    lines.forEach(onLine);
  }
}

/** Runs one writer, kills it after `delayMs` from its `open` line, returns the highest acknowledged index. */
async function runAndKill(
  dir: string,
  delayMs: number,
  known: number,
): Promise<number> {
  const child = spawnWriter(dir);
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let acknowledged = known;
  let opened = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await readLines(child, (line) => {
    if (line.startsWith("open ")) {
      assert.equal(
        line.split(" ").slice(1, 3).join(" "),
        "wal 2",
        "writer's handle must be WAL + FULL",
      );
      opened = true;
      timer = setTimeout(() => child.kill("SIGKILL"), delayMs);
    } else {
      const index = Number(line);
      assert.ok(
        Number.isSafeInteger(index) && index > acknowledged,
        `Unexpected writer output: ${line}`,
      );
      acknowledged = index;
    }
  });
  clearTimeout(timer);
  const status = await child.status;
  const { value: errorText } = await stderr.read();
  await stderr.cancel();
  assert.ok(opened, `writer never opened its store: ${errorText ?? ""}`);
  assert.equal(
    status.signal,
    "SIGKILL",
    `writer ended without being killed: ${errorText ?? ""}`,
  );
  return acknowledged;
}

/** Reopens the log and checks it against the generator; returns its last index. */
function verify(path: string, acknowledged: number): number {
  const store = SqliteLogStore.open({
    path,
    onWarning: (message) =>
      assert.fail(`unexpected repair after SIGKILL: ${message}`),
  });
  try {
    assert.deepEqual(store.durability(), {
      journalMode: "wal",
      synchronous: 2,
    });
    const first = store.firstIndex();
    const last = store.lastIndex();
    assert.ok(
      last >= acknowledged,
      `acknowledged index ${acknowledged} lost: log ends at ${last}`,
    );
    assert.equal(
      store.hardState().commit,
      last,
      "hard state and entries are saved atomically",
    );
    assert.equal(store.term((first - 1) as LogIndex), generatedTerm(first - 1));
    const entries = store.entries(
      first,
      (last + 1) as LogIndex,
      Number.MAX_SAFE_INTEGER,
    );
    assert.equal(entries.length, last - first + 1);
    for (const entry of entries) {
      assert.deepEqual(entry, generatedEntry(entry.index));
    }
    return last;
  } finally {
    store.close();
  }
}

Deno.test(`SqliteLogStore keeps every acknowledged batch across ${KILLS} SIGKILLs (seed ${SEED})`, async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen_crash_" });
  const random = seededRandom(SEED);
  try {
    let acknowledged = 0;
    let last = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const delayMs = Math.floor(random() * KILL_DELAY_MS_MAX);
      acknowledged = await runAndKill(dir, delayMs, last);
      const before = last;
      last = verify(`${dir}/log.db`, acknowledged);
      assert.ok(
        last >= before,
        `log went backwards from ${before} to ${last} (kill ${kill}, seed ${SEED})`,
      );
    }
    console.log(`crash test: ${KILLS} kills, log ends at index ${last}`);
    assert.ok(last > 0, "the writer wrote something");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("log writer without write permission fails with StorageReadOnlyError and leaves the log intact", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen_perm_" });
  try {
    const store = SqliteLogStore.open({ path: `${dir}/log.db` });
    store.append([generatedEntry(1), generatedEntry(2)]);
    store.close();
    const output = await spawnWriter(dir, false).output();
    assert.equal(
      new TextDecoder().decode(output.stdout).trim(),
      "error StorageReadOnlyError",
    );
    assert.equal(output.code, 2);
    assert.equal(verifyEntries(`${dir}/log.db`), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function verifyEntries(path: string): number {
  const store = SqliteLogStore.open({ path });
  try {
    const entries = store.entries(
      1 as LogIndex,
      (store.lastIndex() + 1) as LogIndex,
      Number.MAX_SAFE_INTEGER,
    );
    for (const entry of entries) {
      assert.deepEqual(entry, generatedEntry(entry.index));
    }
    return entries.length;
  } finally {
    store.close();
  }
}
