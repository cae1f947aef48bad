/**
 * The load generator shared by every target: a driver interface (`put`,
 * linearizable `get`, read-then-conditional-write `cas`), the four
 * workloads, and a closed-loop runner (N clients, each with one request in
 * flight) bounded by both time and operation count.
 *
 * @module
 */
import type { CoordinationCell } from "./_coordination.ts";
import type { EventCell } from "./_watch.ts";

/** What a target must offer the load generator. Errors are thrown. */
export interface KvDriver {
  /** Writes `value` at `key` (durably, as the target defines it). */
  put(key: string, value: Uint8Array): Promise<void>;
  /** Linearizable read; resolves whether the key exists. */
  get(key: string): Promise<boolean>;
  /**
   * Reads `key` and writes `value` only if the key did not change since:
   * resolves false on a conflict (the check failed), true when written.
   */
  cas(key: string, value: Uint8Array): Promise<boolean>;
  /** Releases connections and files. */
  close(): Promise<void>;
}

/** Workload names. */
export const WORKLOADS = ["put", "get", "mixed", "cas"] as const;
/** A workload. */
export type Workload = typeof WORKLOADS[number];

/** Keys are this many characters (ASCII, so as many bytes). */
export const KEY_BYTES = 16;
/** Keys of the hot set the `cas` workload contends on. */
export const CAS_HOT_KEYS = 8;
/** Keys known to exist that `get` and `mixed` draw from. */
export const EXISTING_KEYS_MIN = 500;
/** Keys remembered as existing (older ones are forgotten, not deleted). */
const EXISTING_KEYS_MAX = 20_000;
/** Latency samples kept per cell (an operation bound as well). */
export const OPERATIONS_PER_CELL_MAX = 2_000_000;
/** Ms a cell waits for requests still in flight after its duration. */
export const IN_FLIGHT_GRACE_MS = 12_000;
/** Pause after a failed operation so a down target is not hammered in a tight loop. */
const ERROR_PAUSE_MS = 5;

/** Unique keys for one process: a random tag and a counter, 16 bytes in all. */
export class KeySpace {
  readonly #tag: string;
  #next = 0;
  readonly #existing: string[] = [];
  #existingCursor = 0;

  constructor() {
    const bytes = crypto.getRandomValues(new Uint8Array(4));
    this.#tag = Array.from(bytes, (b) => (b % 36).toString(36)).join("");
  }

  /** A key never returned before by this key space. */
  fresh(): string {
    const key = `${this.#tag}${(this.#next++).toString(36).padStart(12, "0")}`;
    if (key.length !== KEY_BYTES) {
      throw new RangeError(
        `Cannot make key as the counter overflowed: current key is '${key}'`,
      );
    }
    return key;
  }

  /** Remembers `key` as written (bounded: the oldest are replaced). */
  remember(key: string): void {
    if (this.#existing.length < EXISTING_KEYS_MAX) {
      this.#existing.push(key);
    } else {
      this.#existing[this.#existingCursor] = key;
      this.#existingCursor = (this.#existingCursor + 1) % EXISTING_KEYS_MAX;
    }
  }

  /** How many written keys are remembered. */
  get existingCount(): number {
    return this.#existing.length;
  }

  /** A random remembered key. */
  randomExisting(): string {
    const key =
      this.#existing[Math.floor(Math.random() * this.#existing.length)];
    if (key === undefined) {
      throw new RangeError("Cannot pick an existing key as none was written");
    }
    return key;
  }

  /** The keys of the `cas` hot set. */
  hotKey(index: number): string {
    return `hot-${this.#tag}`.padEnd(KEY_BYTES - 3, "-") +
      String(index).padStart(3, "0");
  }
}

/** Options of one cell (one workload at one concurrency). */
export interface CellOptions {
  readonly workload: Workload;
  readonly clients: number;
  readonly durationMs: number;
  readonly value: Uint8Array;
  readonly keys: KeySpace;
  /**
   * Most operations of the cell (a bound on the latencies kept as well).
   * Default {@linkcode OPERATIONS_PER_CELL_MAX}.
   */
  readonly operationsMax?: number;
}

/** What one cell measured. */
export interface CellMeasurement {
  /** A KV workload, or a coordination or events cell (`bench/_coordination.ts`, `bench/_watch.ts`). */
  readonly workload: Workload | CoordinationCell | EventCell;
  readonly clients: number;
  /** Wall time from the first request to the last reply, in ms. */
  readonly elapsedMs: number;
  /** Operations that completed (a `cas` conflict counts: it is an answer). */
  readonly operations: number;
  readonly errors: number;
  /** `cas` operations whose check failed. */
  readonly conflicts: number;
  readonly throughputPerSecond: number;
  readonly latencyMs: {
    readonly p50: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
  /** The first error's message, if any. */
  readonly firstError: string | null;
  /**
   * Coordination cells only: what one of `operations` is (an
   * acquire+release pair, a lease renewed). Latencies are per call then.
   */
  readonly unit?: string;
  /** Coordination cells only: requests (calls) made; a batched keep-alive renews many leases per call. */
  readonly calls?: number;
  /** Coordination cells only: `calls` per second. */
  readonly callsPerSecond?: number;
  /**
   * Coordination cells only: safety violations the clients saw (a lock
   * token not above the name's previous one).
   */
  readonly violations?: number;
  /**
   * Coordination cells on etcd only: keep-alive requests sent again for ids
   * a streamed reply left unanswered (within their call's latency).
   */
  readonly resends?: number;
}

/**
 * Writes keys until `keys` remembers at least {@linkcode EXISTING_KEYS_MIN}
 * (16 writers), and initialises the `cas` hot set. Bounded by `timeoutMs`.
 *
 * @throws {Error} When the target cannot take the writes in time.
 */
export async function prepareKeys(
  driver: KvDriver,
  keys: KeySpace,
  value: Uint8Array,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown = null;
  const writer = async () => {
    while (
      keys.existingCount < EXISTING_KEYS_MIN && performance.now() < deadline
    ) {
      const key = keys.fresh();
      try {
        await driver.put(key, value);
        keys.remember(key);
      } catch (error) {
        lastError = error;
        await pause(ERROR_PAUSE_MS * 10);
      }
    }
  };
  await Promise.all(Array.from({ length: 16 }, writer));
  for (let i = 0; i < CAS_HOT_KEYS && performance.now() < deadline; i++) {
    await driver.put(keys.hotKey(i), value);
  }
  if (keys.existingCount < EXISTING_KEYS_MIN) {
    throw new Error(
      `Cannot prepare ${EXISTING_KEYS_MIN} keys within ${timeoutMs} ms: ${
        describeError(lastError)
      }`,
    );
  }
}

/** Runs one cell: `clients` closed loops until the duration or the operation bound. */
export async function runCell(
  driver: KvDriver,
  options: CellOptions,
): Promise<CellMeasurement> {
  const loop = await runClosedLoop(options, operationOf(driver, options));
  return {
    workload: options.workload,
    clients: options.clients,
    elapsedMs: loop.elapsedMs,
    operations: loop.latencies.length,
    errors: loop.errors,
    conflicts: loop.conflicts,
    throughputPerSecond: loop.latencies.length / (loop.elapsedMs / 1000),
    latencyMs: summarize(loop.latencies),
    firstError: loop.firstError,
  };
}

/** Options of {@linkcode runClosedLoop}. */
export interface ClosedLoopOptions {
  readonly clients: number;
  readonly durationMs: number;
  /** Most operations (a bound on the latencies kept as well). Default {@linkcode OPERATIONS_PER_CELL_MAX}. */
  readonly operationsMax?: number;
}

/** What {@linkcode runClosedLoop} measured. */
export interface ClosedLoopOutcome {
  /** Each completed operation's latency, in ms, in completion order. */
  readonly latencies: number[];
  readonly errors: number;
  /** Operations that resolved false. */
  readonly conflicts: number;
  readonly firstError: string | null;
  /** Wall time from the first request to the last reply, in ms. */
  readonly elapsedMs: number;
}

/**
 * `clients` closed loops (each with one operation in flight) calling
 * `operation(clientIndex)` until the duration or the operation bound. An
 * operation resolving false counts as a conflict (it still completed); a
 * thrown one as an error, followed by a short pause.
 *
 * @throws {RangeError} When `clients` < 1 or the duration is not positive.
 */
export async function runClosedLoop(
  options: ClosedLoopOptions,
  operation: (client: number) => Promise<boolean>,
): Promise<ClosedLoopOutcome> {
  if (options.clients < 1 || options.durationMs <= 0) {
    throw new RangeError(
      `Cannot run a cell with ${options.clients} clients for ${options.durationMs} ms`,
    );
  }
  const latencies: number[] = [];
  let errors = 0;
  let conflicts = 0;
  let firstError: string | null = null;
  const operationsMax = options.operationsMax ?? OPERATIONS_PER_CELL_MAX;
  const start = performance.now();
  const deadline = start + options.durationMs;
  let stopped = false;
  const client = async (index: number) => {
    while (
      !stopped && performance.now() < deadline &&
      latencies.length + errors < operationsMax
    ) {
      const begin = performance.now();
      try {
        const ok = await operation(index);
        latencies.push(performance.now() - begin);
        if (!ok) conflicts++;
      } catch (error) {
        errors++;
        firstError ??= describeError(error);
        await pause(ERROR_PAUSE_MS);
      }
    }
  };
  // A client stuck on a request that never ends (Deno KV's own client
  // retries 5xx replies forever) is abandoned after a grace period and
  // counted as an error, so every cell ends in bounded time.
  let inFlight = options.clients;
  const clients = Array.from(
    { length: options.clients },
    (_, i) => client(i).finally(() => inFlight--),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const abandoned = new Promise<"abandoned">((resolve) => {
    timer = setTimeout(
      () => resolve("abandoned"),
      options.durationMs + IN_FLIGHT_GRACE_MS,
    );
  });
  const outcome = await Promise.race([Promise.all(clients), abandoned]);
  clearTimeout(timer);
  stopped = true;
  if (outcome === "abandoned") {
    errors += inFlight;
    firstError ??=
      `${inFlight} requests still in flight ${IN_FLIGHT_GRACE_MS} ms after the cell ended`;
  }
  const elapsedMs = Math.min(
    performance.now() - start,
    options.durationMs + IN_FLIGHT_GRACE_MS,
  );
  return { latencies, errors, conflicts, firstError, elapsedMs };
}

/** One operation of the workload; resolves false for a `cas` conflict. */
function operationOf(
  driver: KvDriver,
  options: CellOptions,
): () => Promise<boolean> {
  const { keys, value } = options;
  const put = async () => {
    const key = keys.fresh();
    await driver.put(key, value);
    keys.remember(key);
    return true;
  };
  const get = async () => {
    const key = keys.randomExisting();
    if (!(await driver.get(key))) {
      throw new Error(`Key '${key}' was written but reads as absent`);
    }
    return true;
  };
  switch (options.workload) {
    case "put":
      return put;
    case "get":
      return get;
    case "mixed":
      return () => Math.random() < 0.1 ? put() : get();
    case "cas":
      return () =>
        driver.cas(
          keys.hotKey(Math.floor(Math.random() * CAS_HOT_KEYS)),
          value,
        );
  }
}

/** p50, p99, max and mean of `latencies` (NaN for none). */
export function summarize(
  latencies: readonly number[],
): CellMeasurement["latencyMs"] {
  if (latencies.length === 0) {
    return { p50: NaN, p99: NaN, max: NaN, mean: NaN };
  }
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  let sum = 0;
  for (const l of sorted) sum += l;
  return {
    p50: at(0.5),
    p99: at(0.99),
    max: sorted[sorted.length - 1]!,
    mean: sum / sorted.length,
  };
}

/** A one-line description of a thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`.slice(0, 300);
  }
  return String(error).slice(0, 300);
}

/** Resolves after `ms` milliseconds. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
