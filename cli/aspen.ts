/**
 * `aspen`: the command line of an Aspen cluster.
 *
 * ```sh
 * npx -y deno@2.9.6 run --allow-net --allow-env=ASPEN_URL,ASPEN_TOKEN --allow-read cli/aspen.ts kv get '["users", 1]' --url http://127.0.0.1:8080
 * ```
 *
 * Exit codes: 0 ok, 1 operation failed (check failed, refused), 2 usage or
 * bad input, 3 unavailable or timed out (a write's outcome unknown), 4 auth.
 *
 * @module
 */
import {
  Command,
  CommanderError,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import { clusterCommand } from "./commands/cluster.ts";
import { completionsCommand } from "./commands/completions.ts";
import { kvCommand } from "./commands/kv.ts";
import { devCommand, nodeCommand } from "./commands/node.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { describeFailure, EXIT } from "./commands/_context.ts";

function timeout(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || n < 1) {
    throw new CommanderError(
      EXIT.usage,
      "aspen.invalidTimeout",
      `Invalid --timeout '${value}'`,
    );
  }
  return n;
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
    .option("--timeout <ms>", "deadline of one request", timeout)
    .showHelpAfterError()
    .exitOverride();
  root.addCommand(kvCommand());
  root.addCommand(clusterCommand());
  root.addCommand(nodeCommand());
  root.addCommand(devCommand());
  root.addCommand(snapshotCommand());
  root.addCommand(completionsCommand(() => root));
  for (const command of allCommands(root)) {
    // No colour probing: it would read env vars beyond ASPEN_URL and ASPEN_TOKEN.
    command.exitOverride().configureOutput({
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    });
  }
  return root;
}

function allCommands(command: CommandUnknownOpts): CommandUnknownOpts[] {
  return [command, ...command.commands.flatMap(allCommands)];
}

/** Runs the CLI on `args` and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  try {
    await program().parseAsync([...args], { from: "user" });
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
