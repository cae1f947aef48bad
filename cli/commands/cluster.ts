/**
 * `aspen cluster status | members | ticket | add-learner | promote | remove
 * | transfer-leader`.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import {
  AspenError,
  AuthError,
  type ClusterMember,
  type ClusterStatus,
  connect,
} from "../../mod.ts";
import { endpointsCommand, healthCommand } from "./endpoints.ts";
import { JOIN_TICKET_ROUTE } from "../../src/server/serve.ts";
import {
  clientOf,
  type GlobalOptions,
  NODE_ID_PREFIX_MIN,
  nodeGet,
  printJson,
  printTable,
  resolveNodeId,
  UsageError,
} from "./_context.ts";

function globals(command: { optsWithGlobals(): unknown }): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

/** The HEALTH cell: as the leader sees the member (`-` when a follower answered). */
export function healthCell(
  member: ClusterMember,
  leader: string | null,
): string {
  if (member.reachable === undefined || member.reachable === null) return "-";
  if (member.id === leader) return "ok (leader)";
  const ago = member.lastContactMs === null ||
      member.lastContactMs === undefined
    ? "never heard from"
    : `last contact ${formatMs(member.lastContactMs)} ago`;
  return member.reachable ? `ok (${ago})` : `UNREACHABLE (${ago})`;
}

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

function printMembers(
  members: readonly ClusterMember[],
  leader: string | null,
): void {
  printTable(
    ["ID", "NAME", "ROLE", "LEADER", "MATCH", "LAG", "HEALTH", "URL"],
    members.map((m) => [
      m.id,
      m.name ?? "-",
      m.role,
      m.id === leader ? "*" : "",
      m.match === null ? "-" : String(m.match),
      m.lag === null ? "-" : String(m.lag),
      healthCell(m, leader),
      m.httpUrl ?? "-",
    ]),
  );
}

/**
 * The status as the leader sees it (match, lag and health are the
 * leader's): asked of the answering node, then of its leader when that is
 * another node. Falls back to the answering node's view, saying so.
 */
async function leaderView(global: GlobalOptions): Promise<ClusterStatus> {
  using client = clientOf(global);
  const local = await client.cluster.status();
  if (local.role === "leader" || local.leaderHttpUrl === null) return local;
  try {
    using leader = connect(local.leaderHttpUrl, {
      token: global.token,
      timeoutMs: global.timeout,
    });
    const status = await leader.cluster.status();
    if (status.role === "leader") return status;
  } catch (error) {
    if (error instanceof AuthError) throw error;
    console.error(
      `aspen: the leader at ${local.leaderHttpUrl} did not answer (${
        (error as Error).message
      }): showing ${local.nodeId}'s view`,
    );
  }
  return local;
}

function nodeCommand(
  name: "promote" | "remove" | "transfer-leader",
  description: string,
  done: string,
): CommandUnknownOpts {
  return new Command(name)
    .description(description)
    .argument(
      "<node-id>",
      `the node's id, or a unique prefix of at least ${NODE_ID_PREFIX_MIN} characters (the short id the logs print)`,
    )
    .action(async (given, _options, command) => {
      const global = globals(command);
      using client = clientOf(global, "admin");
      const { members } = await client.cluster.members();
      const nodeId = resolveNodeId(given, members.map((m) => m.id));
      if (name === "promote") await client.cluster.promote(nodeId);
      else if (name === "remove") await client.cluster.remove(nodeId);
      else await client.cluster.transferLeader(nodeId);
      if (global.json) printJson({ ok: true });
      else console.log(`${done} ${nodeId}`);
    });
}

function port(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < 1 || n > 65535) {
    throw new UsageError(`Invalid port '${value}': expected 1 to 65535`);
  }
  return n;
}

/** `aspen cluster …` */
export function clusterCommand(): CommandUnknownOpts {
  const cluster = new Command("cluster").description(
    "Cluster status and membership",
  );
  cluster.command("status")
    .description(
      "Leader, term, indexes and members, as the answering node sees them",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const s = await client.cluster.status();
      if (global.json) return printJson(s);
      printTable(["FIELD", "VALUE"], [
        ["cluster", s.clusterId],
        ["node", `${s.nodeId} (${s.role})`],
        ["leader", s.leader ?? "(none)"],
        ["leader url", s.leaderHttpUrl ?? "-"],
        ["term", String(s.term)],
        ["commit index", String(s.commitIndex)],
        ["applied index", String(s.appliedIndex)],
        ["snapshot index", String(s.snapshotIndex)],
        ["joint change", s.joint ? "yes" : "no"],
      ]);
      console.log("");
      printMembers(s.members, s.leader);
    });
  cluster.command("members")
    .description(
      "Members with roles, match, lag and health, as the leader sees them",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      const { leader, members } = await leaderView(global);
      if (global.json) printJson({ leader, members });
      else printMembers(members, leader);
    });
  cluster.addCommand(healthCommand());
  cluster.addCommand(endpointsCommand());
  cluster.command("ticket")
    .description("A client ticket naming the nodes (no secret)")
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const ticket = await client.cluster.ticket();
      if (global.json) printJson({ ticket });
      else console.log(ticket);
    });
  cluster.command("join-ticket")
    .description(
      "A join ticket (carries a join token, valid 1 h): 'aspen node start --join TICKET'",
    )
    .action(async (_options, command) => {
      const global = globals(command);
      const { response, url } = await nodeGet(global, JOIN_TICKET_ROUTE);
      const body = await response.json() as { ticket?: unknown };
      if (typeof body.ticket !== "string") {
        throw new AspenError(
          "internal",
          `Cannot get a join ticket: ${url} answered without one`,
        );
      }
      if (global.json) printJson({ ticket: body.ticket });
      else console.log(body.ticket);
    });
  cluster.command("add-learner")
    .description("Add a node as a learner (on the leader)")
    .argument("<node-id>", "the new node's id")
    .requiredOption("--http-url <url>", "its HTTP API URL")
    .requiredOption("--quic-host <host>", "its QUIC host")
    .requiredOption("--quic-port <port>", "its QUIC UDP port", port)
    .requiredOption("--node-key <key>", "its public key (base64url)")
    .requiredOption(
      "--certificate-hash <hash>",
      "SHA-256 of its certificate (base64url)",
    )
    .action(async (nodeId, options, command) => {
      const global = globals(command);
      using client = clientOf(global, "admin");
      await client.cluster.addLearner({
        nodeId,
        httpUrl: options.httpUrl,
        quicHost: options.quicHost,
        quicPort: options.quicPort,
        nodeKey: options.nodeKey,
        certificateHash: options.certificateHash,
      });
      if (global.json) printJson({ ok: true });
      else console.log(`added learner ${nodeId}`);
    });
  cluster.addCommand(
    nodeCommand("promote", "Promote a caught-up learner to voter", "promoted"),
  );
  cluster.addCommand(
    nodeCommand("remove", "Remove a member (the leader too)", "removed"),
  );
  cluster.addCommand(
    nodeCommand(
      "transfer-leader",
      "Hand leadership to a voter",
      "leadership moved to",
    ),
  );
  return cluster;
}
