/**
 * The comparison's result: its JSON shape (written to `bench/results/`) and
 * the one table printed from it, with each target's throughput and p99
 * relative to the Aspen cluster of the same size.
 *
 * @module
 */
import type { FailoverMeasurement } from "./_failover.ts";
import type { CellMeasurement } from "./_load.ts";

/** Version of the JSON result format. */
export const RESULT_FORMAT_VERSION = 1;

/** Every target the comparison knows, in the order they run. */
export const TARGETS = [
  "null-http",
  "aspen-1",
  "aspen-3",
  "raw-1",
  "raw-3",
  "etcd-1",
  "etcd-3",
  "denokv-local",
  "kvconnect-3",
] as const;
/** A target name. */
export type TargetName = typeof TARGETS[number];

/** How one target went. */
export interface TargetResult {
  readonly target: TargetName;
  readonly status: "ran" | "skipped" | "failed";
  /** Why it was skipped or failed. */
  readonly reason: string | null;
  /** How the load generator reached it. */
  readonly driver: string;
  /** Ms from starting the target's processes to a ready leader. */
  readonly startMs: number | null;
  readonly cells: readonly CellMeasurement[];
  /** When a cell had errors: the last stderr lines of each of the target's processes. */
  readonly processLogs?: readonly { name: string; stderrTail: string }[];
}

/** The JSON result file. */
export interface CompareResult {
  readonly formatVersion: number;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Record<string, unknown>;
  readonly options: Record<string, unknown>;
  readonly targets: readonly TargetResult[];
  readonly failover: FailoverMeasurement | null;
  readonly failoverSkippedReason: string | null;
  /**
   * When coordination cells ran: how each side makes one batched keep-alive
   * call (each cell's `unit` says what its rate counts).
   */
  readonly coordination?: {
    readonly keepAliveCall: { readonly aspen: string; readonly etcd: string };
  };
}

/** The Aspen target a target is compared with (same number of nodes). */
export function referenceOf(
  target: TargetName,
  ran: ReadonlySet<TargetName>,
): TargetName | null {
  const same: TargetName = target.endsWith("-3") ? "aspen-3" : "aspen-1";
  const other: TargetName = same === "aspen-3" ? "aspen-1" : "aspen-3";
  if (ran.has(same)) return same;
  return ran.has(other) ? other : null;
}

/** The table's header columns. */
export const TABLE_COLUMNS = [
  "workload",
  "clients",
  "target",
  "ops/s",
  "p50 ms",
  "p99 ms",
  "max ms",
  "errors",
  "conflicts",
  "ops/s vs aspen",
  "p99 vs aspen",
] as const;

/**
 * Renders every KV cell of every target that ran as one Markdown table (the
 * coordination cells have {@linkcode formatCoordinationTable}).
 */
export function formatTable(targets: readonly TargetResult[]): string {
  const ran = new Set(
    targets.filter((t) => t.cells.length > 0).map((t) => t.target),
  );
  const cellOf = (target: TargetName, workload: string, clients: number) =>
    targets.find((t) => t.target === target)?.cells.find((c) =>
      c.workload === workload && c.clients === clients
    );
  const keys: { workload: string; clients: number }[] = [];
  for (const t of targets) {
    for (const c of t.cells.filter((c) => c.unit === undefined)) {
      if (
        !keys.some((k) => k.workload === c.workload && k.clients === c.clients)
      ) {
        keys.push({ workload: c.workload, clients: c.clients });
      }
    }
  }
  const rows: string[][] = [];
  for (const { workload, clients } of keys) {
    for (const t of targets) {
      const cell = cellOf(t.target, workload, clients);
      if (cell === undefined) continue;
      const referenceName = referenceOf(t.target, ran);
      const reference = referenceName === null
        ? undefined
        : cellOf(referenceName, workload, clients);
      const label = referenceName === null ? "" : ` (${referenceName})`;
      rows.push([
        workload,
        String(clients),
        t.target,
        fixed(cell.throughputPerSecond, 0),
        fixed(cell.latencyMs.p50, 2),
        fixed(cell.latencyMs.p99, 2),
        fixed(cell.latencyMs.max, 1),
        String(cell.errors),
        workload === "cas" ? String(cell.conflicts) : "-",
        labelled(
          ratio(cell.throughputPerSecond, reference?.throughputPerSecond),
          label,
        ),
        labelled(ratio(cell.latencyMs.p99, reference?.latencyMs.p99), label),
      ]);
    }
  }
  return markdownTable([...TABLE_COLUMNS], rows);
}

/** The coordination table's header columns. */
export const COORDINATION_COLUMNS = [
  "cell",
  "clients",
  "target",
  "per s",
  "calls/s",
  "p50 ms",
  "p99 ms",
  "errors",
  "violations",
  "per s vs aspen",
  "p99 vs aspen",
] as const;

/**
 * Renders the coordination cells (`bench/_coordination.ts`) as one Markdown
 * table: "per s" counts the cell's unit (pairs, leases renewed), latencies
 * are per call, ratios are against the Aspen of the same size; then one
 * line per cell with what the unit is. Empty when no such cell ran.
 */
export function formatCoordinationTable(
  targets: readonly TargetResult[],
): string {
  const ran = new Set(
    targets.filter((t) => t.cells.length > 0).map((t) => t.target),
  );
  const cellOf = (target: TargetName, workload: string, clients: number) =>
    targets.find((t) => t.target === target)?.cells.find((c) =>
      c.workload === workload && c.clients === clients && c.unit !== undefined
    );
  const keys: { workload: string; clients: number; unit: string }[] = [];
  for (const t of targets) {
    for (const c of t.cells) {
      if (c.unit === undefined) continue;
      const known = keys.find((k) =>
        k.workload === c.workload && k.clients === c.clients
      );
      if (known === undefined) {
        keys.push({ workload: c.workload, clients: c.clients, unit: c.unit });
      } else if (known.unit === "") known.unit = c.unit;
    }
  }
  if (keys.length === 0) return "";
  const rows: string[][] = [];
  for (const { workload, clients } of keys) {
    for (const t of targets) {
      const cell = cellOf(t.target, workload, clients);
      if (cell === undefined) continue;
      const referenceName = referenceOf(t.target, ran);
      const reference = referenceName === null
        ? undefined
        : cellOf(referenceName, workload, clients);
      const label = referenceName === null ? "" : ` (${referenceName})`;
      rows.push([
        workload,
        String(clients),
        t.target,
        fixed(cell.throughputPerSecond, 0),
        fixed(cell.callsPerSecond ?? NaN, 0),
        fixed(cell.latencyMs.p50, 2),
        fixed(cell.latencyMs.p99, 2),
        String(cell.errors),
        String(cell.violations ?? 0),
        labelled(
          ratio(cell.throughputPerSecond, reference?.throughputPerSecond),
          label,
        ),
        labelled(ratio(cell.latencyMs.p99, reference?.latencyMs.p99), label),
      ]);
    }
  }
  const units = keys.map((k) =>
    `- ${k.workload} x${k.clients}: per s = ${k.unit || "(did not run)"}`
  );
  const resends = targets.flatMap((t) =>
    t.cells.filter((c) => (c.resends ?? 0) > 0).map((c) =>
      `- ${t.target} ${c.workload} x${c.clients}: ${c.resends} keep-alive requests sent again for ids a streamed reply left unanswered (inside the calls' latency)`
    )
  );
  return [
    markdownTable([...COORDINATION_COLUMNS], rows),
    "",
    ...units,
    ...resends,
  ].join(
    "\n",
  );
}

/**
 * One line per coordination cell where both an Aspen and an etcd cluster of
 * the same size ran: Aspen's rate over etcd's (the aim is ≥ 1×).
 */
export function coordinationRatios(targets: readonly TargetResult[]): string[] {
  const lines: string[] = [];
  for (const size of ["1", "3"]) {
    const aspen = targets.find((t) => t.target === `aspen-${size}`);
    const etcd = targets.find((t) => t.target === `etcd-${size}`);
    if (aspen === undefined || etcd === undefined) continue;
    for (const a of aspen.cells) {
      if (a.unit === undefined) continue;
      const e = etcd.cells.find((c) =>
        c.workload === a.workload && c.clients === a.clients
      );
      if (e === undefined || a.operations === 0 || e.operations === 0) {
        continue;
      }
      lines.push(
        `${a.workload} x${a.clients}: aspen-${size} ${
          fixed(a.throughputPerSecond, 0)
        } / etcd-${size} ${fixed(e.throughputPerSecond, 0)} per s = ${
          ratio(a.throughputPerSecond, e.throughputPerSecond)
        }`,
      );
    }
  }
  return lines;
}

/** A Markdown table with aligned columns. */
export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    line(header),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...rows.map(line),
  ].join("\n");
}

function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "-";
}

function labelled(ratio: string, label: string): string {
  return ratio === "-" ? ratio : `${ratio}${label}`;
}

function ratio(value: number, reference: number | undefined): string {
  if (
    reference === undefined ||
    !Number.isFinite(value) || !Number.isFinite(reference) || reference === 0
  ) {
    return "-";
  }
  return `${(value / reference).toFixed(2)}x`;
}
