/**
 * A running Aspen node: data folder, identity, SQLite log and state, the
 * QUIC peer transport, the Raft runner and the KV backend, behind the
 * {@linkcode NodeApi} the HTTP API and CLI use.
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
  shortNodeId,
} from "../cluster/identity.ts";
import { importSigningKey, type SigningKey } from "../cluster/keys.ts";
import { formatTicket } from "../cluster/ticket.ts";
import { KvStateMachine } from "../state/state_machine.ts";
import { SqliteStateStore } from "../storage/sqlite_state_store.ts";
import { ConfChangeError } from "../raft/confchange.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import {
  type LogIndex,
  type NodeId,
  nodeId,
  type Term,
} from "../raft/types.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import { QuicTransport } from "../transport/quic_transport.ts";
import { decodeBase64Url, encodeBase64Url } from "./_base64.ts";
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
import {
  encodeJoinTokenCommand,
  encodeMemberCommand,
  encodeRevokeCommand,
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_USED,
  KvReplicatedState,
  type KvStateResult,
} from "../state/replicated_state.ts";
import {
  clusterIdBytes,
  credentialFor,
  issueJoinToken,
  JoinRefusedError,
  type JoinRequest,
  type JoinResponse,
  verifyJoinToken,
} from "./join.ts";
import { renderMetrics } from "./metrics.ts";
import { HttpMetrics } from "../frontends/http/metrics.ts";
import { StreamBudget } from "../frontends/common/stream_budget.ts";
import { serveClientSession } from "../frontends/webtransport/sessions.ts";
import {
  ClusterAdminError,
  type ClusterStatus,
  type HealthStatus,
  type NodeAddress,
  type NodeApi,
} from "./node_api.ts";
import { RaftKvBackend } from "./raft_kv_backend.ts";
import { RaftRunner } from "./raft_runner.ts";
import { deriveToken } from "../cluster/access_tokens.ts";
import {
  checkPromotion,
  PROMOTE_LAG_MAX,
  validateMemberId,
  validateNodeAddress,
  validateNodeId,
} from "./admin_validation.ts";
import { backupStream } from "./backup.ts";
import { type LogWriter, WorkerLogWriter } from "../storage/log_writer.ts";

/** Options of {@linkcode AspenNode.start}. */
export interface AspenNodeOptions {
  /** The URL clients reach this node's HTTP API at (known once the server listens). */
  readonly httpUrl: string;
  /** Where events are reported. Default `console.error` with a timestamp. */
  readonly log?: (line: string) => void;
}

export { PROMOTE_LAG_MAX };

/** Attempts to propose a removed member's revocation (0.2 s apart) before remove() fails. */
const REVOKE_ATTEMPTS_MAX = 25;

/** A node, started. */
export class AspenNode implements NodeApi {
  readonly config: NodeConfig;
  readonly identity: NodeIdentity;
  readonly id: NodeId;
  #address: NodeAddress;
  #certificateTimer: ReturnType<typeof setInterval> | undefined;
  readonly backend: RaftKvBackend;
  readonly runner: RaftRunner<KvStateResult>;
  /** Latencies of the HTTP listener, fed by whoever serves this node. */
  readonly http: HttpMetrics = new HttpMetrics();
  /** The revoked node ids the transport's handshakes read (filled from the log). */
  #revoked = new Set<string>();
  /** Tokens WebTransport clients must present (set by `serveNode`). */
  clientTokens: readonly string[] = [];
  /** The node's budget of long-lived client streams (set by `serveNode`). */
  clientStreams: StreamBudget = new StreamBudget();

  /** Sets the client tokens and the shared stream budget before clients connect. */
  setClientAccess(tokens: readonly string[], streams: StreamBudget): void {
    this.clientTokens = [...tokens];
    this.clientStreams = streams;
  }
  readonly #cluster: {
    file: ClusterFile;
    readonly members: Map<string, NodeAddress>;
  };
  readonly #transport: QuicTransport;
  readonly #logWriter: LogWriter;
  readonly #stateStore: SqliteStateStore;
  readonly #state: KvReplicatedState;
  readonly #lock: DataDirLock;
  readonly #log: (line: string) => void;
  #stopped = false;
  #promoteTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(parts: {
    config: NodeConfig;
    identity: NodeIdentity;
    address: NodeAddress;
    cluster: ClusterFile;
    transport: QuicTransport;
    logWriter: LogWriter;
    stateStore: SqliteStateStore;
    state: KvReplicatedState;
    runner: RaftRunner<KvStateResult>;
    backend: RaftKvBackend;
    lock: DataDirLock;
    log: (line: string) => void;
  }) {
    this.config = parts.config;
    this.identity = parts.identity;
    this.id = nodeId(parts.identity.nodeId);
    this.#address = parts.address;
    this.#cluster = {
      file: parts.cluster,
      members: new Map(parts.cluster.members.map((m) => [m.nodeId, m])),
    };
    this.#transport = parts.transport;
    this.#logWriter = parts.logWriter;
    this.#stateStore = parts.stateStore;
    this.#state = parts.state;
    this.runner = parts.runner;
    this.backend = parts.backend;
    this.#lock = parts.lock;
    this.#log = parts.log;
  }

  /**
   * Opens the data folder and starts the node. A folder without a cluster
   * becomes a new one-node cluster.
   */
  static async start(
    config: NodeConfig,
    options: AspenNodeOptions,
  ): Promise<AspenNode> {
    const log = options.log ??
      ((line: string) => console.error(`${new Date().toISOString()} ${line}`));
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
    const state = new KvReplicatedState(new KvStateMachine(stateStore));
    let cluster = await readClusterFile(dir);
    const credential = cluster === null
      ? await initCluster(dir, identity)
      : decodeBase64Url(cluster.credential);
    const clusterId = cluster === null ? null : decodeBase32(cluster.clusterId);
    // Removed members' node ids, replicated (see remove()): read at every
    // handshake, so a removed node's credential opens no connection.
    const revoked = new Set<string>(state.revoked());
    let clientSessions: ((session: WebTransport) => void) | null = null;
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
      log: (event) => log(`transport: ${JSON.stringify(event)}`),
      // Client streaming (watch) over WebTransport, once the backend exists.
      onClientSession: (session) => {
        if (clientSessions === null) {
          session.close({ closeCode: 503, reason: "Node is starting" });
        } else clientSessions(session);
      },
    });
    const address: NodeAddress = {
      nodeId: identity.nodeId,
      httpUrl: options.httpUrl,
      quicHost: config.quicHost,
      quicPort: transport.addr.port,
      nodeKey: encodeBase64Url(identity.publicKey),
      certificateHash: encodeBase64Url(certificate.hash),
      ...(config.name === "" ? {} : { name: config.name }),
    };
    // What peers were told about this node (if anything), before it changes.
    const previousSelf =
      cluster?.members.find((m) => m.nodeId === identity.nodeId) ?? null;
    cluster = await upsertSelf(dir, cluster, identity, credential, address);
    // Addresses replicated through the log are newer than the file's.
    const replicated = state.members();
    if (replicated.length > 0) {
      const byId = new Map(cluster.members.map((m) => [m.nodeId, m]));
      for (const m of replicated) {
        if (m.nodeId !== identity.nodeId) byId.set(m.nodeId, m);
      }
      cluster = { ...cluster, members: [...byId.values()] };
    }
    if (config.forceNewCluster) forceNewCluster(logStore, state, identity, log);
    for (const member of cluster.members) {
      if (member.nodeId !== identity.nodeId) {
        transport.setPeer(peerAddress(member));
      }
    }
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
    const backend = new RaftKvBackend(runner, state, cluster.databaseId);
    clientSessions = (session) =>
      void serveClientSession(
        session,
        backend,
        node.clientTokens,
        node.clientStreams,
      );
    const node = new AspenNode({
      config,
      identity,
      address,
      cluster,
      transport,
      logWriter,
      stateStore,
      state,
      runner,
      backend,
      lock,
      log,
    });
    state.onMembers((members) => node.#membersChanged(members));
    node.#revoked = revoked;
    state.onRevoked((ids) => node.#revokedChanged(ids));
    if (config.autoPromote) {
      node.#promoteTimer = setInterval(() => node.#autoPromote(), 500);
    }
    runner.start();
    backend.startExpiry();
    void node.#announceSelf(previousSelf);
    // Certificates last a week; check hourly and renew with a day left.
    node.#certificateTimer = setInterval(() => {
      node.rotateCertificate().catch((error) =>
        log(`warning: certificate rotation failed: ${(error as Error).message}`)
      );
    }, 60 * 60 * 1000);
    log(
      `node ${identity.shortId} started: data '${dir}', QUIC ${config.quicHost}:${transport.addr.port}`,
    );
    return node;
  }

  /** Where this node can be reached, with its current certificate hash. */
  get address(): NodeAddress {
    return this.#address;
  }

  /**
   * Serves a new TLS certificate without a restart (same port) and announces
   * its hash through the log so peers pin it. Runs by itself when the current
   * certificate has a day or less left; `force` renews now.
   */
  async rotateCertificate(force = false): Promise<boolean> {
    const dir = this.config.dataDir;
    if (force) {
      await Deno.remove(`${dir}/${DATA_FILES.certificate}`).catch(() => {});
    }
    const certificate = await loadOrCreateCertificate(dir, this.identity, [
      this.config.quicHost,
    ]);
    const hash = encodeBase64Url(certificate.hash);
    if (hash === this.#address.certificateHash) return false;
    const record = encodeCertificateRecord(
      await signCertificateRecord(this.identity, certificate),
    );
    await this.#transport.rotateCertificate(certificate, record);
    const previous = this.#address;
    this.#address = { ...previous, certificateHash: hash };
    this.#cluster.members.set(previous.nodeId, this.#address);
    this.#cluster.file = {
      ...this.#cluster.file,
      members: [
        ...this.#cluster.file.members.filter((m) =>
          m.nodeId !== previous.nodeId
        ),
        this.#address,
      ],
    };
    await writeClusterFile(dir, this.#cluster.file);
    this.#log(`certificate rotated; announcing its hash`);
    void this.#announceSelf(previous);
    return true;
  }

  /** Stops the node: no new requests, pending ones fail, storage closes. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#promoteTimer);
    clearInterval(this.#certificateTimer);
    this.backend.stopExpiry();
    await this.runner.stop();
    this.#stateStore.sync();
    this.#stateStore.close();
    await this.#logWriter.close();
    this.#lock.close();
    this.#log(`node ${this.identity.shortId} stopped`);
  }

  status(): ClusterStatus {
    const s = this.runner.status();
    const members = [
      ...s.conf.voters.map((id) => ({ id, role: "voter" as const })),
      ...s.conf.learners.map((id) => ({ id, role: "learner" as const })),
    ];
    return {
      clusterId: this.#cluster.file.clusterId,
      nodeId: this.id,
      role: s.role,
      term: s.term,
      leader: s.leader,
      leaderHttpUrl: s.leader === null
        ? null
        : this.#cluster.members.get(s.leader)?.httpUrl ?? null,
      commitIndex: s.commit,
      appliedIndex: s.applied,
      snapshotIndex: s.snapshotIndex,
      joint: s.conf.votersOutgoing.length > 0,
      members: members.map(({ id, role }) => {
        const match = s.progress?.get(id)?.match ?? null;
        // Health as the leader sees it; a follower does not know.
        const contact = s.role !== "leader"
          ? { reachable: null, lastContactMs: null }
          : id === this.id
          ? { reachable: true, lastContactMs: 0 }
          : this.runner.peerContact(id);
        return {
          id,
          role,
          match,
          lag: match === null ? null : Math.max(0, s.commit - match),
          ...contact,
          name: this.#cluster.members.get(id)?.name ?? null,
          httpUrl: this.#cluster.members.get(id)?.httpUrl ?? null,
        };
      }),
    };
  }

  health(): HealthStatus {
    const storage = this.runner.storageError();
    if (storage !== null) {
      return { ok: false, reason: `storage failed: ${storage.message}` };
    }
    if (this.runner.status().leader === null) {
      return { ok: false, reason: "no leader known" };
    }
    return { ok: true, reason: null };
  }

  metrics(): string {
    return renderMetrics(this.runner) + this.http.render();
  }

  clientTicket(): string {
    const nodes = [...this.#cluster.members.values()].slice(0, 16).map((m) => ({
      nodeKey: decodeBase64Url(m.nodeKey),
      httpUrls: [m.httpUrl],
      quicAddresses: [`${m.quicHost}:${m.quicPort}`],
    }));
    return formatTicket({
      kind: "client",
      clusterId: decodeBase32(this.#cluster.file.clusterId),
      nodes,
    });
  }

  /**
   * Adds a node as a learner. Every input is validated, and the call refused
   * for this node's own id or an existing member, before anything changes:
   * a refused call changes nothing (not even a member's address).
   */
  addLearner(address: NodeAddress): Promise<void> {
    return this.#admin(() => {
      const valid = this.#validateNewMember(address);
      this.#requireLeader();
      // Proposed first: if Raft refuses (a change is pending), nothing else
      // has changed.
      this.runner.proposeConfChange({
        type: "addLearner",
        node: nodeId(valid.nodeId),
      });
      this.#cluster.members.set(valid.nodeId, valid);
      this.#transport.setPeer(peerAddress(valid));
    });
  }

  promote(id: string): Promise<void> {
    return this.#admin(() => {
      const target = nodeId(validateNodeId(id));
      this.#requireLeader();
      checkPromotion(target, this.runner.status());
      this.runner.proposeConfChange({ type: "promote", node: target });
    });
  }

  /**
   * Removes a member, then revokes its credential through the log: every
   * node refuses its handshakes from then on, for good (it may rejoin only
   * with a new identity).
   */
  async remove(id: string): Promise<void> {
    await this.#admin(() => {
      const target = validateMemberId(id, this.runner.status().conf, "member");
      this.#requireLeader();
      this.runner.proposeConfChange({ type: "remove", node: nodeId(target) });
    });
    // The leader may step down meanwhile (removing itself): retry, bounded;
    // the proposal is forwarded to whoever leads.
    for (let attempt = 1;; attempt++) {
      try {
        await this.runner.propose(encodeRevokeCommand(id));
        return;
      } catch (error) {
        if (attempt >= REVOKE_ATTEMPTS_MAX || this.#stopped) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  /** The data and admin tokens derived from the cluster key (see access_tokens.ts). */
  async #clusterTokens(): Promise<{ data: string; admin: string }> {
    const key = await Deno.readFile(
      `${this.config.dataDir}/${DATA_FILES.clusterKey}`,
    );
    return { data: deriveToken(key, "data"), admin: deriveToken(key, "admin") };
  }

  /** Node ids whose handshakes this node refuses (revoked members), as replicated here. */
  revokedNodes(): string[] {
    return [...this.#revoked];
  }

  /** The replicated revoked set changed: update the handshake's view and drop the peers. */
  #revokedChanged(ids: readonly string[]): void {
    for (const id of ids) {
      if (this.#revoked.has(id)) continue;
      this.#revoked.add(id);
      if (id !== this.address.nodeId) this.#transport.removePeer(nodeId(id));
      this.#log(`revoked the credential of '${shortNodeId(id)}'`);
    }
  }

  transferLeader(id: string): Promise<void> {
    return this.#admin(() => {
      const target = validateMemberId(id, this.runner.status().conf, "voter");
      this.#requireLeader();
      this.runner.transferLeader(nodeId(target));
    });
  }

  /**
   * The validated address of a node that is not yet a member.
   *
   * @throws {ClusterAdminError} "invalid" for a bad field or this node's own
   *   id, "changePending" (409) for an existing member.
   */
  #validateNewMember(address: NodeAddress): NodeAddress {
    const valid = validateNodeAddress(address);
    if (valid.nodeId === this.id) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot add this node as a learner of itself",
      );
    }
    const conf = this.runner.status().conf;
    if (
      [...conf.voters, ...conf.votersOutgoing, ...conf.learners].includes(
        nodeId(valid.nodeId),
      )
    ) {
      throw new ClusterAdminError(
        "alreadyMember",
        `Cannot add '${
          shortNodeId(valid.nodeId)
        }' as a learner as it is already a member`,
      );
    }
    return valid;
  }

  /** @throws {ClusterAdminError} "notLeader" on a follower or candidate. */
  #requireLeader(): void {
    const status = this.runner.status();
    if (status.role === "leader") return;
    throw new ClusterAdminError(
      "notLeader",
      `Node '${this.identity.shortId}' is not the leader`,
      status.leader === null
        ? null
        : this.#cluster.members.get(status.leader)?.httpUrl ?? null,
    );
  }

  /** A backup stream at a read-index-consistent state, signed by the cluster key when this node holds it. */
  async snapshot(): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    await this.runner.readIndex();
    const signer = await this.#clusterKey().catch(() => null);
    return backupStream(
      {
        clusterId: this.#cluster.file.clusterId,
        databaseId: this.#cluster.file.databaseId,
        createdAtMs: Date.now(),
      },
      this.#state.kv.store.exportSnapshot(),
      signer,
    );
  }

  /** A join ticket: a client ticket plus a join token signed by the cluster key. */
  async joinTicket(): Promise<string> {
    const clusterKey = await this.#clusterKey();
    const token = await issueJoinToken(clusterKey, Date.now());
    const nodes = [...this.#cluster.members.values()].slice(0, 16).map((m) => ({
      nodeKey: decodeBase64Url(m.nodeKey),
      httpUrls: [m.httpUrl],
      quicAddresses: [`${m.quicHost}:${m.quicPort}`],
    }));
    return formatTicket({
      kind: "join",
      clusterId: clusterKey.publicKey,
      nodes,
      joinToken: token,
    });
  }

  /**
   * Admits a joining node (leader only): replicates its address, adds it as a
   * learner, and returns its credential and the cluster's description.
   *
   * @throws {JoinRefusedError} When the token is refused.
   * @throws {ClusterAdminError} "notLeader" (with the leader's URL) or "changePending".
   */
  async handleJoin(request: JoinRequest): Promise<JoinResponse> {
    const nowMs = Date.now();
    const token = await verifyJoinToken(
      decodeBase64Url(request.token),
      clusterIdBytes(this.#cluster.file.clusterId),
      nowMs,
    );
    const status = this.runner.status();
    if (status.role !== "leader") {
      const leaderUrl = status.leader === null
        ? null
        : this.#cluster.members.get(status.leader)?.httpUrl ?? null;
      throw new ClusterAdminError(
        "notLeader",
        `Node '${this.identity.shortId}' is not the leader`,
        leaderUrl,
      );
    }
    const address = validateNodeAddress(request.address);
    if (address.nodeId === this.id) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot admit a node with this node's own id",
      );
    }
    // validateNodeAddress checked that the node id is its key's id, so a
    // revoked key cannot come back under another id.
    if (this.#state.revoked().includes(address.nodeId)) {
      throw new JoinRefusedError(
        `Node '${
          shortNodeId(address.nodeId)
        }' was removed and its identity is revoked: join with a new data folder`,
      );
    }
    const clusterKey = await this.#clusterKey();
    // A token admits one node: its use is recorded through the log first,
    // so no other leader, now or later, accepts it again.
    const used = await this.runner.propose(
      encodeJoinTokenCommand(token.nonce, token.expiresAtMs, nowMs),
    );
    if (used === JOIN_TOKEN_USED) {
      throw new JoinRefusedError("Join token was used already");
    }
    if (used !== JOIN_TOKEN_FRESH) {
      throw new ClusterAdminError(
        "invalid",
        "Cannot admit the join as too many unexpired join tokens are recorded: retry later",
      );
    }
    const credential = await credentialFor(clusterKey, address.nodeKey);
    // Everyone learns where the node is before it becomes a member.
    await this.runner.propose(encodeMemberCommand(address));
    const conf = this.runner.status().conf;
    if (![...conf.voters, ...conf.learners].includes(nodeId(address.nodeId))) {
      await this.addLearner(address);
    }
    return {
      clusterId: this.#cluster.file.clusterId,
      databaseId: this.#cluster.file.databaseId,
      credential,
      voters: [...this.runner.status().conf.voters],
      members: [...this.#cluster.members.values()],
      tokens: await this.#clusterTokens(),
    };
  }

  async #clusterKey(): Promise<SigningKey> {
    try {
      return await importSigningKey(
        await Deno.readFile(`${this.config.dataDir}/${DATA_FILES.clusterKey}`),
      );
    } catch (error) {
      throw new ClusterAdminError(
        "invalid",
        `This node holds no cluster key and cannot issue join tickets or admit joins (joined nodes never receive it): use a node that founded the cluster, leading for a join: ${
          (error as Error).message
        }`,
      );
    }
  }

  /**
   * Publishes this node's address (with its current certificate hash)
   * through the log when the replicated one differs, so peers re-pin after a
   * certificate renewal or a port change. Retries until it lands or the node stops.
   */
  async #announceSelf(previousSelf: NodeAddress | null): Promise<void> {
    for (let attempt = 0; attempt < 120 && !this.#stopped; attempt++) {
      // Peers know the replicated entry if there is one, else the cluster
      // file's (provisioned or joined with it): announce only a difference.
      const known = this.#state.members().find((m) =>
        m.nodeId === this.address.nodeId
      ) ?? previousSelf;
      if (
        known === null || JSON.stringify(known) === JSON.stringify(this.address)
      ) return;
      const data = encodeMemberCommand(this.address);
      try {
        if (this.runner.status().leader !== null) {
          await this.runner.propose(data);
          return;
        }
        // No leader known: it may not reach us while peers hold our old
        // address. Ask each peer in turn; a follower passes it to the leader.
        for (const peer of this.#cluster.members.keys()) {
          if (peer === this.address.nodeId || this.#stopped) continue;
          try {
            await this.#transport.request(nodeId(peer), {
              method: "forwardProposal",
              data,
            }, { timeoutMs: 3000 });
            return;
          } catch {
            // Try the next peer.
          }
        }
      } catch {
        // Retry below.
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** With autoPromote, the leader promotes one caught-up learner at a time. */
  #autoPromote(): void {
    const s = this.runner.status();
    if (s.role !== "leader" || s.conf.votersOutgoing.length > 0) return;
    for (const learner of s.conf.learners) {
      const match = s.progress?.get(learner)?.match ?? 0;
      if (s.commit - match > PROMOTE_LAG_MAX) continue;
      this.promote(learner).then(
        () => this.#log(`auto-promoted ${shortNodeId(learner)} to voter`),
        () => {}, // A pending change: the next round retries.
      );
      return;
    }
  }

  /** Follows the replicated member list: reach new members, remember them. */
  #membersChanged(members: NodeAddress[]): void {
    let changed = false;
    for (const member of members) {
      if (member.nodeId === this.identity.nodeId) continue;
      if (
        JSON.stringify(this.#cluster.members.get(member.nodeId)) ===
          JSON.stringify(member)
      ) continue;
      this.#cluster.members.set(member.nodeId, member);
      this.#transport.setPeer(peerAddress(member));
      changed = true;
    }
    if (!changed) return;
    this.#cluster.file = {
      ...this.#cluster.file,
      members: [...this.#cluster.members.values()],
    };
    writeClusterFile(this.config.dataDir, this.#cluster.file).catch((error) =>
      this.#log(
        `warning: cannot write cluster.json: ${(error as Error).message}`,
      )
    );
  }

  /** Runs an admin action on the leader, turning Raft refusals into admin errors. */
  #admin(action: () => void): Promise<void> {
    const leaderUrl = () => {
      const leader = this.runner.status().leader;
      return leader === null
        ? null
        : this.#cluster.members.get(leader)?.httpUrl ?? null;
    };
    try {
      action();
      return Promise.resolve();
    } catch (error) {
      if (error instanceof ProposalDroppedError) {
        return Promise.reject(
          new ClusterAdminError("notLeader", error.message, leaderUrl()),
        );
      }
      if (error instanceof ConfChangeError) {
        return Promise.reject(
          new ClusterAdminError("changePending", error.message, leaderUrl()),
        );
      }
      return Promise.reject(error);
    }
  }
}

function peerAddress(member: NodeAddress) {
  return {
    nodeId: nodeId(member.nodeId),
    hostname: member.quicHost,
    port: member.quicPort,
    nodeKey: decodeBase64Url(member.nodeKey),
    certificateHash: decodeBase64Url(member.certificateHash),
  };
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

/**
 * Recovers a lone survivor after a lost quorum: the log is cut back to what
 * this node applied and the membership becomes this node alone. Entries it
 * had not applied are lost, and so may be writes other nodes acknowledged.
 */
function forceNewCluster(
  logStore: SqliteLogStore,
  state: KvReplicatedState,
  identity: NodeIdentity,
  log: (line: string) => void,
): void {
  const applied = state.appliedIndex();
  const term = (applied === 0 ? 0 : logStore.term(applied)) as Term;
  log(
    `WARNING: --force-new-cluster: this node becomes a one-node cluster at applied index ${applied}; ` +
      `entries after it are dropped and writes acknowledged by other nodes may be lost`,
  );
  state.sync();
  logStore.compact({
    index: applied as LogIndex,
    term,
    confState: {
      voters: [nodeId(identity.nodeId)],
      votersOutgoing: [],
      learners: [],
    },
  });
  // Appending right after the applied index truncates everything beyond it.
  const hard = logStore.hardState();
  logStore.save({
    hardState: { term: hard.term, vote: null, commit: applied as LogIndex },
    entries: [{
      term: hard.term,
      index: (applied + 1) as LogIndex,
      type: "normal",
      data: new Uint8Array(0),
    }],
  });
}
