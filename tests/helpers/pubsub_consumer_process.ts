/**
 * Child program of `tests/process_pubsub_test.ts`: one consumer-group
 * member in its own process, through the client module
 * (`client.pubsub.consumer`). It fetches, prints one JSON line per
 * delivered message, then acks the batch, until its stdin closes or
 * `runMs` passes. Lines on stdout:
 *
 * - `{"joined": memberId, "generation": g, "partitions": […]}` after each join;
 * - `{"member", "generation", "partition", "offset", "key", "value",
 *   "delivery"}` per delivered message, printed before its ack is sent;
 * - `{"acked": n, "failed": m}` after each batch's acks settled;
 * - `{"error": message}` for a failed fetch or a lost consumer (lease lost,
 *   fenced too often): it closes that consumer and joins again with the
 *   same member id on a new lease (bounded in count);
 * - `{"done": messages}` when it stops.
 *
 * Runs with `--allow-net=127.0.0.1 --allow-env=ASPEN_TOKEN`.
 *
 * Usage: deno run … pubsub_consumer_process.ts <urls,comma separated>
 *   <topic> <group> <memberId> <ttlMs> <ackDeadlineMs> <maxDeliveries> <runMs>
 *
 * @module
 */
import { connect, type Consumer } from "../../mod.ts";

const [
  urlList,
  topic,
  group,
  memberId,
  ttlText,
  deadlineText,
  deliveriesText,
  runText,
] = Deno.args;
const ttlMs = Number(ttlText);
const ackDeadlineMs = Number(deadlineText);
const maxDeliveries = Number(deliveriesText);
const runMs = Number(runText);
if (
  urlList === undefined || topic === undefined || group === undefined ||
  memberId === undefined || !Number.isSafeInteger(ttlMs) ||
  !Number.isSafeInteger(ackDeadlineMs) ||
  !Number.isSafeInteger(maxDeliveries) || !Number.isSafeInteger(runMs)
) {
  throw new TypeError(
    "Usage: pubsub_consumer_process.ts <urls> <topic> <group> <memberId> <ttlMs> <ackDeadlineMs> <maxDeliveries> <runMs>",
  );
}
/** Joins (a first one and rejoins after a lost consumer) at most. */
const JOINS_MAX = 50;
/** Messages asked for per fetch. */
const BATCH = 100;
/** Longest wait of one fetch, ms: stdin's close is seen within it. */
const FETCH_WAIT_MS = 1_000;
/** Pause after a failure before trying again, ms. */
const RETRY_PAUSE_MS = 200;

function report(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const stop = new AbortController();
const stopTimer = setTimeout(() => stop.abort(), runMs);
const stdinClosed = (async () => {
  for await (const _ of Deno.stdin.readable) { /* the parent never writes */ }
  stop.abort();
})();

const client = connect(urlList.split(","), {
  token: Deno.env.get("ASPEN_TOKEN"),
  timeoutMs: 10_000,
});
let printed = 0;
let consumer: Consumer | null = null;
for (let joins = 0; joins < JOINS_MAX && !stop.signal.aborted;) {
  if (consumer === null) {
    joins++;
    try {
      consumer = await client.pubsub.consumer(topic, group, {
        memberId,
        ttlMs,
        ackDeadlineMs,
        maxDeliveries,
      });
    } catch (error) {
      report({ error: `join: ${(error as Error)?.message ?? error}` });
      await sleep(RETRY_PAUSE_MS);
      continue;
    }
    report({
      joined: memberId,
      generation: consumer.generation,
      partitions: consumer.partitions,
    });
  }
  let messages;
  try {
    messages = await consumer.fetch(BATCH, FETCH_WAIT_MS, {
      signal: stop.signal,
    });
  } catch (error) {
    const name = (error as Error)?.name ?? "";
    report({ error: `fetch: ${name}: ${(error as Error)?.message ?? error}` });
    if (name === "LeaseLostError" || name === "StaleGenerationError") {
      await consumer.close().catch(() => {});
      consumer = null;
    }
    await sleep(RETRY_PAUSE_MS);
    continue;
  }
  for (const message of messages) {
    report({
      member: memberId,
      generation: message.generation,
      partition: message.partition,
      offset: message.offset,
      key: message.key,
      value: message.value,
      delivery: message.delivery,
    });
    printed++;
  }
  if (messages.length === 0) continue;
  const outcomes = await Promise.allSettled(messages.map((m) => m.ack()));
  const failed = outcomes.filter((o) => o.status === "rejected").length;
  report({ acked: outcomes.length - failed, failed });
}
clearTimeout(stopTimer);
await consumer?.close().catch(() => {});
client.close();
report({ done: printed });
// Nothing else to wait for: the stdin reader would keep the process alive.
void stdinClosed;
Deno.exit(0);
