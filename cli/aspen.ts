/**
 * `aspen`: the command line of an Aspen cluster.
 *
 * ```sh
 * npx -y deno@2.9.6 run --allow-net --allow-env=ASPEN_URL,ASPEN_TOKEN --allow-read cli/aspen.ts kv get '["users", 1]' --url http://127.0.0.1:8080
 * ```
 *
 * Exit codes: 0 ok, 1 operation failed (check failed, refused), 2 usage or
 * bad input, 3 unavailable or timed out (a write's outcome unknown, a node
 * unhealthy in `cluster health|endpoints`), 4 auth. Every failure leaves
 * through one path ({@linkcode describeFailure}), as one `aspen: …` line.
 *
 * @module
 */
import {
  Command,
  CommanderError,
  type CommandUnknownOpts,
  InvalidArgumentError,
  Option,
} from "@commander-js/extra-typings";
import denoJson from "../deno.json" with { type: "json" };
import { clusterCommand } from "./commands/cluster.ts";
import { completionsCommand } from "./commands/completions.ts";
import { kvCommand } from "./commands/kv.ts";
import { leaseCommand } from "./commands/lease.ts";
import { lockCommand, renameShadowedOptions } from "./commands/lock.ts";
import { electCommand } from "./commands/elect.ts";
import { eventsCommand } from "./commands/events.ts";
import { devCommand, nodeCommand } from "./commands/node.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { hookCommand } from "./commands/hook.ts";
import { workerCommand } from "./commands/worker.ts";
import { topicCommand } from "./commands/topic.ts";
import { groupCommand } from "./commands/group.ts";
import { consumeCommand } from "./commands/consume.ts";
import { describeFailure, EXIT } from "./commands/_context.ts";

/** The version `aspen --version` prints (the package's, from deno.json). */
export const VERSION: string = denoJson.version;

function timeout(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    // Commander prints it as one line: "option '--timeout <ms>' argument 'abc' is invalid. …"
    throw new InvalidArgumentError(
      "Expected a whole number of milliseconds, at least 1.",
    );
  }
  return n;
}

function commandPath(command: CommandUnknownOpts): string {
  const names: string[] = [];
  for (let c: CommandUnknownOpts | null = command; c !== null; c = c.parent) {
    names.unshift(c.name());
  }
  return names.join(" ");
}

/** The command tree. */
export function program(): CommandUnknownOpts {
  const root = new Command("aspen")
    .description(
      "Aspen: a Raft-replicated key-value store with Deno KV's data model",
    )
    .addOption(
      new Option("--url <urls>", "node URL(s), comma-separated").env(
        "ASPEN_URL",
      ),
    )
    .option("--ticket <ticket>", "client ticket (instead of --url)")
    .addOption(new Option("--token <token>", "bearer token").env("ASPEN_TOKEN"))
    .addOption(
      new Option(
        "--admin-token <token>",
        "admin token (membership, backups, join tickets)",
      ).env("ASPEN_ADMIN_TOKEN"),
    )
    .option("--json", "print JSON for scripts")
    .option(
      "--timeout <ms>",
      "deadline of one request",
      timeout,
    )
    .version(VERSION, "-V, --version", "print the version")
    .addHelpText(
      "after",
      `
Exit codes: 0 ok, 1 refused (check failed, membership rule, unknown node,
unknown lease, token not holding, lock not acquired in time, a fenced
consumer's ack), 2 usage (bad flag, key, value or URL; a pub/sub refusal), 3 unavailable (no node answered, a
write's outcome unknown, a node unhealthy in 'cluster health|endpoints'),
4 auth (missing or wrong token).`,
    )
    .exitOverride();
  root.addCommand(kvCommand());
  root.addCommand(leaseCommand());
  root.addCommand(lockCommand());
  root.addCommand(electCommand());
  root.addCommand(eventsCommand());
  root.addCommand(clusterCommand());
  root.addCommand(nodeCommand());
  root.addCommand(devCommand());
  root.addCommand(snapshotCommand());
  root.addCommand(hookCommand());
  root.addCommand(workerCommand());
  root.addCommand(topicCommand());
  root.addCommand(groupCommand());
  root.addCommand(consumeCommand());
  root.addCommand(completionsCommand(() => root));
  for (const command of allCommands(root)) {
    const path = commandPath(command);
    // No colour probing: it would read env vars beyond ASPEN_URL and ASPEN_TOKEN.
    command.exitOverride().configureOutput({
      getOutHasColors: () => false,
      getErrHasColors: () => false,
      // One line, like every other failure: "aspen: <what> (see '… --help')".
      outputError: (text, write) =>
        write(
          `aspen: ${
            text.replace(/^error: /, "").trim()
          } (see '${path} --help')\n`,
        ),
    }).configureHelp({ showGlobalOptions: true });
  }
  return root;
}

function allCommands(command: CommandUnknownOpts): CommandUnknownOpts[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

/** Runs the CLI on `args` and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    await program().parseAsync(renameShadowedOptions(args), { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are "errors" that exit 0; commander printed the message.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { code, message } = describeFailure(error);
    console.error(`aspen: ${message}`);
    return code;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
