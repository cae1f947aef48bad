/**
 * One fetch's deliveries: a round over the member's partitions taking one
 * message from each in turn (available redeliveries lowest offset first,
 * then new offsets while fewer than `maxAckPending` are in flight) until
 * the batch is full, the byte bound is reached or nothing is left. Each
 * delivery records its in-flight row with a deadline (`nowMs +
 * ackDeadlineMs`). A partition overtaken by retention jumps to its first
 * retained offset, counting the records it never delivered as `skipped`;
 * a redelivery whose record was trimmed is finished and counted so too.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import type { Delivery, GroupOptions } from "./commands.ts";
import type { GroupRowCache, WorkingPartition } from "./group_cache.ts";
import { type InFlightRow, isAvailable } from "./group_rows.ts";
import {
  type PartitionRow,
  readPartition,
  readRecord,
  type RecordRow,
  type TopicRow,
} from "./records.ts";

/** What one fetch is. */
export interface RoundSpec {
  readonly topic: TopicRow;
  readonly group: string;
  readonly options: GroupOptions;
  readonly generation: number;
  readonly memberId: string;
  readonly nowMs: number;
  readonly batch: number;
  readonly maxBytes: number | null;
}

interface Lane {
  readonly partition: number;
  readonly records: PartitionRow;
  readonly queue: number[];
  scanFrom: number;
  scanDone: boolean;
  done: boolean;
}

const SCAN_PAGE = 128;

/** One fetch's round of deliveries. */
export class DeliveryRound {
  readonly #store: GroupRowCache;
  readonly #spec: RoundSpec;
  #bytes = 0;
  #taken = 0;

  constructor(store: GroupRowCache, spec: RoundSpec) {
    this.#store = store;
    this.#spec = spec;
  }

  /** Delivers from `partitions` in this order, round by round. */
  run(partitions: readonly number[]): Delivery[] {
    const lanes: Lane[] = partitions.map((partition) => ({
      partition,
      records: readPartition(
        this.#store.context,
        this.#spec.topic.name,
        partition,
      ),
      queue: [],
      scanFrom: 0,
      scanDone: false,
      done: false,
    }));
    const out: Delivery[] = [];
    let progressed = true;
    while (progressed && out.length < this.#spec.batch) {
      progressed = false;
      for (const lane of lanes) {
        if (lane.done) continue;
        if (out.length >= this.#spec.batch) break;
        const taken = this.#takeOne(lane);
        if (taken === "full") return out;
        if (taken === "none") {
          lane.done = true;
          continue;
        }
        out.push(taken);
        progressed = true;
      }
    }
    return out;
  }

  /** Whether `maxBytes` value bytes are taken (never before the first). */
  #full(): boolean {
    const maxBytes = this.#spec.maxBytes;
    return maxBytes !== null && this.#bytes >= maxBytes;
  }

  #deliver(
    lane: Lane,
    offset: number,
    record: RecordRow,
    previous: InFlightRow | null,
  ): Delivery {
    const { topic, group, generation, memberId, nowMs, options } = this.#spec;
    const delivery = previous === null ? 1 : previous.delivery + 1;
    const deadlineMs = nowMs + options.ackDeadlineMs;
    this.#store.putFlightRow(topic.name, group, lane.partition, offset, {
      delivery,
      state: "pending",
      dueMs: deadlineMs,
      generation,
      member: memberId,
    }, previous);
    this.#bytes += record.value.byteLength;
    this.#taken++;
    return {
      partition: lane.partition,
      offset,
      key: record.key,
      value: record.value,
      encoding: record.encoding,
      headers: record.headers,
      publishedAtMs: record.publishedAtMs,
      delivery,
      deadlineMs,
    };
  }

  #takeOne(lane: Lane): Delivery | "none" | "full" {
    const { topic, group, options } = this.#spec;
    const t = topic.name;
    const p = lane.partition;
    const context = this.#store.context;
    const row = this.#store.partition(t, group, p);
    while (row.available > 0) {
      const offset = this.#nextAvailable(lane, row);
      assert(
        offset !== null,
        `Partition ${p} of group '${group}' has ${row.available} available deliveries`,
      );
      const flight = this.#store.inFlight(t, group, p, offset);
      assert(flight !== null, `An available delivery has its in-flight row`);
      const record = readRecord(context, t, p, offset);
      if (record === null) {
        this.#store.finish(t, group, p, offset, flight);
        this.#store.skip(t, group, p, offset, offset + 1);
        continue;
      }
      if (this.#full()) {
        lane.queue.unshift(offset);
        return "full";
      }
      row.available--;
      row.redelivered++;
      return this.#deliver(lane, offset, record, flight);
    }
    if (row.nextDeliver < lane.records.first) {
      this.#store.skip(t, group, p, row.nextDeliver, lane.records.first);
      row.nextDeliver = lane.records.first;
    }
    if (
      row.nextDeliver >= lane.records.next ||
      row.inFlight >= options.maxAckPending
    ) return "none";
    const offset = row.nextDeliver;
    const record = readRecord(context, t, p, offset);
    assert(record !== null, `A retained offset ${offset} of ${t}/${p} exists`);
    if (this.#full()) return "full";
    row.nextDeliver++;
    row.inFlight++;
    return this.#deliver(lane, offset, record, null);
  }

  #nextAvailable(lane: Lane, row: WorkingPartition): number | null {
    const { topic, group } = this.#spec;
    while (lane.queue.length === 0 && !lane.scanDone) {
      const page = this.#store.scanFlights(
        topic.name,
        group,
        lane.partition,
        lane.scanFrom,
        SCAN_PAGE,
      );
      for (const [offset, flight] of page) {
        if (isAvailable(flight, row)) lane.queue.push(offset);
      }
      if (page.length < SCAN_PAGE) lane.scanDone = true;
      else lane.scanFrom = page[page.length - 1]![0] + 1;
    }
    return lane.queue.shift() ?? null;
  }
}
