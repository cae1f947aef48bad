/**
 * `aspen topic publish NAME [VALUE]` (issue 18): VALUE is a string
 * (`--json-value`, `--bytes`, `--base64` as in `kv set`); `--lines FILE|-`
 * reads JSON lines `{"key"?, "value", "headers"?}` (`value` any JSON value,
 * published V8-serialized) and publishes them in order, in batches of up to
 * 1,000 messages and 512 KiB; with `--producer ID --sequence N`, line i
 * carries sequence N + i, so a rerun of the same file publishes nothing
 * twice. Prints `partition P offset O` (or `scheduled ID for ISO`) per
 * record, `(duplicate)` for a sequence already published; `--json`:
 * `{records}`.
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
  KvV8Bytes,
  type PublishMessage,
  type PublishRecord,
} from "../../mod.ts";
import { PUBSUB_LIMITS } from "../../src/protocol/http_api_pubsub.ts";
import { fromBase64 } from "../../src/protocol/http_api_codec.ts";
import { messageValueToWire } from "../../src/client/_pubsub_wire.ts";
import { globals, parseCount } from "./lease.ts";
import { clientOf, printJson, UsageError } from "./_context.ts";
import { parseName, pubsubRefusals } from "./_pubsub_common.ts";

const encoder = new TextEncoder();

/** Bytes of values (serialized), keys and headers one `--lines` batch holds at most: half the cluster's 1 MiB. */
const LINES_BATCH_BYTES_MAX = 512 * 1024;
/** Characters one `--lines` line may hold. */
const LINE_CHARS_MAX = 1024 * 1024;

function count(what: string, min = 0) {
  return (value: string) => parseCount(value, what, min);
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

/**
 * A line's message with its value serialized once (as the cluster counts
 * it), and its bytes: value, key and headers.
 */
function serialized(message: PublishMessage): {
  message: PublishMessage;
  bytes: number;
} {
  const wire = messageValueToWire(message.value);
  const data = wire.data as Uint8Array;
  const value = wire.encoding === "v8" ? new KvV8Bytes(data) : data;
  const headerBytes = Object.entries(message.headers ?? {}).reduce(
    (sum, [k, v]) => sum + encoder.encode(k).length + encoder.encode(v).length,
    0,
  );
  return {
    message: { ...message, value },
    bytes: data.length + encoder.encode(message.key ?? "").length +
      headerBytes,
  };
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
    const { message, bytes } = serialized({
      ...parsed,
      ...(flags.partition === undefined ? {} : { partition: flags.partition }),
      ...(flags.delay === undefined ? {} : { delayMs: flags.delay }),
      ...(flags.producer === undefined
        ? {}
        : { sequence: flags.sequence! + index }),
    });
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

/** `aspen topic publish …` */
export function publishCommand(): CommandUnknownOpts {
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
