/**
 * A scripted environment for data-driven Raft tests (in the spirit of etcd's
 * rafttest): commands drive a small cluster of cores over a perfect,
 * manually-delivered network, and every step prints a trace.
 *
 * @module
 */
import { ConfChangeError } from "./confchange.ts";
import { ProposalDroppedError } from "./errors.ts";
import { RaftNode } from "./raft_node.ts";
import type {
  ConfChange,
  Entry,
  HardState,
  LogIndex,
  Message,
  NodeId,
  RaftConfig,
  Ready,
  Snapshot,
  Term,
} from "./types.ts";
import { nodeId } from "./types.ts";

/** One parsed script command. */
export interface Command {
  readonly name: string;
  readonly args: readonly string[];
  readonly options: ReadonlyMap<string, string>;
}

interface Durable {
  hardState: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

/** Always returns 0, so election timeouts equal `electionTicks` exactly. */
const ZERO_RANDOM = { nextInt: (_bound: number) => 0 };

const decoder = new TextDecoder();

/** Formats an entry as `term/index type "data"`. */
export function formatEntry(entry: Entry): string {
  return `${entry.term}/${entry.index} ${entry.type} ${
    JSON.stringify(decoder.decode(entry.data))
  }`;
}

/** Formats a message on one line. */
export function formatMessage(m: Message): string {
  const head = `${m.from}->${m.to} ${m.type} term=${m.term}`;
  switch (m.type) {
    case "app":
      return `${head} log=${m.logTerm}/${m.index} commit=${m.commit} entries=[${
        m.entries.map(formatEntry).join(", ")
      }]`;
    case "appResp":
      return m.reject
        ? `${head} index=${m.index} reject hint=${m.rejectHint} hintTerm=${m.logTerm}`
        : `${head} index=${m.index}`;
    case "vote":
    case "preVote":
      return `${head} log=${m.logTerm}/${m.index}${
        m.transfer ? " transfer" : ""
      }`;
    case "voteResp":
    case "preVoteResp":
      return `${head}${m.reject ? " reject" : ""}`;
    case "heartbeat":
      return `${head} commit=${m.commit}${formatContext(m.context)}`;
    case "heartbeatResp":
      return `${head}${formatContext(m.context)}`;
    case "snap":
      return `${head} snapshot=${m.meta.term}/${m.meta.index} voters=${
        m.meta.confState.voters.join(",")
      } offset=${m.offset} bytes=${m.data.byteLength}${m.done ? " done" : ""}`;
    case "snapResp":
      return `${head} snapshot=${m.index} offset=${m.offset}${
        m.reject ? " reject" : ""
      }${m.done ? " done" : ""}`;
    case "timeoutNow":
      return head;
    case "readIndex":
      return `${head}${formatContext(m.context)}`;
    case "readIndexResp":
      return `${head} index=${m.index}${formatContext(m.context)}`;
  }
}

function formatContext(context: Uint8Array): string {
  return context.byteLength === 0
    ? ""
    : ` ctx=${JSON.stringify(decoder.decode(context))}`;
}

/** Clock ms per scripted tick (the core's default `tickMs`). */
const tickMs = 100;

/** The scripted cluster. */
export class InteractionEnv {
  readonly #nodes = new Map<NodeId, RaftNode>();
  readonly #configs = new Map<NodeId, RaftConfig>();
  readonly #durable = new Map<NodeId, Durable>();
  readonly #applied = new Map<NodeId, Entry[]>();
  readonly #mailboxes = new Map<NodeId, Message[]>();
  /** Pairs "a->b" whose messages are dropped. */
  readonly #cut = new Set<string>();
  /** Each node's monotonic clock, in ms: a tick advances it by `tickMs` (100). */
  readonly #clocks = new Map<NodeId, number>();

  /** Runs one command and returns its trace. */
  run(command: Command): string {
    const out: string[] = [];
    const ids = command.args.map(nodeId);
    switch (command.name) {
      case "add-nodes":
        this.#addNodes(Number(command.args[0]), command.options);
        out.push(...[...this.#nodes.values()].map((n) => this.#describe(n.id)));
        break;
      case "add-joiner":
        this.#addJoiner(ids[0]!, command.options);
        out.push(this.#describe(ids[0]!));
        break;
      case "conf-change":
        out.push(this.#attempt(() => {
          const index = this.#node(ids[0]!).proposeConfChange(
            parseConfChange(command.options),
          );
          return `proposed configuration at index ${index}`;
        }));
        break;
      case "transfer-leader":
        out.push(this.#attempt(() => {
          this.#node(ids[0]!).transferLeader(ids[1]!);
          return `transferring to ${ids[1]}`;
        }));
        break;
      case "read-index":
        out.push(this.#attempt(() => {
          this.#node(ids[0]!).readIndex(
            new TextEncoder().encode(command.args[1] ?? ""),
            this.#clock(ids[0]!),
          );
          return "read requested";
        }));
        break;
      case "snapshot":
        out.push(this.#snapshot(ids[0]!));
        break;
      case "drop-msgs":
        for (const id of ids) {
          out.push(
            `dropped ${this.#mailboxes.get(id)?.length ?? 0} messages to ${id}`,
          );
        }
        for (const id of ids) this.#mailboxes.set(id, []);
        break;
      case "campaign":
        this.#node(ids[0]!).campaign();
        break;
      case "propose":
        out.push(this.#propose(ids[0]!, command.args[1] ?? ""));
        break;
      case "tick-heartbeat":
        this.#ticks(ids, Number(command.options.get("count") ?? "1"));
        break;
      case "forge-append": {
        // `from` (say, a removed node) sends `to` an append at a higher term
        // claiming `to`'s whole log is committed: what a removed peer with
        // valid credentials could do.
        const to = this.#node(ids[1]!);
        const status = to.status();
        const last = status.lastIndex;
        const message: Message = {
          type: "app",
          from: ids[0]!,
          to: ids[1]!,
          term: (status.term + 1) as Term,
          logTerm: to.entries(last, (last + 1) as LogIndex)[0]?.term ??
            (0 as Term),
          index: last,
          entries: [],
          commit: last,
        };
        this.#mailboxes.get(ids[1]!)?.push(message);
        out.push(`forged ${formatMessage(message)}`);
        break;
      }
      case "stall":
        // The process stops running for `ms`: its clock moves, no tick runs.
        for (const id of ids) {
          this.#clocks.set(
            id,
            this.#clock(id) + Number(command.options.get("ms") ?? "1000"),
          );
        }
        out.push(`stalled ${ids.join(",")}`);
        break;
      case "tick-election":
        this.#ticks(ids, Number(command.options.get("count") ?? "10"));
        break;
      case "process-ready":
        for (const id of ids) out.push(...this.#processReady(id));
        break;
      case "deliver-msgs":
        for (const id of ids.length > 0 ? ids : [...this.#nodes.keys()]) {
          out.push(...this.#deliver(id));
        }
        break;
      case "stabilize":
        out.push(
          ...this.#stabilize(ids.length > 0 ? ids : [...this.#nodes.keys()]),
        );
        break;
      case "partition":
        this.#partition(
          command.args.map((group) => group.split(",").map(nodeId)),
        );
        out.push(`cut: ${[...this.#cut].sort().join(" ") || "none"}`);
        break;
      case "heal":
        this.#cut.clear();
        out.push("cut: none");
        break;
      case "restart":
        for (const id of ids) out.push(this.#restart(id));
        break;
      case "raft-log":
        out.push(...this.#raftLog(ids[0]!));
        break;
      case "raft-state":
        for (const id of [...this.#nodes.keys()].sort()) {
          out.push(this.#describe(id));
        }
        break;
      case "applied":
        out.push(...this.#appliedOf(ids[0]!));
        break;
      default:
        throw new TypeError(`Unknown command '${command.name}'`);
    }
    return out.join("\n");
  }

  #addNodes(count: number, options: ReadonlyMap<string, string>): void {
    const voters = Array.from(
      { length: count },
      (_, i) => nodeId(String(i + 1)),
    );
    for (const id of voters) this.#addNode(id, voters, options);
  }

  /** A node that joins later: it knows no membership until the leader sends it. */
  #addJoiner(id: NodeId, options: ReadonlyMap<string, string>): void {
    this.#addNode(id, [], options);
  }

  #addNode(
    id: NodeId,
    voters: readonly NodeId[],
    options: ReadonlyMap<string, string>,
  ): void {
    const config: RaftConfig = {
      id,
      voters,
      random: ZERO_RANDOM,
      electionTicks: Number(options.get("election") ?? "10"),
      heartbeatTicks: Number(options.get("heartbeat") ?? "1"),
      preVote: options.get("prevote") !== "false",
      checkQuorum: options.get("checkquorum") !== "false",
      maxInflightMessages: Number(options.get("inflight") ?? "256"),
      maxUncommittedBytes: Number(
        options.get("uncommitted") ?? String(64 * 1024 * 1024),
      ),
      readOnly: options.get("read") === "lease" ? "lease" : "safe",
      snapshotChunkBytes: Number(options.get("chunk") ?? String(1024 * 1024)),
      // A planted bug by its knob's name (e.g. knob=leaseTickCount), for tests.
      testingKnobs: options.has("knob")
        ? { [options.get("knob")!]: true }
        : undefined,
    };
    this.#configs.set(id, config);
    this.#nodes.set(id, new RaftNode(config));
    this.#durable.set(id, {
      hardState: { term: 0 as Term, vote: null, commit: 0 as LogIndex },
      snapshot: null,
      entries: [],
    });
    this.#applied.set(id, []);
    this.#mailboxes.set(id, []);
  }

  #propose(id: NodeId, data: string): string {
    return this.#attempt(() =>
      `proposed at index ${
        this.#node(id).propose(new TextEncoder().encode(data))
      }`
    );
  }

  /** Runs a call that may be refused with a typed error, and prints either outcome. */
  #attempt(call: () => string): string {
    try {
      return call();
    } catch (error) {
      if (error instanceof ProposalDroppedError) {
        return `dropped: ${error.reason}: ${error.message}`;
      }
      if (error instanceof ConfChangeError) return `refused: ${error.message}`;
      throw error;
    }
  }

  /** Snapshots the applied state: its data is the applied entries' data joined. */
  #snapshot(id: NodeId): string {
    const node = this.#node(id);
    const data = this.#applied.get(id)!
      .filter((e) => e.type === "normal" && e.data.byteLength > 0)
      .map((e) => decoder.decode(e.data))
      .join(",");
    const snapshot = node.takeSnapshot(
      node.status().applied,
      new TextEncoder().encode(data),
    );
    const durable = this.#durable.get(id)!;
    durable.snapshot = snapshot;
    durable.entries = durable.entries.filter((e) =>
      e.index > snapshot.meta.index
    );
    return `snapshot at ${snapshot.meta.term}/${snapshot.meta.index} data=${
      JSON.stringify(data)
    }`;
  }

  #ticks(ids: readonly NodeId[], count: number): void {
    for (const id of ids) {
      for (let i = 0; i < count; i++) {
        this.#clocks.set(id, this.#clock(id) + tickMs);
        this.#node(id).tick(this.#clock(id));
      }
    }
  }

  /** The clock of `id` now. */
  #clock(id: NodeId): number {
    return this.#clocks.get(id) ?? 0;
  }

  #processReady(id: NodeId): string[] {
    const node = this.#node(id);
    if (!node.hasReady()) return [`> ${id} nothing ready`];
    const ready = node.ready();
    this.#persist(id, ready);
    for (const m of ready.messages) this.#mailboxes.get(m.to)?.push(m);
    this.#applied.get(id)!.push(...ready.committedEntries);
    node.advance();
    return [`> ${id} ready`, ...formatReady(ready).map((line) => `  ${line}`)];
  }

  #persist(id: NodeId, ready: Ready): void {
    const durable = this.#durable.get(id)!;
    if (ready.snapshot !== null) {
      // Installing a snapshot replaces the state and the log.
      durable.snapshot = ready.snapshot;
      durable.entries = [];
      const meta = ready.snapshot.meta;
      this.#applied.set(id, [{
        term: meta.term,
        index: meta.index,
        type: "normal",
        data: ready.snapshot.data,
      }]);
    }
    const first = ready.entries[0];
    if (first !== undefined) {
      durable.entries = durable.entries.filter((e) => e.index < first.index)
        .concat(ready.entries);
    }
    if (ready.hardState !== null) durable.hardState = ready.hardState;
  }

  #deliver(id: NodeId): string[] {
    const inbox = this.#mailboxes.get(id) ?? [];
    if (inbox.length === 0) return [];
    this.#mailboxes.set(id, []);
    const out = [`> ${id} receiving`];
    for (const m of inbox) {
      if (this.#cut.has(`${m.from}->${m.to}`)) {
        out.push(`  dropped ${formatMessage(m)}`);
        continue;
      }
      out.push(`  ${formatMessage(m)}`);
      this.#node(id).step(m, this.#clock(id));
    }
    return out;
  }

  #stabilize(ids: readonly NodeId[]): string[] {
    const out: string[] = [];
    for (let round = 0; round < 100; round++) {
      let progressed = false;
      for (const id of ids) {
        if (this.#node(id).hasReady()) {
          out.push(...this.#processReady(id));
          progressed = true;
        }
      }
      for (const id of ids) {
        const lines = this.#deliver(id);
        if (lines.length > 0) progressed = true;
        out.push(...lines);
      }
      if (!progressed) return out;
    }
    throw new Error("stabilize did not settle within 100 rounds");
  }

  #partition(groups: readonly NodeId[][]): void {
    this.#cut.clear();
    for (const group of groups) {
      for (const a of group) {
        for (const b of this.#nodes.keys()) {
          if (!group.includes(b)) {
            this.#cut.add(`${a}->${b}`);
            this.#cut.add(`${b}->${a}`);
          }
        }
      }
    }
  }

  #restart(id: NodeId): string {
    const durable = this.#durable.get(id)!;
    this.#nodes.set(
      id,
      new RaftNode(this.#configs.get(id)!, {
        hardState: durable.hardState,
        snapshot: durable.snapshot,
        entries: durable.entries,
        applied: durable.snapshot?.meta.index ?? (0 as LogIndex),
      }),
    );
    const meta = durable.snapshot?.meta;
    this.#applied.set(
      id,
      meta === undefined ? [] : [{
        term: meta.term,
        index: meta.index,
        type: "normal",
        data: durable.snapshot!.data,
      }],
    );
    this.#mailboxes.set(id, []);
    return `restarted ${id} at ${this.#describe(id)}`;
  }

  #raftLog(id: NodeId): string[] {
    const status = this.#node(id).status();
    const first = (status.snapshotIndex + 1) as LogIndex;
    const entries = this.#node(id).entries(
      first,
      (status.lastIndex + 1) as LogIndex,
    );
    const head = status.snapshotIndex > 0
      ? [`(snapshot at ${status.snapshotIndex})`]
      : [];
    if (entries.length === 0) return [...head, "log is empty"];
    return [...head, ...entries.map(formatEntry)];
  }

  #appliedOf(id: NodeId): string[] {
    const applied = this.#applied.get(id)!;
    return applied.length === 0
      ? ["nothing applied"]
      : applied.map(formatEntry);
  }

  #describe(id: NodeId): string {
    const s = this.#node(id).status();
    const joint = s.conf.votersOutgoing.length > 0
      ? ` outgoing=${s.conf.votersOutgoing.join(",")}`
      : "";
    const learners = s.conf.learners.length > 0
      ? ` learners=${s.conf.learners.join(",")}`
      : "";
    return `${id}: ${s.role} term=${s.term} vote=${s.vote ?? "none"} leader=${
      s.leader ?? "none"
    } last=${s.lastIndex} commit=${s.commit} applied=${s.applied} voters=${
      s.conf.voters.join(",") || "none"
    }${joint}${learners}`;
  }

  #node(id: NodeId | undefined): RaftNode {
    const node = id === undefined ? undefined : this.#nodes.get(id);
    if (node === undefined) throw new TypeError(`Unknown node '${id}'`);
    return node;
  }
}

/** Formats a Ready as indented lines. */
export function formatReady(ready: Ready): string[] {
  const out: string[] = [];
  if (ready.softState !== null) {
    out.push(
      `role=${ready.softState.role} leader=${ready.softState.leader ?? "none"}`,
    );
  }
  if (ready.hardState !== null) {
    const hs = ready.hardState;
    out.push(
      `hard term=${hs.term} vote=${hs.vote ?? "none"} commit=${hs.commit}`,
    );
  }
  if (ready.snapshot !== null) {
    const meta = ready.snapshot.meta;
    out.push(
      `install snapshot ${meta.term}/${meta.index} voters=${
        meta.confState.voters.join(",")
      } data=${JSON.stringify(decoder.decode(ready.snapshot.data))}`,
    );
  }
  if (ready.entries.length > 0) {
    out.push(`persist: ${ready.entries.map(formatEntry).join(", ")}`);
  }
  if (ready.committedEntries.length > 0) {
    out.push(`apply: ${ready.committedEntries.map(formatEntry).join(", ")}`);
  }
  for (const m of ready.messages) out.push(`send ${formatMessage(m)}`);
  for (const r of ready.readStates) {
    out.push(`read index=${r.index}${formatContext(r.context)}`);
  }
  return out;
}

/** Reads `type=addLearner node=4` or `type=replaceVoters voters=1,2,4`. */
function parseConfChange(options: ReadonlyMap<string, string>): ConfChange {
  const type = options.get("type");
  const node = nodeId(options.get("node") ?? "");
  switch (type) {
    case "addLearner":
    case "promote":
    case "addVoter":
    case "remove":
      return { type, node };
    case "replaceVoters":
      return {
        type,
        voters: (options.get("voters") ?? "").split(",").map(nodeId),
      };
    default:
      throw new TypeError(`Unknown conf change type '${type}'`);
  }
}

/** Parses `name arg arg key=value` into a command. */
export function parseCommand(line: string): Command {
  const [name = "", ...rest] = line.trim().split(/\s+/);
  const args: string[] = [];
  const options = new Map<string, string>();
  for (const token of rest) {
    const eq = token.indexOf("=");
    if (eq > 0) options.set(token.slice(0, eq), token.slice(eq + 1));
    else args.push(token);
  }
  return { name, args, options };
}
