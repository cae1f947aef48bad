/**
 * A durable {@linkcode LogStore} on embedded SQLite (`node:sqlite`): WAL
 * journal, `synchronous=FULL`, one transaction and one sync per write, a
 * CRC-32 on every entry and on the state rows.
 *
 * At open the store checks the log's shape (no gap, starts right after the
 * snapshot) and the checksums of its tail; a bad tail after the committed
 * index is truncated and reported through `onWarning`, and its last index is
 * kept as {@linkcode SqliteLogStore.recoveryBound} (the node may have
 * acknowledged those entries: it must not help elect a leader without them);
 * anything else bad
 * throws {@linkcode StorageCorruptedError}. Entries outside the verified tail
 * are checked when read.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { assert } from "../base/assert.ts";
import type {
  Entry,
  HardState,
  LogIndex,
  RecoveryBound,
  Term,
} from "../raft/types.ts";
import { StorageCorruptedError, StorageReadOnlyError } from "./errors.ts";
import type { LogStore, SaveRequest, SnapshotMeta } from "./log_store.ts";
import {
  assertAppendable,
  assertHardState,
  checkReadRange,
  checkTermIndex,
  entrySizeBytes,
  planCompaction,
} from "./_log_rules.ts";
import { entryChecksum, entryTypeCode } from "./_entry_checksum.ts";
import {
  refusal,
  type StorageWriteError,
  toStorageError,
} from "./_sqlite_errors.ts";
import {
  decodeEntryRow,
  ENTRY_COLUMNS,
  readState,
  returnArrays,
  SCHEMA_VERSION,
  verifyLog,
  writeState,
  writeStateStatement,
} from "./_sqlite_schema.ts";

/** Options of {@linkcode SqliteLogStore.open}. */
export interface SqliteLogStoreOptions {
  /** The database file; created with its folder's permissions when missing. */
  readonly path: string;
  /** Called with a message when the store repaired something at open. Default `console.warn`. */
  readonly onWarning?: (message: string) => void;
  /**
   * How many entries at the end of the log to verify at open (checksums), or
   * `"all"`. Entries not verified at open are verified on read. Default
   * 10,000: verifying costs about 5–10 µs per 256-byte entry here (0.6–1.1 s
   * for 100k entries, `bench/storage_bench.ts`), too slow to do for a whole
   * large log at every start, while the shape checks (no gap, right start)
   * always cover the whole log.
   */
  readonly verifyTailEntries?: number | "all";
  /** Largest size of the database file in bytes (SQLite `max_page_count`); writes beyond fail with StorageFullError. Default: no limit. */
  readonly maxSizeBytes?: number;
  /**
   * TEST ONLY. Called inside each write transaction just before COMMIT;
   * throwing from it (e.g. an error shaped like SQLITE_FULL or
   * SQLITE_READONLY) simulates that failure. Never set in production.
   */
  readonly testingFaultHook?: (operation: "save" | "compact") => void;
}

/** The durability settings read back from the open connection. */
export interface SqliteDurability {
  /** `PRAGMA journal_mode`: "wal" is required. */
  readonly journalMode: string;
  /** `PRAGMA synchronous`: 2 (FULL) is required. */
  readonly synchronous: number;
}

interface Statements {
  readonly begin: StatementSync;
  readonly commit: StatementSync;
  readonly rollback: StatementSync;
  readonly insert: StatementSync;
  readonly deleteFrom: StatementSync;
  readonly deleteThrough: StatementSync;
  readonly selectRange: StatementSync;
  readonly selectOne: StatementSync;
  readonly writeState: StatementSync;
}

/**
 * The SQLite {@linkcode LogStore}.
 *
 * @example
 * ```ts ignore
 * const store = SqliteLogStore.open({ path: "/var/lib/aspen/log.db" });
 * store.save({ hardState, entries });
 * store.close();
 * ```
 */
export class SqliteLogStore implements LogStore {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #statements: Statements;
  readonly #faultHook: SqliteLogStoreOptions["testingFaultHook"];
  #hardState: HardState;
  #snapshot: SnapshotMeta;
  #lastIndex: LogIndex;
  #lastTerm: Term;
  readonly #recover: RecoveryBound | null;
  #failure: StorageWriteError | null = null;
  #closed = false;

  private constructor(db: DatabaseSync, options: SqliteLogStoreOptions) {
    this.#db = db;
    this.#path = options.path;
    this.#faultHook = options.testingFaultHook;
    const state = readState(db, options.path);
    this.#hardState = state.hardState;
    this.#snapshot = state.snapshot;
    const verified = verifyLog(db, options.path, {
      snapshotIndex: state.snapshot.index,
      commit: state.hardState.commit,
      term: state.hardState.term,
      recover: state.recover,
      tailEntries: options.verifyTailEntries ?? VERIFY_TAIL_ENTRIES_DEFAULT,
      onWarning: options.onWarning ?? ((message) => console.warn(message)),
    });
    this.#lastIndex = verified.lastIndex ?? state.snapshot.index;
    this.#lastTerm = verified.lastTerm ?? state.snapshot.term;
    this.#recover = verified.recover;
    this.#statements = {
      begin: db.prepare("BEGIN IMMEDIATE"),
      commit: db.prepare("COMMIT"),
      rollback: db.prepare("ROLLBACK"),
      insert: db.prepare(
        "INSERT INTO entries (idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?)",
      ),
      deleteFrom: db.prepare("DELETE FROM entries WHERE idx >= ?"),
      deleteThrough: db.prepare("DELETE FROM entries WHERE idx <= ?"),
      selectRange: returnArrays(db.prepare(
        `SELECT ${ENTRY_COLUMNS} FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx`,
      )),
      selectOne: returnArrays(db.prepare(
        `SELECT ${ENTRY_COLUMNS} FROM entries WHERE idx = ?`,
      )),
      writeState: writeStateStatement(db),
    };
  }

  /**
   * Opens (creating if needed) the log store at `options.path`.
   *
   * @throws {StorageCorruptedError} When the file or the log in it is corrupt beyond a repairable tail.
   * @throws {StorageReadOnlyError | StorageFullError | StorageIoError} When the file cannot be opened or set up.
   */
  static open(options: SqliteLogStoreOptions): SqliteLogStore {
    validateOptions(options);
    let db: DatabaseSync | null = null;
    try {
      db = new DatabaseSync(options.path);
      configure(db, options);
      return new SqliteLogStore(db, options);
    } catch (error) {
      db?.close();
      throw toStorageError(error, "open", options.path) ?? error;
    }
  }

  append(entries: readonly Entry[]): void {
    this.save({ entries });
  }

  setHardState(hardState: HardState): void {
    this.save({ hardState });
  }

  save(request: SaveRequest): void {
    this.#assertWritable();
    const entries = request.entries ?? [];
    assertAppendable(
      entries,
      this.firstIndex(),
      this.#lastIndex,
      (index) => this.term(index),
    );
    if (request.hardState !== undefined) assertHardState(request.hardState);
    const first = entries[0];
    if (first === undefined && request.hardState === undefined) return;
    // A commit-index-only write skips its fsync (WAL with synchronous=NORMAL
    // appends its frames; the next FULL commit syncs them with its own).
    // Entries, term and vote are always synced: a write that would change
    // either is synced whatever the caller asked.
    const unsynced = request.sync === false && first === undefined &&
      request.hardState !== undefined &&
      request.hardState.term === this.#hardState.term &&
      request.hardState.vote === this.#hardState.vote;
    if (unsynced) this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      this.#saveSynced(request, entries);
    } finally {
      if (unsynced) this.#db.exec("PRAGMA synchronous = FULL");
    }
  }

  #saveSynced(request: SaveRequest, entries: readonly Entry[]): void {
    const first = entries[0];
    const last = entries[entries.length - 1];
    this.#transaction("save", "save", () => {
      const s = this.#statements;
      if (first !== undefined && first.index <= this.#lastIndex) {
        s.deleteFrom.run(first.index);
      }
      for (const entry of entries) {
        const typeCode = entryTypeCode(entry.type);
        s.insert.run(
          entry.index,
          entry.term,
          typeCode,
          entry.data,
          entryChecksum(entry.index, entry.term, typeCode, entry.data),
        );
      }
      if (request.hardState !== undefined) {
        writeState(s.writeState, "hardState", request.hardState);
      }
    });
    if (last !== undefined) {
      this.#lastIndex = last.index;
      this.#lastTerm = last.term;
    }
    if (request.hardState !== undefined) {
      this.#hardState = { ...request.hardState };
    }
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    this.#assertOpen();
    checkReadRange(lo, hi, maxBytes, this.firstIndex(), this.#lastIndex);
    const result: Entry[] = [];
    if (lo === hi) return result;
    // Fetched in bounded chunks with all(): measured about 2× faster than iterate().
    let sizeBytes = 0;
    let next = lo;
    while (next < hi) {
      const chunkEnd = Math.min(hi, next + READ_CHUNK_ENTRIES);
      const rows = this.#statements.selectRange.all(
        next,
        chunkEnd,
      ) as unknown as unknown[][];
      for (const row of rows) {
        const entry = this.#decode(row, next);
        sizeBytes += entrySizeBytes(entry);
        if (result.length > 0 && sizeBytes > maxBytes) return result;
        result.push(entry);
        next = (next + 1) as LogIndex;
      }
      if (next !== chunkEnd) this.#corrupt(next, "missing");
    }
    return result;
  }

  term(index: LogIndex): Term {
    this.#assertOpen();
    checkTermIndex(index, this.#snapshot.index, this.#lastIndex);
    if (index === this.#snapshot.index) return this.#snapshot.term;
    if (index === this.#lastIndex) return this.#lastTerm;
    const row = this.#statements.selectOne.get(index) as unknown as
      | unknown[]
      | undefined;
    if (row === undefined) this.#corrupt(index, "missing");
    return this.#decode(row, index).term;
  }

  firstIndex(): LogIndex {
    return (this.#snapshot.index + 1) as LogIndex;
  }

  lastIndex(): LogIndex {
    return this.#lastIndex;
  }

  hardState(): HardState {
    this.#assertOpen();
    return { ...this.#hardState };
  }

  snapshotMeta(): SnapshotMeta {
    this.#assertOpen();
    return structuredClone(this.#snapshot);
  }

  recoveryBound(): RecoveryBound | null {
    this.#assertOpen();
    return this.#recover === null ? null : { ...this.#recover };
  }

  compact(meta: SnapshotMeta): void {
    this.#assertWritable();
    const keepsSuffix = planCompaction(
      meta,
      this.#snapshot,
      this.#lastIndex,
      (index) => this.term(index),
    );
    const snapshot: SnapshotMeta = structuredClone({
      index: meta.index,
      term: meta.term,
      confState: {
        voters: meta.confState.voters,
        votersOutgoing: meta.confState.votersOutgoing,
        learners: meta.confState.learners,
      },
    });
    this.#transaction("compact", "compact", () => {
      const s = this.#statements;
      if (keepsSuffix) s.deleteThrough.run(meta.index);
      else s.deleteFrom.run(0);
      writeState(s.writeState, "snapshot", snapshot);
    });
    this.#snapshot = snapshot;
    if (!keepsSuffix) {
      this.#lastIndex = meta.index;
      this.#lastTerm = meta.term;
    }
  }

  /** Reads the durability settings back from the open connection. */
  durability(): SqliteDurability {
    this.#assertOpen();
    const journal = this.#db.prepare("PRAGMA journal_mode").get();
    const synchronous = this.#db.prepare("PRAGMA synchronous").get();
    return {
      journalMode: String(journal?.journal_mode),
      synchronous: Number(synchronous?.synchronous),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #transaction(
    operation: "save" | "compact",
    action: string,
    body: () => void,
  ): void {
    const s = this.#statements;
    try {
      s.begin.run();
      body();
      this.#faultHook?.(operation);
      s.commit.run();
    } catch (error) {
      if (this.#db.isTransaction) {
        try {
          s.rollback.run();
        } catch {
          // The first error is the one that matters; SQLite may have rolled back already.
        }
      }
      const typed = toStorageError(error, action, this.#path);
      if (typed === null) throw error;
      this.#failure = typed;
      throw typed;
    }
  }

  #decode(row: readonly unknown[], index: LogIndex): Entry {
    const entry = decodeEntryRow(row);
    if (entry === null || entry.index !== index) {
      this.#corrupt(index, "checksum");
    }
    return entry;
  }

  #corrupt(index: LogIndex, what: "missing" | "checksum"): never {
    const detail = what === "missing"
      ? "the entry is missing"
      : "its checksum does not match";
    const error = new StorageCorruptedError(
      `Cannot read log index ${index} from '${this.#path}' as it is corrupt: ${detail}`,
      this.#path,
      index,
    );
    this.#failure ??= error;
    throw error;
  }

  #assertOpen(): void {
    assert(!this.#closed, `Cannot use the closed log store at '${this.#path}'`);
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#failure !== null) throw refusal(this.#failure, this.#path);
  }
}

/** Entries verified at open unless configured otherwise. */
const VERIFY_TAIL_ENTRIES_DEFAULT = 10_000;

/** Rows fetched per query by entries(); bounds memory for large reads. */
const READ_CHUNK_ENTRIES = 256;

function validateOptions(options: SqliteLogStoreOptions): void {
  if (typeof options.path !== "string" || options.path === "") {
    throw new TypeError(
      "Cannot open log store: 'path' must be a non-empty string",
    );
  }
  const tail = options.verifyTailEntries;
  if (
    tail !== undefined && tail !== "all" &&
    !(Number.isSafeInteger(tail) && tail >= 1)
  ) {
    throw new RangeError(
      `Cannot open log store: 'verifyTailEntries' must be "all" or a positive integer: current value is ${tail}`,
    );
  }
  const size = options.maxSizeBytes;
  if (size !== undefined && !(Number.isSafeInteger(size) && size >= 65536)) {
    throw new RangeError(
      `Cannot open log store: 'maxSizeBytes' must be an integer of at least 65536: current value is ${size}`,
    );
  }
}

function configure(db: DatabaseSync, options: SqliteLogStoreOptions): void {
  // Another connection (a node's start-up reader beside its writer Worker) may
  // hold the write lock for a moment: wait for it rather than fail.
  db.exec("PRAGMA busy_timeout = 5000");
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("PRAGMA synchronous = FULL");
  const journal = db.prepare("PRAGMA journal_mode").get()?.journal_mode;
  if (journal !== "wal") {
    throw new StorageReadOnlyError(
      `Cannot open the log store at '${options.path}' in WAL mode: journal mode is '${journal}'`,
      options.path,
    );
  }
  const version = Number(db.prepare("PRAGMA user_version").get()?.user_version);
  if (version > SCHEMA_VERSION) {
    throw new StorageCorruptedError(
      `Cannot open the log store at '${options.path}': schema version ${version} is newer than ${SCHEMA_VERSION}`,
      options.path,
      null,
    );
  }
  if (version < SCHEMA_VERSION) {
    db.exec(`BEGIN IMMEDIATE;
      CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL,
        type INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL,
        crc INTEGER NOT NULL);
      PRAGMA user_version = ${SCHEMA_VERSION};
      COMMIT;`);
  }
  if (options.maxSizeBytes !== undefined) {
    const pageSize = Number(db.prepare("PRAGMA page_size").get()?.page_size);
    db.exec(
      `PRAGMA max_page_count = ${Math.floor(options.maxSizeBytes / pageSize)}`,
    );
  }
}
