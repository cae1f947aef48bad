/**
 * {@linkcode KvBackend} served by a Raft node: writes are proposed on the
 * leader (forwarded from followers), strong reads wait for ReadIndex, and
 * eventual reads use the local replica as it is. The KV expiry sweep and the
 * queue dispatcher are leader tasks run by the node's {@linkcode ServiceHost}
 * (queue messages are leased by the dispatcher); acks and nacks are
 * proposals like any write.
 *
 * @module
 */
import { strongRead } from "./_strong_read.ts";
import { ProposalDroppedError } from "../raft/errors.ts";
import type { LogIndex } from "../raft/types.ts";
import {
  commitResultOf,
  type KvBackend,
  type KvCommitResult,
  type KvConsistency,
  KvOutcomeUnknownError,
  type KvQueueListenOptions,
  type KvQueues,
  type KvReadRange,
  KvUnavailableError,
} from "../services/kv/api.ts";
import { encodeKvEntry as encodeCommand } from "../services/entries.ts";
import type { KvQueueInfo, KvQueuePeek } from "../services/queues/queue.ts";
import type {
  KvApplyResult,
  KvAtomicOperation,
  KvCommand,
  KvEntry,
  KvQueueCommand,
  KvQueueDelivery,
  KvResendMark,
} from "../model/types.ts";
import { KvInvalidError, KvLimitError } from "../model/errors.ts";
import { QueueDispatcher } from "../services/queues/leader.ts";
import { KvExpirySweep } from "../services/kv/leader.ts";
import type { ProposalRate } from "./proposal_rate.ts";
import { runnerLeadership, ServiceHost } from "./service_host.ts";
import { systemClock, systemScheduler } from "./system_clock.ts";
import type { Clock, Scheduler } from "../base/clock.ts";
import {
  decodeApplyResult,
  decodeProposalResult,
  type KvReplicatedState,
  type KvStateResult,
} from "../services/replicated_state.ts";
import { ChangeFeed } from "../state/change_feed.ts";
import { KvWatchers } from "../services/kv/watch.ts";
import {
  encodeLeaseCommand,
  type LeaseCommand,
  LeaseKeeper,
  type LeaseKnobs,
  LeaseReads,
  type LeaseResult,
} from "../services/leases/api.ts";
import { encodeEnvelope } from "../state/envelope.ts";
import { LEASES_SERVICE_ID, NodeLeases } from "./node_leases.ts";
import { ProposalOutcomeUnknownError, type RaftRunner } from "./raft_runner.ts";

/** How long a write is retried (with its session) before its outcome is reported unknown. */
const COMMIT_RETRY_WINDOW_MS = 20_000;
/**
 * Least ms from one attempt's start to the next: an attempt that failed at
 * once waits out the rest, one that already waited this long (a forward
 * aborted when its leader was lost) is retried at once, so the write does
 * not sit out a pause after the new leader is known.
 */
const COMMIT_RETRY_PACE_MS = 100;

/** Options of {@linkcode RaftKvBackend}. */
export interface RaftKvBackendOptions {
  /**
   * The change feed the state machine emits to: watches follow it. Default:
   * the state machine's `changes` sink when it is a feed; without one,
   * watches are refused.
   */
  readonly changes?: ChangeFeed;
  /** Watches open at once at most; more are refused as unavailable. Default 1000. */
  readonly watchersMax?: number;
  /**
   * TEST ONLY: the planted bug `watch-back-in-time`, start a watch from the
   * local replica when no read point can be confirmed (the old behaviour).
   * Never set in production.
   */
  readonly testingWatchBackInTime?: boolean;
  /**
   * The node's service host, which runs the KV expiry sweep and the queue
   * dispatcher while this node leads. Default: a host of its own over the
   * runner, on the system clock.
   */
  readonly services?: ServiceHost;
  /** The clock of the default service host. Default: the system clock. */
  readonly clock?: Clock;
  /** Timers of queue listeners and of the default service host. Default: the platform's. */
  readonly scheduler?: Scheduler;
  /** Pause between expiry sweeps, in ms. Default 1000. */
  readonly expiryIntervalMs?: number;
  /** The expiry sweep's proposal bound. Default: the host's default. */
  readonly expiryRate?: ProposalRate;
  /** The queue dispatcher's proposal bound. Default {@linkcode QUEUE_PROPOSAL_RATE}. */
  readonly queueRate?: ProposalRate;
  /**
   * One election timeout (the longest), ms: grants are raised to three, a
   * new leader extends every lease by one. Default 1000 (the runner's
   * default 50 ms ticks × 10 ticks, randomized up to twice that).
   */
  readonly electionTimeoutMs?: number;
  /** Pause between lease expiry passes, ms. Default 100. */
  readonly leaseIntervalMs?: number;
  /** TEST ONLY: the lease keeper's planted bugs (the simulator's). Never set in production. */
  readonly leaseKnobs?: LeaseKnobs;
}

/** The queue dispatcher's default bound: one lease serves up to 100 messages. */
export const QUEUE_PROPOSAL_RATE: ProposalRate = {
  perSecond: 1000,
  burst: 100,
  inFlightMax: 4,
};

/** A KvBackend over a Raft node. */
export class RaftKvBackend implements KvBackend {
  /** This node's session id for writes that arrive without one. */
  readonly #sessionId = `node-${crypto.randomUUID()}`;
  #sessionSeq = 0;
  readonly databaseId: string;
  readonly queues: KvQueues;
  readonly #runner: RaftRunner;
  readonly #state: KvReplicatedState;
  readonly #dispatcher: QueueDispatcher;
  /** Runs the leader tasks (expiry sweep, queue dispatcher, lease keeper) while this node leads. */
  readonly services: ServiceHost;
  /** Leases as this node serves them (keep-alives answered by its keeper while it leads). */
  readonly leases: NodeLeases;
  /** This node's lease keeper (a leader task). */
  readonly leaseKeeper: LeaseKeeper;
  readonly #options: RaftKvBackendOptions;
  readonly #watchers: KvWatchers | null;

  constructor(
    runner: RaftRunner,
    state: KvReplicatedState,
    databaseId: string,
    options: RaftKvBackendOptions = {},
  ) {
    this.#options = options;
    this.#runner = runner;
    this.#state = state;
    this.databaseId = databaseId;
    const feed = options.changes ??
      (state.kv.changes instanceof ChangeFeed ? state.kv.changes : undefined);
    this.#watchers = feed === undefined
      ? null
      : new KvWatchers(feed, (key) => state.kv.get(key), {
        ...(options.watchersMax === undefined
          ? {}
          : { watchersMax: options.watchersMax }),
      });
    this.#dispatcher = new QueueDispatcher({
      kv: state.kv,
      isLeader: () => runner.status().role === "leader",
      scheduler: options.scheduler ?? systemScheduler,
    });
    this.services = options.services ?? new ServiceHost({
      leadership: runnerLeadership(runner),
      proposeLocal: (data) => runner.proposeLocal(data),
      clock: options.clock ?? systemClock,
      scheduler: options.scheduler ?? systemScheduler,
    });
    this.services.add({
      task: new KvExpirySweep({
        store: state.kv.store,
        intervalMs: options.expiryIntervalMs,
      }),
      encode: encodeCommand,
      decode: decodeApplyResult,
      rate: options.expiryRate,
    });
    this.services.add({
      task: this.#dispatcher,
      encode: (command: KvQueueCommand) => encodeCommand(command as KvCommand),
      decode: decodeApplyResult,
      rate: options.queueRate ?? QUEUE_PROPOSAL_RATE,
    });
    const electionTimeoutMs = options.electionTimeoutMs ?? 1000;
    this.leaseKeeper = new LeaseKeeper({
      reads: new LeaseReads(state.kv.store),
      isLeader: () => runner.status().role === "leader",
      confirmLeadership: async () => {
        await this.#confirmRead();
      },
      electionTimeoutMs,
      ...(options.leaseIntervalMs === undefined
        ? {}
        : { intervalMs: options.leaseIntervalMs }),
      ...(options.leaseKnobs === undefined
        ? {}
        : { knobs: options.leaseKnobs }),
    });
    this.services.add({
      task: this.leaseKeeper,
      encode: (command: LeaseCommand) =>
        encodeEnvelope({
          serviceId: LEASES_SERVICE_ID,
          payload: encodeLeaseCommand(command),
        }),
      decode: (result) => decodeProposalResult(result) as LeaseResult,
    });
    this.leases = new NodeLeases({
      propose: (data) => runner.propose(data),
      readIndex: () => this.#confirmRead(),
      store: state.kv.store,
      keeper: this.leaseKeeper,
      electionTimeoutMs,
    });
    this.queues = {
      listen: (options: KvQueueListenOptions): Promise<KvQueueDelivery[]> =>
        this.#dispatcher.listen(options),
      ack: async (ids) =>
        (await this.#queueCommand({ type: "queueAck", ids }))
          .queueMessageCount ?? 0,
      nack: async (messages) =>
        (await this.#queueCommand({
          type: "queueNack",
          // The proposing node's clock: a retry waits its backoff from here.
          timestampMs: Date.now(),
          messages,
        })).queueMessageCount ?? 0,
      configure: async (queue, concurrencyMax) => {
        await this.#queueCommand({
          type: "queueConfigure",
          queue,
          concurrencyMax,
        });
      },
      info: async (queue, consistency): Promise<KvQueueInfo> => {
        if (consistency === "strong") await this.#confirmRead();
        return this.#state.kv.queueInfo(queue);
      },
      peek: async (queue, limit, consistency): Promise<KvQueuePeek[]> => {
        if (consistency === "strong") await this.#confirmRead();
        return this.#state.kv.peekQueue(queue, limit);
      },
    };
  }

  /**
   * Starts the leader tasks: while this node leads, the expiry sweep
   * proposes the deletion of keys whose deadline passed and the queue
   * dispatcher leases ready messages to waiting listeners and expires ended
   * leases. Idempotent.
   */
  startServices(): void {
    this.services.start();
  }

  /** Stops the leader tasks; waiting queue listeners are released. */
  stopServices(): void {
    this.services.stop();
  }

  async read(
    ranges: readonly KvReadRange[],
    consistency: KvConsistency,
  ): Promise<KvEntry[][]> {
    if (consistency === "strong") await this.#confirmRead();
    // One synchronous pass: no entry is applied in between, so all ranges see one state.
    return ranges.map((r) =>
      this.#state.kv.readRange(r.start, r.end, r.limit, r.reverse)
    );
  }

  async commit(operation: KvAtomicOperation): Promise<KvCommitResult> {
    // Validated by the front end (early errors) and at apply (the authority).
    // A write without a session (stock Deno clients, raw HTTP) gets one from
    // this node, so the node itself can retry an unknown outcome (a leader
    // lost mid-write) and the cluster still applies it at most once.
    const session = operation.session ??
      { clientId: this.#sessionId, seq: this.#sessionSeq++ };
    const data = encodeCommand({
      type: "atomic",
      operation: { ...operation, session },
    });
    return commitResultOf(decodeApplyResult(await this.#proposeRetrying(data)));
  }

  /** Proposes the marks once (best effort: a lost mark only ages out later). */
  async markResendsDelivered(marks: readonly KvResendMark[]): Promise<void> {
    if (marks.length === 0) return;
    await this.#propose(encodeCommand({ type: "resendDelivered", marks }));
  }

  /** Watches open now. */
  get watchesOpen(): number {
    return this.#watchers?.open ?? 0;
  }

  /**
   * Watches `keys` on the change feed (see {@linkcode KvWatchers.watch}).
   * The first snapshot is at least as new as every write acknowledged
   * before the watch began, even on a lagging follower, so a client that
   * reconnects from another node never sees an older state. Without a read
   * point (a partitioned follower) the watch fails with KvUnavailableError
   * and the client goes to another node.
   *
   * @throws {KvUnavailableError} When `watchersMax` watches are open (or the backend has no feed).
   * @throws {KvLimitError} For more than 10 keys or a key over 2049 bytes.
   */
  watch(
    keys: readonly Uint8Array[],
    signal: AbortSignal,
  ): AsyncIterable<readonly (KvEntry | null)[]> {
    if (this.#watchers === null) {
      throw new KvUnavailableError(
        "Cannot watch: this backend was built without a change feed",
      );
    }
    const start = this.#options.testingWatchBackInTime === true
      ? () => this.#confirmRead().then(() => {}, () => {})
      : async () => {
        await this.#confirmRead();
      };
    return this.#watchers.watch(keys, signal, start);
  }

  async #queueCommand(command: KvQueueCommand): Promise<
    Extract<KvApplyResult, { ok: true }>
  > {
    // Validated at apply: a bad command comes back as a typed failure.
    const result = decodeApplyResult(
      await this.#propose(encodeCommand(command as KvCommand)),
    );
    if (result.ok) return result;
    if (result.reason === "limitExceeded") {
      throw new KvLimitError("mutations", 0, result.message);
    }
    throw new KvInvalidError(result.message);
  }

  /** Waits for a linearizable read point. */
  #confirmRead(): Promise<LogIndex> {
    return strongRead(() => this.#runner.readIndex());
  }

  /**
   * Proposes with the write's session, retrying dropped proposals and unknown
   * outcomes (attempts start {@linkcode COMMIT_RETRY_PACE_MS} apart at least)
   * until {@linkcode COMMIT_RETRY_WINDOW_MS} has passed. The final
   * error says "unavailable" only if nothing was ever proposed.
   */
  async #proposeRetrying(data: Uint8Array): Promise<KvStateResult> {
    const deadline = Date.now() + COMMIT_RETRY_WINDOW_MS;
    let proposed = false;
    for (;;) {
      const attemptAt = performance.now();
      try {
        return await this.#propose(data);
      } catch (error) {
        if (error instanceof KvOutcomeUnknownError) proposed = true;
        else if (!(error instanceof KvUnavailableError)) throw error;
        if (Date.now() >= deadline || this.#runner.stopped) {
          if (!proposed) throw error;
          throw error instanceof KvOutcomeUnknownError
            ? error
            : new KvOutcomeUnknownError(
              `Commit outcome unknown: ${(error as Error).message}`,
              { cause: error },
            );
        }
        // Monotonic: a wall clock step cannot stretch the pause.
        const pauseMs = attemptAt + COMMIT_RETRY_PACE_MS - performance.now();
        if (pauseMs > 0) {
          await new Promise((resolve) => setTimeout(resolve, pauseMs));
        }
      }
    }
  }

  async #propose(data: Uint8Array): Promise<KvStateResult> {
    try {
      return await this.#runner.propose(data);
    } catch (error) {
      if (error instanceof ProposalDroppedError) {
        throw new KvUnavailableError(`Cannot commit: ${error.message}`, {
          cause: error,
        });
      }
      if (error instanceof ProposalOutcomeUnknownError) {
        throw new KvOutcomeUnknownError(
          `Commit outcome unknown: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    }
  }
}
