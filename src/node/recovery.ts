/**
 * Recovery of a lone survivor after a lost quorum (`--force-new-cluster`):
 * the log is cut back to what this node applied and the membership becomes
 * this node alone. Entries it had not applied are lost, and so may be writes
 * other nodes acknowledged.
 *
 * @module
 */
import type { NodeIdentity } from "../cluster/identity.ts";
import { type LogIndex, nodeId, type Term } from "../raft/types.ts";
import type { KvReplicatedState } from "../services/replicated_state.ts";
import type { SqliteLogStore } from "../storage/sqlite_log_store.ts";

/** Makes this node a one-node cluster at its applied index (before the runner opens the log). */
export function forceNewCluster(
  logStore: SqliteLogStore,
  state: KvReplicatedState,
  identity: NodeIdentity,
  log: (line: string) => void,
): void {
  const applied = state.appliedIndex();
  const term = (applied === 0 ? 0 : logStore.term(applied)) as Term;
  log(
    `WARNING: --force-new-cluster: this node becomes a one-node cluster at applied index ${applied}; ` +
      `entries after it are dropped and writes acknowledged by other nodes may be lost`,
  );
  state.sync();
  logStore.compact({
    index: applied as LogIndex,
    term,
    confState: {
      voters: [nodeId(identity.nodeId)],
      votersOutgoing: [],
      learners: [],
    },
  });
  // Appending right after the applied index truncates everything beyond it.
  const hard = logStore.hardState();
  logStore.save({
    hardState: { term: hard.term, vote: null, commit: applied as LogIndex },
    entries: [{
      term: hard.term,
      index: (applied + 1) as LogIndex,
      type: "normal",
      data: new Uint8Array(0),
    }],
  });
}
