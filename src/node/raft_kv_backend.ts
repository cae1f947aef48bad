/**
 * {@linkcode KvBackend} served by a Raft node: writes are proposed on the
 * leader (forwarded from followers), strong reads wait for ReadIndex, and
 * eventual reads use the local replica as it is. Queue messages are leased by
 * the leader's {@linkcode QueueDispatcher}; acks and nacks are proposals like
 * any write.
 *
 * @module
 */
import { ProposalDroppedError } from "../raft/errors.ts";
import type { LogIndex } from "../raft/types.ts";
import {
  type KvBackend,
  type KvCommitResult,
  type KvConsistency,
  KvOutcomeUnknownError,
  type KvQueueListenOptions,
  type KvQueues,
  type KvReadRange,
  KvUnavailableError,
} from "../services/kv/api.ts";
import { encodeCommand } from "../services/kv/commands.ts";
import { validateAtomic } from "../model/limits.ts";
import {
  type KvQueueInfo,
  type KvQueuePeek,
  validateQueueCommand,
} from "../services/queues/queue.ts";
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
import { QueueDispatcher } from "../services/queues/dispatcher.ts";
import {
  applyResultOf,
  type KvReplicatedState,
  type KvStateResult,
} from "../state/replicated_state.ts";
import {
  ProposalOutcomeUnknownError,
  type RaftRunner,
  RequestTimeoutError,
} from "./raft_runner.ts";

/** How long a write is retried (with its session) before its outcome is reported unknown. */
const COMMIT_RETRY_WINDOW_MS = 20_000;

/** Most keys removed by one expiry entry. */
const EXPIRE_BATCH_KEYS = 1000;

/** Options of {@linkcode RaftKvBackend}. */
export interface RaftKvBackendOptions {
  /**
   * TEST ONLY: the planted bug `watch-back-in-time`, start a watch from the
   * local replica when no read point can be confirmed (the old behaviour).
   * Never set in production.
   */
  readonly testingWatchBackInTime?: boolean;
}

/** A KvBackend over a Raft node. */
export class RaftKvBackend implements KvBackend {
  /** This node's session id for writes that arrive without one. */
  readonly #sessionId = `node-${crypto.randomUUID()}`;
  #sessionSeq = 0;
  readonly databaseId: string;
  readonly queues: KvQueues;
  readonly #runner: RaftRunner<KvStateResult>;
  readonly #state: KvReplicatedState;
  readonly #dispatcher: QueueDispatcher;
  #expiryTimer: ReturnType<typeof setInterval> | undefined;
  #expiring = false;
  #unsubscribeApplied: (() => void) | null = null;
  readonly #options: RaftKvBackendOptions;

  constructor(
    runner: RaftRunner<KvStateResult>,
    state: KvReplicatedState,
    databaseId: string,
    options: RaftKvBackendOptions = {},
  ) {
    this.#options = options;
    this.#runner = runner;
    this.#state = state;
    this.databaseId = databaseId;
    this.#dispatcher = new QueueDispatcher({
      kv: state.kv,
      isLeader: () => runner.status().role === "leader",
      proposeLocal: async (command) =>
        applyResultOf(await runner.proposeLocal(encodeCommand(command))),
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
   * Starts the leader's background work: the expiry sweep (every
   * `intervalMs`, if this node leads and some key's deadline has passed by
   * its clock, it proposes one expiry entry carrying that clock's time;
   * applying it deletes the same keys on every replica; reads never consult
   * a clock) and the queue dispatcher ({@linkcode startQueues}).
   */
  startExpiry(intervalMs = 1000): void {
    this.#expiryTimer = setInterval(() => void this.#sweep(), intervalMs);
    this.startQueues();
  }

  /** Stops the expiry sweep and the queue dispatcher. */
  stopExpiry(): void {
    clearInterval(this.#expiryTimer);
    this.stopQueues();
  }

  /**
   * Starts the queue dispatcher: while this node leads, it leases ready
   * messages to waiting listeners and expires ended leases. Idempotent.
   */
  startQueues(): void {
    if (this.#dispatcher.started) return;
    this.#dispatcher.start();
    this.#unsubscribeApplied = this.#runner.onApplied(() =>
      this.#dispatcher.wake()
    );
  }

  /** Stops the queue dispatcher; waiting listeners are released as unavailable. */
  stopQueues(): void {
    this.#unsubscribeApplied?.();
    this.#unsubscribeApplied = null;
    this.#dispatcher.stop();
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
    validateAtomic(operation);
    // A write without a session (stock Deno clients, raw HTTP) gets one from
    // this node, so the node itself can retry an unknown outcome (a leader
    // lost mid-write) and the cluster still applies it at most once.
    const session = operation.session ??
      { clientId: this.#sessionId, seq: this.#sessionSeq++ };
    const data = encodeCommand({
      type: "atomic",
      operation: { ...operation, session },
    });
    const result = applyResultOf(await this.#proposeRetrying(data));
    if (result.ok) return { ok: true, versionstamp: result.versionstamp };
    return {
      ok: false,
      reason: result.reason,
      message: result.message,
      failedChecks: result.failedChecks,
    };
  }

  /** Proposes the marks once (best effort: a lost mark only ages out later). */
  async markResendsDelivered(marks: readonly KvResendMark[]): Promise<void> {
    if (marks.length === 0) return;
    await this.#propose(encodeCommand({ type: "resendDelivered", marks }));
  }

  async *watch(
    keys: readonly Uint8Array[],
    signal: AbortSignal,
  ): AsyncIterable<readonly (KvEntry | null)[]> {
    let wake: (() => void) | null = null;
    let dirty = true;
    const unsubscribe = this.#runner.onApplied(() => {
      dirty = true;
      wake?.();
    });
    const onAbort = () => wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      // The first snapshot is at least as new as every write acknowledged
      // before the watch began, even on a lagging follower, so a client that
      // reconnects from another node never sees an older state. Without a
      // read point (a partitioned follower) the watch fails with
      // KvUnavailableError and the client goes to another node.
      if (this.#options.testingWatchBackInTime === true) {
        await this.#confirmRead().catch(() => {});
      } else {
        await this.#confirmRead();
      }
      let previous: readonly (KvEntry | null)[] | null = null;
      while (!signal.aborted) {
        if (dirty) {
          dirty = false;
          const current = keys.map((key) => this.#state.kv.get(key));
          if (previous === null || changed(previous, current)) {
            previous = current;
            yield current;
          }
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
    }
  }

  async #queueCommand(command: KvQueueCommand): Promise<
    Extract<KvApplyResult, { ok: true }>
  > {
    validateQueueCommand(command);
    const result = applyResultOf(
      await this.#propose(encodeCommand(command as KvCommand)),
    );
    if (result.ok) return result;
    if (result.reason === "limitExceeded") {
      throw new KvLimitError("mutations", 0, result.message);
    }
    throw new KvInvalidError(result.message);
  }

  /** Waits for a linearizable read point. */
  async #confirmRead(): Promise<LogIndex> {
    try {
      return await this.#runner.readIndex();
    } catch (error) {
      if (
        error instanceof ProposalDroppedError ||
        error instanceof RequestTimeoutError
      ) {
        throw new KvUnavailableError(
          `Cannot serve a strong read: ${error.message}`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /**
   * Proposes with the write's session, retrying dropped proposals and unknown
   * outcomes until {@linkcode COMMIT_RETRY_WINDOW_MS} has passed. The final
   * error says "unavailable" only if nothing was ever proposed.
   */
  async #proposeRetrying(data: Uint8Array): Promise<KvStateResult> {
    const deadline = Date.now() + COMMIT_RETRY_WINDOW_MS;
    let proposed = false;
    for (;;) {
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
        await new Promise((resolve) => setTimeout(resolve, 100));
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

  async #sweep(): Promise<void> {
    if (this.#expiring || this.#runner.status().role !== "leader") return;
    const now = Date.now();
    if (this.#state.kv.store.expiredKeys(now, 1).length === 0) return;
    this.#expiring = true;
    try {
      await this.#runner.proposeLocal(
        encodeCommand({
          type: "expire",
          timestampMs: now,
          keyCountMax: EXPIRE_BATCH_KEYS,
        }),
      );
    } catch {
      // Lost leadership or timed out: the next sweep (on whoever leads) retries.
    } finally {
      this.#expiring = false;
    }
  }
}

function changed(
  previous: readonly (KvEntry | null)[],
  current: readonly (KvEntry | null)[],
): boolean {
  return current.some((entry, i) => {
    const before = previous[i] ?? null;
    if (entry === null || before === null) return entry !== before;
    return !sameBytes(entry.versionstamp, before.versionstamp);
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i]);
}
