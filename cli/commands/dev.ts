/**
 * `aspen dev cluster` (a local cluster on loopback, one process per node)
 * and `aspen dev status` (its summary again, from the file it writes).
 *
 * A folder keeps its cluster: started again, each node `nK` runs on the
 * address its own `cluster.json` records for it (found by its node id, not
 * by position). A different `--nodes` on an existing folder is refused.
 *
 * @module
 */
import { Command } from "@commander-js/extra-typings";
import { formatTicket } from "../../src/cluster/ticket.ts";
import { decodeBase32 } from "../../src/base/base32.ts";
import { decodeBase64Url } from "../../src/base/base64.ts";
import { exists, readSelfMember } from "../../src/node/data_dir.ts";
import type { NodeAddress } from "../../src/node/node_api.ts";
import {
  freeTcpPorts,
  freeUdpPorts,
  provisionCluster,
} from "../../src/node/provision.ts";
import {
  GENERATED_TOKEN_FILE,
  KV_CONNECT_PATH,
} from "../../src/server/serve.ts";
import { EXIT_USAGE, integer, untilSignal } from "./node.ts";

/** File in the dev cluster's folder that `aspen dev status` reads. */
export const DEV_STATUS_FILE = "dev-cluster.json";
const HOST = "127.0.0.1";
const NODES_MAX = 7;
/** Bound on a buffered output line of a node (longer ones are cut). */
const LINE_CHARS_MAX = 16 * 1024;
/** How long to wait for every node's start-up lines before the summary. */
const STARTUP_WAIT_MS = 120_000;

/** One node of a running dev cluster. */
interface DevNode {
  readonly name: string;
  readonly dataDir: string;
  readonly httpUrl: string;
  readonly quic: string;
  pid: number | null;
  /** Null while running. */
  exitCode: number | null;
}

/** What the dev cluster writes to {@linkcode DEV_STATUS_FILE}. */
interface DevStatus {
  readonly pid: number;
  readonly startedAt: string;
  readonly root: string;
  readonly ticket: string;
  readonly token: string | null;
  readonly nodes: readonly DevNode[];
}

/** A refused dev cluster command (exit 2). */
class DevClusterError extends Error {
  override name = "DevClusterError";
}

/** `aspen dev …` */
export function devCommand(): Command {
  const dev = new Command("dev").description("Development helpers");
  dev.command("cluster")
    .description(
      "Start a local cluster on loopback (one process per node); Ctrl-C stops it, SIGUSR2 prints the summary again",
    )
    .option(
      "--nodes <count>",
      "number of nodes (1 to 7; default 3, or the folder's count)",
      integer,
    )
    .option(
      "--data-dir <path>",
      "parent folder of the nodes' folders",
      "./data/dev",
    )
    .option(
      "--base-port <port>",
      "first HTTP port of a new cluster (QUIC uses the same numbers); 0 picks free ports",
      integer,
      0,
    )
    .action(async (options) => {
      try {
        await runDevCluster(options.nodes, options.dataDir, options.basePort);
      } catch (error) {
        console.error(`aspen: ${(error as Error).message}`);
        Deno.exit(error instanceof DevClusterError ? EXIT_USAGE : 1);
      }
    });
  dev.command("status")
    .description(
      "Print the running dev cluster's summary (URLs, ticket, token)",
    )
    .option(
      "--data-dir <path>",
      "parent folder of the nodes' folders",
      "./data/dev",
    )
    .action(async (options) => {
      const file = `${options.dataDir}/${DEV_STATUS_FILE}`;
      let status: DevStatus;
      try {
        status = JSON.parse(await Deno.readTextFile(file)) as DevStatus;
      } catch (error) {
        console.error(
          `aspen: No dev cluster status in '${file}': ${
            (error as Error).message
          } (start one with 'aspen dev cluster --data-dir ${options.dataDir}')`,
        );
        Deno.exit(EXIT_USAGE);
      }
      for (const line of await summaryLines(status, true)) console.log(line);
    });
  return dev;
}

/** The folders `root/n1…` that already hold a node of a cluster. */
async function existingNodes(root: string): Promise<number> {
  let count = 0;
  while (
    count < NODES_MAX + 1 &&
    await exists(`${root}/n${count + 1}/cluster.json`)
  ) count++;
  return count;
}

/** Each folder's own address, from its own cluster file. */
async function recordedAddresses(dirs: string[]): Promise<NodeAddress[]> {
  const addresses: NodeAddress[] = [];
  let clusterId: string | null = null;
  for (const dir of dirs) {
    const found = await readSelfMember(dir);
    if (found?.self == null) {
      throw new DevClusterError(
        `Cannot start the dev cluster as '${dir}' has no node key or does not list itself in its cluster.json; use a new --data-dir`,
      );
    }
    if (clusterId !== null && found.cluster.clusterId !== clusterId) {
      throw new DevClusterError(
        `Cannot start the dev cluster as '${dir}' belongs to another cluster than '${
          dirs[0]
        }'; use a new --data-dir`,
      );
    }
    clusterId = found.cluster.clusterId;
    addresses.push(found.self);
  }
  const urls = new Set(addresses.map((a) => a.httpUrl));
  if (urls.size !== addresses.length) {
    throw new DevClusterError(
      "Cannot start the dev cluster as two of its nodes record the same URL (a folder damaged by an older Aspen); use a new --data-dir",
    );
  }
  return addresses;
}

async function runDevCluster(
  requested: number | undefined,
  root: string,
  basePort: number,
): Promise<void> {
  const existing = await existingNodes(root);
  if (existing > NODES_MAX) {
    throw new DevClusterError(
      `Cannot start the dev cluster as '${root}' holds more than ${NODES_MAX} nodes`,
    );
  }
  if (requested !== undefined && (requested < 1 || requested > NODES_MAX)) {
    throw new DevClusterError(
      `--nodes must be in [1, ${NODES_MAX}]: current value is ${requested}`,
    );
  }
  if (existing > 0 && requested !== undefined && requested !== existing) {
    throw new DevClusterError(
      `Cannot start a dev cluster of ${requested} nodes as '${root}' holds one of ${existing} nodes: run it again with --nodes ${existing} (or without --nodes), or use a new --data-dir (growing a dev cluster is done with 'cluster join-ticket' and 'node start --join')`,
    );
  }
  const count = existing > 0 ? existing : requested ?? 3;
  const dirs = Array.from({ length: count }, (_, i) => `${root}/n${i + 1}`);
  if (existing === 0) {
    const httpPorts = basePort > 0
      ? dirs.map((_, i) => basePort + i)
      : freeTcpPorts(HOST, count);
    const quicPorts = basePort > 0 ? httpPorts : freeUdpPorts(HOST, count);
    console.log(`aspen: provisioning ${count} nodes under ${root}`);
    await provisionCluster(dirs.map((dataDir, i) => ({
      dataDir,
      httpUrl: `http://${HOST}:${httpPorts[i]}`,
      quicHost: HOST,
      quicPort: quicPorts[i]!,
    })));
  } else {
    console.log(
      `aspen: starting the ${count}-node dev cluster in ${root} on its recorded ports${
        basePort > 0 ? " (--base-port applies to a new cluster only)" : ""
      }`,
    );
  }
  const addresses = await recordedAddresses(dirs);
  const clusterId = (await readSelfMember(dirs[0]!))!.cluster.clusterId;
  const ticket = formatTicket({
    kind: "client",
    clusterId: decodeBase32(clusterId),
    nodes: addresses.map((m) => ({
      nodeKey: decodeBase64Url(m.nodeKey),
      httpUrls: [m.httpUrl],
      quicAddresses: [`${m.quicHost}:${m.quicPort}`],
    })),
  });
  const nodes: DevNode[] = addresses.map((a, i) => ({
    name: `n${i + 1}`,
    dataDir: dirs[i]!,
    httpUrl: a.httpUrl,
    quic: `${a.quicHost}:${a.quicPort}`,
    pid: null,
    exitCode: null,
  }));
  const status = (): DevStatus => ({
    pid: Deno.pid,
    startedAt,
    root,
    ticket,
    token: tokenOf(dirs[0]!),
    nodes,
  });
  const startedAt = new Date().toISOString();
  let stopping = false;
  const ready: Promise<void>[] = [];
  const children = nodes.map((node, i) => {
    const address = addresses[i]!;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        `--allow-net=${HOST}`,
        // The log writer Worker loads its module from src/ at run time.
        `--allow-read=${node.dataDir},${
          new URL("../../src", import.meta.url).pathname
        }`,
        `--allow-write=${node.dataDir}`,
        "--allow-env",
        new URL("../aspen.ts", import.meta.url).pathname,
        "node",
        "start",
        "--data-dir",
        node.dataDir,
        "--http-port",
        String(new URL(address.httpUrl).port),
        "--quic-port",
        String(address.quicPort),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    node.pid = child.pid;
    let started: () => void = () => {};
    ready.push(new Promise<void>((resolve) => (started = resolve)));
    void forwardLines(child.stdout, node.name, console.log, (line) => {
      // The last start-up line of `node start`.
      if (line.startsWith("  ticket")) started();
    });
    void forwardLines(child.stderr, node.name, console.error, () => {});
    child.status.then((s) => {
      node.exitCode = s.code;
      started();
      if (!stopping) {
        console.error(
          `aspen: node ${node.name} (${node.httpUrl}) exited with code ${s.code}${
            s.signal === null ? "" : ` (signal ${s.signal})`
          }`,
        );
        void writeStatus(root, status());
      }
    });
    return child;
  });
  const waited = await Promise.race([
    Promise.all(ready).then(() => true),
    new Promise<false>((resolve) =>
      setTimeout(() => resolve(false), STARTUP_WAIT_MS)
    ),
  ]);
  await writeStatus(root, status());
  if (!waited) {
    console.error(
      `aspen: not every node printed its start-up lines within ${
        STARTUP_WAIT_MS / 1000
      } s`,
    );
  }
  const printSummary = async () => {
    for (const line of await summaryLines(status(), false)) console.log(line);
  };
  await printSummary();
  const onUsr1 = () => void printSummary();
  Deno.addSignalListener("SIGUSR2", onUsr1);
  await untilSignal();
  stopping = true;
  Deno.removeSignalListener("SIGUSR2", onUsr1);
  console.log("aspen: stopping the dev cluster");
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
  await Promise.all(children.map((c) => c.status));
  await Deno.remove(`${root}/${DEV_STATUS_FILE}`).catch(() => {});
  Deno.exit(0);
}

/** The cluster's generated token, when the nodes use one (configured tokens are not repeated). */
function tokenOf(dir: string): string | null {
  try {
    return Deno.readTextFileSync(`${dir}/${GENERATED_TOKEN_FILE}`).trim();
  } catch {
    return null;
  }
}

async function writeStatus(root: string, status: DevStatus): Promise<void> {
  await Deno.writeTextFile(
    `${root}/${DEV_STATUS_FILE}`,
    JSON.stringify(status, null, 2),
    { mode: 0o600 },
  );
}

/** The summary: each node (and whether it runs), the ticket, the token. */
async function summaryLines(
  status: DevStatus,
  probe: boolean,
): Promise<string[]> {
  const lines = [
    `aspen: dev cluster of ${status.nodes.length} nodes in ${status.root} (pid ${status.pid})`,
  ];
  for (const node of status.nodes) {
    let state = node.exitCode === null
      ? "running"
      : `exited with code ${node.exitCode}`;
    if (probe) {
      state = await reachable(node.httpUrl) ? "reachable" : "unreachable";
    }
    lines.push(
      `  ${node.name}  ${node.httpUrl}   kv connect ${node.httpUrl}${KV_CONNECT_PATH}   quic ${node.quic}   ${state}`,
    );
  }
  lines.push(`  ticket ${status.ticket}`);
  lines.push(
    status.token === null
      ? "  token  (configured by ASPEN_TOKENS)"
      : `  token  ${status.token}`,
  );
  return lines;
}

async function reachable(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/health`, {
      signal: AbortSignal.timeout(2_000),
    });
    await response.body?.cancel();
    return true;
  } catch {
    return false;
  }
}

/** Prints a child's output line by line, prefixed with its name. */
async function forwardLines(
  stream: ReadableStream<Uint8Array>,
  name: string,
  print: (line: string) => void,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  const emit = (line: string) => {
    print(`[${name}] ${line}`);
    onLine(line);
  };
  try {
    for await (const bytes of stream) {
      pending += decoder.decode(bytes, { stream: true });
      let newline = pending.indexOf("\n");
      while (newline >= 0) {
        emit(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf("\n");
      }
      if (pending.length > LINE_CHARS_MAX) {
        emit(pending.slice(0, LINE_CHARS_MAX));
        pending = "";
      }
    }
  } catch {
    // The child went away.
  }
  if (pending !== "") emit(pending);
}
