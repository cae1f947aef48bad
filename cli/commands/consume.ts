/**
 * `aspen consume TOPIC --group G` (issue 18): joins the group with a lease
 * of `--ttl` (default 10,000 ms) kept alive, prints each message
 * (`P:OFFSET delivery D KEY VALUE`, tab separated; `--json`: one object a
 * line, `{topic, partition, offset, key, value, headers, delivery}`, values
 * as `kv get --json` shows them), then acks it (`--nack`: nacks it, so it
 * is delivered again). It runs until `--count` messages or until
 * interrupted (Ctrl-C, SIGTERM: exit 0), then leaves the group and revokes
 * its lease. A new group starts per `--start` (`all` by default, `new`,
 * `offset:N` for every partition, `time:ISO`). An ack refused as fenced
 * (`staleGeneration`) exits 1; other refusals exit 2.
 *
 * @module
 */
import { Command, type CommandUnknownOpts } from "@commander-js/extra-typings";
import type { AspenClient, ConsumerMessage, GroupStart } from "../../mod.ts";
import { PUBSUB_LIMITS } from "../../src/protocol/http_api_pubsub.ts";
import { globals, interrupted, parseCount } from "./lease.ts";
import { parseName, pubsubRefusals } from "./_pubsub_common.ts";
import { parseTime } from "./group.ts";
import { clientOf, jsonValue, showValue, UsageError } from "./_context.ts";

/** TTL of the member's lease without `--ttl`, ms. */
export const CONSUME_TTL_MS_DEFAULT = 10_000;
/** Longest wait of one fetch, ms: an interrupt is seen within it. */
const FETCH_WAIT_MS = 2_000;
/** Messages one fetch asks for without `--batch`. */
const BATCH_DEFAULT = 100;

/** What `--start` names, before the topic's partitions are known. */
type StartFlag = "all" | "new" | { offset: number } | { timeMs: number };

/**
 * Reads `--start`: `all`, `new`, `offset:N` or `time:ISO`.
 *
 * @throws {UsageError} When it is none of these.
 */
export function parseStart(text: string): StartFlag {
  if (text === "all" || text === "new") return text;
  if (text.startsWith("offset:")) {
    return { offset: parseCount(text.slice(7), "--start offset", 0) };
  }
  if (text.startsWith("time:")) {
    return { timeMs: parseTime(text.slice(5), "--start time") };
  }
  throw new UsageError(
    `Invalid --start '${text}': expected all, new, offset:N or time:ISO`,
  );
}

/** The group start `--start` names (`offset:N`: N on every partition). */
async function startOf(
  client: AspenClient,
  topic: string,
  flag: StartFlag | undefined,
): Promise<GroupStart | undefined> {
  if (flag === undefined || typeof flag === "string" || "timeMs" in flag) {
    return flag;
  }
  const described = await client.pubsub.describeTopic(topic);
  const offsets: Record<string, number> = {};
  for (const p of described.partitions) {
    offsets[String(p.partition)] = flag.offset;
  }
  return { offsets };
}

function printMessage(message: ConsumerMessage, json: boolean): void {
  if (json) {
    console.log(JSON.stringify({
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      key: message.key,
      value: jsonValue(message.value),
      headers: message.headers,
      delivery: message.delivery,
    }));
    return;
  }
  console.log(
    [
      `${message.partition}:${message.offset}`,
      `delivery ${message.delivery}`,
      message.key ?? "-",
      showValue(message.value),
    ].join("\t"),
  );
}

/** `aspen consume …` */
export function consumeCommand(): CommandUnknownOpts {
  return new Command("consume")
    .description(
      "Consume a topic as a member of a group: print each message, then ack it",
    )
    .argument("<topic>", "topic name")
    .requiredOption("--group <group>", "consumer group")
    .option("--member <id>", "member id (default: random)")
    .option(
      "--ttl <ms>",
      "TTL of the member's lease, kept alive (default 10000)",
      (v: string) => parseCount(v, "--ttl", 1_000),
    )
    .option(
      "--start <start>",
      "where a new group starts: all, new, offset:N, time:ISO",
      parseStart,
    )
    .option(
      "--batch <n>",
      "messages per fetch, 1 to 1000 (default 100)",
      (v: string) => parseCount(v, "--batch", 1),
    )
    .option(
      "--count <n>",
      "stop after N messages",
      (v: string) => parseCount(v, "--count", 1),
    )
    .option("--nack", "nack each message instead of acking it")
    .action(async (topicName, options, command) => {
      const global = globals(command);
      const topic = parseName(topicName, "topic");
      const group = parseName(options.group, "group");
      if (
        options.member !== undefined &&
        !PUBSUB_LIMITS.memberIdPattern.test(options.member)
      ) {
        throw new UsageError(
          `Invalid --member '${options.member}': expected 1 to 64 of [A-Za-z0-9._-]`,
        );
      }
      const batch = options.batch ?? BATCH_DEFAULT;
      if (batch > PUBSUB_LIMITS.fetchBatchMax) {
        throw new UsageError(
          `Invalid --batch '${batch}': expected 1 to ${PUBSUB_LIMITS.fetchBatchMax}`,
        );
      }
      using client = clientOf(global);
      const stop = interrupted();
      try {
        const start = await pubsubRefusals(() =>
          startOf(client, topic, options.start)
        );
        const consumer = await pubsubRefusals(() =>
          client.pubsub.consumer(topic, group, {
            memberId: options.member,
            ttlMs: options.ttl ?? CONSUME_TTL_MS_DEFAULT,
            start,
          })
        );
        try {
          let seen = 0;
          const limit = options.count ?? Infinity;
          while (seen < limit && !stop.signal.aborted) {
            const messages = await pubsubRefusals(() =>
              consumer.fetch(
                Math.min(batch, limit - seen),
                FETCH_WAIT_MS,
                { signal: stop.signal },
              )
            );
            for (const message of messages) {
              printMessage(message, global.json === true);
              seen++;
            }
            await pubsubRefusals(() =>
              Promise.all(
                messages.map((m) => options.nack ? m.nack() : m.ack()),
              )
            );
          }
        } finally {
          await consumer.close();
        }
      } finally {
        stop.stop();
      }
    });
}
