/**
 * A {@linkcode StateStore} on embedded SQLite (`node:sqlite`), WAL mode.
 *
 * Durability: `synchronous=NORMAL`. In WAL mode that can lose the last
 * transactions on power loss but never corrupts the database. That is
 * enough here because the Raft log is the durable record: after a crash the
 * node replays the log from this store's applied index, which is written in
 * the same transaction as the rows it covers.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { assert } from "../base/assert.ts";
import { type LogIndex, logIndex } from "../raft/types.ts";
import type { KvRow, ValueEncoding } from "../model/types.ts";
import { chunkRows, ChunkSequence } from "../state/snapshot.ts";
import {
  type ScanOptions,
  SNAPSHOT_CHUNK_BYTES_MAX,
  type SnapshotChunk,
  type SnapshotInstaller,
  type StateBatch,
  type StateStore,
} from "../state/state_store.ts";

const ENCODING_CODES: Record<ValueEncoding, number> = {
  v8: 1,
  le64: 2,
  bytes: 3,
};
const ENCODINGS: Record<number, ValueEncoding> = {
  1: "v8",
  2: "le64",
  3: "bytes",
};
/** Rows read per query while exporting a snapshot or paging. */
const EXPORT_PAGE_ROWS = 512;

function createTables(suffix: string): string {
  return `
    CREATE TABLE IF NOT EXISTS kv${suffix} (
      k BLOB PRIMARY KEY,
      v BLOB NOT NULL,
      encoding INTEGER NOT NULL,
      versionstamp BLOB NOT NULL,
      expire_at_ms INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS meta${suffix} (
      name TEXT PRIMARY KEY,
      value BLOB NOT NULL
    ) WITHOUT ROWID;`;
}

const SCHEMA = `
  ${createTables("")}
  ${createTables("_staging")}
  CREATE INDEX IF NOT EXISTS kv_expiry ON kv (expire_at_ms, k)
    WHERE expire_at_ms IS NOT NULL;
  CREATE TABLE IF NOT EXISTS applied (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    applied_index INTEGER NOT NULL
  );
  INSERT OR IGNORE INTO applied (id, applied_index) VALUES (0, 0);`;

interface SqlRow {
  k: Uint8Array;
  v: Uint8Array;
  encoding: number;
  versionstamp: Uint8Array;
  expire_at_ms: number | null;
}

function toRow(row: SqlRow): KvRow {
  const encoding = ENCODINGS[row.encoding];
  assert(
    encoding !== undefined,
    `Stored row has unknown encoding ${row.encoding}`,
  );
  return {
    key: row.k,
    value: row.v,
    encoding,
    versionstamp: row.versionstamp,
    expireAtMs: row.expire_at_ms,
  };
}

/** Options of {@linkcode SqliteStateStore}. */
export interface SqliteStateStoreOptions {
  /** Database file path. A file is needed (not `:memory:`): snapshot export reads through a second connection. */
  readonly path: string;
}

/** A SQLite-backed {@linkcode StateStore}. */
export class SqliteStateStore implements StateStore {
  readonly path: string;
  private readonly db: DatabaseSync;
  private readonly statements: Record<string, StatementSync>;
  private installing = false;
  private cachedAppliedIndex: LogIndex;

  constructor(options: SqliteStateStoreOptions) {
    if (options.path === "" || options.path === ":memory:") {
      throw new TypeError(
        `Cannot open SQLite state store: 'path' must name a file: current value is '${options.path}'`,
      );
    }
    this.path = options.path;
    this.db = new DatabaseSync(options.path);
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.db.exec("PRAGMA journal_mode = WAL");
    // NORMAL, not FULL: the Raft log is the durable record (see module doc).
    this.db.exec("PRAGMA synchronous = NORMAL");
    this.db.exec(SCHEMA);
    // Leftovers of an install interrupted by a crash are dropped; the old state is intact.
    this.db.exec("DELETE FROM kv_staging; DELETE FROM meta_staging;");
    const prepare = (sql: string) => this.db.prepare(sql);
    this.statements = {
      get: prepare("SELECT * FROM kv WHERE k = ?"),
      scanForward: prepare(
        "SELECT * FROM kv WHERE k >= ? AND k < ? ORDER BY k LIMIT ?",
      ),
      scanReverse: prepare(
        "SELECT * FROM kv WHERE k >= ? AND k < ? ORDER BY k DESC LIMIT ?",
      ),
      put: prepare(
        "INSERT OR REPLACE INTO kv (k, v, encoding, versionstamp, expire_at_ms) VALUES (?, ?, ?, ?, ?)",
      ),
      delete: prepare("DELETE FROM kv WHERE k = ?"),
      setMeta: prepare(
        "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
      ),
      getMeta: prepare("SELECT value FROM meta WHERE name = ?"),
      setApplied: prepare("UPDATE applied SET applied_index = ? WHERE id = 0"),
      getApplied: prepare("SELECT applied_index FROM applied WHERE id = 0"),
      expired: prepare(
        "SELECT k FROM kv WHERE expire_at_ms IS NOT NULL AND expire_at_ms <= ? ORDER BY expire_at_ms, k LIMIT ?",
      ),
      stagePut: prepare(
        "INSERT OR REPLACE INTO kv_staging (k, v, encoding, versionstamp, expire_at_ms) VALUES (?, ?, ?, ?, ?)",
      ),
      stageMeta: prepare(
        "INSERT OR REPLACE INTO meta_staging (name, value) VALUES (?, ?)",
      ),
    };
    const applied = this.statements.getApplied!.get() as {
      applied_index: number;
    };
    this.cachedAppliedIndex = logIndex(applied.applied_index);
  }

  private statement(name: string): StatementSync {
    const statement = this.statements[name];
    assert(statement !== undefined, `Unknown statement '${name}'`);
    return statement;
  }

  /** Open transactions: inside `batch()`, applies join the outer one. */
  #depth = 0;
  /**
   * The applied index the open transaction still has to write: applies
   * inside one transaction write it once, just before it commits (only the
   * last one is ever read).
   */
  #appliedToWrite: LogIndex | null = null;

  private transaction(work: () => void): void {
    this.batch(work);
  }

  /** Runs `work` in one transaction; nested calls join the outer one. */
  batch<T>(work: () => T): T {
    if (this.#depth > 0) return work();
    this.db.exec("BEGIN IMMEDIATE");
    this.#depth++;
    try {
      const result = work();
      if (this.#appliedToWrite !== null) {
        this.statement("setApplied").run(this.#appliedToWrite);
        this.#appliedToWrite = null;
      }
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      this.#appliedToWrite = null;
      this.db.exec("ROLLBACK");
      throw error;
    } finally {
      this.#depth--;
    }
  }

  get(key: Uint8Array): KvRow | null {
    const row = this.statement("get").get(key) as SqlRow | undefined;
    return row === undefined ? null : toRow(row);
  }

  scan(options: ScanOptions): KvRow[] {
    assert(options.limit >= 1, "scan() needs a positive limit");
    const statement = this.statement(
      options.reverse ? "scanReverse" : "scanForward",
    );
    const rows = statement.all(
      options.start,
      options.end,
      options.limit,
    ) as unknown as SqlRow[];
    return rows.map(toRow);
  }

  apply(batch: StateBatch): void {
    assert(
      batch.appliedIndex > this.cachedAppliedIndex,
      `apply() must move the applied index forward: ${batch.appliedIndex} after ${this.cachedAppliedIndex}`,
    );
    this.transaction(() => this.#write(batch));
    this.cachedAppliedIndex = batch.appliedIndex;
  }

  /** The rows and metadata of one apply, inside the open transaction. */
  #write(batch: StateBatch): void {
    if (batch.deletes.length > 0) {
      const remove = this.statement("delete");
      for (const key of batch.deletes) remove.run(key);
    }
    if (batch.puts.length > 0) {
      const put = this.statement("put");
      for (const row of batch.puts) {
        put.run(
          row.key,
          row.value,
          ENCODING_CODES[row.encoding],
          row.versionstamp,
          row.expireAtMs,
        );
      }
    }
    if (batch.meta !== undefined && batch.meta.size > 0) {
      const setMeta = this.statement("setMeta");
      for (const [name, value] of batch.meta) setMeta.run(name, value);
    }
    // Written by batch() just before the commit.
    this.#appliedToWrite = batch.appliedIndex;
  }

  appliedIndex(): LogIndex {
    return this.cachedAppliedIndex;
  }

  meta(name: string): Uint8Array | null {
    const row = this.statement("getMeta").get(name) as
      | { value: Uint8Array }
      | undefined;
    return row?.value ?? null;
  }

  expiredKeys(timestampMs: number, limit: number): Uint8Array[] {
    if (timestampMs < 0 || limit <= 0) return [];
    const rows = this.statement("expired").all(
      timestampMs,
      limit,
    ) as unknown as Array<{ k: Uint8Array }>;
    return rows.map((row) => row.k);
  }

  /**
   * Exports through a second, read-only connection holding one read
   * transaction, so the export sees exactly the state at this call while
   * this store keeps applying. The transaction ends when the iterator is
   * exhausted or returned.
   */
  exportSnapshot(
    chunkBytesMax = SNAPSHOT_CHUNK_BYTES_MAX,
  ): Iterator<SnapshotChunk> {
    const reader = new DatabaseSync(this.path, { readOnly: true });
    reader.exec("BEGIN");
    // The first read fixes the transaction's snapshot, now rather than at the first next().
    const applied = reader.prepare(
      "SELECT applied_index FROM applied WHERE id = 0",
    ).get() as {
      applied_index: number;
    };
    const meta = (reader.prepare("SELECT name, value FROM meta ORDER BY name")
      .all() as unknown as Array<
        { name: string; value: Uint8Array }
      >).map((row) => [row.name, row.value] as const);
    const page = reader.prepare(
      "SELECT * FROM kv WHERE k > ? ORDER BY k LIMIT ?",
    );
    const first = reader.prepare("SELECT * FROM kv ORDER BY k LIMIT ?");
    const rows = (function* (): Generator<KvRow> {
      try {
        let batch = first.all(EXPORT_PAGE_ROWS) as unknown as SqlRow[];
        while (batch.length > 0) {
          for (const row of batch) yield toRow(row);
          if (batch.length < EXPORT_PAGE_ROWS) break;
          batch = page.all(
            batch[batch.length - 1]!.k,
            EXPORT_PAGE_ROWS,
          ) as unknown as SqlRow[];
        }
      } finally {
        reader.exec("COMMIT");
        reader.close();
      }
    })();
    return chunkRows(
      logIndex(applied.applied_index),
      meta,
      rows,
      chunkBytesMax,
    );
  }

  /**
   * Stages chunks in `kv_staging` (one transaction per chunk) and swaps them
   * in with one transaction on commit; a crash before that commit leaves the
   * old state, and the staging tables are emptied at the next open.
   */
  beginInstall(): SnapshotInstaller {
    if (this.installing) {
      throw new RangeError(
        "Cannot begin snapshot install: another install is in progress",
      );
    }
    this.installing = true;
    this.db.exec("DELETE FROM kv_staging; DELETE FROM meta_staging;");
    const sequence = new ChunkSequence();
    const stagePut = this.statement("stagePut");
    const stageMeta = this.statement("stageMeta");
    const finish = () => {
      this.db.exec("DELETE FROM kv_staging; DELETE FROM meta_staging;");
      this.installing = false;
    };
    return {
      write: (chunk) => {
        sequence.accept(chunk);
        this.transaction(() => {
          for (const row of chunk.rows) {
            stagePut.run(
              row.key,
              row.value,
              ENCODING_CODES[row.encoding],
              row.versionstamp,
              row.expireAtMs,
            );
          }
          for (const [name, value] of chunk.meta) stageMeta.run(name, value);
        });
      },
      commit: () => {
        const appliedIndex = sequence.finish();
        this.transaction(() => {
          this.db.exec(`
            DELETE FROM kv; INSERT INTO kv SELECT * FROM kv_staging;
            DELETE FROM meta; INSERT INTO meta SELECT * FROM meta_staging;
            DELETE FROM kv_staging; DELETE FROM meta_staging;`);
          // The installed index, not that of an apply earlier in this transaction.
          this.#appliedToWrite = null;
          this.statement("setApplied").run(appliedIndex);
        });
        this.cachedAppliedIndex = appliedIndex;
        finish();
      },
      abort: finish,
    };
  }

  /** Checkpoints the WAL with FULL, which syncs it and the database file. */
  sync(): void {
    this.db.exec("PRAGMA wal_checkpoint(FULL)");
  }

  close(): void {
    this.db.close();
  }
}
