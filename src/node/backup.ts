/**
 * Backups: a consistent copy of a running cluster's KV state, and the
 * offline restore that turns one into the data folder of a new one-node
 * cluster (which can then grow by joins).
 *
 * File format: the 8 bytes `ASPNBKP1`, a MessagePack body
 * `{ version, clusterId, databaseId, appliedIndex, createdAtMs, chunks }`
 * (the state store's snapshot chunks), then the SHA-256 of everything before it.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
import { sha256 } from "@noble/hashes/sha2.js";
import { loadOrCreateNodeIdentity } from "../cluster/identity.ts";
import { SqliteStateStore } from "../kv/sqlite_state_store.ts";
import type { SnapshotChunk } from "../kv/state_store.ts";
import { type LogIndex, nodeId, type Term } from "../raft/types.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import { DATA_FILES, ensureDataDir, exists } from "./data_dir.ts";

const MAGIC = new TextEncoder().encode("ASPNBKP1");
const HASH_BYTES = 32;
const VERSION = 1;

/** What a backup describes. */
export interface BackupHeader {
  readonly version: number;
  readonly clusterId: string;
  readonly databaseId: string;
  readonly appliedIndex: number;
  readonly createdAtMs: number;
}

interface BackupBody extends BackupHeader {
  readonly chunks: SnapshotChunk[];
}

/** A backup file that is not one, or is damaged. */
export class BackupFormatError extends Error {
  override name = "BackupFormatError";
}

/** Encodes a backup of `chunks` (exported at `appliedIndex`). */
export function encodeBackup(
  header: Omit<BackupHeader, "version">,
  chunks: SnapshotChunk[],
): Uint8Array {
  const body = encode(
    { version: VERSION, ...header, chunks } satisfies BackupBody,
  );
  const out = new Uint8Array(MAGIC.length + body.length + HASH_BYTES);
  out.set(MAGIC, 0);
  out.set(body, MAGIC.length);
  out.set(
    sha256(out.subarray(0, MAGIC.length + body.length)),
    MAGIC.length + body.length,
  );
  return out;
}

/**
 * Decodes and verifies a backup.
 *
 * @throws {BackupFormatError} When the magic, checksum or body is wrong.
 */
export function decodeBackup(bytes: Uint8Array): BackupBody {
  if (
    bytes.length < MAGIC.length + HASH_BYTES ||
    !MAGIC.every((b, i) => bytes[i] === b)
  ) {
    throw new BackupFormatError(
      "Cannot read backup: it does not start with 'ASPNBKP1'",
    );
  }
  const end = bytes.length - HASH_BYTES;
  const expected = sha256(bytes.subarray(0, end));
  if (!expected.every((b, i) => bytes[end + i] === b)) {
    throw new BackupFormatError(
      "Cannot read backup: its checksum does not match (the file is damaged)",
    );
  }
  const body = decode(bytes.subarray(MAGIC.length, end)) as BackupBody;
  if (
    body.version !== VERSION || !Array.isArray(body.chunks) ||
    !Number.isSafeInteger(body.appliedIndex)
  ) {
    throw new BackupFormatError(
      `Cannot read backup: unsupported version ${JSON.stringify(body.version)}`,
    );
  }
  return body;
}

/**
 * Writes a new data folder from a backup: a fresh node identity, the KV
 * state, and a Raft log that starts at the backup's index with this node as
 * the only voter. The first `node start` there makes it a new cluster.
 *
 * @throws {BackupFormatError} When the backup is damaged.
 * @throws {Error} When the folder already holds a node.
 */
export async function restoreBackup(
  bytes: Uint8Array,
  dataDir: string,
): Promise<BackupHeader> {
  const backup = decodeBackup(bytes);
  for (
    const file of [
      DATA_FILES.log,
      DATA_FILES.state,
      DATA_FILES.cluster,
      "node.key",
    ]
  ) {
    if (await exists(`${dataDir}/${file}`)) {
      throw new Error(
        `Cannot restore into '${dataDir}' as it already holds a node ('${file}' exists)`,
      );
    }
  }
  await ensureDataDir(dataDir);
  const identity = await loadOrCreateNodeIdentity(dataDir);
  const state = new SqliteStateStore({
    path: `${dataDir}/${DATA_FILES.state}`,
  });
  try {
    const installer = state.beginInstall();
    for (const chunk of backup.chunks) installer.write(chunk);
    installer.commit();
    state.sync();
  } finally {
    state.close();
  }
  const index = backup.appliedIndex as LogIndex;
  const log = SqliteLogStore.open({ path: `${dataDir}/${DATA_FILES.log}` });
  try {
    if (index > 0) {
      log.compact({
        index,
        term: 1 as Term,
        confState: {
          voters: [nodeId(identity.nodeId)],
          votersOutgoing: [],
          learners: [],
        },
      });
    }
    log.setHardState({ term: 1 as Term, vote: null, commit: index });
  } finally {
    log.close();
  }
  return {
    version: backup.version,
    clusterId: backup.clusterId,
    databaseId: backup.databaseId,
    appliedIndex: backup.appliedIndex,
    createdAtMs: backup.createdAtMs,
  };
}
