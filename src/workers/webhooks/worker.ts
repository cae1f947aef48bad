/**
 * The webhook worker (issue 17, "Webhook delivery"): it holds a lease
 * (TTL 10 s, kept alive by the client's leases API) and claims webhook
 * hooks under it (`POST /v1/hooks/claim`, admin token) every second, so
 * new hooks are picked up and one worker delivers each hook. Per claimed
 * hook it runs ONE serial loop ({@link ./_hook_loop.ts}): begin, send,
 * finish, in the history's order, at most one request in flight per hook.
 *
 * - A hook disabled (by its loop or by `aspen hook disable`) has no loop;
 *   one enabled again gets one at the next claim.
 * - Each claim refreshes what a running loop sends with: a rotated secret,
 *   a new replay. So a rotation signs with both secrets from the next
 *   claim on, within a claim interval.
 * - `claimLost` ends that hook's loop; a lost lease ends them all, and the
 *   worker grants a new lease and claims again.
 * - {@linkcode WebhookWorker.stop} aborts the loops and revokes the lease,
 *   which closes an attempt in flight as `unknown` and frees the hooks for
 *   another worker at once.
 *
 * @module
 */
import type { AspenClient } from "../../client/connect.ts";
import { hookWorkerCalls } from "../../client/hooks.ts";
import type { HookWorkerCalls } from "../../client/hook_worker_calls.ts";
import { sleepFor } from "./_sleep.ts";
import { HeadWatch } from "./_head_watch.ts";
import type { OpenLease } from "../../client/types.ts";
import {
  HOOK_LIMITS,
  type HookClaimResponse,
  type WireClaim,
} from "../../protocol/http_api_hooks.ts";
import type { TargetGuard } from "./guard.ts";
import {
  type DeliveryReport,
  HookLoop,
  type HookLoopContext,
  type LoopEnd,
} from "./_hook_loop.ts";

export type { DeliveryReport, LoopEnd };

/** The worker's lease TTL, ms. */
export const WORKER_LEASE_TTL_MS = 10_000;
/** How often the worker claims (new hooks, refreshed secrets and replays), ms. */
export const CLAIM_INTERVAL_MS = 1_000;
/** Pause before granting a new lease after one was lost or refused, ms (doubling while refused). */
const LEASE_RETRY_MS = 1_000;
/** Longest pause between refused lease grants, ms. */
const LEASE_RETRY_MS_MAX = 10_000;
/** The worker's name: as `hook get` shows it. */
const WORKER_NAME = /^[\x21-\x7e]{1,64}$/;

/** Something the worker wants an operator to know (never a secret). */
export interface WorkerNotice {
  readonly level: "info" | "warn";
  readonly message: string;
}

/** Options of {@linkcode WebhookWorker}. */
export interface WebhookWorkerOptions {
  /** A client with the admin token (claims carry the signing secrets). */
  readonly client: AspenClient;
  /** The worker's name, 1–64 visible ASCII characters (`hook get` shows it). */
  readonly name: string;
  /** The SSRF guard (with the operator's `--allow-targets`). */
  readonly guard: TargetGuard;
  /** One call per attempt, after its `finish` committed. */
  readonly onDelivery?: (report: DeliveryReport) => void;
  /** Lease, claim and loop events. */
  readonly onNotice?: (notice: WorkerNotice) => void;
  /** Lease TTL, ms. Default {@linkcode WORKER_LEASE_TTL_MS}. */
  readonly leaseTtlMs?: number;
  /** Claim interval, ms. Default {@linkcode CLAIM_INTERVAL_MS}. */
  readonly claimIntervalMs?: number;
  /** Hooks held at most, 1–100. Default 100. */
  readonly hooksMax?: number;
  /** The jitter's random source, [0, 1). Default `Math.random`. */
  readonly random?: () => number;
  /** Unix ms. Default `Date.now`. */
  readonly nowMs?: () => number;
}

interface Running {
  readonly loop: HookLoop;
  readonly abort: AbortController;
  readonly done: Promise<void>;
}

/**
 * Delivers the webhook hooks it claims until stopped.
 *
 * @example
 * ```ts ignore
 * const worker = new WebhookWorker({
 *   client: connect(urls, { token: adminToken }),
 *   name: "worker-1",
 *   guard: new TargetGuard(parseAllowTargets(allowText)),
 *   onDelivery: (r) => console.log(r.hook, r.event, r.attempt, r.outcome),
 * });
 * worker.start();
 * // … later
 * await worker.stop();
 * ```
 */
export class WebhookWorker {
  readonly #options: WebhookWorkerOptions;
  readonly #stopping = new AbortController();
  readonly #running = new Map<string, Running>();
  readonly #calls: HookWorkerCalls;
  readonly #head: HeadWatch;
  #run: Promise<void> | null = null;

  /**
   * @throws {TypeError} For a bad name.
   * @throws {RangeError} For a bad TTL, interval or `hooksMax`.
   */
  constructor(options: WebhookWorkerOptions) {
    if (!WORKER_NAME.test(options.name)) {
      throw new TypeError(
        `Cannot start webhook worker as 'name' must be 1 to 64 visible ASCII characters: current value is '${
          options.name.slice(0, 80)
        }'`,
      );
    }
    const hooksMax = options.hooksMax ?? HOOK_LIMITS.claimMax;
    if (
      !Number.isSafeInteger(hooksMax) || hooksMax < 1 ||
      hooksMax > HOOK_LIMITS.claimMax
    ) {
      throw new RangeError(
        `Cannot start webhook worker as 'hooksMax' must be 1 to ${HOOK_LIMITS.claimMax}: current value is ${hooksMax}`,
      );
    }
    const interval = options.claimIntervalMs ?? CLAIM_INTERVAL_MS;
    if (!Number.isSafeInteger(interval) || interval < 10) {
      throw new RangeError(
        `Cannot start webhook worker as 'claimIntervalMs' must be an integer of at least 10: current value is ${interval}`,
      );
    }
    this.#options = options;
    this.#calls = hookWorkerCalls(options.client.hooks);
    this.#head = new HeadWatch(this.#calls, this.#stopping.signal);
  }

  /** The hooks with a loop now. */
  get hooks(): string[] {
    return [...this.#running.keys()];
  }

  /** Starts the lease and claim loop (once); it runs until {@linkcode stop}. */
  start(): void {
    if (this.#run !== null) return;
    this.#run = this.#main();
  }

  /** Stops every loop and revokes the lease; resolves once all ended. */
  async stop(): Promise<void> {
    this.#stopping.abort(new DOMException("Worker stopped", "AbortError"));
    await this.#run;
  }

  async #main(): Promise<void> {
    const signal = this.#stopping.signal;
    let refused = 0;
    while (!signal.aborted) {
      let lease: OpenLease;
      try {
        lease = await this.#options.client.leases.open({
          ttlMs: this.#options.leaseTtlMs ?? WORKER_LEASE_TTL_MS,
        });
        refused = 0;
      } catch (error) {
        if (signal.aborted) break;
        this.#notice("warn", `Cannot grant the worker's lease: ${text(error)}`);
        const pauseMs = LEASE_RETRY_MS * 2 ** Math.min(refused++, 4);
        await sleepFor(Math.min(pauseMs, LEASE_RETRY_MS_MAX), signal);
        continue;
      }
      this.#notice("info", `Lease ${lease.id} granted`);
      try {
        await this.#underLease(lease);
      } finally {
        await this.#stopAll();
        await lease.close().catch((error) =>
          this.#notice(
            "warn",
            `Cannot revoke lease ${lease.id}: ${text(error)}`,
          )
        );
      }
      if (!signal.aborted) {
        this.#notice("warn", `Lease ${lease.id} lost: claiming again`);
        await sleepFor(LEASE_RETRY_MS, signal);
      }
    }
  }

  /** Claims every interval until the lease is lost or the worker stops. */
  async #underLease(lease: OpenLease): Promise<void> {
    const signal = AbortSignal.any([this.#stopping.signal, lease.signal]);
    const interval = this.#options.claimIntervalMs ?? CLAIM_INTERVAL_MS;
    while (!signal.aborted) {
      let answer: HookClaimResponse | null = null;
      try {
        answer = await this.#calls.claim({
          worker: this.#options.name,
          lease: lease.id,
          max: this.#options.hooksMax ?? HOOK_LIMITS.claimMax,
        });
      } catch (error) {
        if (signal.aborted) break;
        this.#notice("warn", `Cannot claim hooks: ${text(error)}`);
      }
      if (answer !== null && !signal.aborted) {
        await this.#reconcile(answer, lease.signal);
      }
      await sleepFor(interval, signal);
    }
  }

  /** Starts loops for new active claims, updates running ones, stops the rest. */
  async #reconcile(answer: HookClaimResponse, leaseSignal: AbortSignal) {
    const claims = new Map(answer.claims.map((claim) => [claim.hook, claim]));
    const active = await this.#activeHooks(answer.claims);
    for (const [hook, running] of this.#running) {
      const claim = claims.get(hook);
      if (
        claim === undefined || claim.token !== running.loop.token ||
        !active.has(hook)
      ) {
        running.abort.abort();
        await running.done;
        continue;
      }
      running.loop.update(claim);
    }
    for (const claim of answer.claims) {
      if (this.#running.has(claim.hook) || !active.has(claim.hook)) continue;
      this.#launch(claim, answer.clusterId, leaseSignal);
    }
  }

  /**
   * The claimed hooks that are active. A claim holds disabled hooks too,
   * so their state comes from the hooks list (one request, ≤ 1,000 hooks),
   * asked only while the lease holds a hook.
   */
  async #activeHooks(claims: readonly WireClaim[]): Promise<Set<string>> {
    const ids = new Set(claims.map((claim) => claim.hook));
    if (ids.size === 0) return ids;
    try {
      const hooks = await this.#options.client.hooks.list();
      return new Set(
        hooks.filter((hook) => ids.has(hook.id) && hook.state === "active")
          .map((hook) => hook.id),
      );
    } catch (error) {
      this.#notice("warn", `Cannot list hooks: ${text(error)}`);
      // Keep what runs; start nothing this round.
      return new Set([...this.#running.keys()].filter((id) => ids.has(id)));
    }
  }

  #launch(claim: WireClaim, clusterId: string, leaseSignal: AbortSignal) {
    const abort = new AbortController();
    const signal = AbortSignal.any([
      this.#stopping.signal,
      leaseSignal,
      abort.signal,
    ]);
    const context: HookLoopContext = {
      calls: this.#calls,
      hooks: this.#options.client.hooks,
      head: this.#head,
      guard: this.#options.guard,
      clusterId,
      report: (report) => this.#options.onDelivery?.(report),
      notice: (message) =>
        this.#notice("info", `Hook ${claim.name} (${claim.hook}) ${message}`),
      random: this.#options.random ?? Math.random,
      nowMs: this.#options.nowMs ?? Date.now,
    };
    const loop = new HookLoop(claim, context, signal);
    const done = loop.run().then(
      (end) => this.#ended(claim, end),
      (error) =>
        this.#notice(
          "warn",
          `Hook ${claim.name} (${claim.hook}) stopped: ${text(error)}`,
        ),
    ).finally(() => {
      if (this.#running.get(claim.hook)?.loop === loop) {
        this.#running.delete(claim.hook);
      }
    });
    this.#running.set(claim.hook, { loop, abort, done });
    this.#notice(
      "info",
      `Hook ${claim.name} (${claim.hook}) claimed with token ${claim.token}`,
    );
  }

  #ended(claim: WireClaim, end: LoopEnd): void {
    if (end !== "aborted") {
      this.#notice("info", `Hook ${claim.name} (${claim.hook}) ${end}`);
    }
  }

  async #stopAll(): Promise<void> {
    const running = [...this.#running.values()];
    for (const { abort } of running) abort.abort();
    await Promise.all(running.map(({ done }) => done));
  }

  #notice(level: WorkerNotice["level"], message: string): void {
    this.#options.onNotice?.({ level, message });
  }
}

function text(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.slice(0, 256);
}
