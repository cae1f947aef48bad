/**
 * Cluster-wide safety invariants, checked incrementally after every step of
 * the simulation. They look only at what nodes persist, send, report and
 * apply, never at the core's testing knobs, so a planted bug must show up as
 * a broken invariant on its own.
 *
 * @module
 */
import { decodeConfState } from "../raft/confchange.ts";
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  NodeId,
  Role,
  Term,
} from "../raft/types.ts";

const decoder = new TextDecoder();
const fingerprints = new WeakMap<Uint8Array, string>();

/** Identity of an entry's content (type and data). */
export function entryFingerprint(entry: Entry): string {
  let text = fingerprints.get(entry.data);
  if (text === undefined) {
    text = decoder.decode(entry.data);
    fingerprints.set(entry.data, text);
  }
  return entry.type === "normal" ? text : `${entry.type}|${text}`;
}

interface CommittedEntry {
  readonly term: Term;
  readonly fingerprint: string;
  /** Lowest term of a node that reported it committed. */
  commitTerm: Term;
  /** The configuration of the first leader seen committing it, if a leader was. */
  committedBy: string | null;
}

/** Node count up to which quorum intersection is checked by enumeration. */
const intersectionNodesMax = 16;

function isQuorum(conf: ConfState, members: ReadonlySet<NodeId>): boolean {
  const majority = (voters: readonly NodeId[]) =>
    voters.length === 0 ||
    voters.filter((id) => members.has(id)).length * 2 > voters.length;
  return majority(conf.voters) && majority(conf.votersOutgoing);
}

/**
 * Two disjoint quorums, one of each configuration, or null when every quorum
 * of `a` meets every quorum of `b` (so they can never both commit one index).
 */
export function disjointQuorums(
  a: ConfState,
  b: ConfState,
): [NodeId[], NodeId[]] | null {
  const all = [
    ...new Set([
      ...a.voters,
      ...a.votersOutgoing,
      ...b.voters,
      ...b.votersOutgoing,
    ]),
  ].sort();
  if (all.length > intersectionNodesMax) {
    throw new RangeError(
      `Cannot check quorum intersection over more than ${intersectionNodesMax} nodes: current count is ${all.length}`,
    );
  }
  for (let mask = 0; mask < 1 << all.length; mask++) {
    const first = all.filter((_, i) => (mask & (1 << i)) !== 0);
    const rest = all.filter((_, i) => (mask & (1 << i)) === 0);
    if (isQuorum(a, new Set(first)) && isQuorum(b, new Set(rest))) {
      return [first, rest];
    }
  }
  return null;
}

function confText(conf: ConfState): string {
  const outgoing = conf.votersOutgoing.length > 0
    ? ` & ${conf.votersOutgoing.join(",")}`
    : "";
  return `{${conf.voters.join(",")}${outgoing}}`;
}

interface ProcessMarks {
  term: Term;
  commit: LogIndex;
  applied: LogIndex;
}

/** What a leader's log answers, for leader completeness. */
export type TermAt = (index: LogIndex) => Term | undefined;

/**
 * What `TermAt` answers for an index inside the node's snapshot: the entry
 * was applied and compacted away, and replica-state checks cover it.
 */
export const COMPACTED = -1 as Term;

/** Tracks every invariant; the first broken one is kept in `violation`. */
export class InvariantChecker {
  #violation: string | null = null;
  readonly #leaderOfTerm = new Map<Term, string>();
  readonly #currentLeaders = new Map<
    string,
    { term: Term; termAt: TermAt }
  >();
  /** "index:term" → content and previous term, across all durable logs. */
  readonly #durableEntries = new Map<
    string,
    { fingerprint: string; previousTerm: Term }
  >();
  readonly #committed = new Map<LogIndex, CommittedEntry>();
  readonly #applied = new Map<LogIndex, string>();
  /** "voter:term" → candidate voted for. */
  readonly #votes = new Map<string, string>();
  readonly #durableHardStates = new Map<string, HardState>();
  readonly #process = new Map<string, ProcessMarks>();
  /** Committed configuration entries, in index order, after the initial one at 0. */
  readonly #confs: { index: LogIndex; conf: ConfState }[] = [];
  /** Applied-state hash by index, and who reported it first. */
  readonly #states = new Map<
    LogIndex,
    { hash: string; node: string; how: string }
  >();
  /** Indexes some node snapshotted or installed at: every replica hashes there. */
  readonly #snapshotIndexes = new Set<LogIndex>();

  /** @param initialConf The membership the cluster starts with (at index 0). */
  constructor(initialConf: ConfState) {
    this.#confs.push({ index: 0 as LogIndex, conf: initialConf });
  }

  /** The first violation found, or null. */
  get violation(): string | null {
    return this.#violation;
  }

  /** Records a violation (only the first is kept). */
  fail(message: string): void {
    this.#violation ??= message;
  }

  /** A node's role after a step: at most one leader per term, and leader completeness. */
  observeRole(node: string, role: Role, term: Term, termAt: TermAt): void {
    if (role !== "leader") {
      this.#currentLeaders.delete(node);
      return;
    }
    const known = this.#currentLeaders.get(node);
    if (known !== undefined && known.term === term) return;
    const other = this.#leaderOfTerm.get(term);
    if (other !== undefined && other !== node) {
      this.fail(
        `election safety: '${node}' and '${other}' both lead term ${term}`,
      );
    }
    this.#leaderOfTerm.set(term, node);
    this.#currentLeaders.set(node, { term, termAt });
    for (const [index, committed] of this.#committed) {
      if (committed.commitTerm < term) {
        this.#checkLeaderHas(node, term, termAt, index, committed);
      }
    }
  }

  #checkLeaderHas(
    node: string,
    term: Term,
    termAt: TermAt,
    index: LogIndex,
    committed: CommittedEntry,
  ): void {
    const found = termAt(index);
    if (found !== committed.term && found !== COMPACTED) {
      this.fail(
        `leader completeness: leader '${node}' of term ${term} has ${
          found === undefined ? "no entry" : `term ${found}`
        } at index ${index}, committed with term ${committed.term} in term ${committed.commitTerm}`,
      );
    }
  }

  /**
   * Entries a node made durable, replacing its durable suffix from the first
   * one: log matching, by checking each (index, term) always has the same
   * content and the same previous term (so equal pairs imply equal prefixes).
   */
  observeDurableAppend(
    node: string,
    entries: readonly Entry[],
    termAt: TermAt,
  ): void {
    for (const entry of entries) {
      const previousTerm = entry.index === 1
        ? 0 as Term
        : termAt((entry.index - 1) as LogIndex);
      if (previousTerm === undefined) {
        this.fail(
          `log continuity: '${node}' persisted index ${entry.index} without index ${
            entry.index - 1
          }`,
        );
        return;
      }
      const key = `${entry.index}:${entry.term}`;
      const fingerprint = entryFingerprint(entry);
      const known = this.#durableEntries.get(key);
      if (known === undefined) {
        this.#durableEntries.set(key, { fingerprint, previousTerm });
      } else if (
        known.fingerprint !== fingerprint || known.previousTerm !== previousTerm
      ) {
        this.fail(
          `log matching: '${node}' persisted (index ${entry.index}, term ${entry.term}) with ${
            known.fingerprint !== fingerprint
              ? "different content"
              : `previous term ${previousTerm} instead of ${known.previousTerm}`
          } than another log`,
        );
      }
    }
  }

  /** A hard state a node made durable: terms, votes and commit only move forward. */
  observeDurableHardState(node: string, hardState: HardState): void {
    const previous = this.#durableHardStates.get(node);
    if (previous !== undefined) {
      if (hardState.term < previous.term) {
        this.fail(
          `term monotonicity: '${node}' persisted term ${hardState.term} after ${previous.term}`,
        );
      }
      if (hardState.commit < previous.commit) {
        this.fail(
          `commit monotonicity: '${node}' persisted commit ${hardState.commit} after ${previous.commit}`,
        );
      }
    }
    this.#durableHardStates.set(node, hardState);
    if (hardState.vote !== null) {
      this.observeVote(node, hardState.term, hardState.vote, "persisted");
    }
  }

  /** A vote a node granted (seen in a sent message or a durable hard state). */
  observeVote(
    voter: string,
    term: Term,
    candidate: string,
    source: string,
  ): void {
    const key = `${voter}:${term}`;
    const previous = this.#votes.get(key);
    if (previous === undefined) this.#votes.set(key, candidate);
    else if (previous !== candidate) {
      this.fail(
        `vote safety: '${voter}' voted for '${previous}' and then for '${candidate}' in term ${term} (${source})`,
      );
    }
  }

  /**
   * Entries a node reports committed for the first time in its lifetime: no
   * two different entries are committed at one index, and every current
   * leader of a later term holds them.
   */
  observeCommitted(
    node: string,
    nodeTerm: Term,
    entries: readonly Entry[],
    leaderConf: ConfState | null,
  ) {
    const committedBy = leaderConf === null
      ? null
      : `leader '${node}' of term ${nodeTerm} in ${confText(leaderConf)}`;
    for (const entry of entries) {
      const fingerprint = entryFingerprint(entry);
      const known = this.#committed.get(entry.index);
      if (known === undefined) {
        const committed = {
          term: entry.term,
          fingerprint,
          commitTerm: nodeTerm,
          committedBy,
        };
        this.#committed.set(entry.index, committed);
        if (entry.type === "confChange") {
          this.#observeConf(entry.index, decodeConfState(entry.data));
        }
        for (const [leader, { term, termAt }] of this.#currentLeaders) {
          if (term > nodeTerm) {
            this.#checkLeaderHas(leader, term, termAt, entry.index, committed);
          }
        }
      } else if (
        known.term !== entry.term || known.fingerprint !== fingerprint
      ) {
        this.fail(
          `commit safety: '${node}' committed (index ${entry.index}, term ${entry.term})${
            committedBy === null ? "" : ` as ${committedBy}`
          } where term ${known.term} was committed${
            known.committedBy === null ? "" : ` by ${known.committedBy}`
          }`,
        );
      } else {
        if (nodeTerm < known.commitTerm) known.commitTerm = nodeTerm;
        known.committedBy ??= committedBy;
      }
    }
  }

  /**
   * Joint-consensus safety: a committed configuration and the one in force
   * before it must have intersecting quorums, or two majorities (one in
   * each) could commit different entries at one index.
   */
  #observeConf(index: LogIndex, conf: ConfState): void {
    const confs = this.#confs;
    let at = confs.length;
    while (at > 0 && confs[at - 1]!.index > index) at--;
    confs.splice(at, 0, { index, conf });
    const neighbours = [confs[at - 1], confs[at + 1]];
    for (const other of neighbours) {
      if (other === undefined) continue;
      const [earlier, later] = other.index < index
        ? [other, { index, conf }]
        : [{ index, conf }, other];
      const disjoint = disjointQuorums(earlier.conf, later.conf);
      if (disjoint !== null) {
        this.fail(
          `joint consensus safety: configuration ${
            confText(later.conf)
          } committed at index ${later.index} follows ${
            confText(earlier.conf)
          } (index ${earlier.index}) with disjoint quorums {${
            disjoint[0].join(",")
          }} and {${disjoint[1].join(",")}}`,
        );
      }
    }
  }

  /** The configuration the cluster committed at or before `index`. */
  committedConfAt(index: LogIndex): ConfState {
    let conf = this.#confs[0]!.conf;
    for (const c of this.#confs) {
      if (c.index <= index) conf = c.conf;
      else break;
    }
    return conf;
  }

  /** Configuration entries committed so far. */
  get confChanges(): number {
    return this.#confs.length - 1;
  }

  /** The latest committed configuration. */
  latestConf(): ConfState {
    return this.#confs.at(-1)!.conf;
  }

  /** True when replicas should report their state hash at `index`. */
  wantsStateAt(index: LogIndex): boolean {
    return this.#snapshotIndexes.has(index);
  }

  /**
   * A replica's applied state at `index` (after applying the log up to it,
   * installing or restoring a snapshot of it, or taking one): every replica
   * must have the same state at the same index.
   */
  observeState(node: string, index: LogIndex, hash: string, how: string) {
    if (how !== "applied the log") this.#snapshotIndexes.add(index);
    const known = this.#states.get(index);
    if (known === undefined) {
      this.#states.set(index, { hash, node, how });
      return;
    }
    if (known.hash !== hash) {
      this.fail(
        `replica state: '${node}' ${how} at index ${index} with a state unlike the one '${known.node}' had there (${known.how})`,
      );
    }
  }

  /** An entry a node applies: state-machine safety. */
  observeApplied(node: string, entry: Entry): void {
    const identity = `${entry.term}|${entryFingerprint(entry)}`;
    const known = this.#applied.get(entry.index);
    if (known === undefined) this.#applied.set(entry.index, identity);
    else if (known !== identity) {
      this.fail(
        `state machine safety: '${node}' applied (index ${entry.index}, term ${entry.term}) where another node applied term ${
          known.slice(0, known.indexOf("|"))
        }`,
      );
    }
  }

  /** A (re)started process: its marks restart from what it persisted. */
  observeStart(node: string, hardState: HardState): void {
    this.#process.set(node, {
      term: hardState.term,
      commit: hardState.commit,
      applied: 0 as LogIndex,
    });
  }

  /** A node's indexes after a step: term, commit and applied never go back. */
  observeProcess(
    node: string,
    term: Term,
    commit: LogIndex,
    applied: LogIndex,
  ): void {
    const marks = this.#process.get(node);
    if (marks === undefined) return;
    const persistedCommit = this.#durableHardStates.get(node)?.commit ?? 0;
    if (term < marks.term) {
      this.fail(
        `term monotonicity: '${node}' went from term ${marks.term} to ${term}`,
      );
    }
    if (commit < marks.commit || commit < persistedCommit) {
      this.fail(
        `commit monotonicity: '${node}' has commit ${commit} after ${marks.commit} (persisted ${persistedCommit})`,
      );
    }
    if (applied < marks.applied) {
      this.fail(
        `applied monotonicity: '${node}' went from applied ${marks.applied} to ${applied}`,
      );
    }
    marks.term = term;
    marks.commit = commit;
    marks.applied = applied;
  }
}
