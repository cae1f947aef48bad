/**
 * The queue service's leader task: the dispatcher. Queue messages live in
 * replicated state (`queue.ts`); the dispatcher only decides *when* to move
 * them, by proposing commands stamped with the leader's clock (through its
 * {@linkcode LeaderTaskContext}, rate-bounded by the node's service host):
 *
 * - for a queue with a waiting listener and a message ready by that clock, a
 *   `queueLease` command; the messages it leased (decided at apply time,
 *   identically on every replica) go to that listener;
 * - for leases that ended unacknowledged (a crashed or slow consumer), a
 *   `queueExpireLeases` command, which makes each a failed delivery.
 *
 * Listeners wait here (one HTTP long-poll each); a node that is not the
 * leader refuses them, and a node that stops leading (the host stops the
 * task) releases them with {@linkcode KvNotLeaderError} so they move to the
 * new leader. Listeners that arrive on a new leader before its task started
 * wait for it. Messages a
 * listener never received (it went away mid-lease) come back when the lease
 * ends: delivery is at least once.
 *
 * @module
 */
import {
  KvNotLeaderError,
  type KvQueueListenOptions,
  KvUnavailableError,
} from "../kv/api.ts";
import type { Scheduled, Scheduler } from "../../base/clock.ts";
import type { LeaderTask, LeaderTaskContext } from "../../state/leader_task.ts";
import type { StateStore } from "../../state/state_store.ts";
import {
  hasDeliverable,
  hasExpiredLease,
  QUEUE_LIMITS,
  validateQueueName,
} from "./queue.ts";
import type {
  KvApplyResult,
  KvQueueCommand,
  KvQueueDelivery,
} from "../../model/types.ts";

/** Options of {@linkcode QueueDispatcher}. */
export interface QueueDispatcherOptions {
  /** The local replica's state machine (read only). */
  readonly kv: { readonly store: StateStore };
  /** True while this node leads (listeners are refused elsewhere). */
  readonly isLeader: () => boolean;
  /** Timers of the listeners' waits (also while the task is not started). */
  readonly scheduler: Scheduler;
  /** Pause between passes, in ms. Default 50. */
  readonly intervalMs?: number;
  /** Listeners waiting at once at most. Default 1000. */
  readonly listenersMax?: number;
}

/** Longest lease a listener may ask for, in ms (1 hour). */
export const QUEUE_LEASE_MS_MAX = 60 * 60 * 1000;
/** Longest a listen waits, in ms. */
export const QUEUE_WAIT_MS_MAX = 60_000;

interface Listener {
  readonly queue: string;
  readonly countMax: number;
  readonly leaseMs: number;
  readonly resolve: (deliveries: KvQueueDelivery[]) => void;
  readonly reject: (error: Error) => void;
  readonly cleanup: () => void;
}

function checkRange(name: string, value: number, min: number, max: number) {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(
      `Cannot listen as '${name}' must be an integer from ${min} to ${max}: current value is ${value}`,
    );
  }
}

/** Leases ready messages to waiting listeners and expires ended leases, while this node leads. */
export class QueueDispatcher
  implements LeaderTask<KvQueueCommand, KvApplyResult> {
  readonly name = "queues.dispatch";
  readonly #options: QueueDispatcherOptions & { readonly intervalMs: number };
  readonly #listenersMax: number;
  readonly #listeners = new Set<Listener>();
  #context: LeaderTaskContext<KvQueueCommand, KvApplyResult> | null = null;
  #running = false;
  #again = false;

  /** @throws {RangeError} For a non-positive interval or listener bound. */
  constructor(options: QueueDispatcherOptions) {
    const intervalMs = options.intervalMs ?? 50;
    this.#listenersMax = options.listenersMax ?? 1000;
    for (
      const [name, value] of [
        ["intervalMs", intervalMs],
        ["listenersMax", this.#listenersMax],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create queue dispatcher as '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
    this.#options = { ...options, intervalMs };
  }

  /** True while the service host runs this task (this node leads). */
  get started(): boolean {
    return this.#context !== null;
  }

  /** Starts the periodic passes and the passes after each applied batch. */
  start(context: LeaderTaskContext<KvQueueCommand, KvApplyResult>): void {
    this.#context = context;
    context.scheduler.every(this.#options.intervalMs, () => this.wake());
    context.onApplied(() => this.wake());
    this.wake();
  }

  /**
   * Stops the passes and releases every listener: as not leader when this
   * node stopped leading (they move on), else as unavailable (shutdown).
   */
  stop(): void {
    this.#context = null;
    this.#releaseAll(
      this.#options.isLeader()
        ? new KvUnavailableError("Cannot listen: the queue dispatcher stopped")
        : new KvNotLeaderError("Cannot listen: this node stopped leading"),
    );
  }

  /** Runs a pass soon (after an entry applied, a listener arrived). */
  wake(): void {
    if (this.#context === null) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    void this.#pass();
  }

  /**
   * Waits for messages of a queue and leases them to the caller.
   *
   * @throws {KvNotLeaderError} When this node does not lead, or stops leading while waiting.
   * @throws {KvUnavailableError} When too many listeners wait, or the task stops while leading.
   * @throws {RangeError} For counts or durations out of range.
   */
  listen(options: KvQueueListenOptions): Promise<KvQueueDelivery[]> {
    validateQueueName(options.queue);
    checkRange("countMax", options.countMax, 1, QUEUE_LIMITS.leaseCountMax);
    checkRange("leaseMs", options.leaseMs, 1, QUEUE_LEASE_MS_MAX);
    checkRange("waitMs", options.waitMs, 0, QUEUE_WAIT_MS_MAX);
    if (!this.#options.isLeader()) {
      return Promise.reject(
        new KvNotLeaderError("Cannot listen: this node is not the leader"),
      );
    }
    if (this.#listeners.size >= this.#listenersMax) {
      return Promise.reject(
        new KvUnavailableError(
          `Cannot listen: ${this.#listenersMax} listeners wait already`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const finish = () => listener.resolve([]);
      const timer: Scheduled = this.#options.scheduler.after(
        options.waitMs,
        finish,
      );
      options.signal?.addEventListener("abort", finish, { once: true });
      const listener: Listener = {
        queue: options.queue,
        countMax: options.countMax,
        leaseMs: options.leaseMs,
        cleanup: () => {
          timer.cancel();
          options.signal?.removeEventListener("abort", finish);
          this.#listeners.delete(listener);
        },
        resolve: (deliveries) => {
          listener.cleanup();
          resolve(deliveries);
        },
        reject: (error) => {
          listener.cleanup();
          reject(error);
        },
      };
      this.#listeners.add(listener);
      if (options.signal?.aborted) finish();
      else this.wake();
    });
  }

  #releaseAll(error: Error): void {
    for (const listener of [...this.#listeners]) listener.reject(error);
  }

  async #pass(): Promise<void> {
    const context = this.#context;
    if (context === null) return;
    this.#running = true;
    try {
      do {
        this.#again = false;
        if (!this.#options.isLeader()) {
          this.#releaseAll(
            new KvNotLeaderError("Cannot listen: this node stopped leading"),
          );
          return;
        }
        await this.#expireLeases(context);
        await this.#serveListeners(context);
      } while (this.#again && this.#context === context);
    } catch {
      // Lost leadership or timed out: the next pass (on whoever leads) retries.
    } finally {
      this.#running = false;
    }
  }

  async #expireLeases(
    context: LeaderTaskContext<KvQueueCommand, KvApplyResult>,
  ): Promise<void> {
    const now = context.clock.wallMs();
    if (!hasExpiredLease(this.#options.kv.store, now)) return;
    await context.propose({
      type: "queueExpireLeases",
      timestampMs: now,
      countMax: QUEUE_LIMITS.expireLeasesMax,
    });
    // Failed deliveries may be ready again at once (a zero backoff step).
    this.#again = true;
  }

  /** Leases for the first listener of each queue that has a deliverable message. */
  async #serveListeners(
    context: LeaderTaskContext<KvQueueCommand, KvApplyResult>,
  ): Promise<void> {
    const queues = new Set([...this.#listeners].map((l) => l.queue));
    for (const queue of queues) {
      const now = context.clock.wallMs();
      if (!hasDeliverable(this.#options.kv.store, queue, now)) continue;
      const first = this.#firstListener(queue);
      if (first === undefined) continue;
      const result = await context.propose({
        type: "queueLease",
        queue,
        timestampMs: now,
        leaseDeadlineMs: now + first.leaseMs,
        countMax: first.countMax,
      });
      const deliveries = result.ok ? [...(result.queueDeliveries ?? [])] : [];
      if (deliveries.length === 0) continue;
      // The listener may have left while the lease was applied: hand the
      // messages to another of the queue, or let their lease end (redelivery).
      const taker = this.#listeners.has(first)
        ? first
        : this.#firstListener(queue);
      taker?.resolve(deliveries);
      this.#again = true;
    }
  }

  #firstListener(queue: string): Listener | undefined {
    for (const listener of this.#listeners) {
      if (listener.queue === queue) return listener;
    }
    return undefined;
  }
}
