/**
 * `aspen topic create | list | describe | delete | publish` (issue 18), and
 * what the pub/sub commands (`topic`, `group`, `consume`) share: the exit
 * codes of their refusals. A refusal (a topic that exists or is missing, a
 * group that is missing or not empty, options that differ, a sequence too
 * old) exits 2 with one line; `staleGeneration` exits 1.
 *
 * `topic publish NAME VALUE` publishes a string (`--json-value`, `--bytes`,
 * `--base64` as in `kv set`); `--lines FILE|-` reads JSON lines
 * `{"key"?, "value", "headers"?}` (`value` any JSON value, published
 * V8-serialized) and publishes them in order, in batches of up to 1,000
 * messages and 512 KiB; with `--producer ID --sequence N`, line i carries
 * sequence N + i, so a rerun of the same file publishes nothing twice.
 *
 * @module
 */
import {
  Command,
  type CommandUnknownOpts,
  Option,
} from "@commander-js/extra-typings";
import {
  type AspenClient,
  GroupConfigMismatchError,
  GroupNotEmptyError,
  GroupNotFoundError,
  MessageFinishedError,
  type PublishMessage,
  type PublishRecord,
  SequenceTooOldError,
  TopicExistsError,
  TopicInUseError,
  TopicNotFoundError,
} from "../../mod.ts";
import { PUBSUB_LIMITS } from "../../src/protocol/http_api_pubsub.ts";
import { fromBase64 } from "../../src/protocol/http_api_codec.ts";
import { globals, parseCount } from "./lease.ts";
import { clientOf, printJson, printTable, UsageError } from "./_context.ts";

const encoder = new TextEncoder();

/** Bytes of values, keys and headers one `--lines` batch holds at most (half the cluster's 1 MiB, for the wire's base64). */
const LINES_BATCH_BYTES_MAX = 512 * 1024;
/** Characters one `--lines` line may hold. */
const LINE_CHARS_MAX = 1024 * 1024;

/**
 * Runs a pub/sub command's work, giving its refusals their exit code: the
 * cluster's pub/sub refusals exit 2, the rest (`staleGeneration` exits 1)
 * through the CLI's one failure path.
 */
export async function pubsubRefusals<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (
      error instanceof TopicExistsError ||
      error instanceof TopicNotFoundError ||
      error instanceof TopicInUseError ||
      error instanceof GroupNotFoundError ||
      error instanceof GroupConfigMismatchError ||
      error instanceof GroupNotEmptyError ||
      error instanceof SequenceTooOldError ||
      error instanceof MessageFinishedError
    ) {
      throw new UsageError(error.message, { cause: error });
    }
    throw error;
  }
}

/**
 * Reads a topic or group name.
 *
 * @throws {UsageError} When it is not 1 to 128 of `[A-Za-z0-9._-]`.
 */
export function parseName(value: string, what: string): string {
  if (!PUBSUB_LIMITS.namePattern.test(value)) {
    throw new UsageError(
      `Invalid ${what} name '${value}': expected 1 to 128 of [A-Za-z0-9._-]`,
    );
  }
  return value;
}

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

/** Reads `K=V` headers. */
function parseHeaders(
  texts: readonly string[],
): Record<string, string> | undefined {
  if (texts.length === 0) return undefined;
  const headers: Record<string, string> = {};
  for (const text of texts) {
    const i = text.indexOf("=");
    if (i < 1) {
      throw new UsageError(`Invalid --header '${text}': expected NAME=VALUE`);
    }
    headers[text.slice(0, i)] = text.slice(i + 1);
  }
  return headers;
}

function parseArgumentValue(
  text: string,
  options: { jsonValue?: boolean; bytes?: boolean; base64?: boolean },
): unknown {
  if (options.bytes) return encoder.encode(text);
  if (options.base64) {
    const bytes = fromBase64(text);
    if (bytes === null) {
      throw new UsageError(`Invalid value: not padded base64: '${text}'`);
    }
    return bytes;
  }
  if (options.jsonValue) {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new UsageError(
        `Invalid value: not valid JSON: ${(error as Error).message}`,
      );
    }
  }
  return text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads one `--lines` line: `{"key"?, "value", "headers"?}`.
 *
 * @throws {UsageError} When it is not one.
 */
export function parseLine(text: string, number: number): PublishMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `Invalid line ${number}: not valid JSON: ${(error as Error).message}`,
    );
  }
  if (!isObject(parsed) || !("value" in parsed)) {
    throw new UsageError(
      `Invalid line ${number}: expected {"key"?, "value", "headers"?}`,
    );
  }
  const { key, value, headers } = parsed;
  if (key !== undefined && typeof key !== "string") {
    throw new UsageError(`Invalid line ${number}: 'key' must be a string`);
  }
  if (
    headers !== undefined &&
    (!isObject(headers) ||
      Object.values(headers).some((v) => typeof v !== "string"))
  ) {
    throw new UsageError(
      `Invalid line ${number}: 'headers' must map names to strings`,
    );
  }
  return {
    value,
    ...(key === undefined ? {} : { key }),
    ...(headers === undefined
      ? {}
      : { headers: headers as Record<string, string> }),
  };
}

/** The lines of `path` (`-`: stdin), without empty ones, each bounded. */
async function* readLines(path: string): AsyncGenerator<string> {
  const file = path === "-"
    ? Deno.stdin
    : await Deno.open(path, { read: true });
  const decoder = new TextDecoder();
  let buffered = "";
  try {
    for await (const chunk of file.readable) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline = buffered.indexOf("\n");
      while (newline !== -1) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line !== "") yield line;
        newline = buffered.indexOf("\n");
      }
      if (buffered.length > LINE_CHARS_MAX) {
        throw new UsageError(
          `Invalid --lines: a line exceeds ${LINE_CHARS_MAX} characters`,
        );
      }
    }
  } finally {
    if (path !== "-") {
      try {
        (file as Deno.FsFile).close();
      } catch {
        // Closed by the finished stream.
      }
    }
  }
  const last = (buffered + decoder.decode()).trim();
  if (last !== "") yield last;
}

function messageBytes(message: PublishMessage): number {
  const value = message.value;
  const valueBytes = value instanceof Uint8Array
    ? value.length
    : encoder.encode(JSON.stringify(value) ?? "").length;
  const headerBytes = Object.entries(message.headers ?? {}).reduce(
    (sum, [k, v]) => sum + encoder.encode(k).length + encoder.encode(v).length,
    0,
  );
  return valueBytes + encoder.encode(message.key ?? "").length + headerBytes;
}

interface PublishFlags {
  readonly key?: string;
  readonly header: string[];
  readonly partition?: number;
  readonly delay?: number;
  readonly producer?: string;
  readonly sequence?: number;
  readonly lines?: string;
  readonly jsonValue?: boolean;
  readonly bytes?: boolean;
  readonly base64?: boolean;
}

/** Publishes `--lines` in batches; returns every record in order. */
async function publishLines(
  client: AspenClient,
  topic: string,
  flags: PublishFlags,
  print: (record: PublishRecord) => void,
): Promise<PublishRecord[]> {
  const records: PublishRecord[] = [];
  let batch: PublishMessage[] = [];
  let batchBytes = 0;
  let index = 0;
  const send = async () => {
    if (batch.length === 0) return;
    const sent = batch;
    batch = [];
    batchBytes = 0;
    const answer = await pubsubRefusals(() =>
      client.pubsub.publishBatch(topic, sent, { producerId: flags.producer })
    );
    for (const record of answer) print(record);
    records.push(...answer);
  };
  for await (const line of readLines(flags.lines!)) {
    const parsed = parseLine(line, index + 1);
    const message: PublishMessage = {
      ...parsed,
      ...(flags.partition === undefined ? {} : { partition: flags.partition }),
      ...(flags.delay === undefined ? {} : { delayMs: flags.delay }),
      ...(flags.producer === undefined
        ? {}
        : { sequence: flags.sequence! + index }),
    };
    const bytes = messageBytes(message);
    if (
      batch.length === PUBSUB_LIMITS.batchMessagesMax ||
      (batch.length > 0 && batchBytes + bytes > LINES_BATCH_BYTES_MAX)
    ) await send();
    batch.push(message);
    batchBytes += bytes;
    index++;
  }
  await send();
  return records;
}

function recordText(record: PublishRecord): string {
  const duplicate = record.duplicate ? " (duplicate)" : "";
  if ("scheduled" in record) {
    return `scheduled ${record.scheduled} for ${
      new Date(record.deliverAtMs).toISOString()
    }${duplicate}`;
  }
  return `partition ${record.partition} offset ${record.offset}${duplicate}`;
}

function checkPublishFlags(
  value: string | undefined,
  flags: PublishFlags,
): void {
  if ((value === undefined) === (flags.lines === undefined)) {
    throw new UsageError(
      "Invalid publish: give a VALUE or --lines FILE|-, not both or neither",
    );
  }
  if ((flags.producer === undefined) !== (flags.sequence === undefined)) {
    throw new UsageError(
      "Invalid publish: --producer and --sequence go together",
    );
  }
  if (
    flags.producer !== undefined &&
    flags.producer.length > PUBSUB_LIMITS.producerIdCharsMax
  ) {
    throw new UsageError(
      `Invalid --producer: at most ${PUBSUB_LIMITS.producerIdCharsMax} characters`,
    );
  }
  if (
    flags.lines !== undefined &&
    (flags.key !== undefined || flags.header.length > 0)
  ) {
    throw new UsageError(
      "Invalid publish: with --lines, keys and headers come from each line",
    );
  }
}

function publishCommand(): CommandUnknownOpts {
  return new Command("publish")
    .description(
      "Publish a message (a string unless --json-value, --bytes or --base64), or --lines",
    )
    .argument("<name>", "topic name")
    .argument("[value]", "the value")
    .option("--key <k>", "message key (same key, same partition, in order)")
    .option(
      "--header <k=v>",
      "a header (repeatable)",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--partition <n>", "explicit partition", count("--partition", 0))
    .option("--delay <ms>", "hold the message this long", count("--delay", 0))
    .option(
      "--producer <id>",
      "idempotent publish: producer id (with --sequence)",
    )
    .option(
      "--sequence <n>",
      "idempotent publish: sequence of the (first) message",
      count("--sequence", 0),
    )
    .option(
      "--lines <file>",
      "publish JSON lines {key?, value, headers?} from FILE or - (stdin)",
    )
    .addOption(
      new Option("--json-value", "the value is JSON (published V8-serialized)")
        .conflicts(["bytes", "base64"]),
    )
    .addOption(
      new Option("--bytes", "publish UTF-8 text as raw bytes").conflicts(
        "base64",
      ),
    )
    .option("--base64", "the value is base64 raw bytes")
    .action(async (name, value, flags, command) => {
      const global = globals(command);
      parseName(name, "topic");
      checkPublishFlags(value, flags);
      const headers = parseHeaders(flags.header);
      using client = clientOf(global);
      const print = (record: PublishRecord) => {
        if (!global.json) console.log(recordText(record));
      };
      if (flags.lines !== undefined) {
        const records = await publishLines(client, name, flags, print);
        if (global.json) printJson({ records });
        return;
      }
      const record = await pubsubRefusals(() =>
        client.pubsub.publish(name, parseArgumentValue(value!, flags), {
          key: flags.key,
          headers,
          partition: flags.partition,
          delayMs: flags.delay,
          producerId: flags.producer,
          sequence: flags.sequence,
        })
      );
      if (global.json) printJson({ records: [record] });
      else print(record);
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
