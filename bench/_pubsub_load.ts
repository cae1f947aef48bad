/**
 * The three workloads of `bench:pubsub` (issue 18), the same for every
 * target, and what they measure:
 *
 * - `publish`: {@linkcode PubsubLoadOptions.publishers} publishers share
 *   the `messages`; each sends one message per call and awaits its
 *   acknowledgement before sending the next.
 * - `publish-batch`: the same publishers send `batch` messages per call and
 *   await the whole call (what one call is depends on the target; its
 *   driver says).
 * - `consume`: one consumer fetches up to `batch` messages, acks each
 *   explicitly, and fetches again until `messages` were consumed (from the
 *   `publish` row's topic, which then holds them).
 *
 * A row's rate is its messages over the time from the first call to the
 * last answer; latencies are per call. A call that fails counts as an
 * error and its messages are not counted; a row stops at its first
 * {@linkcode ERRORS_MAX} errors.
 *
 * @module
 */

/** The workloads, in the order they run. */
export const PUBSUB_ROWS = ["publish", "publish-batch", "consume"] as const;
/** One workload. */
export type PubsubRow = typeof PUBSUB_ROWS[number];

/** Errors after which a row gives up. */
export const ERRORS_MAX = 20;

/** A consumer of one target, reading the `publish` row's topic. */
export interface PubsubConsumer {
  /**
   * Fetches up to `batch` messages, acks each explicitly, and resolves how
   * many were consumed (0 when none came within the driver's wait).
   */
  fetchAndAck(batch: number): Promise<number>;
  /** Leaves the group / drops the consumer. */
  close(): Promise<void>;
}

/** What a target offers the workloads. Errors are thrown. */
export interface PubsubDriver {
  /** How each row's calls reach the target, one line per row. */
  readonly calls: Readonly<Record<PubsubRow, string>>;
  /** Creates the topic (stream) of `row` (publish rows only). */
  prepare(row: "publish" | "publish-batch"): Promise<void>;
  /** Publishes `values` to the topic of `row` in one call (one message for `publish`). */
  publish(
    row: "publish" | "publish-batch",
    publisher: number,
    values: readonly Uint8Array[],
  ): Promise<void>;
  /** Opens the consumer of the `publish` row's topic. */
  openConsumer(): Promise<PubsubConsumer>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** The size of a run. */
export interface PubsubLoadOptions {
  readonly messages: number;
  readonly publishers: number;
  readonly batch: number;
  readonly valueBytes: number;
  /** Ms a row may take in all before it stops with an error. */
  readonly rowTimeoutMs: number;
}

/** One row's measurement. */
export interface PubsubMeasurement {
  readonly row: PubsubRow;
  /** Messages acknowledged (publish rows) or consumed and acked (consume). */
  readonly messages: number;
  readonly calls: number;
  readonly elapsedMs: number;
  readonly messagesPerSecond: number;
  /** Per call, ms (NaN without calls). */
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly errors: number;
  readonly firstError: string | null;
}

/** A one-line description of an error. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}`.split("\n")[0]!;
  }
  return String(error);
}

/** The `q`-quantile (0..1) of sorted `values`, NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(
    sorted.length - 1,
    Math.max(0, Math.ceil(q * sorted.length) - 1),
  );
  return sorted[index]!;
}

/** Values of `valueBytes` random bytes, one per message of a call. */
export function makeValues(count: number, valueBytes: number): Uint8Array[] {
  return Array.from(
    { length: count },
    () => crypto.getRandomValues(new Uint8Array(valueBytes)),
  );
}

class RowRecorder {
  readonly latencies: number[] = [];
  messages = 0;
  errors = 0;
  firstError: string | null = null;
  readonly begin = performance.now();

  constructor(readonly row: PubsubRow, readonly deadline: number) {}

  /** Whether the row should stop (too many errors, or out of time). */
  get stopped(): boolean {
    return this.errors >= ERRORS_MAX || performance.now() > this.deadline;
  }

  async call(run: () => Promise<number>): Promise<number> {
    const start = performance.now();
    try {
      const count = await run();
      this.latencies.push(performance.now() - start);
      this.messages += count;
      return count;
    } catch (error) {
      this.errors += 1;
      this.firstError ??= describeError(error);
      return 0;
    }
  }

  finish(): PubsubMeasurement {
    const elapsedMs = performance.now() - this.begin;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const timedOut = performance.now() > this.deadline;
    return {
      row: this.row,
      messages: this.messages,
      calls: this.latencies.length,
      elapsedMs,
      messagesPerSecond: elapsedMs > 0 ? this.messages / (elapsedMs / 1000) : 0,
      latencyMs: { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) },
      errors: this.errors,
      firstError: this.firstError ??
        (timedOut ? `the row took longer than its bound` : null),
    };
  }
}

/**
 * Runs one publish row: the publishers take calls from one shared counter
 * until `messages` were sent, each awaiting its call before the next.
 */
export async function runPublishRow(
  driver: PubsubDriver,
  row: "publish" | "publish-batch",
  options: PubsubLoadOptions,
): Promise<PubsubMeasurement> {
  const perCall = row === "publish" ? 1 : options.batch;
  const values = makeValues(perCall, options.valueBytes);
  await driver.prepare(row);
  const recorder = new RowRecorder(
    row,
    performance.now() + options.rowTimeoutMs,
  );
  let unsent = options.messages;
  const publisher = async (index: number) => {
    while (unsent > 0 && !recorder.stopped) {
      const count = Math.min(perCall, unsent);
      unsent -= count;
      const slice = count === values.length ? values : values.slice(0, count);
      await recorder.call(async () => {
        await driver.publish(row, index, slice);
        return count;
      });
    }
  };
  await Promise.all(
    Array.from({ length: options.publishers }, (_, i) => publisher(i)),
  );
  return recorder.finish();
}

/**
 * Runs the consume row: one consumer fetching `batch` and acking each
 * message, until `messages` were consumed. A fetch that brings nothing
 * counts as an error (the topic should hold them all).
 */
export async function runConsumeRow(
  driver: PubsubDriver,
  options: PubsubLoadOptions,
): Promise<PubsubMeasurement> {
  const consumer = await driver.openConsumer();
  const recorder = new RowRecorder(
    "consume",
    performance.now() + options.rowTimeoutMs,
  );
  try {
    while (recorder.messages < options.messages && !recorder.stopped) {
      const want = Math.min(
        options.batch,
        options.messages - recorder.messages,
      );
      await recorder.call(async () => {
        const count = await consumer.fetchAndAck(want);
        if (count === 0) {
          throw new Error(
            `A fetch brought no message after ${recorder.messages} of ${options.messages}`,
          );
        }
        return count;
      });
    }
    return recorder.finish();
  } finally {
    await consumer.close();
  }
}

/** Runs every row against `driver`; the consume row only after a full `publish` row. */
export async function runPubsubRows(
  driver: PubsubDriver,
  options: PubsubLoadOptions,
  log: (line: string) => void,
): Promise<PubsubMeasurement[]> {
  const rows: PubsubMeasurement[] = [];
  for (const row of ["publish", "publish-batch"] as const) {
    let measured: PubsubMeasurement;
    try {
      measured = await runPublishRow(driver, row, options);
    } catch (error) {
      measured = failedRow(row, error);
    }
    log(lineOf(measured));
    rows.push(measured);
  }
  const published = rows[0]!.messages;
  let consumed: PubsubMeasurement;
  if (published < options.messages) {
    consumed = failedRow(
      "consume",
      new Error(
        `The publish row acknowledged ${published} of ${options.messages} messages`,
      ),
    );
  } else {
    try {
      consumed = await runConsumeRow(driver, options);
    } catch (error) {
      consumed = failedRow("consume", error);
    }
  }
  log(lineOf(consumed));
  rows.push(consumed);
  return rows;
}

/** A row that could not run: no message, the error as its first. */
export function failedRow(row: PubsubRow, error: unknown): PubsubMeasurement {
  return {
    row,
    messages: 0,
    calls: 0,
    elapsedMs: 0,
    messagesPerSecond: 0,
    latencyMs: { p50: NaN, p99: NaN },
    errors: 1,
    firstError: describeError(error),
  };
}

function lineOf(m: PubsubMeasurement): string {
  return `${m.row}: ${m.messages} messages in ${
    (m.elapsedMs / 1000).toFixed(2)
  } s, ${m.messagesPerSecond.toFixed(0)} msgs/s, p50 ${
    m.latencyMs.p50.toFixed(2)
  } ms, p99 ${m.latencyMs.p99.toFixed(2)} ms per call, ${m.errors} errors${
    m.firstError === null ? "" : ` (${m.firstError})`
  }`;
}
