/**
 * `aspen node start` (run a node). `aspen dev cluster` lives in dev.ts.
 *
 * @module
 */
import { Command, InvalidArgumentError } from "@commander-js/extra-typings";
import {
  configFromEnv,
  configFromJson,
  type NodeConfig,
  type NodeConfigLayer,
  resolveNodeConfig,
} from "../../src/node/config.ts";
import {
  AddressChangedError,
  checkConfiguredAddress,
} from "../../src/node/data_dir.ts";
import {
  KV_CONNECT_PATH,
  serveNode,
  SHUTDOWN_GRACE_MS,
} from "../../src/server/serve.ts";
import { JoinRefusedError, prepareJoin } from "../../src/node/join.ts";
import { UnavailableError } from "../../src/client/errors.ts";
import { UsageError } from "./_context.ts";

export { devCommand } from "./dev.ts";

/** Parses an integer option. */
export function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`expected an integer, got '${value}'`);
  }
  return n;
}

/** Exit code for a usage or configuration error. */
export const EXIT_USAGE = 2;

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
    .option(
      "--name <name>",
      "a human name shown in 'cluster members' (replicated with the address)",
    )
    .option("--read-only <mode>", 'strong reads: "safe" (ReadIndex) or "lease"')
    .option(
      "--history-bytes-max <bytes>",
      "bytes of events history kept at most (default 134217728)",
    )
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
    .option(
      "--re-announce",
      "start although the configured address differs from the one the cluster knows, and announce it",
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
            historyBytesMax: options.historyBytesMax === undefined
              ? undefined
              : Number(options.historyBytesMax),
            forceNewCluster: options.forceNewCluster,
            autoPromote: options.autoPromote,
            allowMissingLog: options.allowMissingLog,
            name: options.name,
          },
        );
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
      try {
        await checkConfiguredAddress(config.dataDir, {
          httpHost: config.httpHost,
          httpPort: config.httpPort,
          quicHost: config.quicHost,
          quicPort: config.quicPort,
        }, options.reAnnounce === true);
      } catch (error) {
        if (error instanceof AddressChangedError) {
          throw new UsageError(error.message);
        }
        throw error;
      }
      if (options.join !== undefined) {
        try {
          config = await prepareJoin(config, options.join);
        } catch (error) {
          // The shared exit codes (_context.ts): 2 bad ticket, 3 no member
          // answered, 1 refused.
          const message = (error as Error).message;
          if (error instanceof TypeError) throw new UsageError(message);
          if (
            error instanceof JoinRefusedError ||
            !message.startsWith("Cannot join the cluster")
          ) throw error;
          throw new UnavailableError("unavailable", message);
        }
      }
      await runNode(config);
    });
  return node;
}

/** A signal this soon after the first is the same one delivered twice. */
const SECOND_SIGNAL_AFTER_MS = 1_000;

/** Starts a node, prints how to reach it, and runs until SIGINT or SIGTERM. */
async function runNode(config: NodeConfig): Promise<void> {
  // A failure to start exits through the shared error path (exit 1).
  const serving = await serveNode(config);
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
  console.log(
    `aspen: stopping (in-flight requests get ${SHUTDOWN_GRACE_MS} ms)`,
  );
  // Bounded: a second signal, or a stop that outlives its bound, exits now.
  const hardStop = setTimeout(() => {
    console.error("aspen: shutdown took too long; exiting");
    Deno.exit(1);
  }, SHUTDOWN_GRACE_MS + 10_000);
  // A signal sent to the process group and forwarded by the launcher
  // arrives twice at once: only one at least a second after the first counts
  // as a second signal.
  const firstSignalAt = performance.now();
  const secondSignal = async (): Promise<void> => {
    await untilSignal();
    if (performance.now() - firstSignalAt < SECOND_SIGNAL_AFTER_MS) {
      return secondSignal();
    }
    console.error("aspen: second signal; exiting now");
    Deno.exit(1);
  };
  void secondSignal();
  await serving.stop();
  clearTimeout(hardStop);
  Deno.exit(0);
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    Deno.addSignalListener("SIGINT", done);
    Deno.addSignalListener("SIGTERM", done);
  });
}
