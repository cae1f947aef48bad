/**
 * A node's data folder: the lock that keeps two nodes out of one folder, the
 * node's TLS certificate, and `cluster.json` (which cluster this node belongs
 * to, its member credential, and the members it knows at start).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { generateSigningKey, type SigningKey } from "../cluster/keys.ts";
import { decodeBase64Url, encodeBase64Url } from "../base/base64.ts";
import {
  certificateNeedsRenewal,
  createNodeCertificate,
  type NodeCertificate,
} from "../cluster/certificate.ts";
import type { NodeIdentity } from "../cluster/identity.ts";
import {
  loadOrCreateNodeIdentity,
  NODE_KEY_FILE,
} from "../cluster/identity.ts";
import type { NodeAddress } from "../protocol/cluster.ts";

/** Files in a data folder. */
export const DATA_FILES = {
  lock: "node.lock.sqlite",
  certificate: "certificate.json",
  cluster: "cluster.json",
  clusterKey: "cluster.key",
  log: "raft-log.sqlite",
  state: "state.sqlite",
} as const;

/** What `cluster.json` holds. */
export interface ClusterFile {
  /** The cluster's public key, base32 (its id). */
  readonly clusterId: string;
  /** The database id KV Connect clients see (lowercase UUID). */
  readonly databaseId: string;
  /** This node's member credential (base64url). */
  readonly credential: string;
  /** The voters of a new cluster (ignored once the log has a configuration). */
  readonly voters: readonly string[];
  /** Known members' addresses. */
  readonly members: readonly NodeAddress[];
}

/** The data folder is in use by another process. */
export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
}

/** Creates the folder (mode 0700) if missing. */
export async function ensureDataDir(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode: 0o700 });
}

/** The held lock of a data folder. */
export interface DataDirLock {
  close(): void;
}

/**
 * Takes the folder's exclusive lock, released when the process ends. It is
 * an SQLite database held in an exclusive transaction: SQLite refuses a
 * second holder at once (in this process or another), and the OS drops the
 * lock with the process, so a crash never leaves a stale lock behind.
 *
 * @throws {DataDirLockedError} When another node holds it.
 */
export function lockDataDir(path: string): DataDirLock {
  const db = new DatabaseSync(`${path}/${DATA_FILES.lock}`);
  try {
    db.exec("PRAGMA busy_timeout = 0");
    db.exec("PRAGMA locking_mode = EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER)");
    db.exec("BEGIN EXCLUSIVE");
    db.exec(`DELETE FROM holder; INSERT INTO holder VALUES (${Deno.pid})`);
  } catch (error) {
    db.close();
    if (/locked|busy/i.test(String(error))) {
      throw new DataDirLockedError(
        `Cannot use data folder '${path}' as another node holds its lock`,
        { cause: error },
      );
    }
    throw error;
  }
  return { close: () => db.close() };
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Refuses a folder whose identity exists without its log, or the reverse:
 * rejoining with an empty log can lose committed data.
 *
 * @throws {Error} Unless `allowMissing` is set.
 */
export async function checkDataDirConsistent(
  path: string,
  allowMissing: boolean,
): Promise<void> {
  const hasKey = await exists(`${path}/${NODE_KEY_FILE}`);
  const hasLog = await exists(`${path}/${DATA_FILES.log}`);
  if (hasKey === hasLog || allowMissing) return;
  const what = hasKey
    ? "its identity exists but its Raft log is missing"
    : "its Raft log exists but its identity is missing";
  throw new Error(
    `Cannot start node in '${path}' as ${what}: rejoining with an empty log can lose committed data (pass --allow-missing-log to start anyway)`,
  );
}

interface StoredCertificate {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
  readonly hash: string;
  readonly notAfterMs: number;
}

/**
 * Loads the node's certificate, creating or renewing it when it is missing
 * or near expiry. Kept in a 0600 file so its hash stays stable across restarts.
 */
export async function loadOrCreateCertificate(
  path: string,
  identity: NodeIdentity,
  hosts: readonly string[],
): Promise<NodeCertificate> {
  const file = `${path}/${DATA_FILES.certificate}`;
  if (await exists(file)) {
    const stored = JSON.parse(
      await Deno.readTextFile(file),
    ) as StoredCertificate;
    const certificate: NodeCertificate = {
      certificatePem: stored.certificatePem,
      privateKeyPem: stored.privateKeyPem,
      hash: decodeBase64Url(stored.hash),
      notAfterMs: stored.notAfterMs,
    };
    if (!certificateNeedsRenewal(certificate, Date.now(), 24 * 3600 * 1000)) {
      return certificate;
    }
  }
  const ipAddresses = hosts.filter((h) =>
    /^[0-9.]+$/.test(h) || h.includes(":")
  );
  const dnsNames = hosts.filter((h) => !ipAddresses.includes(h));
  const certificate = await createNodeCertificate(identity, {
    ipAddresses,
    dnsNames: ["localhost", ...dnsNames],
  });
  const stored: StoredCertificate = {
    certificatePem: certificate.certificatePem,
    privateKeyPem: certificate.privateKeyPem,
    hash: encodeBase64Url(certificate.hash),
    notAfterMs: certificate.notAfterMs,
  };
  await Deno.writeTextFile(file, JSON.stringify(stored, null, 2), {
    mode: 0o600,
  });
  return certificate;
}

/** Reads `cluster.json`, or null when the node belongs to no cluster yet. */
export async function readClusterFile(
  path: string,
): Promise<ClusterFile | null> {
  const file = `${path}/${DATA_FILES.cluster}`;
  if (!(await exists(file))) return null;
  const value = JSON.parse(await Deno.readTextFile(file)) as ClusterFile;
  if (
    typeof value.clusterId !== "string" || !Array.isArray(value.members) ||
    !Array.isArray(value.voters)
  ) {
    throw new TypeError(
      `Cannot read '${file}': expected clusterId, voters and members`,
    );
  }
  return value;
}

/**
 * Writes `cluster.json` (mode 0600: it carries the credential) atomically: the
 * text goes to a temporary file in the same folder, is synced, and is renamed
 * over the old one, so a reader or a crash never sees a half-written file (a
 * truncated cluster.json would keep the node from starting).
 */
export function writeClusterFile(
  path: string,
  cluster: ClusterFile,
): Promise<void> {
  // One write at a time per file in this process: two writers sharing the
  // temporary file would rename it from under each other.
  const previous = clusterFileWrites.get(path) ?? Promise.resolve();
  const next = previous.catch(() => {}).then(() =>
    writeClusterFileNow(path, cluster)
  );
  clusterFileWrites.set(path, next);
  const forget = () => {
    if (clusterFileWrites.get(path) === next) clusterFileWrites.delete(path);
  };
  next.then(forget, forget);
  return next;
}

const clusterFileWrites = new Map<string, Promise<void>>();

async function writeClusterFileNow(
  path: string,
  cluster: ClusterFile,
): Promise<void> {
  const target = `${path}/${DATA_FILES.cluster}`;
  const temporary = `${target}.tmp`;
  await Deno.writeTextFile(temporary, JSON.stringify(cluster, null, 2), {
    mode: 0o600,
  });
  const file = await Deno.open(temporary, { write: true });
  try {
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(temporary, target);
}

/** A node refused to start as its configured address differs from the one its cluster knows. */
export class AddressChangedError extends Error {
  override name = "AddressChangedError";
}

/** Where a node is configured to listen (a port of 0 means "pick one": not checked). */
export interface ConfiguredAddress {
  readonly httpHost: string;
  readonly httpPort: number;
  readonly quicHost: string;
  readonly quicPort: number;
}

/**
 * This folder's own entry in its `cluster.json`, found by the node key's id
 * (not by position: a node lists itself last). Null when the folder has no
 * node key or no cluster file yet.
 */
export async function readSelfMember(
  path: string,
): Promise<{ cluster: ClusterFile; self: NodeAddress | null } | null> {
  if (!(await exists(`${path}/${NODE_KEY_FILE}`))) return null;
  const cluster = await readClusterFile(path);
  if (cluster === null) return null;
  const identity = await loadOrCreateNodeIdentity(path);
  return {
    cluster,
    self: cluster.members.find((m) => m.nodeId === identity.nodeId) ?? null,
  };
}

/** The differences between a member's recorded address and the configured one. */
export function addressDifferences(
  recorded: NodeAddress,
  configured: ConfiguredAddress,
): string[] {
  const differences: string[] = [];
  const url = new URL(recorded.httpUrl);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  if (host !== configured.httpHost.replace(/^\[|\]$/g, "")) {
    differences.push(`HTTP host ${configured.httpHost} (recorded ${host})`);
  }
  if (configured.httpPort !== 0 && port !== configured.httpPort) {
    differences.push(`HTTP port ${configured.httpPort} (recorded ${port})`);
  }
  if (recorded.quicHost !== configured.quicHost) {
    differences.push(
      `QUIC host ${configured.quicHost} (recorded ${recorded.quicHost})`,
    );
  }
  if (configured.quicPort !== 0 && recorded.quicPort !== configured.quicPort) {
    differences.push(
      `QUIC port ${configured.quicPort} (recorded ${recorded.quicPort})`,
    );
  }
  return differences;
}

/**
 * Refuses to start a node whose configured address differs from the one its
 * own `cluster.json` records (what its peers were told), unless
 * `reAnnounce`: a wrong address announced through the log misleads every peer.
 *
 * @throws {AddressChangedError} On a difference without `reAnnounce`.
 */
export async function checkConfiguredAddress(
  path: string,
  configured: ConfiguredAddress,
  reAnnounce: boolean,
): Promise<void> {
  if (reAnnounce) return;
  const found = await readSelfMember(path);
  if (found?.self == null) return;
  const differences = addressDifferences(found.self, configured);
  if (differences.length === 0) return;
  throw new AddressChangedError(
    `Cannot start node in '${path}' as its configured address differs from the one its cluster knows: ${
      differences.join(", ")
    }. Start it with the recorded address, or pass --re-announce to announce the new one to the cluster`,
  );
}

/**
 * Creates a new cluster key and keeps it in the folder (`cluster.key`, PKCS#8,
 * and `cluster.key.pub`, both 0600): a new cluster's identity.
 */
export async function createClusterKey(dir: string): Promise<SigningKey> {
  const clusterKey = await generateSigningKey();
  await Deno.writeFile(
    `${dir}/${DATA_FILES.clusterKey}`,
    await clusterKey.exportPkcs8(),
    { mode: 0o600 },
  );
  await Deno.writeFile(
    `${dir}/${DATA_FILES.clusterKey}.pub`,
    clusterKey.publicKey,
    { mode: 0o600 },
  );
  return clusterKey;
}
