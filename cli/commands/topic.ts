/**
 * `aspen topic create | list | describe | delete | publish` (issue 18):
 * pub/sub topics. Tables for people, `--json` for scripts; the cluster's
 * refusals exit 2 (see `_pubsub_common.ts`); `publish` is in
 * `_topic_publish.ts`.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import { globals, parseCount } from "./lease.ts";
import { clientOf, printJson, printTable } from "./_context.ts";
import { parseName, pubsubRefusals } from "./_pubsub_common.ts";
import { publishCommand } from "./_topic_publish.ts";

export { parseName, pubsubRefusals } from "./_pubsub_common.ts";

function count(what: string, min = 0) {
  return (value: string) => parseCount(value, what, min);
}

function createCommand(): CommandUnknownOpts {
  return new Command("create")
    .description("Create a topic (an identical existing one is kept)")
    .argument("<name>", "topic name: 1 to 128 of [A-Za-z0-9._-]")
    .option(
      "--partitions <p>",
      "partitions, 1 to 256 (default 1)",
      count("--partitions", 1),
    )
    .option(
      "--max-messages <n>",
      "keep at most N records per partition",
      count("--max-messages", 1),
    )
    .option(
      "--max-bytes <b>",
      "keep at most B bytes per partition",
      count("--max-bytes", 1),
    )
    .option(
      "--max-age <ms>",
      "drop records older than MS",
      count("--max-age", 1),
    )
    .option(
      "--dedup-window <ms>",
      "how long producer sequences are remembered (default 120000)",
      count("--dedup-window", 0),
    )
    .action(async (name, options, command) => {
      const global = globals(command);
      parseName(name, "topic");
      const retention = {
        ...(options.maxMessages === undefined
          ? {}
          : { maxMessages: options.maxMessages }),
        ...(options.maxBytes === undefined
          ? {}
          : { maxBytes: options.maxBytes }),
        ...(options.maxAge === undefined ? {} : { maxAgeMs: options.maxAge }),
      };
      using client = clientOf(global);
      const result = await pubsubRefusals(() =>
        client.pubsub.createTopic(name, {
          partitions: options.partitions,
          retention: Object.keys(retention).length === 0
            ? undefined
            : retention,
          dedupWindowMs: options.dedupWindow,
        })
      );
      if (global.json) printJson(result);
      else {
        const { topic } = result;
        console.log(
          `topic ${topic.name} ${
            result.created ? "created" : "exists with these settings"
          }: ${topic.partitions} partition${topic.partitions === 1 ? "" : "s"}`,
        );
      }
    });
}

function retentionText(retention: {
  maxMessages?: number;
  maxBytes?: number;
  maxAgeMs?: number;
}): string {
  const parts = [
    retention.maxMessages === undefined
      ? null
      : `${retention.maxMessages} messages`,
    retention.maxBytes === undefined ? null : `${retention.maxBytes} bytes`,
    retention.maxAgeMs === undefined ? null : `${retention.maxAgeMs} ms`,
  ].filter((p) => p !== null);
  return parts.length === 0 ? "unbounded" : parts.join(", ");
}

function listCommand(): CommandUnknownOpts {
  return new Command("list")
    .description("List the topics")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (options, command) => {
      const global = globals(command);
      using client = clientOf(global);
      const topics = await client.pubsub.listTopics({
        consistency: options.eventual ? "eventual" : "strong",
      });
      if (global.json) {
        printJson({ topics });
        return;
      }
      printTable(
        ["TOPIC", "PARTITIONS", "DEDUP_WINDOW_MS", "RETENTION"],
        topics.map((t) => [
          t.name,
          String(t.partitions),
          String(t.dedupWindowMs),
          retentionText(t.retention),
        ]),
      );
    });
}

function describeCommand(): CommandUnknownOpts {
  return new Command("describe")
    .description("Show a topic: partitions, offsets, bytes, groups")
    .argument("<name>", "topic name")
    .option(
      "--eventual",
      "read the node's replica instead of a linearizable read",
    )
    .action(async (name, options, command) => {
      const global = globals(command);
      parseName(name, "topic");
      using client = clientOf(global);
      const topic = await pubsubRefusals(() =>
        client.pubsub.describeTopic(name, {
          consistency: options.eventual ? "eventual" : "strong",
        })
      );
      if (global.json) {
        printJson(topic);
        return;
      }
      console.log(`topic ${topic.name}`);
      console.log(`retention: ${retentionText(topic.retention)}`);
      console.log(`dedup window: ${topic.dedupWindowMs} ms`);
      console.log(`scheduled: ${topic.scheduled}`);
      console.log(
        `groups: ${
          topic.groups.length === 0 ? "(none)" : topic.groups.join(", ")
        }`,
      );
      printTable(
        ["PARTITION", "FIRST", "NEXT", "BYTES"],
        topic.partitions.map((p) => [
          String(p.partition),
          String(p.firstOffset),
          String(p.nextOffset),
          String(p.bytes),
        ]),
      );
    });
}

function deleteCommand(): CommandUnknownOpts {
  return new Command("delete")
    .description("Delete a topic and its records (--force: and its groups)")
    .argument("<name>", "topic name")
    .option("--force", "also when it has consumer groups")
    .action(async (name, options, command) => {
      const global = globals(command);
      parseName(name, "topic");
      using client = clientOf(global);
      const deleted = await pubsubRefusals(() =>
        client.pubsub.deleteTopic(name, { force: options.force === true })
      );
      if (global.json) printJson({ deleted });
      else console.log(`topic ${name} deleted`);
    });
}

/** `aspen topic …` */
export function topicCommand(): CommandUnknownOpts {
  return new Command("topic")
    .description("Pub/sub topics: create, list, describe, delete, publish")
    .addCommand(createCommand())
    .addCommand(listCommand())
    .addCommand(describeCommand())
    .addCommand(deleteCommand())
    .addCommand(publishCommand());
}
