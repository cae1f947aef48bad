/**
 * The time part of a schedule: its validated, normalized form and the one
 * function that builds it from user input, {@linkcode parseSchedule}. Pure: no
 * clock, no randomness. The rest of a schedule (`id`, `job`) is the jobs
 * service's; this module refuses any field it does not know, so the caller
 * passes only the time fields (listed in {@linkcode SCHEDULE_TIME_FIELDS}).
 *
 * @module
 */
import { Cron } from "croner";

/** Bounds on a schedule's time fields (units in the names). */
export const SCHEDULE_TIME_LIMITS = {
  /** Shortest `everyMs`, ms (1 s). */
  everyMsMin: 1_000,
  /** Longest `everyMs`, ms (366 days). */
  everyMsMax: 366 * 86_400_000,
  /** Longest cron pattern, in characters. */
  cronLengthMax: 256,
  /** Longest `catchupWindowMs`, ms (30 days). */
  catchupWindowMsMax: 30 * 86_400_000,
  /** Longest `jitterMs`, ms (1 hour). */
  jitterMsMax: 3_600_000,
  /** Largest `limit` (slots the schedule takes). */
  limitMax: 1_000_000_000,
  /** Longest timezone name, in characters. */
  timezoneLengthMax: 64,
} as const;

/** Defaults of the optional time fields. */
export const SCHEDULE_TIME_DEFAULTS = {
  timezone: "UTC",
  overlap: "skip",
  catchupWindowMs: 60_000,
  jitterMs: 0,
} as const;

/** The time fields a spec may carry; any other field is refused. */
export const SCHEDULE_TIME_FIELDS = [
  "cron",
  "everyMs",
  "timezone",
  "overlap",
  "catchupWindowMs",
  "jitterMs",
  "startAtMs",
  "endAtMs",
  "limit",
  "anchorMs",
] as const;

/** A time field's name (or `spec` for the whole input). */
export type ScheduleTimeField = typeof SCHEDULE_TIME_FIELDS[number] | "spec";

/** What happens to a slot when the previous slot's job is unfinished. */
export type ScheduleOverlap = "skip" | "buffer-one" | "allow-all";

const OVERLAPS: readonly ScheduleOverlap[] = [
  "skip",
  "buffer-one",
  "allow-all",
];

/** A schedule's time fields as the user gives them (all times ms since the epoch). */
export interface ScheduleTimeSpec {
  /** A cron pattern of 5 fields, or 6 with seconds first. */
  readonly cron?: string;
  /** The period of an interval schedule, ms (1 s to 366 days). */
  readonly everyMs?: number;
  /** IANA zone cron fields are read in (default `UTC`); no effect on `everyMs`. */
  readonly timezone?: string;
  /** Overlap policy (default `skip`). */
  readonly overlap?: ScheduleOverlap;
  /** How old a due slot may be and still fire `late`, ms (default 60,000; ≤ 30 days). */
  readonly catchupWindowMs?: number;
  /** Each job is delayed by a leader-drawn [0, jitterMs], ms (default 0; ≤ 1 h). */
  readonly jitterMs?: number;
  /** No slot before this instant (inclusive), ms. */
  readonly startAtMs?: number;
  /** No slot after this instant (inclusive), ms. */
  readonly endAtMs?: number;
  /** Slots the schedule takes at most (missed slots and backfills do not count). */
  readonly limit?: number;
  /** `everyMs` only: slots are `anchorMs + k·everyMs` (default `startAtMs`, else 0). */
  readonly anchorMs?: number;
}

/** A validated schedule's time part, every default filled in. */
export type ScheduleTime =
  & {
    readonly timezone: string;
    readonly overlap: ScheduleOverlap;
    readonly catchupWindowMs: number;
    readonly jitterMs: number;
    readonly startAtMs: number | null;
    readonly endAtMs: number | null;
    readonly limit: number | null;
  }
  & (
    | { readonly kind: "cron"; readonly cron: string }
    | {
      readonly kind: "every";
      readonly everyMs: number;
      /** Slots are `anchorMs + k·everyMs` for whole k. */
      readonly anchorMs: number;
    }
  );

/** A refused schedule: the field at fault and why. Nothing was created. */
export class ScheduleSpecError extends Error {
  /** Always `ScheduleSpecError`. */
  override name = "ScheduleSpecError";
  /** The protocol error code: a bad value, or a bound exceeded. */
  readonly code: "invalid" | "limitExceeded";
  /** The field at fault (`spec` when it is the input as a whole). */
  readonly field: ScheduleTimeField | "from" | "to";

  /** A refusal of `field`. */
  constructor(
    field: ScheduleTimeField | "from" | "to",
    message: string,
    options?: ErrorOptions & { code?: "invalid" | "limitExceeded" },
  ) {
    super(message, options);
    this.field = field;
    this.code = options?.code ?? "invalid";
  }
}

/**
 * The croner options every node steps cron patterns with, pinned so an
 * upgrade of croner's defaults cannot make nodes disagree: 5 or 6 fields,
 * Vixie day-of-month OR day-of-week, Sunday 0, strict ranges.
 */
export function cronerOptions(timezone: string) {
  return {
    timezone,
    paused: true,
    mode: "5-or-6-parts",
    domAndDow: false,
    alternativeWeekdays: false,
    sloppyRanges: false,
  } as const;
}

/**
 * Validates a schedule's time fields and fills in the defaults.
 *
 * @param spec The user's time fields (an object; other fields are refused).
 * @returns The normalized schedule time, timezone canonical (`europe/berlin` → `Europe/Berlin`).
 * @throws {ScheduleSpecError} Naming the first field at fault.
 * @example
 * ```ts
 * import { parseSchedule } from "./schedule_spec.ts";
 * const schedule = parseSchedule({ cron: "*\/15 * * * *" });
 * if (schedule.timezone !== "UTC") throw new Error("UTC is the default");
 * ```
 */
export function parseSchedule(spec: unknown): ScheduleTime {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
    throw new ScheduleSpecError(
      "spec",
      "Cannot parse schedule as it is not an object",
    );
  }
  const record = spec as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!(SCHEDULE_TIME_FIELDS as readonly string[]).includes(key)) {
      throw new ScheduleSpecError(
        "spec",
        `Cannot parse schedule as field '${key}' is unknown`,
      );
    }
  }
  const hasCron = record.cron !== undefined;
  const hasEvery = record.everyMs !== undefined;
  if (hasCron === hasEvery) {
    throw new ScheduleSpecError(
      hasCron ? "everyMs" : "cron",
      "Cannot parse schedule as it needs exactly one of 'cron' and 'everyMs'",
    );
  }
  const timezone = parseTimezone(record.timezone);
  const common = {
    timezone,
    overlap: parseOverlap(record.overlap),
    catchupWindowMs: parseInteger(
      record,
      "catchupWindowMs",
      0,
      SCHEDULE_TIME_LIMITS.catchupWindowMsMax,
    ) ?? SCHEDULE_TIME_DEFAULTS.catchupWindowMs,
    jitterMs:
      parseInteger(record, "jitterMs", 0, SCHEDULE_TIME_LIMITS.jitterMsMax) ??
        SCHEDULE_TIME_DEFAULTS.jitterMs,
    startAtMs: parseInteger(record, "startAtMs", 0, Number.MAX_SAFE_INTEGER),
    endAtMs: parseInteger(record, "endAtMs", 0, Number.MAX_SAFE_INTEGER),
    limit: parseInteger(record, "limit", 1, SCHEDULE_TIME_LIMITS.limitMax),
  };
  if (
    common.startAtMs !== null && common.endAtMs !== null &&
    common.endAtMs < common.startAtMs
  ) {
    throw new ScheduleSpecError(
      "endAtMs",
      `Cannot parse schedule as 'endAtMs' is before 'startAtMs': current value is ${common.endAtMs}`,
    );
  }
  if (hasEvery) {
    const everyMs = parseInteger(
      record,
      "everyMs",
      SCHEDULE_TIME_LIMITS.everyMsMin,
      SCHEDULE_TIME_LIMITS.everyMsMax,
    );
    const anchorMs = parseInteger(
      record,
      "anchorMs",
      0,
      Number.MAX_SAFE_INTEGER,
    );
    if (everyMs === null) throw new Error("unreachable: everyMs is present");
    return {
      kind: "every",
      everyMs,
      anchorMs: anchorMs ?? common.startAtMs ?? 0,
      ...common,
    };
  }
  if (record.anchorMs !== undefined) {
    throw new ScheduleSpecError(
      "anchorMs",
      "Cannot parse schedule as 'anchorMs' applies to 'everyMs' only",
    );
  }
  return {
    kind: "cron",
    cron: parseCron(record.cron, timezone, common.startAtMs),
    ...common,
  };
}

function parseTimezone(value: unknown): string {
  if (value === undefined) return SCHEDULE_TIME_DEFAULTS.timezone;
  if (
    typeof value !== "string" || value.length === 0 ||
    value.length > SCHEDULE_TIME_LIMITS.timezoneLengthMax
  ) {
    throw new ScheduleSpecError(
      "timezone",
      `Cannot parse schedule as 'timezone' must be an IANA zone name of 1 to ${SCHEDULE_TIME_LIMITS.timezoneLengthMax} characters`,
    );
  }
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: value })
      .resolvedOptions().timeZone;
  } catch (error) {
    throw new ScheduleSpecError(
      "timezone",
      `Cannot parse schedule as 'timezone' is not a known IANA zone: current value is '${value}'`,
      { cause: error },
    );
  }
}

function parseOverlap(value: unknown): ScheduleOverlap {
  if (value === undefined) return SCHEDULE_TIME_DEFAULTS.overlap;
  const found = OVERLAPS.find((overlap) => overlap === value);
  if (found === undefined) {
    throw new ScheduleSpecError(
      "overlap",
      `Cannot parse schedule as 'overlap' must be 'skip', 'buffer-one' or 'allow-all': current value is ${
        JSON.stringify(value) ?? String(value)
      }`,
    );
  }
  return found;
}

function parseInteger(
  record: Record<string, unknown>,
  field: ScheduleTimeField,
  min: number,
  max: number,
): number | null {
  const value = record[field];
  if (value === undefined) return null;
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min ||
    value > max
  ) {
    throw new ScheduleSpecError(
      field,
      `Cannot parse schedule as '${field}' must be an integer from ${min} to ${max}: current value is ${
        JSON.stringify(value) ?? String(value)
      }`,
    );
  }
  return value;
}

function parseCron(
  value: unknown,
  timezone: string,
  startAtMs: number | null,
): string {
  if (
    typeof value !== "string" ||
    value.length > SCHEDULE_TIME_LIMITS.cronLengthMax
  ) {
    throw new ScheduleSpecError(
      "cron",
      `Cannot parse schedule as 'cron' must be a string of at most ${SCHEDULE_TIME_LIMITS.cronLengthMax} characters`,
    );
  }
  // Nicknames (`@daily`) and 7-field patterns are refused: the fields are counted here,
  // not left to croner's mode, so the rule is ours.
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new ScheduleSpecError(
      "cron",
      `Cannot parse schedule as 'cron' must have 5 fields, or 6 with seconds first: current value is '${value}' with ${fields.length}`,
    );
  }
  const pattern = fields.join(" ");
  let cron: Cron;
  try {
    cron = new Cron(pattern, cronerOptions(timezone));
  } catch (error) {
    throw new ScheduleSpecError(
      "cron",
      `Cannot parse schedule as 'cron' is not a valid pattern: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  // A pattern that never matches (`0 0 30 2 *`) would never fire: refuse it at add.
  if (cron.nextRun(new Date(Math.max(0, (startAtMs ?? 0) - 1))) === null) {
    throw new ScheduleSpecError(
      "cron",
      `Cannot parse schedule as 'cron' never matches: current value is '${value}'`,
    );
  }
  return pattern;
}
