/**
 * `aspen cluster status | members | ticket | add-learner | promote | remove
 * | transfer-leader`.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import type { ClusterMember } from "../../mod.ts";
import {
  clientOf,
  type GlobalOptions,
  printJson,
  printTable,
  tokenOf,
  UsageError,
} from "./_context.ts";

function globals(command: { optsWithGlobals(): unknown }): GlobalOptions {
  return command.optsWithGlobals() as GlobalOptions;
}

function printMembers(
  members: readonly ClusterMember[],
  leader: string | null,
): void {
  printTable(
    ["ID", "ROLE", "LEADER", "MATCH", "LAG", "URL"],
    members.map((m) => [
      m.id,
      m.role,
      m.id === leader ? "*" : "",
      m.match === null ? "-" : String(m.match),
      m.lag === null ? "-" : String(m.lag),
      m.httpUrl ?? "-",
    ]),
  );
}

function nodeCommand(
  name: "promote" | "remove" | "transfer-leader",
  description: string,
  done: string,
): CommandUnknownOpts {
  return new Command(name)
    .description(description)
    .argument("<node-id>", "the node's id")
    .action(async (nodeId, _options, command) => {
      const global = globals(command);
      using client = clientOf(global, "admin");
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
    .description("Members with roles (match and lag when the leader answers)")
    .action(async (_options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const { leader, members } = await client.cluster.members();
      if (global.json) printJson({ leader, members });
      else printMembers(members, leader);
    });
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
      const url = global.url?.split(",")[0]?.trim();
      if (url === undefined || url === "") {
        throw new UsageError("No cluster given: pass --url URL (or ASPEN_URL)");
      }
      const response = await fetch(new URL("/v1/cluster/join-ticket", url), {
        headers: tokenOf(global, "admin") === undefined
          ? {}
          : { authorization: `Bearer ${tokenOf(global, "admin")}` },
      });
      const body = await response.json() as {
        ticket?: string;
        error?: { message: string };
      };
      if (!response.ok || body.ticket === undefined) {
        throw new UsageError(
          `Cannot get a join ticket: ${body.error?.message ?? response.status}`,
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
