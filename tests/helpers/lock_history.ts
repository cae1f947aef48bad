/**
 * The history of the Jepsen-style lock test (tests/process_lock_test.ts)
 * and its checker. Client processes loop acquire → read `["reg"]` → write
 * it (with `checkFence` in the fenced run) → release, and print one JSON
 * {@linkcode LockEvent} per line; the test collects them.
 *
 * A token is the grant's versionstamp, so it carries the revision it was
 * granted at, and an accepted write's versionstamp carries the revision it
 * applied at: no clock is needed. A write accepted at revision R with token
 * T is **stale** when some grant of the same name at a revision below R
 * has a token above T (the lock had moved on when the write applied).
 *
 * @module
 */

/** One line a lock client prints. */
export type LockEvent =
  | {
    readonly type: "grant";
    readonly client: number;
    readonly name: string;
    readonly lease: string;
    readonly token: string;
  }
  | {
    readonly type: "write";
    readonly client: number;
    readonly name: string;
    readonly token: string;
    /**
     * accepted: committed; refused: a check failed (409 `checkFailed`);
     * unknown: no answer or `outcomeUnknown`; failed: refused for another
     * reason (unavailable, no leader), nothing applied.
     */
    readonly outcome: "accepted" | "refused" | "unknown" | "failed";
    /** The commit's versionstamp (accepted writes only). */
    readonly versionstamp?: string;
  }
  | {
    readonly type: "error";
    readonly client: number;
    readonly message: string;
  };

/** What {@linkcode checkLockHistory} found. */
export interface LockHistoryReport {
  readonly grants: number;
  readonly accepted: number;
  readonly refused: number;
  readonly unknown: number;
  readonly failed: number;
  /** Accepted writes whose token had stopped holding, one line each. */
  readonly stale: readonly string[];
}

/** The revision of a token or versionstamp (its first 16 hex digits). */
export function revisionOf(stamp: string): number {
  if (!/^[0-9a-f]{20}$/.test(stamp)) {
    throw new TypeError(
      `Cannot read '${stamp}' as a token or versionstamp: expected 20 lowercase hex digits`,
    );
  }
  return Number.parseInt(stamp.slice(0, 16), 16);
}

/**
 * Checks a lock history: counts grants and write outcomes, and lists every
 * accepted write that carries a token older than a grant made (of the same
 * name) before the write's revision.
 *
 * @throws {TypeError} For an accepted write without a versionstamp.
 */
export function checkLockHistory(
  events: readonly LockEvent[],
): LockHistoryReport {
  const grants = new Map<string, string[]>();
  for (const event of events) {
    if (event.type !== "grant") continue;
    const tokens = grants.get(event.name) ?? [];
    tokens.push(event.token);
    grants.set(event.name, tokens);
  }
  for (const tokens of grants.values()) tokens.sort();
  let accepted = 0;
  let refused = 0;
  let unknown = 0;
  let failed = 0;
  const stale: string[] = [];
  for (const event of events) {
    if (event.type !== "write") continue;
    if (event.outcome === "refused") refused++;
    if (event.outcome === "unknown") unknown++;
    if (event.outcome === "failed") failed++;
    if (event.outcome !== "accepted") continue;
    accepted++;
    if (event.versionstamp === undefined) {
      throw new TypeError(
        `Cannot check client ${event.client}'s accepted write of token ${event.token}: it has no versionstamp`,
      );
    }
    const revision = revisionOf(event.versionstamp);
    const newer = (grants.get(event.name) ?? []).find((token) =>
      token > event.token && revisionOf(token) < revision
    );
    if (newer !== undefined) {
      stale.push(
        `client ${event.client} wrote '${event.name}' at revision ${revision} with token ${event.token}, but token ${newer} was granted at revision ${
          revisionOf(newer)
        }`,
      );
    }
  }
  return {
    grants: events.filter((event) => event.type === "grant").length,
    accepted,
    refused,
    unknown,
    failed,
    stale,
  };
}

/**
 * Parses the lines a lock client printed; lines that are not events (logs)
 * are skipped.
 */
export function parseLockEvents(lines: readonly string[]): LockEvent[] {
  const events: LockEvent[] = [];
  for (const line of lines) {
    if (!line.startsWith("{")) continue;
    try {
      const event = JSON.parse(line) as LockEvent;
      if (
        event.type === "grant" || event.type === "write" ||
        event.type === "error"
      ) {
        events.push(event);
      }
    } catch {
      // A line cut by a kill: not an event.
    }
  }
  return events;
}
