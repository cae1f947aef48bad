/**
 * Backups: a consistent copy of a running cluster's KV state, streamed
 * (never whole in memory), signed with the cluster key; and the offline
 * restore that checks every row and turns one into the data folder of a NEW
 * one-node cluster (new cluster id, this node its only member).
 *
 * File format (version 2): the 8 bytes `ASPNBKP2`, then frames (a 4-byte
 * big-endian length and a MessagePack value, at most
 * {@linkcode BACKUP_FRAME_BYTES_MAX}):
 * - `{ type: "header", version, clusterId, databaseId, appliedIndex, createdAtMs }`
 * - `{ type: "chunk", chunk }` for each of the state store's snapshot chunks
 * - `{ type: "end", chunks, sha256, signature }`: the SHA-256 of every byte
 *   before this frame, and the Ed25519 signature by the cluster key of
 *   `"aspen-backup-v2\n"` + that digest (null when the node holds no key).
 *
 * What the signature proves: the cluster id is the cluster key's public
 * key, so a backup that verifies against the id the operator expects was
 * written, byte for byte, by a holder of that cluster's key (one of its
 * nodes) at the index it states. It does not prove the backup is the latest
 * one, nor protect against a compromised member.
 *
 * @module
 */
import { decode, encode } from "@msgpack/msgpack";
// Native SHA-256: the JavaScript one took 1.5 s per 100 MiB on the main thread.
import { createHash, type Hash } from "node:crypto";
import {
  encodeCredential,
  formatClusterId,
  issueCredential,
} from "../cluster/credential.ts";
import { decodeBase32 } from "../base/base32.ts";
import { loadOrCreateNodeIdentity } from "../cluster/identity.ts";
import { type SigningKey, verifySignature } from "../cluster/keys.ts";
import { SqliteStateStore } from "../storage/sqlite_state_store.ts";
import type { SnapshotChunk } from "../state/state_store.ts";
import { type LogIndex, nodeId, type Term } from "../raft/types.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import { encodeBase64Url } from "../base/base64.ts";
import { BackupRowChecker, checkQueueRecords } from "./_backup_rows.ts";
import {
  createClusterKey,
  DATA_FILES,
  exists,
  writeClusterFile,
} from "./data_dir.ts";

export { BackupContentError } from "./_backup_rows.ts";

const MAGIC = new TextEncoder().encode("ASPNBKP2");
const MAGIC_V1 = "ASPNBKP1";
const VERSION = 2;
const SIGNED_PREFIX = new TextEncoder().encode("aspen-backup-v2\n");
/** Bound on one frame (a chunk holds about 1 MiB of rows). */
export const BACKUP_FRAME_BYTES_MAX = 16 * 1024 * 1024;

/** What a backup describes. */
export interface BackupHeader {
  readonly version: number;
  readonly clusterId: string;
  readonly databaseId: string;
  readonly appliedIndex: number;
  readonly createdAtMs: number;
}

/** A backup file that is not one, is damaged, or fails its signature check. */
export class BackupFormatError extends Error {
  override name = "BackupFormatError";
}

function frame(value: unknown): Uint8Array {
  const body = encode(value);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

function signedMessage(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNED_PREFIX.length + digest.length);
  out.set(SIGNED_PREFIX, 0);
  out.set(digest, SIGNED_PREFIX.length);
  return out;
}

/**
 * Streams a backup of `chunks` (one consistent export), signed by `signer`
 * when given. Chunks are pulled as the reader asks for bytes.
 */
export function backupStream(
  header: Omit<BackupHeader, "version" | "appliedIndex">,
  chunks: Iterator<SnapshotChunk>,
  signer: SigningKey | null,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const hash = createHash("sha256");
  let pending: IteratorResult<SnapshotChunk> | null = null;
  let count = 0;
  const emit = (
    controller: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>,
    bytes: Uint8Array,
  ) => {
    hash.update(bytes);
    controller.enqueue(bytes as Uint8Array<ArrayBuffer>);
  };
  return new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      pending = chunks.next();
      const appliedIndex = pending.done ? 0 : pending.value.appliedIndex;
      const head = frame({
        type: "header",
        version: VERSION,
        ...header,
        appliedIndex,
      });
      const bytes = new Uint8Array(MAGIC.length + head.length);
      bytes.set(MAGIC, 0);
      bytes.set(head, MAGIC.length);
      emit(controller, bytes);
    },
    async pull(controller) {
      const next = pending ?? chunks.next();
      pending = null;
      if (!next.done) {
        emit(controller, frame({ type: "chunk", chunk: next.value }));
        count++;
        return;
      }
      const digest = new Uint8Array(hash.digest());
      const signature = signer === null
        ? null
        : await signer.sign(signedMessage(digest));
      controller.enqueue(
        frame({
          type: "end",
          chunks: count,
          sha256: digest,
          signature,
        }) as Uint8Array<ArrayBuffer>,
      );
      controller.close();
    },
    cancel() {
      chunks.return?.();
    },
  }, { highWaterMark: 0 });
}

/** Reads exact byte counts from a stream, keeping at most one frame buffered. */
class ByteReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #onBytes: (total: number) => void;
  #parts: Uint8Array[] = [];
  #buffered = 0;
  #total = 0;
  #ended = false;

  constructor(
    stream: ReadableStream<Uint8Array>,
    onBytes: (total: number) => void,
  ) {
    this.#reader = stream.getReader();
    this.#onBytes = onBytes;
  }

  /** Exactly `n` bytes, or null when the stream ends first (at a boundary when `buffered` is 0). */
  async read(n: number): Promise<Uint8Array | null> {
    while (this.#buffered < n && !this.#ended) {
      const { done, value } = await this.#reader.read();
      if (done) this.#ended = true;
      else if (value.length > 0) {
        this.#parts.push(value);
        this.#buffered += value.length;
        this.#total += value.length;
        this.#onBytes(this.#total);
      }
    }
    if (this.#buffered < n) return null;
    const out = new Uint8Array(n);
    let offset = 0;
    while (offset < n) {
      const part = this.#parts[0]!;
      const take = Math.min(part.length, n - offset);
      out.set(part.subarray(0, take), offset);
      offset += take;
      if (take === part.length) this.#parts.shift();
      else this.#parts[0] = part.subarray(take);
    }
    this.#buffered -= n;
    return out;
  }

  /** Passes the next `n` bytes to `each` piece by piece (no copy); false when the stream ends first. */
  async pass(n: number, each: (piece: Uint8Array) => void): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0) {
        const { done, value } = await this.#reader.read();
        if (done) {
          this.#ended = true;
          return false;
        }
        this.#parts.push(value);
        this.#buffered += value.length;
        this.#total += value.length;
        this.#onBytes(this.#total);
        continue;
      }
      const part = this.#parts[0]!;
      const take = Math.min(part.length, left);
      each(part.subarray(0, take));
      left -= take;
      this.#buffered -= take;
      if (take === part.length) this.#parts.shift();
      else this.#parts[0] = part.subarray(take);
    }
    return true;
  }

  get buffered(): number {
    return this.#buffered;
  }

  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }
}

/** Options of {@linkcode readBackup} and {@linkcode restoreBackup}. */
export interface BackupReadOptions {
  /**
   * The cluster id the backup must come from: its signature must verify
   * with that cluster's key. Required unless `trustUnsigned`.
   */
  readonly expectedClusterId?: string;
  /** Accept a backup without checking who signed it (its checksum is still checked). */
  readonly trustUnsigned?: boolean;
  /** Called with the bytes read so far. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * Check only the framing, checksum and signature, without decoding the
   * chunks (`onChunk` is not called): what `snapshot save` checks on the way.
   */
  readonly framingOnly?: boolean;
}

/** The verdict on a backup read to its end. */
export interface BackupTrailer {
  readonly chunks: number;
  /** True when the signature was checked against the expected cluster. */
  readonly verified: boolean;
  readonly signed: boolean;
}

/** How every chunk frame begins (`{ type: "chunk", chunk: … }` in MessagePack). */
const CHUNK_FRAME_PREFIX = encode({ type: "chunk", chunk: null }).subarray(
  0,
  -1,
);

async function readFrame(
  reader: ByteReader,
  hash: Hash | null,
  skipChunks = false,
): Promise<Record<string, unknown>> {
  const length = await reader.read(4);
  if (length === null) {
    throw new BackupFormatError(
      "Cannot read backup: it ends early (truncated file)",
    );
  }
  const n = new DataView(length.buffer).getUint32(0);
  if (n > BACKUP_FRAME_BYTES_MAX) {
    throw new BackupFormatError(
      `Cannot read backup: a frame of ${n} bytes exceeds ${BACKUP_FRAME_BYTES_MAX}`,
    );
  }
  const truncated = () =>
    new BackupFormatError("Cannot read backup: it ends early (truncated file)");
  if (skipChunks && n >= CHUNK_FRAME_PREFIX.length) {
    // Framing only: a chunk frame is hashed as it passes, never assembled.
    const head = await reader.read(CHUNK_FRAME_PREFIX.length);
    if (head === null) throw truncated();
    if (CHUNK_FRAME_PREFIX.every((b, i) => head[i] === b)) {
      hash?.update(length);
      hash?.update(head);
      const rest = n - head.length;
      if (!(await reader.pass(rest, (piece) => hash?.update(piece)))) {
        throw truncated();
      }
      return { type: "chunk", chunk: null };
    }
    const tail = await reader.read(n - head.length);
    if (tail === null) throw truncated();
    const whole = new Uint8Array(n);
    whole.set(head, 0);
    whole.set(tail, head.length);
    return decodeFrame(length, whole, hash);
  }
  const body = await reader.read(n);
  if (body === null) throw truncated();
  return decodeFrame(length, body, hash);
}

function decodeFrame(
  length: Uint8Array,
  body: Uint8Array,
  hash: Hash | null,
): Record<string, unknown> {
  hash?.update(length);
  hash?.update(body);
  let value: unknown;
  try {
    value = decode(body);
  } catch (error) {
    throw new BackupFormatError(
      `Cannot read backup: a frame is not MessagePack: ${
        (error as Error).message
      }`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new BackupFormatError("Cannot read backup: a frame is not a map");
  }
  return value as Record<string, unknown>;
}

function checkHeader(value: Record<string, unknown>): BackupHeader {
  if (
    value.type !== "header" || value.version !== VERSION ||
    typeof value.clusterId !== "string" ||
    typeof value.databaseId !== "string" ||
    !Number.isSafeInteger(value.appliedIndex) ||
    (value.appliedIndex as number) < 0 ||
    !Number.isSafeInteger(value.createdAtMs)
  ) {
    throw new BackupFormatError(
      `Cannot read backup: unsupported or damaged header (version ${
        JSON.stringify(value.version)
      })`,
    );
  }
  return {
    version: VERSION,
    clusterId: value.clusterId,
    databaseId: value.databaseId,
    appliedIndex: value.appliedIndex as number,
    createdAtMs: value.createdAtMs as number,
  };
}

/**
 * Reads a backup stream: calls `onHeader`, then `onChunk` for each chunk in
 * order, then checks the checksum, the signature and that nothing follows.
 * Nothing read is trustworthy until this resolves.
 *
 * @throws {BackupFormatError} When the file is damaged, truncated, unsigned
 *   (without `trustUnsigned`) or signed by another cluster.
 */
export async function readBackup(
  stream: ReadableStream<Uint8Array>,
  options: BackupReadOptions,
  onHeader: (header: BackupHeader) => void | Promise<void>,
  onChunk: (chunk: SnapshotChunk) => void | Promise<void>,
): Promise<BackupTrailer> {
  if (options.expectedClusterId === undefined && !options.trustUnsigned) {
    throw new BackupFormatError(
      "Cannot restore backup without knowing which cluster must have signed it: pass the source cluster's id (--cluster-id, shown by 'aspen cluster status'), or --trust-unsigned",
    );
  }
  const reader = new ByteReader(stream, options.onProgress ?? (() => {}));
  try {
    const hash = createHash("sha256");
    const magic = await reader.read(MAGIC.length);
    const text = magic === null ? "" : new TextDecoder().decode(magic);
    if (text === MAGIC_V1) {
      throw new BackupFormatError(
        "Cannot read backup: it is a version 1 backup (unsigned); take a new one with this version of 'aspen snapshot save'",
      );
    }
    if (magic === null || !MAGIC.every((b, i) => magic[i] === b)) {
      throw new BackupFormatError(
        "Cannot read backup: it does not start with 'ASPNBKP2'",
      );
    }
    hash.update(magic);
    const header = checkHeader(await readFrame(reader, hash));
    if (
      options.expectedClusterId !== undefined &&
      header.clusterId !== options.expectedClusterId
    ) {
      throw new BackupFormatError(
        `Cannot restore backup: it comes from cluster ${header.clusterId}, not the expected ${options.expectedClusterId}`,
      );
    }
    await onHeader(header);
    let chunks = 0;
    for (;;) {
      const before = hash.copy();
      const value = await readFrame(reader, hash, options.framingOnly);
      if (value.type === "chunk" && options.framingOnly) {
        chunks++;
        continue;
      }
      if (value.type === "chunk") {
        const chunk = value.chunk as SnapshotChunk;
        if (
          typeof chunk !== "object" || chunk === null ||
          chunk.sequence !== chunks ||
          chunk.appliedIndex !== header.appliedIndex
        ) {
          throw new BackupFormatError(
            `Cannot read backup: chunk ${chunks} is out of order or of another index`,
          );
        }
        await onChunk(chunk);
        chunks++;
        continue;
      }
      if (value.type !== "end") {
        throw new BackupFormatError(
          `Cannot read backup: unknown frame ${JSON.stringify(value.type)}`,
        );
      }
      const digest = new Uint8Array(before.digest());
      const stated = value.sha256;
      if (
        !(stated instanceof Uint8Array) || stated.length !== digest.length ||
        !digest.every((b, i) => stated[i] === b) || value.chunks !== chunks
      ) {
        throw new BackupFormatError(
          "Cannot read backup: its checksum does not match (the file is damaged)",
        );
      }
      if ((await reader.read(1)) !== null || reader.buffered > 0) {
        throw new BackupFormatError(
          "Cannot read backup: bytes follow its end frame",
        );
      }
      const signature = value.signature;
      const signed = signature instanceof Uint8Array;
      if (options.trustUnsigned) return { chunks, verified: false, signed };
      if (!signed) {
        throw new BackupFormatError(
          "Cannot restore backup: it is not signed (its node held no cluster key); pass --trust-unsigned to restore it anyway",
        );
      }
      let key: Uint8Array;
      try {
        key = decodeBase32(header.clusterId);
      } catch {
        key = new Uint8Array(0);
      }
      if (!(await verifySignature(key, signature, signedMessage(digest)))) {
        throw new BackupFormatError(
          `Cannot restore backup: its signature does not verify with cluster ${header.clusterId}'s key (the file was altered or not written by that cluster)`,
        );
      }
      return { chunks, verified: true, signed };
    }
  } catch (error) {
    reader.cancel();
    throw error;
  }
}

/** What {@linkcode restoreBackup} made. */
export interface RestoreResult extends BackupHeader, BackupTrailer {
  /** The new cluster's id. */
  readonly newClusterId: string;
  readonly rows: number;
}

/**
 * Writes the data folder of a new one-node cluster from a backup stream: a
 * fresh node identity and cluster key (a new cluster id), the KV state
 * (every row checked), and a Raft log that starts at the backup's index with
 * this node as the only voter. Everything is written to a sibling staging
 * folder and moved into `dataDir` only once the backup verified, so a
 * failed restore leaves `dataDir` as it was.
 *
 * @throws {BackupFormatError} When the backup is damaged or fails its signature check.
 * @throws {BackupContentError} When a row breaks the state machine's rules.
 * @throws {Error} When the folder already holds a node.
 */
export async function restoreBackup(
  source: ReadableStream<Uint8Array> | Uint8Array,
  dataDir: string,
  options: BackupReadOptions = {},
): Promise<RestoreResult> {
  const stream = source instanceof Uint8Array
    ? new Blob([source as Uint8Array<ArrayBuffer>]).stream()
    : source;
  for (
    const file of [
      DATA_FILES.log,
      DATA_FILES.state,
      DATA_FILES.cluster,
      DATA_FILES.clusterKey,
      "node.key",
    ]
  ) {
    if (await exists(`${dataDir}/${file}`)) {
      await stream.cancel().catch(() => {});
      throw new Error(
        `Cannot restore into '${dataDir}' as it already holds a node ('${file}' exists)`,
      );
    }
  }
  // Staged inside the target (the only folder a scoped CLI may write), in a
  // hidden folder removed on failure; a target this call created is removed
  // too, so a failed restore leaves the target as it was.
  const trimmed = dataDir.replace(/\/+$/, "");
  const created = !(await exists(trimmed));
  await Deno.mkdir(trimmed, { recursive: true });
  const staging = await Deno.makeTempDir({
    dir: trimmed,
    prefix: ".restoring-",
  });
  await Deno.chmod(staging, 0o700);
  let restored = false;
  try {
    const result = await restoreInto(stream, staging, options);
    await moveInto(staging, trimmed);
    restored = true;
    return result;
  } finally {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    if (!restored && created) {
      await Deno.remove(trimmed, { recursive: true }).catch(() => {});
    }
  }
}

async function restoreInto(
  stream: ReadableStream<Uint8Array>,
  dir: string,
  options: BackupReadOptions,
): Promise<RestoreResult> {
  const state = new SqliteStateStore({ path: `${dir}/${DATA_FILES.state}` });
  let checker: BackupRowChecker | null = null;
  let header: BackupHeader | null = null;
  let trailer: BackupTrailer;
  const installer = state.beginInstall();
  try {
    trailer = await readBackup(
      stream,
      options,
      (h) => {
        header = h;
        checker = new BackupRowChecker(h.appliedIndex);
      },
      (chunk) => installer.write(checker!.check(chunk)),
    );
    installer.commit();
    // Across rows: the queue records must agree before the node uses them.
    checkQueueRecords(state);
    state.sync();
  } catch (error) {
    try {
      installer.abort();
    } catch {
      // Already committed: the staging folder is dropped anyway.
    }
    throw error;
  } finally {
    state.close();
  }
  const backup = header as BackupHeader | null;
  if (backup === null) throw new BackupFormatError("Cannot read backup");
  // A new cluster: new key (so a new id), this node its only member.
  const identity = await loadOrCreateNodeIdentity(dir);
  const clusterKey = await createClusterKey(dir);
  const newClusterId = formatClusterId(clusterKey.publicKey);
  await writeClusterFile(dir, {
    clusterId: newClusterId,
    databaseId: crypto.randomUUID(),
    credential: encodeBase64Url(
      encodeCredential(await issueCredential(clusterKey, identity.publicKey)),
    ),
    voters: [identity.nodeId],
    members: [],
  });
  const index = backup.appliedIndex as LogIndex;
  const log = SqliteLogStore.open({ path: `${dir}/${DATA_FILES.log}` });
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
    ...backup,
    ...trailer,
    newClusterId,
    rows: (checker as BackupRowChecker | null)?.rows ?? 0,
  };
}

/** Moves the staged folder's files into `target`. */
async function moveInto(staging: string, target: string): Promise<void> {
  for await (const entry of Deno.readDir(staging)) {
    await Deno.rename(`${staging}/${entry.name}`, `${target}/${entry.name}`);
  }
}
