/**
 * A running Aspen node, behind the {@linkcode NodeApi} the HTTP API and CLI
 * use. A thin composition of its parts:
 *
 * - `bootstrap.ts` opens the data folder, storage, transport, member
 *   directory, runner and KV backend, and closes them;
 * - `src/cluster/member_directory.ts` (followed by `members.ts`) owns
 *   member addresses;
 * - `admin.ts`: add learner, promote, remove, transfer leader, revocations;
 * - `join_admission.ts`: join tickets and joins;
 * - `cert_rotation.ts`: certificate renewal;
 * - `recovery.ts`: `--force-new-cluster`;
 * - `service_host.ts` runs the services' leader tasks (expiry, queues).
 *
 * The node imports no front end: the composition root (`src/server/`)
 * hands it the WebTransport session handler and extra metrics.
 *
 * @module
 */
import { probeEventLoop } from "./write_stages.ts";
import { decodeBase32 } from "../base/base32.ts";
import type { NodeIdentity } from "../cluster/identity.ts";
import type { MemberDirectory } from "../cluster/member_directory.ts";
import { formatTicket } from "../cluster/ticket.ts";
import { type NodeId, nodeId } from "../raft/types.ts";
import { NodeAdmin } from "./admin.ts";
import { PROMOTE_LAG_MAX } from "./admin_validation.ts";
import { backupStream } from "./backup.ts";
import { closeNode, type NodeParts, openNode } from "./bootstrap.ts";
import { CertificateRotation } from "./cert_rotation.ts";
import type { NodeConfig } from "./config.ts";
import type { JoinRequest, JoinResponse } from "./join.ts";
import { JoinAdmission, ticketNodes } from "./join_admission.ts";
import { renderMetrics } from "./metrics.ts";
import type {
  ClusterStatus,
  HealthStatus,
  NodeAddress,
  NodeApi,
} from "./node_api.ts";
import type { RaftKvBackend } from "./raft_kv_backend.ts";
import type { LeasesPort } from "../services/leases/api.ts";
import { leaseMetrics } from "./node_leases.ts";
import type { RaftRunner } from "./raft_runner.ts";
import type { ServiceHost } from "./service_host.ts";
import { clusterStatus, nodeHealth } from "./status.ts";
import { systemScheduler } from "./system_clock.ts";
import { importSigningKey } from "../cluster/keys.ts";
import { DATA_FILES } from "./data_dir.ts";
import { NodeLocks } from "./node_locks.ts";
import { ChangeFeed } from "../state/change_feed.ts";
import { NodeEvents } from "./node_events.ts";
import { eventsMetrics, NodeHooks } from "./node_hooks.ts";
import { NodeFacts } from "./node_facts.ts";
import {
  encodeEventsCommand,
  EventsLeader,
  type EventsResult,
  HookAdvancer,
  pinnedRevision,
} from "../services/events/api.ts";
import {
  encodePubsubCommand,
  PubsubLeader,
  type PubsubResult,
  TopicReads,
} from "../services/pubsub/api.ts";
import { NodePubsub, pubsubMetrics } from "./node_pubsub.ts";
import { SERVICE_IDS } from "../services/table.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { decodeProposalResult } from "../services/replicated_state.ts";

/** Options of {@linkcode AspenNode.start}. */
export interface AspenNodeOptions {
  /** The URL clients reach this node's HTTP API at (known once the server listens). */
  readonly httpUrl: string;
  /** Where events are reported. Default `console.error` with a timestamp. */
  readonly log?: (line: string) => void;
}

export { PROMOTE_LAG_MAX };

/** A node, started. */
export class AspenNode implements NodeApi {
  readonly config: NodeConfig;
  readonly identity: NodeIdentity;
  readonly id: NodeId;
  readonly backend: RaftKvBackend;
  readonly runner: RaftRunner;
  /** Runs the services' leader tasks (KV expiry, queue dispatch) while this node leads. */
  readonly services: ServiceHost;
  /** The one owner of member addresses on this node. */
  readonly directory: MemberDirectory;
  /** Locks, semaphores and elections, over this node's state and change feed. */
  readonly locks: NodeLocks | undefined;
  /** The events history and its watch streams, over this node's state and change feed. */
  readonly events: NodeEvents | undefined;
  /** Durable hooks over this node's state. */
  readonly hooks: NodeHooks;
  /** Topics and consumer groups over this node's state. */
  readonly pubsub: NodePubsub;
  /** Proposes pub/sub ticks (delayed releases, age trims, deadlines) while this node leads. */
  readonly pubsubLeader: PubsubLeader;
  /** Proposes this node's snapshot facts and, while it leads, follower health. */
  readonly facts: NodeFacts;
  /** Proposes compactions and leader announcements while this node leads. */
  readonly eventsLeader: EventsLeader;
  /** Serves WebTransport client sessions (set by the server); null: refused as starting. */
  #clientSessions: ((session: WebTransport) => void) | null = null;
  /** More metrics text appended to the node's (set by the server). */
  readonly #metricsSources: (() => string)[] = [];
  readonly #parts: NodeParts;
  readonly #admin: NodeAdmin;
  readonly #joins: JoinAdmission;
  readonly #certificates: CertificateRotation;
  readonly #log: (line: string) => void;
  #stopped = false;
  /** Stops the event-loop probe (started with the node). */
  #stopProbe: () => void = () => {};

  private constructor(
    config: NodeConfig,
    parts: NodeParts,
    log: (line: string) => void,
  ) {
    this.config = config;
    this.identity = parts.identity;
    this.id = nodeId(parts.identity.nodeId);
    this.backend = parts.backend;
    this.runner = parts.runner;
    this.services = parts.services;
    this.directory = parts.directory;
    const feed = parts.state.kv.changes;
    this.locks = feed instanceof ChangeFeed
      ? new NodeLocks({
        propose: (data) => parts.runner.propose(data),
        readIndex: () => parts.runner.readIndex(),
        store: parts.stateStore,
        feed,
      })
      : undefined;
    this.events = feed instanceof ChangeFeed
      ? new NodeEvents({
        store: parts.stateStore,
        feed,
        bytesMax: config.historyBytesMax,
      })
      : undefined;
    this.hooks = new NodeHooks({
      propose: (data) => parts.runner.propose(data),
      store: parts.stateStore,
    });
    const hooks = this.hooks;
    this.pubsub = new NodePubsub({
      propose: (data) => parts.runner.propose(data),
      readIndex: () => parts.runner.readIndex(),
      store: parts.stateStore,
      onApplied: (listener) => parts.runner.onApplied(() => listener()),
      topics: new TopicReads(parts.stateStore),
      serviceId: SERVICE_IDS.pubsub,
    });
    this.pubsubLeader = new PubsubLeader({ store: parts.stateStore });
    parts.services.add({
      task: this.pubsubLeader,
      encode: (command) =>
        encodeEnvelope({
          serviceId: SERVICE_IDS.pubsub,
          payload: encodePubsubCommand(command),
        }),
      decode: (result) => decodeProposalResult(result) as PubsubResult,
    });
    this.facts = new NodeFacts({
      nodeId: this.id,
      propose: (event, data) => hooks.fact(event, data),
      status: () => this.status(),
      snapshots: () => ({
        taken: parts.runner.metrics.snapshotsTaken,
        installed: parts.runner.metrics.snapshotsInstalled,
      }),
      appliedIndex: () => Number(parts.stateStore.appliedIndex()),
      electionTimeoutMs: config.tickMs * config.electionTicks * 2,
    });
    this.eventsLeader = new EventsLeader({
      store: parts.stateStore,
      nodeId: this.id,
      term: () => parts.runner.status().term,
      intervalMs: config.historyCompactIntervalMs,
      keepMs: config.historyKeepMs,
      keepRevisions: config.historyKeepRevisions,
      bytesMax: config.historyBytesMax,
      // Never compacted past an active hook's cursor (within the byte cap).
      pinned: () => pinnedRevision(parts.stateStore),
    });
    parts.services.add({
      task: this.eventsLeader,
      encode: (command) =>
        encodeEnvelope({
          serviceId: SERVICE_IDS.events,
          payload: encodeEventsCommand(command),
        }),
      decode: (result) => decodeProposalResult(result) as EventsResult,
    });
    parts.services.add({
      task: new HookAdvancer(parts.stateStore),
      encode: (command) =>
        encodeEnvelope({
          serviceId: SERVICE_IDS.events,
          payload: encodeEventsCommand(command),
        }),
      decode: (result) => decodeProposalResult(result) as EventsResult,
    });
    this.#parts = parts;
    this.#log = log;
    this.#admin = new NodeAdmin({
      id: this.id,
      runner: parts.runner,
      directory: parts.directory,
      state: parts.state,
      transport: parts.transport,
      revoked: parts.revoked,
      autoPromote: config.autoPromote,
      scheduler: systemScheduler,
      log,
    });
    this.#joins = new JoinAdmission({
      id: this.id,
      dataDir: config.dataDir,
      clusterId: parts.cluster.clusterId,
      databaseId: parts.cluster.databaseId,
      runner: parts.runner,
      state: parts.state,
      directory: parts.directory,
      admin: this.#admin,
    });
    this.#certificates = new CertificateRotation({
      dataDir: config.dataDir,
      identity: parts.identity,
      quicHost: config.quicHost,
      directory: parts.directory,
      transport: parts.transport,
      persist: () => parts.members.flush(),
      scheduler: systemScheduler,
      announce: (previous) =>
        void parts.members.announceSelf(previous, parts.runner),
      log,
    });
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
    let node: AspenNode | null = null;
    const parts = await openNode(config, options.httpUrl, log, (session) => {
      const serve = node === null ? null : node.#clientSessions;
      if (serve === null) return false;
      serve(session);
      return true;
    });
    node = new AspenNode(config, parts, log);
    parts.runner.start();
    node.#stopProbe = probeEventLoop(parts.runner.stages);
    parts.services.start();
    node.facts.start();
    void parts.members.announceSelf(parts.previousSelf, parts.runner);
    node.#certificates.start();
    log(
      `node ${parts.identity.shortId} started: data '${config.dataDir}', QUIC ${config.quicHost}:${parts.transport.addr.port}`,
    );
    return node;
  }

  /** Sets who serves WebTransport client sessions (until then they are refused as "starting"). */
  setClientSessions(serve: (session: WebTransport) => void): void {
    this.#clientSessions = serve;
  }

  /** Appends a source of Prometheus text to {@linkcode metrics} (e.g. the HTTP listener's). */
  addMetrics(source: () => string): void {
    this.#metricsSources.push(source);
  }

  /** Where this node can be reached, with its current certificate hash. */
  get address(): NodeAddress {
    return this.directory.self;
  }

  /**
   * Serves a new TLS certificate without a restart (same port) and announces
   * its hash through the log so peers pin it. Runs by itself when the current
   * certificate has a day or less left; `force` renews now.
   */
  rotateCertificate(force = false): Promise<boolean> {
    return this.#certificates.rotate(force);
  }

  /** Stops the node: no new requests, pending ones fail, storage closes. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopProbe();
    this.facts.stop();
    this.#admin.stop();
    this.#certificates.stop();
    this.services.stop();
    await this.runner.stop();
    await closeNode(this.#parts);
    this.#log(`node ${this.identity.shortId} stopped`);
  }

  status(): ClusterStatus {
    return clusterStatus(
      this.id,
      this.#parts.cluster.clusterId,
      this.runner,
      this.directory,
    );
  }

  health(): HealthStatus {
    return nodeHealth(this.runner);
  }

  /** Leases as this node serves them (the `/v1/leases/*` routes use it). */
  get leases(): LeasesPort {
    return this.backend.leases;
  }

  metrics(): string {
    return renderMetrics(this.runner) + this.services.renderMetrics() +
      leaseMetrics(this.backend) + this.facts.metrics() +
      eventsMetrics(
        this.hooks.list(),
        this.hooks.head(),
        this.events?.window() ?? null,
        this.events?.streams() ?? 0,
      ) +
      pubsubMetrics(this.pubsub) +
      this.#metricsSources.map((source) => source()).join("");
  }

  clientTicket(): string {
    return formatTicket({
      kind: "client",
      clusterId: decodeBase32(this.#parts.cluster.clusterId),
      nodes: ticketNodes(this.directory),
    });
  }

  addLearner(address: NodeAddress): Promise<void> {
    return this.#admin.addLearner(address);
  }

  promote(id: string): Promise<void> {
    return this.#admin.promote(id);
  }

  /**
   * Removes a member, then revokes its credential through the log: every
   * node refuses its handshakes from then on, for good (it may rejoin only
   * with a new identity).
   */
  remove(id: string): Promise<void> {
    return this.#admin.remove(id);
  }

  transferLeader(id: string): Promise<void> {
    return this.#admin.transferLeader(id);
  }

  /** Node ids whose handshakes this node refuses (revoked members), as replicated here. */
  revokedNodes(): string[] {
    return this.#admin.revokedNodes();
  }

  /** A backup stream at a read-index-consistent state, signed by the cluster key when this node holds it. */
  async snapshot(): Promise<ReadableStream<Uint8Array<ArrayBuffer>>> {
    await this.runner.readIndex();
    const signer = await Deno.readFile(
      `${this.config.dataDir}/${DATA_FILES.clusterKey}`,
    ).then(importSigningKey).catch(() => null);
    return backupStream(
      {
        clusterId: this.#parts.cluster.clusterId,
        databaseId: this.#parts.cluster.databaseId,
        createdAtMs: Date.now(),
      },
      this.#parts.state.kv.store.exportSnapshot(),
      signer,
    );
  }

  /** A join ticket: a client ticket plus a join token signed by the cluster key. */
  joinTicket(): Promise<string> {
    return this.#joins.joinTicket();
  }

  /**
   * Admits a joining node (leader only): replicates its address, adds it as a
   * learner, and returns its credential and the cluster's description.
   *
   * @throws {JoinRefusedError} When the token is refused.
   * @throws {ClusterAdminError} "notLeader" (with the leader's URL) or "changePending".
   */
  handleJoin(request: JoinRequest): Promise<JoinResponse> {
    return this.#joins.handleJoin(request);
  }
}
