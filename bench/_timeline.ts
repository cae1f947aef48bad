/**
 * A per-second record of a long load run: a {@linkcode KvDriver} wrapper
 * that counts every completed operation and every error into the second of
 * the run it ended in, and sorts errors into classes (the client's
 * outcome-unknown timeout apart from everything else), keeping the first
 * message and the times of each class.
 *
 * @module
 */
import { AspenError, TimeoutError } from "../mod.ts";
import { describeError, type KvDriver } from "./_load.ts";

/** The class of an error that is not a failure: a write whose outcome is unknown. */
export const OUTCOME_UNKNOWN = "outcome-unknown";

/** Seconds a run may record (a bound on the buckets kept). */
export const TIMELINE_SECONDS_MAX = 24 * 3600;

/** Times of one error class kept for the report (the first ones). */
const ERROR_TIMES_MAX = 200;

/** What one second of the run recorded. */
export interface SecondRecord {
  /** Seconds since the run started (this bucket covers [t, t + 1)). */
  readonly t: number;
  gets: number;
  puts: number;
  /** Errors whose outcome is unknown (writes that may have applied). */
  outcomeUnknown: number;
  /** Every other error. */
  otherErrors: number;
}

/** One class of errors: an operation and the error's kind. */
export interface ErrorClass {
  /** `outcome-unknown`, or the error's name and code (`UnavailableError/unavailable`). */
  readonly kind: string;
  readonly operation: "get" | "put";
  count: number;
  readonly firstMessage: string;
  /** Seconds since the start of the first errors of the class (at most 200). */
  readonly times: number[];
}

/** The class name of a thrown value. */
export function errorKind(error: unknown): string {
  if (error instanceof TimeoutError && error.outcomeUnknown) {
    return OUTCOME_UNKNOWN;
  }
  if (error instanceof AspenError) return `${error.name}/${error.code}`;
  if (error instanceof Error) return error.name;
  return typeof error;
}

/** Counts a driver's operations and errors per second of the run. */
export class TimelineDriver implements KvDriver {
  readonly #inner: KvDriver;
  readonly #startMs: number;
  readonly #seconds: SecondRecord[] = [];
  readonly #classes = new Map<string, ErrorClass>();

  /**
   * @param inner The driver that does the work.
   * @param startMs The run's start, as `performance.now()`.
   */
  constructor(inner: KvDriver, startMs = performance.now()) {
    this.#inner = inner;
    this.#startMs = startMs;
  }

  /** Seconds since the start, as a fraction. */
  elapsedSeconds(): number {
    return (performance.now() - this.#startMs) / 1000;
  }

  /** The seconds recorded so far, in order, without gaps. */
  seconds(): readonly SecondRecord[] {
    return this.#seconds;
  }

  /** Every error class seen, most frequent first. */
  errorClasses(): ErrorClass[] {
    return [...this.#classes.values()].sort((a, b) => b.count - a.count);
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    try {
      await this.#inner.put(key, value);
    } catch (error) {
      this.#error("put", error);
      throw error;
    }
    this.#second().puts++;
  }

  async get(key: string): Promise<boolean> {
    let found: boolean;
    try {
      found = await this.#inner.get(key);
    } catch (error) {
      this.#error("get", error);
      throw error;
    }
    // The load generator throws for a written key that reads as absent:
    // counted here as an error of its own class.
    if (found) this.#second().gets++;
    else this.#error("get", new Error("written key read as absent"));
    return found;
  }

  cas(): Promise<boolean> {
    return Promise.reject(
      new TypeError("Cannot run 'cas' through the timeline driver"),
    );
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #error(operation: "get" | "put", error: unknown): void {
    const kind = errorKind(error);
    const second = this.#second();
    if (kind === OUTCOME_UNKNOWN) second.outcomeUnknown++;
    else second.otherErrors++;
    const key = `${operation} ${kind}`;
    let entry = this.#classes.get(key);
    if (entry === undefined) {
      entry = {
        kind,
        operation,
        count: 0,
        firstMessage: describeError(error),
        times: [],
      };
      this.#classes.set(key, entry);
    }
    entry.count++;
    if (entry.times.length < ERROR_TIMES_MAX) {
      entry.times.push(Math.round(this.elapsedSeconds() * 1000) / 1000);
    }
  }

  /** The bucket of the current second, creating the ones up to it. */
  #second(): SecondRecord {
    const t = Math.min(
      Math.floor(this.elapsedSeconds()),
      TIMELINE_SECONDS_MAX - 1,
    );
    while (this.#seconds.length <= t) {
      this.#seconds.push({
        t: this.#seconds.length,
        gets: 0,
        puts: 0,
        outcomeUnknown: 0,
        otherErrors: 0,
      });
    }
    return this.#seconds[t]!;
  }
}
