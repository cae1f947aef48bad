/**
 * The node's `/v1/cluster/status` answer: Raft's view (role, term, indexes,
 * configuration, the leader's view of each member's progress and contact)
 * joined with the member directory's names and URLs.
 *
 * @module
 */
import type { MemberDirectory } from "../cluster/member_directory.ts";
import type { ClusterStatus, HealthStatus } from "../protocol/cluster.ts";
import type { NodeId } from "../raft/types.ts";
import type { RaftRunner } from "./raft_runner.ts";

/** This node's status as the cluster status page shows it. */
export function clusterStatus(
  id: NodeId,
  clusterId: string,
  runner: RaftRunner,
  directory: MemberDirectory,
): ClusterStatus {
  const s = runner.status();
  const members = [
    ...s.conf.voters.map((id) => ({ id, role: "voter" as const })),
    ...s.conf.learners.map((id) => ({ id, role: "learner" as const })),
  ];
  return {
    clusterId,
    nodeId: id,
    role: s.role,
    term: s.term,
    leader: s.leader,
    leaderHttpUrl: directory.httpUrl(s.leader),
    commitIndex: s.commit,
    appliedIndex: s.applied,
    snapshotIndex: s.snapshotIndex,
    joint: s.conf.votersOutgoing.length > 0,
    members: members.map(({ id: member, role }) => {
      const match = s.progress?.get(member)?.match ?? null;
      // Health as the leader sees it; a follower does not know.
      const contact = s.role !== "leader"
        ? { reachable: null, lastContactMs: null }
        : member === id
        ? { reachable: true, lastContactMs: 0 }
        : runner.peerContact(member);
      return {
        id: member,
        role,
        match,
        lag: match === null ? null : Math.max(0, s.commit - match),
        ...contact,
        name: directory.get(member)?.name ?? null,
        httpUrl: directory.httpUrl(member),
      };
    }),
  };
}

/** `/health`: healthy only when a leader is known and storage is writable. */
export function nodeHealth(runner: RaftRunner): HealthStatus {
  const storage = runner.storageError();
  if (storage !== null) {
    return { ok: false, reason: `storage failed: ${storage.message}` };
  }
  if (runner.status().leader === null) {
    return { ok: false, reason: "no leader known" };
  }
  return { ok: true, reason: null };
}
