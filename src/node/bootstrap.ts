/**
 * Opening and closing a node's parts: the data folder (lock, identity,
 * certificate, `cluster.json`, creating a new one-node cluster in an empty
 * folder), the SQLite log and state, the QUIC transport, the member
 * directory, the Raft runner, the service host and the KV backend.
 * `aspen_node.ts` composes what this opens.
 *
 * @module
 */
import {
  encodeCertificateRecord,
  signCertificateRecord,
} from "../cluster/certificate.ts";
import {
  encodeCredential,
  formatClusterId,
  issueCredential,
} from "../cluster/credential.ts";
import { decodeBase32 } from "../base/base32.ts";
import {
  loadOrCreateNodeIdentity,
  type NodeIdentity,
} from "../cluster/identity.ts";
import { MemberDirectory } from "../cluster/member_directory.ts";
import type { NodeAddress } from "../protocol/cluster.ts";
import { nodeId } from "../raft/types.ts";
import { KvReplicatedState } from "../services/replicated_state.ts";
import { KvStateMachine } from "../services/state_machine.ts";
import { ChangeFeed } from "../state/change_feed.ts";
import { type LogWriter, WorkerLogWriter } from "../storage/log_writer.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import { SqliteStateStore } from "../storage/sqlite_state_store.ts";
import { QuicTransport } from "../transport/quic_transport.ts";
import { decodeBase64Url, encodeBase64Url } from "../base/base64.ts";
import type { NodeConfig } from "./config.ts";
import {
  checkDataDirConsistent,
  type ClusterFile,
  createClusterKey,
  DATA_FILES,
  type DataDirLock,
  ensureDataDir,
  loadOrCreateCertificate,
  lockDataDir,
  readClusterFile,
  writeClusterFile,
} from "./data_dir.ts";
import { RaftKvBackend } from "./raft_kv_backend.ts";
import { RaftRunner } from "./raft_runner.ts";
import { forceNewCluster } from "./recovery.ts";
import { NodeMembers } from "./members.ts";
import { runnerLeadership, ServiceHost } from "./service_host.ts";
import { systemScheduler } from "./system_clock.ts";

/** What {@linkcode openNode} opened, for the node to compose. */
export interface NodeParts {
  readonly identity: NodeIdentity;
  readonly cluster: ClusterFile;
  readonly directory: MemberDirectory;
  /** Keeps the transport's peers and `cluster.json` in step with the directory. */
  readonly members: NodeMembers;
  /** What peers were told about this node before this start (the file's entry), if anything. */
  readonly previousSelf: NodeAddress | null;
  /** The revoked node ids the transport's handshakes read (filled from the log). */
  readonly revoked: Set<string>;
  readonly transport: QuicTransport;
  readonly logWriter: LogWriter;
  readonly stateStore: SqliteStateStore;
  readonly state: KvReplicatedState;
  readonly runner: RaftRunner;
  /** Runs the services' leader tasks while this node leads. */
  readonly services: ServiceHost;
  readonly backend: RaftKvBackend;
  readonly lock: DataDirLock;
}

/**
 * Opens the data folder and every part of a node, not yet started. A folder
 * without a cluster becomes a new one-node cluster.
 *
 * @param onClientSession Serves a WebTransport client session (called once the node runs).
 */
export async function openNode(
  config: NodeConfig,
  httpUrl: string,
  log: (line: string) => void,
  onClientSession: (session: WebTransport) => boolean,
): Promise<NodeParts> {
  const dir = config.dataDir;
  await ensureDataDir(dir);
  const lock = lockDataDir(dir);
  await checkDataDirConsistent(dir, config.allowMissingLog);
  const identity = await loadOrCreateNodeIdentity(dir);
  const certificate = await loadOrCreateCertificate(dir, identity, [
    config.quicHost,
  ]);
  const logStore = SqliteLogStore.open({
    path: `${dir}/${DATA_FILES.log}`,
    onWarning: (m) => log(`warning: ${m}`),
  });
  const stateStore = new SqliteStateStore({
    path: `${dir}/${DATA_FILES.state}`,
  });
  // The change feed watches follow (issue 14), from the stored state on.
  const changes = new ChangeFeed({
    revision: BigInt(stateStore.appliedIndex()),
  });
  const state = new KvReplicatedState(
    new KvStateMachine(stateStore, {}, { changes }),
  );
  const existing = await readClusterFile(dir);
  const credential = existing === null
    ? await initCluster(dir, identity)
    : decodeBase64Url(existing.credential);
  const clusterId = existing === null ? null : decodeBase32(existing.clusterId);
  // Removed members' node ids, replicated (see NodeAdmin.remove): read at
  // every handshake, so a removed node's credential opens no connection.
  const revoked = new Set<string>(state.revoked());
  const transport = await QuicTransport.listen({
    membership: {
      identity,
      clusterId: clusterId ?? (await readClusterKeyPublic(dir)),
      credential,
      revoked,
    },
    certificate,
    certificateRecord: encodeCertificateRecord(
      await signCertificateRecord(identity, certificate),
    ),
    hostname: config.quicHost,
    port: config.quicPort,
    idleTimeoutMs: config.quicIdleTimeoutMs,
    log: (event) => log(`transport: ${JSON.stringify(event)}`),
    // Client streaming (watch) over WebTransport, once the node runs.
    onClientSession: (session) => {
      if (!onClientSession(session)) {
        session.close({ closeCode: 503, reason: "Node is starting" });
      }
    },
  });
  const address: NodeAddress = {
    nodeId: identity.nodeId,
    httpUrl,
    quicHost: config.quicHost,
    quicPort: transport.addr.port,
    nodeKey: encodeBase64Url(identity.publicKey),
    certificateHash: encodeBase64Url(certificate.hash),
    ...(config.name === "" ? {} : { name: config.name }),
  };
  // What peers were told about this node (if anything), before it changes.
  const previousSelf =
    existing?.members.find((m) => m.nodeId === identity.nodeId) ?? null;
  const cluster = await upsertSelf(
    dir,
    existing,
    identity,
    credential,
    address,
  );
  const directory = new MemberDirectory(address, cluster.members);
  // Addresses replicated through the log are newer than the file's.
  directory.merge(state.members());
  if (config.forceNewCluster) forceNewCluster(logStore, state, identity, log);
  // The transport learns every known peer now, and follows the directory.
  const members = new NodeMembers({
    directory,
    transport,
    state,
    dataDir: dir,
    file: cluster,
    scheduler: systemScheduler,
    log,
  });
  // From here on the log is only written, by a Worker (see log_writer.ts).
  const logWriter = new WorkerLogWriter(`${dir}/${DATA_FILES.log}`);
  const runner = new RaftRunner({
    id: nodeId(identity.nodeId),
    voters: cluster.voters.map(nodeId),
    logStore,
    logWriter,
    stateMachine: state,
    transport,
    tickMs: config.tickMs,
    electionTicks: config.electionTicks,
    snapshotEntries: config.snapshotEntries,
    requestTimeoutMs: config.requestTimeoutMs,
    readOnly: config.readOnly,
    log: (event, detail) =>
      log(`raft: ${event} ${JSON.stringify(detail ?? {})}`),
  });
  logStore.close();
  const services = new ServiceHost({
    leadership: runnerLeadership(runner),
    proposeLocal: (data) => runner.proposeLocal(data),
    log,
  });
  // The KV and queue services register their leader tasks on it.
  const backend = new RaftKvBackend(runner, state, cluster.databaseId, {
    services,
    // The longest election timeout (randomized up to twice electionTicks):
    // a new leader extends every lease by it, and TTLs are raised to 3×.
    electionTimeoutMs: config.tickMs * config.electionTicks * 2,
  });
  return {
    identity,
    cluster,
    directory,
    members,
    previousSelf,
    revoked,
    transport,
    logWriter,
    stateStore,
    state,
    runner,
    services,
    backend,
    lock,
  };
}

/** Closes what {@linkcode openNode} opened, once the runner stopped. */
export async function closeNode(parts: NodeParts): Promise<void> {
  await parts.members.stop();
  parts.stateStore.sync();
  parts.stateStore.close();
  await parts.logWriter.close();
  parts.lock.close();
}

/** Creates a cluster key (kept in the folder, 0600) and this node's credential. */
async function initCluster(
  dir: string,
  identity: NodeIdentity,
): Promise<Uint8Array> {
  const clusterKey = await createClusterKey(dir);
  return encodeCredential(
    await issueCredential(clusterKey, identity.publicKey),
  );
}

async function readClusterKeyPublic(dir: string): Promise<Uint8Array> {
  return await Deno.readFile(`${dir}/${DATA_FILES.clusterKey}.pub`);
}

/** Writes cluster.json, creating it for a new cluster or updating this node's own address. */
async function upsertSelf(
  dir: string,
  existing: ClusterFile | null,
  identity: NodeIdentity,
  credential: Uint8Array,
  address: NodeAddress,
): Promise<ClusterFile> {
  const cluster: ClusterFile = existing === null
    ? {
      clusterId: formatClusterId(await readClusterKeyPublic(dir)),
      databaseId: crypto.randomUUID(),
      credential: encodeBase64Url(credential),
      voters: [identity.nodeId],
      members: [address],
    }
    : {
      ...existing,
      members: [
        ...existing.members.filter((m) => m.nodeId !== identity.nodeId),
        address,
      ],
    };
  await writeClusterFile(dir, cluster);
  return cluster;
}
