/**
 * The worker host behind `aspen worker start` (issue 17; the jobs issue's
 * workers join it later): it starts named workers, stops them all on
 * SIGINT or SIGTERM (or an abort signal) and waits for each to finish its
 * own shutdown (the webhook worker revokes its lease), and writes one log
 * line per delivery attempt, never with a secret, a header value or the
 * target's path and query.
 *
 * @module
 */
import type { DeliveryReport, WorkerNotice } from "./webhooks/worker.ts";

/** A worker the host runs. */
export interface HostedWorker {
  /** What it does (`webhooks`, later `jobs`). */
  readonly kind: string;
  /** Its name, as the cluster shows it. */
  readonly name: string;
  /** Starts it; it runs in the background until `stop`. */
  start(): void;
  /** Stops it cleanly; resolves once it has. */
  stop(): Promise<void>;
}

/** Options of {@linkcode WorkerHost}. */
export interface WorkerHostOptions {
  /** Where log lines go. Default `console.log`. */
  readonly log?: (line: string) => void;
  /** Stop on SIGINT and SIGTERM. Default true. */
  readonly signals?: boolean;
  /** Unix ms, for the lines' timestamps. Default `Date.now`. */
  readonly nowMs?: () => number;
}

/** Workers one host runs at most. */
export const HOSTED_WORKERS_MAX = 64;

const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Runs workers until interrupted.
 *
 * @example
 * ```ts ignore
 * const host = new WorkerHost();
 * host.add({ kind: "webhooks", name: worker.name, start: () => worker.start(), stop: () => worker.stop() });
 * await host.run(); // returns after SIGINT or SIGTERM, every worker stopped
 * ```
 */
export class WorkerHost {
  readonly #options: WorkerHostOptions;
  readonly #workers: HostedWorker[] = [];
  #running = false;

  constructor(options: WorkerHostOptions = {}) {
    this.#options = options;
  }

  /**
   * Adds a worker (before {@linkcode run}).
   *
   * @throws {RangeError} Beyond {@linkcode HOSTED_WORKERS_MAX} workers, or once running.
   * @throws {TypeError} For a name already added.
   */
  add(worker: HostedWorker): void {
    if (this.#running || this.#workers.length >= HOSTED_WORKERS_MAX) {
      throw new RangeError(
        `Cannot add worker '${worker.name}': the host is running or holds ${HOSTED_WORKERS_MAX} workers`,
      );
    }
    if (this.#workers.some((w) => w.name === worker.name)) {
      throw new TypeError(
        `Cannot add worker '${worker.name}' as a worker of that name exists`,
      );
    }
    this.#workers.push(worker);
  }

  /** Writes one line. */
  log(line: string): void {
    (this.#options.log ?? console.log)(line);
  }

  /** The line of one delivery attempt. */
  logDelivery(worker: string, report: DeliveryReport): void {
    this.log(deliveryLine(worker, report, this.#now()));
  }

  /** The line of a worker's notice. */
  logNotice(worker: string, notice: WorkerNotice): void {
    this.log(
      `${
        new Date(this.#now()).toISOString()
      } ${notice.level} worker=${worker} ${notice.message}`,
    );
  }

  /**
   * Starts every worker, waits for SIGINT, SIGTERM or `signal`, then stops
   * them all (in parallel) and resolves.
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (this.#running) throw new RangeError("Cannot run the host twice");
    this.#running = true;
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    const listen = this.#options.signals ?? true;
    if (listen) {
      for (const name of STOP_SIGNALS) Deno.addSignalListener(name, onSignal);
    }
    signal?.addEventListener("abort", onSignal, { once: true });
    try {
      for (const worker of this.#workers) {
        worker.start();
        this.log(
          `${
            new Date(this.#now()).toISOString()
          } info worker=${worker.name} ${worker.kind} worker started`,
        );
      }
      if (!(signal?.aborted ?? false)) {
        await new Promise<void>((resolve) =>
          stop.signal.addEventListener("abort", () => resolve(), { once: true })
        );
      }
      await Promise.all(this.#workers.map((worker) => worker.stop()));
      for (const worker of this.#workers) {
        this.log(
          `${
            new Date(this.#now()).toISOString()
          } info worker=${worker.name} stopped`,
        );
      }
    } finally {
      signal?.removeEventListener("abort", onSignal);
      if (listen) {
        for (const name of STOP_SIGNALS) {
          Deno.removeSignalListener(name, onSignal);
        }
      }
    }
  }

  #now(): number {
    return (this.#options.nowMs ?? Date.now)();
  }
}

/**
 * One delivery attempt as a log line: time, worker, hook (name and id),
 * event, attempt, outcome, status, latency, and when given the next
 * attempt's time, a disable reason, `replay` and the (redacted) error.
 *
 * @example
 * ```ts
 * import { deliveryLine } from "./host.ts";
 * const line = deliveryLine("w1", {
 *   hook: "00000000000000aa", name: "orders", event: "17.0", attempt: 1,
 *   replay: false, outcome: "ok", status: 204, latencyMs: 12, error: null,
 *   nextAttemptAtMs: null, disable: null,
 * }, 0);
 * console.assert(line.includes("outcome=ok status=204"));
 * ```
 */
export function deliveryLine(
  worker: string,
  report: DeliveryReport,
  nowMs: number,
): string {
  const parts = [
    new Date(nowMs).toISOString(),
    "delivery",
    `worker=${worker}`,
    `hook=${report.name}`,
    `id=${report.hook}`,
    `event=${report.event}`,
    `attempt=${report.attempt}`,
    `outcome=${report.outcome}`,
    `status=${report.status ?? "-"}`,
    `latency=${report.latencyMs}ms`,
  ];
  if (report.replay) parts.push("replay");
  if (report.nextAttemptAtMs !== null) {
    parts.push(`next=${new Date(report.nextAttemptAtMs).toISOString()}`);
  }
  if (report.disable !== null) parts.push(`disabled=${report.disable}`);
  if (report.error !== null) {
    parts.push(`error=${JSON.stringify(report.error)}`);
  }
  return parts.join(" ");
}
