/**
 * Cluster-wide safety invariants, checked incrementally after every step of
 * the simulation. They look only at what nodes persist, send, report and
 * apply, never at the core's testing knobs, so a planted bug must show up as
 * a broken invariant on its own.
 *
 * @module
 */
import type { Entry, HardState, LogIndex, Role, Term } from "../raft/types.ts";

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
}

interface ProcessMarks {
  term: Term;
  commit: LogIndex;
  applied: LogIndex;
}

/** What a leader's log answers, for leader completeness. */
export type TermAt = (index: LogIndex) => Term | undefined;

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
    if (found !== committed.term) {
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
  observeCommitted(node: string, nodeTerm: Term, entries: readonly Entry[]) {
    for (const entry of entries) {
      const fingerprint = entryFingerprint(entry);
      const known = this.#committed.get(entry.index);
      if (known === undefined) {
        const committed = {
          term: entry.term,
          fingerprint,
          commitTerm: nodeTerm,
        };
        this.#committed.set(entry.index, committed);
        for (const [leader, { term, termAt }] of this.#currentLeaders) {
          if (term > nodeTerm) {
            this.#checkLeaderHas(leader, term, termAt, entry.index, committed);
          }
        }
      } else if (
        known.term !== entry.term || known.fingerprint !== fingerprint
      ) {
        this.fail(
          `commit safety: '${node}' committed (index ${entry.index}, term ${entry.term}) where term ${known.term} was committed`,
        );
      } else if (nodeTerm < known.commitTerm) {
        known.commitTerm = nodeTerm;
      }
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
