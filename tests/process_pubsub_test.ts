/**
 * Pub/sub against real node processes (issue 18, "Tests"):
 *
 * - three nodes, a topic of 6 partitions, three consumer processes
 *   (`tests/helpers/pubsub_consumer_process.ts`), 5,000 keyed messages
 *   published in batches by an idempotent producer while the leader and a
 *   consumer are killed with SIGKILL mid-run (a replacement consumer joins):
 *   no acknowledged publish is lost or appended twice, every record is
 *   processed, per key the log and each consumer's first deliveries follow
 *   publish order, and per consumer, generation and partition first
 *   deliveries follow offset order;
 * - a rebalance: a fourth member joins and one leaves; only the partitions
 *   the rendezvous assignment reassigns change owner, and an ack from a
 *   member fenced off a moved partition gets 409 `staleGeneration` with the
 *   current generation and assignment.
 *
 * Counts and run times are printed as information, never asserted.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AspenClient,
  connect,
  type ConsumerMessage,
  type GroupDescription,
  type PublishRecord,
  StaleGenerationError,
} from "../mod.ts";
import { ownerOf } from "../src/services/pubsub/assignment.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";
import { lines } from "./helpers/stream_lines.ts";
import { waitFor } from "./helpers/wait_for.ts";

const CHILD = new URL("./helpers/pubsub_consumer_process.ts", import.meta.url)
  .pathname;
const REPO = new URL("../", import.meta.url).pathname;

const TOPIC = "orders";
const GROUP = "billing";
const PARTITIONS = 6;
const MESSAGES = 5_000;
const KEYS = 50;
const PUBLISH_BATCH = 50;
const PRODUCER = "producer-1";
/** Members' lease TTL, ms: a killed consumer's partitions move once it ends. */
const CONSUMER_TTL_MS = 5_000;
const ACK_DEADLINE_MS = 5_000;
/** High enough that no message is dead-lettered by the faults. */
const MAX_DELIVERIES = 50;
/** A consumer process stops by itself after this, ms (a bound, not a wait). */
const CONSUMER_RUN_MS = 240_000;
/** The leader is killed once this many messages are acknowledged. */
const KILL_LEADER_AT_ACKED = 1_500;
/** A consumer is killed once this many records are processed (after the leader kill). */
const KILL_CONSUMER_AT_PROCESSED = 2_500;
/** Tries of one publish batch (each retry reuses its sequences). */
const PUBLISH_TRIES_MAX = 200;
const PUBLISH_RETRY_PAUSE_MS = 250;

/** One message line of a consumer process. */
interface Delivered {
  readonly member: string;
  readonly generation: number;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: { k: string; s: number; i: number };
  readonly delivery: number;
}

/** A consumer process and what it printed. */
class ConsumerProcess {
  readonly delivered: Delivered[] = [];
  readonly errors: string[] = [];
  readonly joins: unknown[] = [];
  torn = 0;
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;
  readonly #stderr: Promise<string>;
  #exited = false;
  #killOnDelivery = false;

  constructor(
    readonly memberId: string,
    urls: readonly string[],
    token: string,
  ) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-env=ASPEN_TOKEN",
        CHILD,
        urls.join(","),
        TOPIC,
        GROUP,
        memberId,
        String(CONSUMER_TTL_MS),
        String(ACK_DEADLINE_MS),
        String(MAX_DELIVERIES),
        String(CONSUMER_RUN_MS),
      ],
      cwd: REPO,
      env: { NO_COLOR: "1", ASPEN_TOKEN: token },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child.status.then(() => this.#exited = true);
    this.#reading = lines(this.#child.stdout, (line) => this.#onLine(line))
      .catch(() => {});
    this.#stderr = new Response(this.#child.stderr).text().catch(() => "");
  }

  get pid(): number {
    return this.#child.pid;
  }

  #onLine(line: string): void {
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(line);
    } catch {
      this.torn++; // a line cut by SIGKILL
      return;
    }
    if ("offset" in event) {
      this.delivered.push(event as unknown as Delivered);
      if (this.#killOnDelivery) this.#signalKill();
    } else if ("error" in event) this.errors.push(String(event.error));
    else if ("joined" in event) this.joins.push(event);
  }

  #signalKill(): void {
    if (this.#exited) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }

  /** Kill -9, then waits for its exit and output. */
  async kill(): Promise<void> {
    this.#signalKill();
    await this.#settle();
  }

  /**
   * Kill -9 as soon as it prints its next delivery, so that batch's acks
   * are likely still in flight (or after `timeoutMs` without one).
   */
  async killAtNextDelivery(timeoutMs: number): Promise<void> {
    this.#killOnDelivery = true;
    await waitFor(`consumer ${this.memberId} to print`, () => this.#exited, {
      timeoutMs,
      intervalMs: 20,
    }).catch(() => {});
    await this.kill();
  }

  /** Closes its stdin (it leaves the group and exits), bounded; else kill -9. */
  async stop(): Promise<string> {
    try {
      await this.#child.stdin.close();
    } catch {
      // Closed already.
    }
    try {
      await waitFor(`consumer ${this.memberId} to exit`, () => this.#exited, {
        timeoutMs: 30_000,
        intervalMs: 50,
      });
    } finally {
      await this.kill();
    }
    return await this.#stderr;
  }

  async #settle(): Promise<void> {
    await this.#child.status;
    await this.#reading;
    await this.#stderr;
    try {
      await this.#child.stdin.close();
    } catch {
      // Closed already.
    }
  }
}

/** Where an acknowledged message went, by its publish index. */
type Acked = Map<number, { partition: number; offset: number }>;

/** What the publisher saw; `stopped` (set by the test) ends it. */
interface PublishStats {
  retries: number;
  readonly errors: Set<string>;
  duplicates: number;
  stopped: boolean;
}

/** Messages `start` to `start + PUBLISH_BATCH` (key i mod 50, per-key sequence ⌊i / 50⌋). */
function batchAt(start: number) {
  const batch = [];
  for (let i = start; i < Math.min(start + PUBLISH_BATCH, MESSAGES); i++) {
    const k = `key-${i % KEYS}`;
    batch.push({
      key: k,
      value: { k, s: Math.floor(i / KEYS), i },
      sequence: i,
    });
  }
  return batch;
}

/** Publishes the batch at `start`, retried with the same sequences until acknowledged. */
async function publishBatchAt(
  client: AspenClient,
  start: number,
  stats: PublishStats,
): Promise<PublishRecord[]> {
  for (let tries = 0; tries < PUBLISH_TRIES_MAX && !stats.stopped; tries++) {
    try {
      return await client.pubsub.publishBatch(TOPIC, batchAt(start), {
        producerId: PRODUCER,
      });
    } catch (error) {
      stats.retries++;
      stats.errors.add((error as Error)?.name ?? String(error));
      await new Promise((r) => setTimeout(r, PUBLISH_RETRY_PAUSE_MS));
    }
  }
  throw new Error(`The batch at ${start} was not acknowledged`);
}

/** Publishes `MESSAGES` keyed messages in batches of `PUBLISH_BATCH`, one batch at a time. */
async function publishAll(
  client: AspenClient,
  acked: Acked,
  stats: PublishStats,
): Promise<void> {
  for (let start = 0; start < MESSAGES; start += PUBLISH_BATCH) {
    const records = await publishBatchAt(client, start, stats);
    for (const [j, record] of records.entries()) {
      assert.ok("offset" in record, "a keyed message is appended now");
      if (record.duplicate) stats.duplicates++;
      acked.set(start + j, {
        partition: record.partition,
        offset: record.offset,
      });
    }
  }
}

function distinctProcessed(consumers: readonly ConsumerProcess[]): Set<string> {
  const seen = new Set<string>();
  for (const c of consumers) {
    for (const d of c.delivered) seen.add(`${d.partition}/${d.offset}`);
  }
  return seen;
}

async function describeGroup(
  client: AspenClient,
): Promise<GroupDescription | null> {
  try {
    return await client.pubsub.groups.describe(TOPIC, GROUP);
  } catch {
    return null; // a node down or an election: ask again
  }
}

Deno.test("3 node processes, 3 consumer processes, 5,000 keyed messages: kill -9 of the leader and a consumer lose and reorder nothing", async () => {
  const startedAt = performance.now();
  await withProcessCluster({ count: 3 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const client = connect(cluster.urls, { token, timeoutMs: 10_000 });
    const consumers: ConsumerProcess[] = [];
    const acked: Acked = new Map();
    const stats: PublishStats = {
      retries: 0,
      errors: new Set(),
      duplicates: 0,
      stopped: false,
    };
    let publishing: Promise<void> = Promise.resolve();
    let killedLeader = -1;
    let killedConsumer: ConsumerProcess | null = null;
    try {
      await client.pubsub.createTopic(TOPIC, { partitions: PARTITIONS });
      for (let i = 0; i < 3; i++) {
        consumers.push(new ConsumerProcess(`c${i}`, cluster.urls, token));
      }
      await waitFor("3 members", async () => {
        const group = await describeGroup(client);
        return group !== null && group.members.length === 3;
      }, { timeoutMs: 60_000, intervalMs: 200 });

      publishing = publishAll(client, acked, stats);
      let published = false;
      publishing.finally(() => published = true).catch(() => {});
      // The faults, at fixed points of progress.
      await waitFor(
        () => `${KILL_LEADER_AT_ACKED} acknowledged (${acked.size})`,
        () => published || acked.size >= KILL_LEADER_AT_ACKED,
        { timeoutMs: 60_000, intervalMs: 20 },
      );
      killedLeader = await cluster.waitForLeader();
      await cluster.kill(killedLeader);
      // The batch acknowledged last before the kill, sent again to the
      // new leader: answered from the dedup state, appended nowhere.
      const lastStart = Math.floor((acked.size - 1) / PUBLISH_BATCH) *
        PUBLISH_BATCH;
      const again = await publishBatchAt(client, lastStart, stats);
      assert.deepEqual(
        again.map((r) => "offset" in r && [r.partition, r.offset, r.duplicate]),
        again.map((_, j) => {
          const record = acked.get(lastStart + j)!;
          return [record.partition, record.offset, true];
        }),
      );
      console.log(
        `kill -9 leader n${killedLeader} at ${acked.size} acknowledged, ${
          distinctProcessed(consumers).size
        } processed; the batch at ${lastStart} sent again: ${again.length} duplicates`,
      );
      await waitFor(
        () =>
          `${KILL_CONSUMER_AT_PROCESSED} processed (${
            distinctProcessed(consumers).size
          })`,
        () => distinctProcessed(consumers).size >= KILL_CONSUMER_AT_PROCESSED,
        { timeoutMs: 90_000, intervalMs: 50 },
      );
      killedConsumer = consumers[0]!;
      await killedConsumer.killAtNextDelivery(20_000);
      console.log(
        `kill -9 consumer c0 at ${acked.size} acknowledged, ${
          distinctProcessed(consumers).size
        } processed`,
      );
      consumers.push(new ConsumerProcess("c3", cluster.urls, token));

      await publishing;
      await waitFor(
        () =>
          `every record processed and acked (${
            distinctProcessed(consumers).size
          } processed)`,
        async () => {
          if (distinctProcessed(consumers).size < MESSAGES) return false;
          const group = await describeGroup(client);
          return group !== null &&
            group.partitions.every((p) => p.lag === 0 && p.pending === 0);
        },
        { timeoutMs: 90_000, intervalMs: 200 },
      );
      const group = await client.pubsub.groups.describe(TOPIC, GROUP);
      assert.equal(group.deadLettered, 0);
      const topic = await client.pubsub.describeTopic(TOPIC);
      await checkLog(client, acked, topic.partitions);
    } finally {
      stats.stopped = true;
      await publishing.catch(() => {});
      for (const consumer of consumers) {
        const stderr = await consumer.stop();
        if (consumer !== killedConsumer && stderr.trim() !== "") {
          console.log(`consumer ${consumer.memberId} stderr:\n${stderr}`);
        }
      }
      client.close();
    }
    assert.notEqual(killedLeader, -1);
    assert.ok(killedConsumer !== null);
    checkDeliveries(consumers, acked);
    const lines = consumers.flatMap((c) => c.delivered);
    const redelivered = lines.filter((d) => d.delivery > 1).length;
    const again = lines.length - distinctProcessed(consumers).size;
    console.log(
      `messages ${MESSAGES}: publish retries ${stats.retries} (${[
        ...stats.errors,
      ]}), duplicates answered ${stats.duplicates}; ` +
        `deliveries printed ${lines.length} (redeliveries ${redelivered}, records processed more than once ${again}); ` +
        `per consumer ${
          consumers.map((c) =>
            `${c.memberId}=${c.delivered.length} (joins ${c.joins.length}, errors ${c.errors.length})`
          ).join(", ")
        }`,
    );
  });
  console.log(
    `real processes test: ${Math.round(performance.now() - startedAt)} ms`,
  );
});

/**
 * The log holds exactly the acknowledged messages, once each, in publish
 * order per key: read back by a fresh group from the survivors.
 */
async function checkLog(
  client: AspenClient,
  acked: Acked,
  partitions: readonly {
    partition: number;
    firstOffset: number;
    nextOffset: number;
  }[],
): Promise<void> {
  assert.equal(acked.size, MESSAGES);
  const places = new Set(
    [...acked.values()].map((r) => `${r.partition}/${r.offset}`),
  );
  assert.equal(
    places.size,
    MESSAGES,
    "each acknowledged message has its own record",
  );
  assert.equal(
    partitions.reduce((sum, p) => sum + p.nextOffset - p.firstOffset, 0),
    MESSAGES,
    "no retried batch appended twice",
  );
  const audit = await client.pubsub.consumer(TOPIC, "audit", {
    maxAckPending: 10_000,
  });
  const read = new Map<string, unknown>();
  try {
    await waitFor(() => `the audit read (${read.size})`, async () => {
      let batch: ConsumerMessage[];
      try {
        batch = await audit.fetch(1_000, 1_000);
      } catch {
        return false;
      }
      for (const m of batch) read.set(`${m.partition}/${m.offset}`, m.value);
      await audit.ackMany(batch.map((message) => ({ message })));
      return read.size >= MESSAGES;
    }, { timeoutMs: 60_000, intervalMs: 10 });
  } finally {
    await audit.close();
  }
  for (const [i, record] of acked) {
    const value = read.get(`${record.partition}/${record.offset}`) as
      | { i: number }
      | undefined;
    assert.equal(
      value?.i,
      i,
      `message ${i} at ${record.partition}/${record.offset}`,
    );
  }
  // Per key, offsets grow with the per-key sequence (publish order).
  const lastByKey = new Map<string, { partition: number; offset: number }>();
  for (const [i, record] of [...acked].sort((a, b) => a[0] - b[0])) {
    const key = `key-${i % KEYS}`;
    const last = lastByKey.get(key);
    if (last !== undefined) {
      assert.equal(
        record.partition,
        last.partition,
        `${key} keeps its partition`,
      );
      assert.ok(record.offset > last.offset, `${key}: ${i} after the previous`);
    }
    lastByKey.set(key, record);
  }
}

/**
 * Every acknowledged record was processed with its value; each record had
 * one first delivery at most; first deliveries follow offset order per
 * (consumer, generation, partition) and publish order per (consumer, key).
 */
function checkDeliveries(
  consumers: readonly ConsumerProcess[],
  acked: Acked,
): void {
  const byPlace = new Map<string, Delivered>();
  const firsts = new Set<string>();
  for (const consumer of consumers) {
    const lastOffset = new Map<string, number>();
    const lastSequence = new Map<string, number>();
    for (const d of consumer.delivered) {
      const place = `${d.partition}/${d.offset}`;
      byPlace.set(place, d);
      assert.equal(d.key, d.value.k, `${place} carries its key`);
      if (d.delivery !== 1) continue;
      assert.ok(!firsts.has(place), `${place} had one first delivery`);
      firsts.add(place);
      const lane = `${d.generation}/${d.partition}`;
      const previous = lastOffset.get(lane) ?? -1;
      assert.ok(
        d.offset > previous,
        `${consumer.memberId}, generation ${d.generation}, partition ${d.partition}: first delivery ${d.offset} after ${previous}`,
      );
      lastOffset.set(lane, d.offset);
      const before = lastSequence.get(d.value.k) ?? -1;
      assert.ok(
        d.value.s > before,
        `${consumer.memberId}, ${d.value.k}: first delivery of sequence ${d.value.s} after ${before}`,
      );
      lastSequence.set(d.value.k, d.value.s);
    }
    // Only a killed process may end on a cut line.
    assert.ok(
      consumer.torn <= 1,
      `${consumer.memberId}: ${consumer.torn} cut lines`,
    );
  }
  for (const [i, record] of acked) {
    const d = byPlace.get(`${record.partition}/${record.offset}`);
    assert.equal(d?.value.i, i, `message ${i} was processed`);
  }
}

/** The owners a rendezvous assignment over `members` gives each partition. */
function expectedOwners(
  members: readonly string[],
  partitions: number,
): string[] {
  return Array.from(
    { length: partitions },
    (_, p) => ownerOf(REBALANCE_GROUP, p, members)!,
  );
}

function owners(group: GroupDescription): (string | null)[] {
  return [...group.partitions]
    .sort((a, b) => a.partition - b.partition)
    .map((p) => p.owner);
}

const REBALANCE_TOPIC = "jobs";
const REBALANCE_GROUP = "workers";
const REBALANCE_PARTITIONS = 12;

Deno.test("rebalance on a node process: a fourth member moves only its partitions, a leaver only its own; a fenced ack gets 409 staleGeneration", async () => {
  const startedAt = performance.now();
  await withProcessCluster({ count: 1 }, async (cluster) => {
    await cluster.waitForLeader();
    const client = connect(cluster.urls, {
      token: await cluster.token(),
      timeoutMs: 10_000,
    });
    const members = new Map<
      string,
      Awaited<ReturnType<AspenClient["pubsub"]["consumer"]>>
    >();
    try {
      await client.pubsub.createTopic(REBALANCE_TOPIC, {
        partitions: REBALANCE_PARTITIONS,
      });
      await client.pubsub.publishBatch(
        REBALANCE_TOPIC,
        Array.from({ length: REBALANCE_PARTITIONS * 4 }, (_, i) => ({
          value: i,
          partition: i % REBALANCE_PARTITIONS,
        })),
      );
      const three = ["m1", "m2", "m3"];
      for (const id of three) {
        members.set(
          id,
          await client.pubsub.consumer(REBALANCE_TOPIC, REBALANCE_GROUP, {
            memberId: id,
          }),
        );
      }
      const before = await client.pubsub.groups.describe(
        REBALANCE_TOPIC,
        REBALANCE_GROUP,
      );
      assert.deepEqual(
        owners(before),
        expectedOwners(three, REBALANCE_PARTITIONS),
      );
      // Each of the three takes one message of each partition it owns.
      const held = new Map<number, ConsumerMessage>();
      for (const id of three) {
        const consumer = members.get(id)!;
        const mine = before.partitions.filter((p) => p.owner === id).length;
        const batch = await consumer.fetch(mine, 5_000);
        for (const m of batch) held.set(m.partition, m);
        assert.equal(batch.length, mine, `${id} gets one per partition`);
      }
      assert.equal(held.size, REBALANCE_PARTITIONS);

      // A fourth member: only the partitions it now scores highest on move.
      const four = [...three, "m4"];
      members.set(
        "m4",
        await client.pubsub.consumer(REBALANCE_TOPIC, REBALANCE_GROUP, {
          memberId: "m4",
        }),
      );
      const joined = await client.pubsub.groups.describe(
        REBALANCE_TOPIC,
        REBALANCE_GROUP,
      );
      const expected = expectedOwners(four, REBALANCE_PARTITIONS);
      assert.deepEqual(owners(joined), expected);
      assert.equal(joined.generation, before.generation + 1);
      const moved = [...held.keys()].filter((p) => expected[p] === "m4");
      const kept = [...held.keys()].filter((p) => expected[p] !== "m4");
      assert.ok(moved.length > 0, "m4 takes some partitions");
      for (const p of kept) {
        assert.equal(
          owners(joined)[p],
          owners(before)[p],
          `partition ${p} kept`,
        );
      }
      // Unmoved partitions keep working on the old generation; a moved one
      // is fenced with the current generation and assignment.
      for (const p of kept) assert.equal(await held.get(p)!.ack(), true);
      const fenced = held.get(moved[0]!)!;
      const error = await fenced.ack().then(() => null, (e) => e);
      assert.ok(error instanceof StaleGenerationError, String(error));
      assert.equal(error.status, 409);
      assert.equal(error.code, "staleGeneration");
      assert.equal(error.generation, joined.generation);
      assert.equal(error.assignment[String(moved[0])], "m4");
      // The moved partitions' in-flight messages go to m4 again.
      const m4 = members.get("m4")!;
      const redelivered = await m4.fetch(moved.length, 5_000);
      assert.deepEqual(
        redelivered.map((m) => [m.partition, m.offset, m.delivery]).sort(),
        moved.map((p) => [p, held.get(p)!.offset, 2]).sort(),
      );
      await m4.ackMany(redelivered.map((message) => ({ message })));

      // m2 leaves: only its partitions move, each to its runner-up.
      const leaver = "m2";
      await members.get(leaver)!.close();
      members.delete(leaver);
      const left = await client.pubsub.groups.describe(
        REBALANCE_TOPIC,
        REBALANCE_GROUP,
      );
      const rest = four.filter((id) => id !== leaver);
      assert.deepEqual(
        owners(left),
        expectedOwners(rest, REBALANCE_PARTITIONS),
      );
      assert.equal(left.generation, joined.generation + 1);
      for (let p = 0; p < REBALANCE_PARTITIONS; p++) {
        if (owners(joined)[p] === leaver) {
          assert.notEqual(owners(left)[p], leaver);
        } else {
          assert.equal(
            owners(left)[p],
            owners(joined)[p],
            `partition ${p} kept`,
          );
        }
      }
      assert.deepEqual(
        left.members.map((m) => m.id).sort(),
        rest.sort(),
      );
      // On the wire: the leaver's ack at its last generation, on a partition
      // it owned, is a 409 naming the current generation and owner.
      const lost = owners(joined).indexOf(leaver);
      assert.notEqual(lost, -1, `${leaver} owned a partition`);
      const response = await fetch(`${cluster.urls[0]}/v1/groups/ack`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${await cluster.token()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          topic: REBALANCE_TOPIC,
          group: REBALANCE_GROUP,
          memberId: leaver,
          generation: joined.generation,
          acks: [{ partition: lost, offset: 1, action: "ack" }],
        }),
      });
      const body = await response.json();
      assert.equal(response.status, 409, JSON.stringify(body));
      assert.equal(body.error.code, "staleGeneration");
      assert.equal(body.error.details.generation, left.generation);
      assert.equal(
        body.error.details.assignment[String(lost)],
        owners(left)[lost],
      );
    } finally {
      for (const member of members.values()) {
        await member.close().catch(() => {});
      }
      client.close();
    }
  });
  console.log(
    `rebalance test: ${Math.round(performance.now() - startedAt)} ms`,
  );
});
