/**
 * Applying a batch of 1, 16 and 256 committed put entries (one-set atomics
 * of a 256-byte value, as `encodeKvEntry` writes them) to the real KV state
 * the runner uses: `KvReplicatedState` over a `KvStateMachine` with a
 * `ChangeFeed` (as `node/bootstrap.ts` builds it) on a `SqliteStateStore`
 * (WAL, synchronous=NORMAL), inside its `batch()` (one store transaction
 * per batch, as the ready loop does for more than one entry).
 *
 * Baseline: raw `node:sqlite` `INSERT OR REPLACE` of the same rows (key,
 * value, encoding, a 10-byte versionstamp) into the same table layout, in
 * one transaction, with the same pragmas. The same state on a
 * `MemoryStateStore` shows the cost that is not SQLite's.
 *
 * Keys cycle through {@linkcode KEY_SPACE} keys, so the tables stay bounded
 * (after the first pass every put replaces a row). Entries are built outside
 * the timed part. Entries/s = iter/s × the batch size. Files live under
 * /tmp and are removed on unload.
 *
 * Run: deno task bench, or
 * npx -y deno@2.9.6 bench --allow-read --allow-write --allow-env --unstable-kv bench/apply_bench.ts
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { encodeKey } from "../src/model/key_codec.ts";
import type { Entry, LogIndex, Term } from "../src/raft/types.ts";
import { encodeKvEntry } from "../src/services/entries.ts";
import { KvReplicatedState } from "../src/services/replicated_state.ts";
import { KvStateMachine } from "../src/services/state_machine.ts";
import { ChangeFeed } from "../src/state/change_feed.ts";
import type { StateStore } from "../src/state/state_store.ts";
import { MemoryStateStore } from "../src/storage/memory_state_store.ts";
import { SqliteStateStore } from "../src/storage/sqlite_state_store.ts";

const VALUE_BYTES = 256;
const BATCH_SIZES = [1, 16, 256] as const;
/** Distinct keys the puts cycle through. */
const KEY_SPACE = 20_000;
/** The KV encoding code of raw bytes (see `services/kv/commands.ts`). */
const ENCODING_BYTES = 3;
const VERSIONSTAMP_BYTES = 10;

const directory = Deno.makeTempDirSync({
  dir: "/tmp",
  prefix: "aspen_apply_bench_",
});
const closers: (() => void)[] = [];
globalThis.addEventListener("unload", () => {
  for (const close of closers) close();
  Deno.removeSync(directory, { recursive: true });
});

const value = new Uint8Array(VALUE_BYTES).map((_, i) => (i * 7) & 0xff);
const keys = Array.from(
  { length: KEY_SPACE },
  (_, i) => encodeKey(["bench", "user", i]),
);

function putEntry(index: number): Entry {
  return {
    index: index as LogIndex,
    term: 1 as Term,
    type: "normal",
    data: encodeKvEntry({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [{
          type: "set",
          key: keys[index % KEY_SPACE]!,
          value: { encoding: "bytes", data: value },
        }],
        enqueues: [],
      },
    }),
  };
}

/** The runner's state machine on `store`, and its next entries. */
class StateUnderTest {
  readonly state: KvReplicatedState;

  constructor(store: StateStore) {
    const changes = new ChangeFeed({
      revision: BigInt(store.appliedIndex()),
    });
    this.state = new KvReplicatedState(
      new KvStateMachine(store, {}, { changes }),
    );
  }

  entries(count: number): Entry[] {
    const start = this.state.appliedIndex() + 1;
    return Array.from({ length: count }, (_, i) => putEntry(start + i));
  }

  applyBatch(entries: readonly Entry[]): void {
    this.state.batch(() => {
      for (const entry of entries) {
        const result = this.state.apply(entry) as { ok?: boolean };
        if (result?.ok !== true) {
          throw new Error(`Cannot run the bench: entry ${entry.index} failed`);
        }
      }
    });
  }
}

/** Raw `node:sqlite` writes of the rows a put leaves, in one transaction. */
class RawSqlite {
  readonly #db: DatabaseSync;
  readonly #insert;
  readonly #versionstamp = new Uint8Array(VERSIONSTAMP_BYTES);
  #next = 1;

  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec("PRAGMA synchronous = NORMAL");
    this.#db.exec(`CREATE TABLE kv (
      k BLOB PRIMARY KEY,
      v BLOB NOT NULL,
      encoding INTEGER NOT NULL,
      versionstamp BLOB NOT NULL,
      expire_at_ms INTEGER
    ) WITHOUT ROWID`);
    this.#insert = this.#db.prepare(
      "INSERT OR REPLACE INTO kv (k, v, encoding, versionstamp, expire_at_ms) VALUES (?, ?, ?, ?, ?)",
    );
  }

  insertBatch(count: number): void {
    const view = new DataView(this.#versionstamp.buffer);
    this.#db.exec("BEGIN");
    for (let i = 0; i < count; i++) {
      const index = this.#next++;
      view.setBigUint64(0, BigInt(index));
      this.#insert.run(
        keys[index % KEY_SPACE]!,
        value,
        ENCODING_BYTES,
        this.#versionstamp,
        null,
      );
    }
    this.#db.exec("COMMIT");
  }

  close(): void {
    this.#db.close();
  }
}

for (const count of BATCH_SIZES) {
  const group = `apply ${count} put${count === 1 ? "" : "s"}`;
  const perEntry = `entries/s = iter/s × ${count}`;
  const raw = new RawSqlite(`${directory}/raw_${count}.sqlite`);
  const sqliteStore = new SqliteStateStore({
    path: `${directory}/state_${count}.sqlite`,
  });
  const sqlite = new StateUnderTest(sqliteStore);
  const memory = new StateUnderTest(new MemoryStateStore());
  closers.push(() => raw.close(), () => sqliteStore.close());

  Deno.bench({
    name:
      `node:sqlite INSERT OR REPLACE × ${count}, one transaction (${perEntry})`,
    group,
    baseline: true,
    fn() {
      raw.insertBatch(count);
    },
  });
  Deno.bench({
    name: `KvReplicatedState batch(), SQLite state store (${perEntry})`,
    group,
    fn(b) {
      const entries = sqlite.entries(count);
      b.start();
      sqlite.applyBatch(entries);
      b.end();
    },
  });
  Deno.bench({
    name: `KvReplicatedState batch(), memory state store (${perEntry})`,
    group,
    fn(b) {
      const entries = memory.entries(count);
      b.start();
      memory.applyBatch(entries);
      b.end();
    },
  });
}
