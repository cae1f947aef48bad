/**
 * `aspen elect campaign | proclaim | leader | observe | resign`: leader
 * elections with fencing tokens (`campaign … -- CMD` runs CMD while
 * leading, as `lock acquire … -- CMD` does).
 *
 * @module
 */
import {
  Command,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import type { ElectionLeader, ElectionObservation } from "../../mod.ts";
import { clientOf, printJson, printTable } from "./_context.ts";
import { globals, interrupted, parseCount } from "./lease.ts";
import {
  HOLD_TTL_MS_DEFAULT,
  holderToken,
  holderTokenHelp,
  holderTokenOption,
  obtainUnderLease,
  runWhileHeld,
  waitTimeoutHelp,
  waitTimeoutOption,
} from "./lock.ts";

function leaderRow(leader: ElectionLeader): string[] {
  return [leader.value, leader.token, leader.lease, String(leader.revision)];
}

function campaignCommand(): CommandUnknownOpts {
  return new Command("campaign")
    .description(
      "Wait to lead an election with a value and print the leadership; with -- CMD, run CMD while leading",
    )
    .argument("<name>", "the election name (1 to 256 UTF-8 bytes)")
    .argument("<value>", "the leader's value (at most 64 KiB)")
    .argument("[command...]", "after --: the command to run while leading")
    .addOption(
      new Option(
        "--lease <id>",
        "hold with this lease (kept alive only while CMD runs)",
      )
        .conflicts("ttl"),
    )
    .option(
      "--ttl <ms>",
      `TTL of the lease granted for it (default ${HOLD_TTL_MS_DEFAULT}; kept alive only while CMD runs)`,
      (v) => parseCount(v, "TTL", 1),
    )
    .addOption(waitTimeoutHelp())
    .addOption(waitTimeoutOption())
    .addHelpText(
      "after",
      `
--timeout MS is how long to wait to be elected (exit 1). With -- CMD ARGS…,
CMD runs with ASPEN_LOCK_NAME, ASPEN_LOCK_TOKEN and ASPEN_LEASE_ID while the
lease is kept alive; aspen resigns after and exits with CMD's code; a lost
lease sends CMD SIGTERM and exits 1.`,
    )
    .action(async (name, value, cmd, options, command) => {
      const global = globals(command);
      const timeoutMs = (options as { waitTimeout?: number }).waitTimeout;
      using client = clientOf(global);
      const stop = interrupted();
      try {
        const withCommand = cmd.length > 0;
        const { lease, held: leadership } = await obtainUnderLease(
          client,
          options,
          withCommand,
          (holding) =>
            client.elections.campaign(name, value, {
              lease: holding,
              timeoutMs,
              signal: stop.signal,
            }),
        );
        if (!withCommand) {
          const shown = {
            name: leadership.name,
            token: leadership.token,
            lease: leadership.lease,
            value: leadership.value,
            revision: leadership.revision,
          };
          if (global.json) printJson(shown);
          else {
            console.log(
              `elected ${leadership.name}: token ${leadership.token}, lease ${leadership.lease}`,
            );
          }
          return;
        }
        stop.stop();
        Deno.exitCode = await runWhileHeld(cmd, {
          name: leadership.name,
          token: leadership.token,
          lease: lease.open!,
          leave: () => leadership.resign(),
        });
      } finally {
        stop.stop();
      }
    });
}

function proclaimCommand(): CommandUnknownOpts {
  return new Command("proclaim")
    .description("Set the leader's value (exit 1 when the token does not lead)")
    .argument("<name>", "the election name")
    .argument("<value>", "the new value")
    .addOption(holderTokenHelp())
    .addOption(holderTokenOption())
    .action(async (name, value, options, command) => {
      const global = globals(command);
      const token = holderToken(
        options as { holderToken?: unknown },
        "elect proclaim",
      );
      using client = clientOf(global);
      const leader = await client.elections.proclaim(name, token, value);
      if (global.json) printJson({ leader });
      else console.log(`proclaimed ${name}: ${leader.value}`);
    });
}

function leaderCommand(): CommandUnknownOpts {
  return new Command("leader")
    .description("Show the leader of an election")
    .argument("<name>", "the election name")
    .action(async (name, _options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const leader = await client.elections.leader(name);
      if (global.json) printJson({ leader });
      else if (leader === null) console.log(`${name}: no leader`);
      else {printTable(["VALUE", "TOKEN", "LEASE", "REVISION"], [
          leaderRow(leader),
        ]);}
    });
}

function showObservation(
  observation: ElectionObservation,
  json: boolean | undefined,
): string {
  if (json) return JSON.stringify(observation);
  const leader = observation.leader;
  return leader === null
    ? `${observation.revision}\t(no leader)`
    : `${observation.revision}\t${leader.value}\t${leader.token}\t${leader.lease}`;
}

function observeCommand(): CommandUnknownOpts {
  return new Command("observe")
    .description(
      "Print the leader, then a line per change (revision, value, token, lease) until interrupted",
    )
    .argument("<name>", "the election name")
    .option(
      "--count <n>",
      "exit after this many lines (the first counts); default: until interrupted",
      (v) => parseCount(v, "count", 1),
    )
    .action(async (name, options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      // The stream reconnects forever: a first read fails fast (exit 3 or
      // 4) when no node answers or the token is refused.
      await client.elections.leader(name);
      const stop = interrupted();
      let lines = 0;
      try {
        for await (
          const observation of client.elections.observe(name, {
            signal: stop.signal,
          })
        ) {
          console.log(showObservation(observation, global.json));
          lines++;
          if (options.count !== undefined && lines >= options.count) break;
        }
      } finally {
        stop.stop();
      }
    });
}

function resignCommand(): CommandUnknownOpts {
  return new Command("resign")
    .description(
      "Resign leadership held with a token (exit 1 when it does not lead)",
    )
    .argument("<name>", "the election name")
    .addOption(holderTokenHelp())
    .addOption(holderTokenOption())
    .action(async (name, options, command) => {
      const global = globals(command);
      const token = holderToken(
        options as { holderToken?: unknown },
        "elect resign",
      );
      using client = clientOf(global);
      await client.elections.resign(name, token);
      if (global.json) printJson({ resigned: true });
      else console.log(`resigned ${name}`);
    });
}

/** `aspen elect …` */
export function electCommand(): CommandUnknownOpts {
  return new Command("elect")
    .description("Leader elections with fencing tokens")
    .addCommand(campaignCommand())
    .addCommand(proclaimCommand())
    .addCommand(leaderCommand())
    .addCommand(observeCommand())
    .addCommand(resignCommand());
}
