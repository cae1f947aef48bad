/**
 * Protocol-aware recovery: a node that lost a tail it may have acknowledged
 * (`recover`) votes only for a log at least as up to date as the lost tail
 * and campaigns only when its own log is, until its commit index reaches it.
 */
import assert from "node:assert/strict";
import { RaftNode } from "./raft_node.ts";
import type {
  Entry,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  Term,
  TestingKnobs,
  VoteMessage,
} from "./types.ts";

const [A, B, C] = ["a", "b", "c"] as NodeId[];
const random = { nextInt: (bound: number) => bound - 1 };

function entries(lo: number, hi: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = lo; i <= hi; i++) {
    out.push({
      index: i as LogIndex,
      term: term as Term,
      type: "normal",
      data: new Uint8Array([i]),
    });
  }
  return out;
}

function config(id: NodeId, knobs: TestingKnobs = {}): RaftConfig {
  return {
    id,
    voters: [A!, B!, C!],
    electionTicks: 10,
    heartbeatTicks: 1,
    // Without CheckQuorum's vote guard, which a restarted node also arms for
    // an election timeout: these tests are about the recovery rule alone.
    checkQuorum: false,
    random,
    testingKnobs: knobs,
  };
}

/** Node b after a restart that lost entries 8..10 (log 1..7, commit 5, recovering until 10). */
function recoveringNode(knobs: TestingKnobs = {}): RaftNode {
  return new RaftNode(config(B!, knobs), {
    hardState: { term: 2 as Term, vote: A!, commit: 5 as LogIndex },
    entries: entries(1, 7, 2),
    applied: 0 as LogIndex,
    recover: { index: 10 as LogIndex, term: 2 as Term },
  });
}

function drain(node: RaftNode): Message[] {
  const out: Message[] = [];
  while (node.hasReady()) {
    const ready = node.ready();
    out.push(...ready.messages);
    node.advance();
  }
  return out;
}

function voteRequest(term: number): VoteMessage {
  return {
    type: "vote",
    from: C!,
    to: B!,
    term: term as Term,
    logTerm: 2 as Term,
    index: 7 as LogIndex,
    transfer: false,
  };
}

Deno.test("RaftNode refuses votes while recovering a lost tail", () => {
  const node = recoveringNode();
  drain(node);
  node.step(voteRequest(3));
  const answers = drain(node).filter((m) => m.type === "voteResp");
  assert.equal(answers.length, 1);
  assert.equal(answers[0]!.type === "voteResp" && answers[0]!.reject, true);
});

Deno.test("RaftNode while recovering votes for a log past the lost tail", () => {
  const node = recoveringNode();
  drain(node);
  node.step({ ...voteRequest(3), logTerm: 2 as Term, index: 10 as LogIndex });
  node.step({ ...voteRequest(3), logTerm: 3 as Term, index: 8 as LogIndex });
  const answers = drain(node).filter((m) => m.type === "voteResp");
  assert.deepEqual(
    answers.map((m) => m.type === "voteResp" && m.reject),
    [false, false],
  );
});

Deno.test("RaftNode with the truncate-acknowledged-tail knob grants that vote (the planted bug)", () => {
  const node = recoveringNode({ truncateAcknowledgedTail: true });
  drain(node);
  node.step(voteRequest(3));
  const answers = drain(node).filter((m) => m.type === "voteResp");
  assert.equal(answers.length, 1);
  assert.equal(answers[0]!.type === "voteResp" && answers[0]!.reject, false);
});

Deno.test("RaftNode does not campaign while recovering, and does once commit reaches the bound", () => {
  const node = recoveringNode();
  drain(node);
  for (let i = 0; i < 50; i++) node.tick();
  assert.equal(node.status().role, "follower");
  assert.equal(
    drain(node).some((m) => m.type === "vote" || m.type === "preVote"),
    false,
  );
  // A leader of term 3 re-sends 8..10 and commits them: recovery is over.
  node.step({
    type: "app",
    from: A!,
    to: B!,
    term: 3 as Term,
    index: 7 as LogIndex,
    logTerm: 2 as Term,
    entries: entries(8, 10, 3),
    commit: 10 as LogIndex,
  });
  drain(node);
  assert.equal(node.status().commit, 10);
  for (let i = 0; i < 50; i++) node.tick();
  assert.equal(
    drain(node).some((m) => m.type === "vote" || m.type === "preVote"),
    true,
  );
});

Deno.test("RaftNode while recovering commits from a heartbeat only what its log holds", () => {
  const node = recoveringNode();
  drain(node);
  node.step({
    type: "heartbeat",
    from: A!,
    to: B!,
    term: 2 as Term,
    commit: 10 as LogIndex,
    sentAt: 0,
    context: new Uint8Array(),
  });
  drain(node);
  assert.equal(node.status().commit, 7);
});

Deno.test("a leader resends the entries a follower lost after acknowledging them", () => {
  const leader = new RaftNode(config(A!), {
    hardState: { term: 1 as Term, vote: null, commit: 0 as LogIndex },
    entries: entries(1, 10, 1),
    applied: 0 as LogIndex,
  });
  leader.campaign();
  for (let round = 0; round < 4 && leader.status().role !== "leader"; round++) {
    for (const m of drain(leader)) {
      if (m.type !== "vote" && m.type !== "preVote") continue;
      leader.step({
        type: m.type === "vote" ? "voteResp" : "preVoteResp",
        from: m.to,
        to: A!,
        term: m.term,
        reject: false,
      });
    }
  }
  assert.equal(leader.status().role, "leader");
  const last = leader.status().lastIndex;
  drain(leader);
  const ack = (index: number, reject: boolean, hint = 0) =>
    leader.step({
      type: "appResp",
      from: B!,
      to: A!,
      term: leader.status().term,
      index: index as LogIndex,
      reject,
      rejectHint: hint as LogIndex,
      logTerm: (reject ? 1 : 0) as Term,
    });
  ack(last, false);
  assert.equal(leader.status().progress?.get(B!)?.match, last);
  drain(leader);
  // b restarted without entries 8.. and rejects the probe at its old match.
  ack(last, true, 7);
  const resent = drain(leader).filter((m) => m.type === "app" && m.to === B);
  assert.equal(resent.length > 0, true);
  assert.equal(resent[0]!.type === "app" && resent[0]!.index, 7);
  assert.equal(leader.status().progress?.get(B!)?.match, 0);
});
