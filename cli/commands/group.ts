/**
 * `aspen group list | describe | reset` (issue 18): consumer groups of
 * pub/sub topics. `describe` shows the generation, the members and, per
 * partition, its owner, cursor, lag, pending, redelivered and skipped
 * counts; `reset --to earliest|latest|offset:N|time:ISO` moves cursors of
 * a group without members (`--force`: with members, bumping the
 * generation). Refusals exit 2 (see `topic.ts`).
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import type { GroupResetTarget } from "../../mod.ts";
import { globals, parseCount } from "./lease.ts";
import { parseName, pubsubRefusals } from "./_pubsub_common.ts";
import { clientOf, printJson, printTable, UsageError } from "./_context.ts";

/**
 * Reads a point in time: an ISO 8601 date (`2026-01-02T03:04:05Z`) or Unix ms.
 *
 * @throws {UsageError} When it is neither.
 */
export function parseTime(text: string, what: string): number {
  const ms = /^[0-9]+$/.test(text) ? Number(text) : Date.parse(text);
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new UsageError(
      `Invalid ${what} '${text}': expected an ISO 8601 time (e.g. 2026-01-02T03:04:05Z) or Unix ms`,
    );
  }
  return ms;
}

/**
 * Reads `--to`: `earliest`, `latest`, `offset:N` or `time:ISO`.
 *
 * @throws {UsageError} When it is none of these.
 */
export function parseResetTarget(text: string): GroupResetTarget {
  if (text === "earliest" || text === "latest") return text;
  if (text.startsWith("offset:")) {
    return { offset: parseCount(text.slice(7), "--to offset", 0) };
  }
  if (text.startsWith("time:")) {
    return { timeMs: parseTime(text.slice(5), "--to time") };
  }
  throw new UsageError(
    `Invalid --to '${text}': expected earliest, latest, offset:N or time:ISO`,
  );
}

function listCommand(): CommandUnknownOpts {
  return new Command("list")
    .description("List consumer groups (of one topic with --topic)")
    .option("--topic <topic>", "only this topic's groups")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (options, command) => {
      const global = globals(command);
      const topic = options.topic === undefined
        ? undefined
        : parseName(options.topic, "topic");
      using client = clientOf(global);
      const groups = await pubsubRefusals(() =>
        client.pubsub.groups.list({
          topic,
          consistency: options.eventual ? "eventual" : "strong",
        })
      );
      if (global.json) {
        printJson({ groups });
        return;
      }
      printTable(
        ["TOPIC", "GROUP", "GENERATION", "MEMBERS", "PAUSED"],
        groups.map((g) => [
          g.topic,
          g.group,
          String(g.generation),
          String(g.members),
          g.paused ? "yes" : "no",
        ]),
      );
    });
}

function describeCommand(): CommandUnknownOpts {
  return new Command("describe")
    .description("Show a group: members, owners, cursors, lag")
    .argument("<group>", "group name")
    .requiredOption("--topic <topic>", "the group's topic")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (group, options, command) => {
      const global = globals(command);
      parseName(group, "group");
      const topic = parseName(options.topic, "topic");
      using client = clientOf(global);
      const described = await pubsubRefusals(() =>
        client.pubsub.groups.describe(topic, group, {
          consistency: options.eventual ? "eventual" : "strong",
        })
      );
      if (global.json) {
        printJson(described);
        return;
      }
      const paused = !described.paused
        ? "no"
        : described.pausedUntilMs === null
        ? "yes"
        : `until ${new Date(described.pausedUntilMs).toISOString()}`;
      console.log(`group ${described.group} of topic ${described.topic}`);
      console.log(`generation: ${described.generation}`);
      console.log(`paused: ${paused}`);
      console.log(`dead-lettered: ${described.deadLettered}`);
      printTable(
        ["MEMBER", "LEASE", "PARTITIONS"],
        described.members.map((m) => [m.id, m.lease, m.partitions.join(",")]),
      );
      printTable(
        [
          "PARTITION",
          "OWNER",
          "CURSOR",
          "NEXT",
          "LAG",
          "PENDING",
          "REDELIVERED",
          "SKIPPED",
        ],
        described.partitions.map((p) => [
          String(p.partition),
          p.owner ?? "-",
          String(p.cursor),
          String(p.nextOffset),
          String(p.lag),
          String(p.pending),
          String(p.redelivered),
          String(p.skipped),
        ]),
      );
    });
}

function resetCommand(): CommandUnknownOpts {
  return new Command("reset")
    .description(
      "Move a group's cursors (needs a group without members, or --force)",
    )
    .argument("<group>", "group name")
    .requiredOption("--topic <topic>", "the group's topic")
    .requiredOption(
      "--to <target>",
      "earliest, latest, offset:N or time:ISO",
      parseResetTarget,
    )
    .option(
      "--partition <p>",
      "only this partition",
      (v: string) => parseCount(v, "--partition", 0),
    )
    .option("--force", "also with members (bumps the generation)")
    .action(async (group, options, command) => {
      const global = globals(command);
      parseName(group, "group");
      const topic = parseName(options.topic, "topic");
      using client = clientOf(global);
      const result = await pubsubRefusals(() =>
        client.pubsub.groups.reset(topic, group, options.to, {
          partition: options.partition,
          force: options.force === true,
        })
      );
      if (global.json) {
        printJson(result);
        return;
      }
      console.log(`group ${group} reset: generation ${result.generation}`);
      printTable(
        ["PARTITION", "CURSOR"],
        result.partitions.map((p) => [String(p.partition), String(p.cursor)]),
      );
    });
}

/** `aspen group …` */
export function groupCommand(): CommandUnknownOpts {
  return new Command("group")
    .description("Pub/sub consumer groups: list, describe, reset")
    .addCommand(listCommand())
    .addCommand(describeCommand())
    .addCommand(resetCommand());
}
