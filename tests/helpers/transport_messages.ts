/**
 * Sample Raft messages, one per type, for codec and transport tests.
 *
 * @module
 */
import {
  logIndex,
  type Message,
  type MessageType,
  nodeId,
  term,
} from "../../src/raft/types.ts";

const a = nodeId("node-a");
const b = nodeId("node-b");

/** One message of every type, keyed by type so a new type fails to compile here. */
export const SAMPLE_MESSAGES: { readonly [Type in MessageType]: Message } = {
  app: {
    type: "app",
    from: a,
    to: b,
    term: term(3),
    logTerm: term(2),
    index: logIndex(41),
    commit: logIndex(40),
    entries: [
      {
        term: term(3),
        index: logIndex(42),
        type: "normal",
        data: new Uint8Array([1, 2, 3]),
      },
      {
        term: term(3),
        index: logIndex(43),
        type: "confChange",
        data: new Uint8Array(0),
      },
    ],
  },
  appResp: {
    type: "appResp",
    from: b,
    to: a,
    term: term(3),
    index: logIndex(43),
    reject: false,
    rejectHint: logIndex(0),
    logTerm: term(0),
  },
  vote: {
    type: "vote",
    from: a,
    to: b,
    term: term(4),
    logTerm: term(3),
    index: logIndex(43),
    transfer: true,
  },
  preVote: {
    type: "preVote",
    from: a,
    to: b,
    term: term(4),
    logTerm: term(3),
    index: logIndex(43),
    transfer: false,
  },
  voteResp: { type: "voteResp", from: b, to: a, term: term(4), reject: true },
  preVoteResp: {
    type: "preVoteResp",
    from: b,
    to: a,
    term: term(4),
    reject: false,
  },
  heartbeat: {
    type: "heartbeat",
    from: a,
    to: b,
    term: term(4),
    commit: logIndex(43),
    sentAt: 17,
    context: new Uint8Array([5]),
  },
  heartbeatResp: {
    type: "heartbeatResp",
    from: b,
    to: a,
    term: term(4),
    context: new Uint8Array(0),
    sentAt: 17,
    voteGuardMs: 810,
  },
  snap: {
    type: "snap",
    from: a,
    to: b,
    term: term(4),
    meta: {
      index: logIndex(100),
      term: term(3),
      confState: {
        voters: [a, b],
        votersOutgoing: [a],
        learners: [nodeId("node-c")],
      },
    },
    offset: 65536,
    data: new Uint8Array([1, 2, 3, 4]),
    done: false,
  },
  snapResp: {
    type: "snapResp",
    from: b,
    to: a,
    term: term(4),
    index: logIndex(100),
    offset: 65540,
    reject: false,
    done: true,
  },
  timeoutNow: { type: "timeoutNow", from: a, to: b, term: term(4) },
  readIndex: {
    type: "readIndex",
    from: b,
    to: a,
    term: term(4),
    context: new Uint8Array([7, 7]),
  },
  readIndexResp: {
    type: "readIndexResp",
    from: a,
    to: b,
    term: term(4),
    index: logIndex(43),
    context: new Uint8Array([7, 7]),
  },
};

/** A heartbeat from `from` to `to`, with an optional ReadIndex context. */
export function heartbeat(
  from: string,
  to: string,
  commit = 0,
  context: Uint8Array = new Uint8Array(0),
): Message {
  return {
    type: "heartbeat",
    from: nodeId(from),
    to: nodeId(to),
    term: term(1),
    commit: logIndex(commit),
    sentAt: commit,
    context,
  };
}

/** An AppendEntries from `from` to `to` carrying one entry of `dataBytes` bytes. */
export function append(
  from: string,
  to: string,
  index: number,
  dataBytes = 100,
): Message {
  return {
    type: "app",
    from: nodeId(from),
    to: nodeId(to),
    term: term(1),
    logTerm: term(1),
    index: logIndex(index - 1),
    commit: logIndex(0),
    entries: [{
      term: term(1),
      index: logIndex(index),
      type: "normal",
      data: new Uint8Array(dataBytes).fill(index % 251),
    }],
  };
}
