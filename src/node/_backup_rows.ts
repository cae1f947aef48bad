/**
 * What a restore accepts from a backup: every row checked against the state
 * machine's rules before the restored node starts. User rows must have a
 * canonical Deno KV key within the write limit, a value of a known encoding
 * that decodes (V8 bytes through the V8 codec, `le64` of 8 bytes) within the
 * value limit, a 10-byte versionstamp and a valid expiry. Internal rows
 * (first byte `0xff`) must be one of the queue, lease, session or resend records the
 * services write (keyspaces in `services/table.ts`), and decode as they read
 * them. Metadata may only be the cluster service's (members, revocations,
 * used join tokens) and the configuration, which a restore drops (a new
 * cluster).
 * Private to `src/node/`.
 *
 * @module
 */
import { decode } from "@msgpack/msgpack";
import { decodeKey, encodeKey } from "../model/key_codec.ts";
import { KV_LIMITS } from "../model/limits.ts";
import {
  decodeMessage,
  decodeStats,
  idOfIndexKey,
  leaseKey,
  messageKey,
  readyKey,
} from "../services/queues/keys.ts";
import type { SnapshotChunk, StateStore } from "../state/state_store.ts";
import type { KvRow } from "../model/types.ts";
import { deserializeV8 } from "../model/v8_codec_deserialize.ts";
import { VERSIONSTAMP_BYTES } from "../model/versionstamp.ts";

/** A backup whose content breaks the state machine's rules. */
export class BackupContentError extends Error {
  override name = "BackupContentError";
}

/** Metadata a backup may carry; a restore into a new cluster drops them. */
export const DROPPED_META: ReadonlySet<string> = new Set([
  "cluster.members",
  "cluster.revoked",
  "cluster.joinTokens",
  "raft.conf",
]);

const ID = VERSIONSTAMP_BYTES;
const TIME = 8;

/** Internal record kinds: prefix, key length rule, value check. */
const INTERNAL: readonly {
  readonly name: string;
  readonly prefix: readonly number[];
  readonly key: (rest: number) => boolean;
  readonly value: (value: Uint8Array) => void;
}[] = [
  {
    name: "queue message",
    prefix: [0xff, 0x71, 0x6d],
    key: (rest) => rest === ID,
    value: (v) => {
      const message = decodeMessage(v);
      if (message.payload.length > KV_LIMITS.valueBytesMax) {
        throw new RangeError("payload too large");
      }
      deserializeV8(message.payload);
      for (const key of message.keysIfUndelivered) checkUserKey(key);
    },
  },
  {
    name: "queue ready index",
    prefix: [0xff, 0x71, 0x72],
    key: (rest) => rest >= 1 + TIME + ID,
    value: empty,
  },
  {
    name: "queue lease index",
    prefix: [0xff, 0x71, 0x6c],
    key: (rest) => rest === TIME + ID,
    value: empty,
  },
  {
    name: "queue stats",
    prefix: [0xff, 0x71, 0x73],
    key: () => true,
    value: (v) => void decodeStats(v),
  },
  {
    name: "session result",
    prefix: [0xff, 0x73, 0x72],
    key: (rest) => rest >= 1 + TIME,
    value: (v) => {
      // [result, digest of the write]; rows from before digests hold the
      // bare result.
      const stored = decode(v);
      if (Array.isArray(stored)) {
        checkApplyResult(stored[0]);
        checkDigest(stored[1]);
      } else {
        checkApplyResult(stored);
      }
    },
  },
  {
    name: "session horizon",
    prefix: [0xff, 0x73, 0x68],
    key: (rest) => rest >= 1,
    value: (v) => checkIntegers(decode(v), 2),
  },
  {
    name: "session horizon order",
    prefix: [0xff, 0x73, 0x69],
    key: (rest) => rest >= TIME + 1,
    value: empty,
  },
  {
    name: "session horizon count",
    prefix: [0xff, 0x73, 0x6d],
    key: (rest) => rest === 0,
    value: count,
  },
  {
    name: "resend record",
    prefix: [0xff, 0x6b, 0x71],
    key: (rest) => rest >= 1 + DIGEST,
    value: (v) => {
      const stored = decode(v);
      if (!Array.isArray(stored) || stored.length !== 4) {
        throw new TypeError("expected [result, atMs, index, delivered]");
      }
      checkApplyResult(stored[0]);
      checkIntegers(stored.slice(1, 3), 2);
      if (typeof stored[3] !== "boolean") {
        throw new TypeError("expected a delivered flag");
      }
    },
  },
  {
    name: "resend order",
    prefix: [0xff, 0x6b, 0x75],
    key: (rest) => rest >= TIME + 1 + DIGEST,
    value: empty,
  },
  {
    name: "resend count",
    prefix: [0xff, 0x6b, 0x77],
    key: (rest) => rest === 0,
    value: count,
  },
  {
    name: "lease count",
    prefix: [0xff, 0x6c, 0x00],
    key: (rest) => rest === 0,
    value: count,
  },
  {
    name: "lease record",
    prefix: [0xff, 0x6c, 0x01],
    key: (rest) => rest === LEASE_ID,
    value: (v) => checkIntegers(decode(v), 3),
  },
  {
    name: "lease attached key",
    prefix: [0xff, 0x6c, 0x02],
    key: (rest) => rest > LEASE_ID,
    value: empty,
  },
  {
    name: "lease of a key",
    prefix: [0xff, 0x6c, 0x03],
    key: (rest) => rest >= 1,
    value: (v) => {
      if (v.length !== LEASE_ID) throw new TypeError("expected a lease id");
    },
  },
  // services/locks (`ff 6d`, see its keys.ts): MessagePack values, checked
  // to decode; apply validates their fields when it reads them.
  ...([
    ["lock count", 0x63, 0],
    ["election leader", 0x65, 1],
    ["lock holder", 0x68, 1 + 1 + 10],
    ["lock lease", 0x69, 8 + 1], // a lease id (8 bytes), then the name
    ["lock name", 0x6e, 1],
    ["lock waiter", 0x77, 1 + 1],
  ] as const).map(([name, byte, least]) => ({
    name,
    prefix: [0xff, 0x6d, byte],
    key: (rest: number) => least === 0 ? rest === 0 : rest >= least,
    value: (v: Uint8Array) => void decode(v),
  })),
  {
    name: "session order",
    prefix: [0xff, 0x73, 0x6f],
    key: (rest) => rest >= TIME + 1 + TIME,
    value: empty,
  },
  {
    name: "session count",
    prefix: [0xff, 0x73, 0x6e],
    key: (rest) => rest === 0,
    value: count,
  },
];

/** Bytes of a write's or a resent body's digest. */
const DIGEST = 32;
/** Bytes of a lease id (`services/leases`: 16 hex digits). */
const LEASE_ID = 8;

function count(value: Uint8Array): void {
  const n = decode(value);
  if (!Number.isSafeInteger(n) || (n as number) < 0) {
    throw new TypeError("not a count");
  }
}

function checkApplyResult(result: unknown): void {
  if (
    typeof result !== "object" || result === null ||
    typeof (result as { ok?: unknown }).ok !== "boolean"
  ) {
    throw new TypeError("expected an apply result with 'ok'");
  }
}

function checkDigest(digest: unknown): void {
  if (!(digest instanceof Uint8Array) || digest.length === 0) {
    throw new TypeError("expected a write digest");
  }
}

function checkIntegers(values: unknown, length: number): void {
  if (
    !Array.isArray(values) || values.length !== length ||
    !values.every((n) => Number.isSafeInteger(n) && n >= 0)
  ) {
    throw new TypeError(`expected ${length} non-negative integers`);
  }
}

function empty(value: Uint8Array): void {
  if (value.length !== 0) throw new TypeError("expected an empty value");
}

function hex(bytes: Uint8Array): string {
  const shown = Array.from(
    bytes.subarray(0, 24),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return bytes.length > 24 ? `${shown}…` : shown;
}

function checkUserKey(key: unknown): void {
  if (!(key instanceof Uint8Array) || key.length === 0) {
    throw new TypeError("a key must be non-empty bytes");
  }
  if (key.length > KV_LIMITS.writeKeyBytesMax) {
    throw new RangeError(
      `key of ${key.length} bytes exceeds ${KV_LIMITS.writeKeyBytesMax}`,
    );
  }
  const canonical = encodeKey(decodeKey(key));
  if (
    canonical.length !== key.length || !canonical.every((b, i) => b === key[i])
  ) {
    throw new TypeError("the key is not in Deno KV's canonical encoding");
  }
}

function checkUserValue(row: KvRow): void {
  if (row.value.length > KV_LIMITS.valueBytesMax) {
    throw new RangeError(
      `value of ${row.value.length} bytes exceeds ${KV_LIMITS.valueBytesMax}`,
    );
  }
  if (row.encoding === "le64") {
    if (row.value.length !== 8) throw new TypeError("a le64 value has 8 bytes");
  } else if (row.encoding === "v8") {
    deserializeV8(row.value);
  } else if (row.encoding !== "bytes") {
    throw new TypeError(`unknown encoding ${JSON.stringify(row.encoding)}`);
  }
}

/** Whether a backup row is an events history record (`ff 65`, dropped). */
function isHistoryRow(row: KvRow): boolean {
  return row?.key instanceof Uint8Array && row.key[0] === 0xff &&
    row.key[1] === 0x65;
}

function checkRow(row: KvRow, appliedIndex: number): void {
  if (
    typeof row !== "object" || row === null ||
    !(row.key instanceof Uint8Array) || !(row.value instanceof Uint8Array) ||
    !(row.versionstamp instanceof Uint8Array) ||
    row.versionstamp.length !== VERSIONSTAMP_BYTES
  ) {
    throw new TypeError(
      "a row needs key, value and a 10-byte versionstamp (bytes)",
    );
  }
  // A versionstamp is the writing entry's index: none can be after the backup's.
  const stampIndex = new DataView(
    row.versionstamp.buffer,
    row.versionstamp.byteOffset,
    8,
  ).getBigUint64(0);
  if (stampIndex > BigInt(appliedIndex)) {
    throw new RangeError(
      `versionstamp of index ${stampIndex} after the backup's index ${appliedIndex}`,
    );
  }
  const expiry = row.expireAtMs;
  if (
    expiry !== null && !(Number.isSafeInteger(expiry) && expiry >= 0)
  ) {
    throw new TypeError(`invalid expireAtMs ${JSON.stringify(expiry)}`);
  }
  if (row.key[0] !== 0xff) {
    checkUserKey(row.key);
    checkUserValue(row);
    return;
  }
  const kind = INTERNAL.find((k) => k.prefix.every((b, i) => row.key[i] === b));
  if (kind === undefined) {
    throw new TypeError("an internal key (0xff) of no known record");
  }
  if (!kind.key(row.key.length - kind.prefix.length)) {
    throw new TypeError(`a ${kind.name} key of the wrong length`);
  }
  if (row.encoding !== "bytes" && row.encoding !== "v8") {
    throw new TypeError(`a ${kind.name} with encoding '${row.encoding}'`);
  }
  try {
    kind.value(row.value);
  } catch (error) {
    throw new TypeError(
      `a ${kind.name} that does not decode: ${(error as Error).message}`,
    );
  }
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Checks chunks in order; remembers the last key (rows must ascend). */
export class BackupRowChecker {
  readonly #appliedIndex: number;
  #lastKey: Uint8Array | null = null;
  #rows = 0;

  /** Checks the rows of a backup taken at `appliedIndex`. */
  constructor(appliedIndex: number) {
    this.#appliedIndex = appliedIndex;
  }

  /** Rows checked so far. */
  get rows(): number {
    return this.#rows;
  }

  /**
   * Checks one chunk and returns it without the dropped metadata.
   *
   * @throws {BackupContentError} Naming the first bad row.
   */
  check(chunk: SnapshotChunk): SnapshotChunk {
    if (!Array.isArray(chunk.rows) || !Array.isArray(chunk.meta)) {
      throw new BackupContentError(
        `Cannot restore backup: chunk ${chunk.sequence} has no rows or meta list`,
      );
    }
    for (const entry of chunk.meta) {
      if (
        !Array.isArray(entry) || typeof entry[0] !== "string" ||
        !(DROPPED_META.has(entry[0]) || entry[0].startsWith("events."))
      ) {
        throw new BackupContentError(
          `Cannot restore backup: unknown metadata ${
            JSON.stringify(Array.isArray(entry) ? entry[0] : entry)
          }`,
        );
      }
    }
    for (const row of chunk.rows) {
      if (isHistoryRow(row)) continue;
      try {
        checkRow(row, this.#appliedIndex);
      } catch (error) {
        const key = row?.key instanceof Uint8Array ? hex(row.key) : "?";
        throw new BackupContentError(
          `Cannot restore backup: row ${this.#rows} (key ${key}) breaks the state machine's rules: ${
            (error as Error).message
          }`,
        );
      }
      if (this.#lastKey !== null && compare(this.#lastKey, row.key) >= 0) {
        throw new BackupContentError(
          `Cannot restore backup: row ${this.#rows} (key ${
            hex(row.key)
          }) is not after the previous key (rows must ascend)`,
        );
      }
      this.#lastKey = row.key;
      this.#rows++;
    }
    // The events history belongs to the old cluster's revisions: a restore
    // starts a new history (its rows and `events.*` metadata are dropped).
    return {
      ...chunk,
      meta: [],
      rows: chunk.rows.filter((row) => !isHistoryRow(row)),
    };
  }
}

const SCAN_PAGE = 1000;
/** Queues counted at most while checking (the state machine has no cap; a backup with more is refused). */
const QUEUES_MAX = 100_000;

/** Every row in `[start, end)`, page by page. */
function* scanAll(
  store: StateStore,
  start: Uint8Array,
  end: Uint8Array,
): Generator<KvRow> {
  let from = start;
  for (;;) {
    const page = store.scan({ start: from, end, limit: SCAN_PAGE });
    yield* page;
    if (page.length < SCAN_PAGE) return;
    const last = page[page.length - 1]!.key;
    from = new Uint8Array(last.length + 1);
    from.set(last);
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Checks the queue records agree with each other, as the state machine
 * assumes (it asserts on them): each message has exactly its one index row
 * (ready at its ready time, or leased until its lease deadline), every index
 * row names a message, and each queue's stats count its messages.
 *
 * @throws {BackupContentError} On the first disagreement.
 */
export function checkQueueRecords(store: StateStore): void {
  const fail = (why: string): never => {
    throw new BackupContentError(
      `Cannot restore backup: its queue records disagree: ${why}`,
    );
  };
  const counts = new Map<string, { length: number; leased: number }>();
  let messages = 0;
  for (
    const row of scanAll(
      store,
      Uint8Array.of(0xff, 0x71, 0x6d),
      Uint8Array.of(0xff, 0x71, 0x6e),
    )
  ) {
    const id = row.key.subarray(3);
    const message = decodeMessage(row.value);
    const index = message.leaseDeadlineMs === null
      ? readyKey(message.queue, message.readyAtMs, id)
      : leaseKey(message.leaseDeadlineMs, id);
    if (store.get(index) === null) {
      fail(
        `message ${hex(id)} has no ${
          message.leaseDeadlineMs === null ? "ready" : "lease"
        } row`,
      );
    }
    const count = counts.get(message.queue) ?? { length: 0, leased: 0 };
    if (!counts.has(message.queue)) {
      if (counts.size >= QUEUES_MAX) fail(`more than ${QUEUES_MAX} queues`);
      counts.set(message.queue, count);
    }
    count.length++;
    if (message.leaseDeadlineMs !== null) count.leased++;
    messages++;
  }
  let indexRows = 0;
  for (
    const row of scanAll(
      store,
      Uint8Array.of(0xff, 0x71, 0x6c),
      Uint8Array.of(0xff, 0x71, 0x6d),
    )
  ) {
    const id = idOfIndexKey(row.key);
    const message = store.get(messageKey(id));
    if (message === null) fail(`lease row of missing message ${hex(id)}`);
    const deadline = decodeMessage(message!.value).leaseDeadlineMs;
    if (deadline === null || !same(leaseKey(deadline, id), row.key)) {
      fail(`lease row of message ${hex(id)} disagrees with it`);
    }
    indexRows++;
  }
  for (
    const row of scanAll(
      store,
      Uint8Array.of(0xff, 0x71, 0x72),
      Uint8Array.of(0xff, 0x71, 0x73),
    )
  ) {
    const id = idOfIndexKey(row.key);
    const message = store.get(messageKey(id));
    if (message === null) fail(`ready row of missing message ${hex(id)}`);
    const record = decodeMessage(message!.value);
    if (
      record.leaseDeadlineMs !== null ||
      !same(readyKey(record.queue, record.readyAtMs, id), row.key)
    ) fail(`ready row of message ${hex(id)} disagrees with it`);
    indexRows++;
  }
  if (indexRows !== messages) {
    fail(`${messages} messages but ${indexRows} index rows`);
  }
  let statsRows = 0;
  for (
    const row of scanAll(
      store,
      Uint8Array.of(0xff, 0x71, 0x73),
      Uint8Array.of(0xff, 0x71, 0x74),
    )
  ) {
    const queue = new TextDecoder().decode(row.key.subarray(3));
    const stats = decodeStats(row.value);
    const count = counts.get(queue) ?? { length: 0, leased: 0 };
    if (stats.length !== count.length || stats.leasedCount !== count.leased) {
      fail(
        `queue '${queue}' counts ${stats.length} messages (${stats.leasedCount} leased), holds ${count.length} (${count.leased})`,
      );
    }
    if (counts.has(queue)) statsRows++;
  }
  if (statsRows !== counts.size) fail("a queue with messages has no stats");
}
