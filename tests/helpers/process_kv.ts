/**
 * Client-side helpers of the process tests: a bounded writer that records
 * every write's outcome (acknowledged, definitely refused, unknown), and
 * reads of one node's own replica.
 *
 * @module
 */
import {
  connect,
  type KvKeyPart,
  TimeoutError,
  UnavailableError,
} from "../../mod.ts";
import { waitFor } from "./wait_for.ts";

/** What became of one write. */
export type WriteOutcome =
  | { readonly kind: "acked"; readonly versionstamp: string }
  /** The cluster said nothing happened (503 on every attempt). */
  | { readonly kind: "refused"; readonly error: string }
  /** It may or may not have applied. */
  | { readonly kind: "unknown"; readonly error: string };

/** Classifies a write's error: only "nothing happened" is a definite refusal. */
export function writeErrorOutcome(error: unknown): WriteOutcome {
  const text = `${(error as Error)?.name}: ${(error as Error)?.message}`;
  if (error instanceof TimeoutError) return { kind: "unknown", error: text };
  if (error instanceof UnavailableError) {
    return { kind: "refused", error: text };
  }
  return { kind: "unknown", error: text };
}

/** Options of {@linkcode startWriters}. */
export interface WritersOptions {
  /** Node URLs the writers' client may use. */
  readonly urls: readonly string[];
  /** First part of every key: keys are `[prefix, n]`. */
  readonly prefix: string;
  /** Writers in flight at once. */
  readonly concurrency: number;
  /** Most writes in total. */
  readonly writesMax: number;
  /** Client deadline of one request, ms. */
  readonly timeoutMs?: number;
  /** Bearer token. */
  readonly token?: string;
}

/** Writers running in the background; {@linkcode Writers.stop} ends them. */
export interface Writers {
  /** Outcome of every finished write, by n. */
  readonly outcomes: ReadonlyMap<number, WriteOutcome>;
  /** Number of acknowledged writes so far. */
  acked(): number;
  /** Waits until `count` writes are acknowledged, or throws after `timeoutMs`. */
  waitForAcked(count: number, timeoutMs: number): Promise<void>;
  /** Stops starting writes and waits for those in flight. */
  stop(): Promise<void>;
}

/** The value every writer stores at `[prefix, n]`. */
export function valueOf(prefix: string, n: number): string {
  return `${prefix}-${n}`;
}

/**
 * Starts `concurrency` writers setting `[prefix, n] = "prefix-n"` for
 * n = 0, 1, 2… (each key once) until stopped or `writesMax` is reached.
 */
export function startWriters(options: WritersOptions): Writers {
  const client = connect(options.urls, {
    token: options.token,
    timeoutMs: options.timeoutMs ?? 8_000,
  });
  const outcomes = new Map<number, WriteOutcome>();
  let ackedCount = 0;
  let next = 0;
  let stopping = false;
  const running = Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (!stopping && next < options.writesMax) {
        const n = next++;
        try {
          const result = await client.kv.set(
            [options.prefix, n],
            valueOf(options.prefix, n),
          );
          outcomes.set(n, { kind: "acked", versionstamp: result.versionstamp });
          ackedCount++;
        } catch (error) {
          outcomes.set(n, writeErrorOutcome(error));
          // A refused write means no leader yet: do not spin.
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    }),
  );
  return {
    outcomes,
    acked: () => ackedCount,
    async waitForAcked(count, timeoutMs) {
      const short = () =>
        `${count} writes acknowledged (only ${ackedCount}): ${
          describeOutcomes(outcomes)
        }`;
      await waitFor(short, () => {
        if (ackedCount < count && next >= options.writesMax) {
          throw new Error(`Writes ran out before ${short()}`);
        }
        return ackedCount >= count;
      }, { timeoutMs, intervalMs: 20 });
    },
    async stop() {
      stopping = true;
      try {
        await running;
      } finally {
        client.close();
      }
    },
  };
}

/** Counts of each outcome and the first errors, for messages. */
export function describeOutcomes(
  outcomes: ReadonlyMap<number, WriteOutcome>,
): string {
  const counts = { acked: 0, refused: 0, unknown: 0 };
  const errors: string[] = [];
  for (const outcome of outcomes.values()) {
    counts[outcome.kind]++;
    if (outcome.kind !== "acked" && errors.length < 3) {
      errors.push(outcome.error);
    }
  }
  return `${JSON.stringify(counts)} ${errors.join(" | ")}`;
}

/**
 * Every entry under `[prefix]` in the replica of the node at `url`
 * (eventual reads, so the node answers from its own state), as n → value.
 */
export async function readReplica(
  url: string,
  prefix: string,
  token?: string,
): Promise<Map<number, { value: unknown; versionstamp: string }>> {
  using client = connect(url, { token, timeoutMs: 10_000 });
  const entries = new Map<number, { value: unknown; versionstamp: string }>();
  for await (
    const entry of client.kv.list({ prefix: [prefix] }, {
      consistency: "eventual",
      batchSize: 1000,
    })
  ) {
    const part: KvKeyPart | undefined = entry.key[1];
    entries.set(part as number, {
      value: entry.value,
      versionstamp: entry.versionstamp,
    });
  }
  return entries;
}

/**
 * Checks one replica against the writers' outcomes: every acknowledged write
 * is there with its versionstamp, nothing refused is there, nothing unknown
 * holds a wrong value, and no key was invented.
 *
 * @returns The problems found (empty when none).
 */
export function replicaProblems(
  prefix: string,
  outcomes: ReadonlyMap<number, WriteOutcome>,
  replica: ReadonlyMap<number, { value: unknown; versionstamp: string }>,
): string[] {
  const problems: string[] = [];
  for (const [n, outcome] of outcomes) {
    const entry = replica.get(n);
    if (outcome.kind === "acked") {
      if (entry === undefined) problems.push(`acknowledged ${n} is missing`);
      else if (entry.versionstamp !== outcome.versionstamp) {
        problems.push(
          `acknowledged ${n} has versionstamp ${entry.versionstamp}, not ${outcome.versionstamp}`,
        );
      }
    }
    if (outcome.kind === "refused" && entry !== undefined) {
      problems.push(`refused ${n} is present (${outcome.error})`);
    }
    if (entry !== undefined && entry.value !== valueOf(prefix, n)) {
      problems.push(`${n} holds ${JSON.stringify(entry.value)}`);
    }
  }
  for (const n of replica.keys()) {
    if (!outcomes.has(n)) problems.push(`${n} was never written`);
  }
  return problems.slice(0, 20);
}

/** Reads a counter of node `url`'s `/metrics` (null when absent). */
export async function metric(
  url: string,
  name: string,
  token?: string,
): Promise<number | null> {
  const response = await fetch(`${url}/metrics`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(5_000),
  });
  const text = await response.text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? null : Number(line.split(" ")[1]);
}
