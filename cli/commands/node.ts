/**
 * `aspen node start` (run a node) and `aspen dev cluster` (a local cluster on
 * loopback in one process group).
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import { formatTicket } from "../../src/cluster/ticket.ts";
import { decodeBase32 } from "../../src/cluster/base32.ts";
import { decodeBase64Url } from "../../src/node/_base64.ts";
import {
  configFromEnv,
  configFromJson,
  type NodeConfig,
  type NodeConfigLayer,
  resolveNodeConfig,
} from "../../src/node/config.ts";
import { readClusterFile } from "../../src/node/data_dir.ts";
import {
  freeTcpPorts,
  freeUdpPorts,
  provisionCluster,
} from "../../src/node/provision.ts";
import { KV_CONNECT_PATH, serveNode } from "../../src/node/serve.ts";
import { prepareJoin } from "../../src/node/join.ts";

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected an integer, got '${value}'`);
  }
  return n;
}

/** Exit code for a usage or configuration error. */
const EXIT_USAGE = 2;

/** `aspen node …` */
export function nodeCommand(): Command {
  const node = new Command("node").description("Run an Aspen node");
  node.command("start")
    .description(
      "Start a node (a folder without a cluster becomes a new one-node cluster)",
    )
    .option(
      "--data-dir <path>",
      "data folder (default ./data; env ASPEN_DATA_DIR)",
    )
    .option("--http-host <host>", "HTTP API address (default 127.0.0.1)")
    .option("--http-port <port>", "HTTP API port (default 8080)", integer)
    .option("--quic-host <host>", "QUIC peer address (default: the HTTP host)")
    .option(
      "--quic-port <port>",
      "QUIC peer UDP port (default: the HTTP port number)",
      integer,
    )
    .option("--config <file>", "JSON configuration file (env < file < flags)")
    .option("--read-only <mode>", 'strong reads: "safe" (ReadIndex) or "lease"')
    .option(
      "--join <ticket>",
      "join the cluster of a join ticket (as a learner) on first start",
    )
    .option(
      "--auto-promote",
      "as leader, promote learners to voters once caught up",
    )
    .option(
      "--force-new-cluster",
      "recover a lone survivor as a one-node cluster (loses data)",
    )
    .option(
      "--allow-missing-log",
      "start although the identity exists without a log",
    )
    .action(async (options) => {
      let config: NodeConfig;
      try {
        const file: NodeConfigLayer = options.config === undefined
          ? {}
          : configFromJson(
            await Deno.readTextFile(options.config),
            options.config,
          );
        config = resolveNodeConfig(
          configFromEnv((name) => Deno.env.get(name)),
          file,
          {
            dataDir: options.dataDir,
            httpHost: options.httpHost,
            httpPort: options.httpPort,
            quicHost: options.quicHost,
            quicPort: options.quicPort,
            readOnly: options.readOnly as NodeConfig["readOnly"] | undefined,
            forceNewCluster: options.forceNewCluster,
            autoPromote: options.autoPromote,
            allowMissingLog: options.allowMissingLog,
          },
        );
      } catch (error) {
        console.error(`aspen: ${(error as Error).message}`);
        Deno.exit(EXIT_USAGE);
      }
      if (options.join !== undefined) {
        try {
          config = await prepareJoin(config, options.join);
        } catch (error) {
          console.error(`aspen: ${(error as Error).message}`);
          Deno.exit(error instanceof TypeError ? EXIT_USAGE : 1);
        }
      }
      await runNode(config);
    });
  return node;
}

/** Starts a node, prints how to reach it, and runs until SIGINT or SIGTERM. */
async function runNode(config: NodeConfig): Promise<void> {
  let serving;
  try {
    serving = await serveNode(config);
  } catch (error) {
    console.error(`aspen: ${(error as Error).message}`);
    Deno.exit(1);
  }
  const { node, url } = serving;
  console.log(`aspen node ${node.identity.shortId} listening`);
  console.log(`  http       ${url}`);
  console.log(
    `  kv connect ${url}${KV_CONNECT_PATH}   (Deno.openKv; token in DENO_KV_ACCESS_TOKEN)`,
  );
  console.log(`  quic       ${node.address.quicHost}:${node.address.quicPort}`);
  console.log(`  node id    ${node.id}`);
  console.log(`  data       ${config.dataDir}`);
  if (config.tokens.length === 0) {
    console.log(
      `  token      ${
        serving.kvConnectTokens[0]
      } (the cluster's data token, in access.token)`,
    );
  }
  if (config.adminTokens.length === 0) {
    console.log(
      `  admin      ${
        serving.adminTokens[0]
      } (the cluster's admin token, in admin.token; ASPEN_ADMIN_TOKEN)`,
    );
  }
  console.log(`  ticket     ${node.clientTicket()}`);
  await untilSignal();
  console.log("aspen: stopping (finishing in-flight requests)");
  await serving.stop();
  Deno.exit(0);
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    Deno.addSignalListener("SIGINT", done);
    Deno.addSignalListener("SIGTERM", done);
  });
}

/** `aspen dev …` */
export function devCommand(): Command {
  const dev = new Command("dev").description("Development helpers");
  dev.command("cluster")
    .description(
      "Start a local cluster on loopback (one process per node); Ctrl-C stops it",
    )
    .option("--nodes <count>", "number of nodes (1 to 7)", integer, 3)
    .option(
      "--data-dir <path>",
      "parent folder of the nodes' folders",
      "./data/dev",
    )
    .option(
      "--base-port <port>",
      "first HTTP port (QUIC uses the same numbers); 0 picks free ports",
      integer,
      0,
    )
    .action(async (options) => {
      if (options.nodes < 1 || options.nodes > 7) {
        console.error(
          `aspen: --nodes must be in [1, 7]: current value is ${options.nodes}`,
        );
        Deno.exit(EXIT_USAGE);
      }
      await runDevCluster(options.nodes, options.dataDir, options.basePort);
    });
  return dev;
}

async function runDevCluster(
  count: number,
  root: string,
  basePort: number,
): Promise<void> {
  const host = "127.0.0.1";
  const dirs = Array.from({ length: count }, (_, i) => `${root}/n${i + 1}`);
  let cluster = await readClusterFile(dirs[0]!);
  if (cluster === null) {
    const httpPorts = basePort > 0
      ? dirs.map((_, i) => basePort + i)
      : freeTcpPorts(host, count);
    const quicPorts = basePort > 0 ? httpPorts : freeUdpPorts(host, count);
    console.log(`aspen: provisioning ${count} nodes under ${root}`);
    await provisionCluster(dirs.map((dataDir, i) => ({
      dataDir,
      httpUrl: `http://${host}:${httpPorts[i]}`,
      quicHost: host,
      quicPort: quicPorts[i]!,
    })));
    cluster = (await readClusterFile(dirs[0]!))!;
  }
  const children = cluster.members.map((member, i) => {
    const httpPort = Number(new URL(member.httpUrl).port);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        `--allow-net=${host}`,
        // The log writer Worker loads its module from src/ at run time.
        `--allow-read=${dirs[i]},${
          new URL("../../src", import.meta.url).pathname
        }`,
        `--allow-write=${dirs[i]}`,
        "--allow-env",
        new URL("../aspen.ts", import.meta.url).pathname,
        "node",
        "start",
        "--data-dir",
        dirs[i]!,
        "--http-port",
        String(httpPort),
        "--quic-port",
        String(member.quicPort),
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return child;
  });
  const ticket = formatTicket({
    kind: "client",
    clusterId: decodeBase32(cluster.clusterId),
    nodes: cluster.members.map((m) => ({
      nodeKey: decodeBase64Url(m.nodeKey),
      httpUrls: [m.httpUrl],
      quicAddresses: [`${m.quicHost}:${m.quicPort}`],
    })),
  });
  console.log(`aspen: dev cluster of ${count} nodes`);
  for (const m of cluster.members) {
    console.log(`  ${m.httpUrl}   quic ${m.quicHost}:${m.quicPort}`);
  }
  console.log(`  ticket ${ticket}`);
  await untilSignal();
  console.log("aspen: stopping the dev cluster");
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  await Promise.all(children.map((c) => c.status));
  Deno.exit(0);
}
