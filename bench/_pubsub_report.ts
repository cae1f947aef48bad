/**
 * The result of `bench:pubsub`: its JSON shape (`--json`) and the table
 * printed from it, each Aspen row beside JetStream's with the ratio and,
 * for aspen-1, issue 18's aim.
 *
 * @module
 */
import {
  PUBSUB_ROWS,
  type PubsubMeasurement,
  type PubsubRow,
} from "./_pubsub_load.ts";

/** Version of the JSON result format. */
export const PUBSUB_RESULT_FORMAT_VERSION = 1;

/** Every target, in the order they run. */
export const PUBSUB_TARGETS = ["jetstream", "aspen-1", "aspen-3"] as const;
/** A target name. */
export type PubsubTarget = typeof PUBSUB_TARGETS[number];

/** Issue 18's aim for aspen-1, as a least ratio to JetStream per row. */
export const AIMS: Readonly<Record<PubsubRow, number>> = {
  publish: 0.25,
  "publish-batch": 1,
  consume: 0.5,
};

/** The durability note printed under the table. */
export const DURABILITY_NOTE =
  "JetStream does not fsync each message by default (file store, sync_interval 2 min: an acknowledged message may be in the page cache only); Aspen fsyncs its log before it answers (one fsync per batch of Raft entries, on a majority for aspen-3)";

/** How one target went. */
export interface PubsubTargetResult {
  readonly target: PubsubTarget;
  readonly status: "ran" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  readonly reason: string | null;
  /** The server's version (JetStream) or null. */
  readonly version: string | null;
  /** What one call of each row is on this target, or null when it did not start. */
  readonly calls: Readonly<Record<PubsubRow, string>> | null;
  readonly rows: readonly PubsubMeasurement[];
  /** When a row failed: the last stderr lines of the target's processes. */
  readonly processLogs?: readonly { name: string; stderrTail: string }[];
}

/** The whole result (`--json`). */
export interface PubsubCompareResult {
  readonly formatVersion: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Record<string, unknown>;
  readonly options: Record<string, unknown>;
  readonly targets: readonly PubsubTargetResult[];
  readonly notes: readonly string[];
}

/** The table's columns, in order. */
export const PUBSUB_TABLE_COLUMNS = [
  "row",
  "target",
  "messages",
  "msgs/s",
  "p50 ms/call",
  "p99 ms/call",
  "errors",
  "vs JetStream",
  "aim (aspen-1)",
] as const;

function rowOf(
  targets: readonly PubsubTargetResult[],
  target: PubsubTarget,
  row: PubsubRow,
): PubsubMeasurement | null {
  const result = targets.find((t) => t.target === target);
  const measured = result?.rows.find((r) => r.row === row);
  return measured === undefined || measured.messages === 0 ? null : measured;
}

/**
 * The ratio of `target`'s rate to JetStream's on `row`, or null when either
 * has no number.
 */
export function ratioToJetStream(
  targets: readonly PubsubTargetResult[],
  target: PubsubTarget,
  row: PubsubRow,
): number | null {
  const own = rowOf(targets, target, row);
  const reference = rowOf(targets, "jetstream", row);
  if (own === null || reference === null) return null;
  if (reference.messagesPerSecond <= 0) return null;
  return own.messagesPerSecond / reference.messagesPerSecond;
}

function milliseconds(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : "-";
}

/** The Markdown table: one line per (row, target) that ran or failed. */
export function formatPubsubTable(
  targets: readonly PubsubTargetResult[],
): string {
  const lines = [
    `| ${PUBSUB_TABLE_COLUMNS.join(" | ")} |`,
    `|${PUBSUB_TABLE_COLUMNS.map(() => "---").join("|")}|`,
  ];
  for (const row of PUBSUB_ROWS) {
    for (const target of PUBSUB_TARGETS) {
      const result = targets.find((t) => t.target === target);
      const m = result?.rows.find((r) => r.row === row);
      if (result === undefined || m === undefined) continue;
      const ratio = target === "jetstream"
        ? null
        : ratioToJetStream(targets, target, row);
      const ratioText = target === "jetstream"
        ? "1.00x"
        : ratio === null
        ? "-"
        : `${ratio.toFixed(2)}x`;
      const aim = target !== "aspen-1"
        ? ""
        : `>= ${AIMS[row].toFixed(2)}x: ${
          ratio === null
            ? "not measured"
            : ratio >= AIMS[row]
            ? "met"
            : "missed"
        }`;
      lines.push(
        `| ${
          [
            row,
            target,
            String(m.messages),
            m.messagesPerSecond.toFixed(0),
            milliseconds(m.latencyMs.p50),
            milliseconds(m.latencyMs.p99),
            String(m.errors),
            ratioText,
            aim,
          ].join(" | ")
        } |`,
      );
    }
  }
  return lines.join("\n");
}

/** What one call is, per target and row, and why a target did not run. */
export function formatCalls(targets: readonly PubsubTargetResult[]): string[] {
  const lines: string[] = [];
  for (const t of targets) {
    if (t.status === "skipped") {
      lines.push(`skipped ${t.target}: ${t.reason}`);
      continue;
    }
    lines.push(
      `${t.status.padEnd(7)} ${t.target}${
        t.version === null ? "" : ` (nats-server ${t.version})`
      }${t.reason === null ? "" : `: ${t.reason}`}`,
    );
    if (t.calls === null) continue;
    for (const row of PUBSUB_ROWS) lines.push(`  ${row}: ${t.calls[row]}`);
  }
  return lines;
}
