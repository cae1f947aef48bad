/**
 * The KV service's leader task: the expiry sweep. Every `intervalMs`, when
 * some key's deadline has passed by the leader's clock, it proposes one
 * `expire` command carrying that clock's time; applying it deletes the same
 * keys on every replica (reads never consult a clock).
 *
 * @module
 */
import type { KvApplyResult, KvCommand } from "../../model/types.ts";
import type { LeaderTask, LeaderTaskContext } from "../../state/leader_task.ts";
import type { StateStore } from "../../state/state_store.ts";

/** Most keys removed by one expiry entry. */
export const EXPIRE_BATCH_KEYS = 1000;

/** Options of {@linkcode KvExpirySweep}. */
export interface KvExpirySweepOptions {
  /** The local replica's store (read only). */
  readonly store: Pick<StateStore, "expiredKeys">;
  /** Pause between sweeps, in ms. Default 1000. */
  readonly intervalMs?: number;
  /** Keys one entry deletes at most. Default {@linkcode EXPIRE_BATCH_KEYS}. */
  readonly keyCountMax?: number;
}

/** Proposes expiries of keys whose deadline passed, while this node leads. */
export class KvExpirySweep implements LeaderTask<KvCommand, KvApplyResult> {
  readonly name = "kv.expiry";
  readonly #store: Pick<StateStore, "expiredKeys">;
  readonly #intervalMs: number;
  readonly #keyCountMax: number;
  #context: LeaderTaskContext<KvCommand, KvApplyResult> | null = null;
  #sweeping = false;

  /** @throws {RangeError} For a non-positive interval or batch. */
  constructor(options: KvExpirySweepOptions) {
    this.#store = options.store;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#keyCountMax = options.keyCountMax ?? EXPIRE_BATCH_KEYS;
    for (
      const [name, value] of [
        ["intervalMs", this.#intervalMs],
        ["keyCountMax", this.#keyCountMax],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(
          `Cannot create the expiry sweep as '${name}' must be a positive integer: current value is ${value}`,
        );
      }
    }
  }

  start(context: LeaderTaskContext<KvCommand, KvApplyResult>): void {
    this.#context = context;
    context.scheduler.every(this.#intervalMs, () => void this.#sweep(context));
  }

  stop(): void {
    this.#context = null;
  }

  async #sweep(
    context: LeaderTaskContext<KvCommand, KvApplyResult>,
  ): Promise<void> {
    if (this.#sweeping || this.#context !== context) return;
    const now = context.clock.wallMs();
    if (this.#store.expiredKeys(now, 1).length === 0) return;
    this.#sweeping = true;
    try {
      await context.propose({
        type: "expire",
        timestampMs: now,
        keyCountMax: this.#keyCountMax,
      });
    } catch {
      // Lost leadership, busy or timed out: the next sweep (on whoever leads) retries.
    } finally {
      this.#sweeping = false;
    }
  }
}
