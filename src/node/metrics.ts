/**
 * Prometheus text exposition of a node's Raft and storage counters.
 *
 * @module
 */
import type { RaftRunner } from "./raft_runner.ts";
import { TRANSPORT_BYTES } from "../transport/stream_channel.ts";

/** Renders the runner's state and counters as Prometheus text (version 0.0.4). */
export function renderMetrics(runner: RaftRunner): string {
  const s = runner.status();
  const m = runner.metrics;
  const lines: string[] = [];
  const gauge = (name: string, help: string, value: number) =>
    lines.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} gauge`,
      `${name} ${value}`,
    );
  const counter = (name: string, help: string, value: number) =>
    lines.push(
      `# HELP ${name} ${help}`,
      `# TYPE ${name} counter`,
      `${name} ${value}`,
    );
  gauge("aspen_raft_term", "Current Raft term.", s.term);
  gauge(
    "aspen_raft_is_leader",
    "1 when this node leads.",
    s.role === "leader" ? 1 : 0,
  );
  gauge(
    "aspen_raft_has_leader",
    "1 when this node knows a leader.",
    s.leader === null ? 0 : 1,
  );
  gauge("aspen_raft_commit_index", "Highest committed log index.", s.commit);
  gauge("aspen_raft_applied_index", "Highest applied log index.", s.applied);
  gauge(
    "aspen_raft_snapshot_index",
    "Index of the latest snapshot.",
    s.snapshotIndex,
  );
  gauge(
    "aspen_raft_voters",
    "Voters in the current configuration.",
    s.conf.voters.length,
  );
  counter(
    "aspen_raft_proposals_total",
    "Entries proposed on this node.",
    m.proposals,
  );
  counter(
    "aspen_raft_ready_batches_total",
    "Ready batches handled.",
    m.readyBatches,
  );
  counter(
    "aspen_raft_entries_persisted_total",
    "Entries written to the log.",
    m.entriesPersisted,
  );
  counter(
    "aspen_raft_entries_applied_total",
    "Entries applied to the state.",
    m.entriesApplied,
  );
  counter(
    "aspen_raft_snapshots_taken_total",
    "Snapshots taken.",
    m.snapshotsTaken,
  );
  counter(
    "aspen_raft_snapshots_installed_total",
    "Snapshots installed from a leader.",
    m.snapshotsInstalled,
  );
  counter(
    "aspen_transport_bytes_sent_total",
    "Bytes this process wrote to peer streams.",
    TRANSPORT_BYTES.sent,
  );
  counter(
    "aspen_transport_bytes_received_total",
    "Bytes this process read from peer streams.",
    TRANSPORT_BYTES.received,
  );
  lines.push(
    "# HELP aspen_peer_rtt_ms Last heartbeat round trip per peer (includes the peer's handling).",
  );
  lines.push("# TYPE aspen_peer_rtt_ms gauge");
  for (
    const [peer, ms] of [...m.peerRttMs].sort(([a], [b]) => a.localeCompare(b))
  ) {
    lines.push(
      `aspen_peer_rtt_ms{peer="${peer.slice(0, 10)}"} ${ms.toFixed(3)}`,
    );
  }
  lines.push(
    "# HELP aspen_log_fsync_ms Duration of log writes (one transaction, one fsync), since start.",
    "# TYPE aspen_log_fsync_ms histogram",
    ...m.saveMs.lines("aspen_log_fsync_ms"),
  );
  lines.push(...runner.stages.lines());
  return lines.join("\n") + "\n";
}
