/**
 * Reads of consumer groups from a replica's applied state: lists, a
 * group's description (per partition: owner, cursor, lag, pending,
 * redelivered, skipped), and what the leader's clock and a waiting fetch
 * need (the next due time, whether a member has something to fetch).
 *
 * @module
 */
import type { StateStore } from "../../state/state_store.ts";
import type {
  GroupDescribeResponse,
  WireGroupPartition,
  WireGroupStart,
  WireGroupSummary,
} from "../../protocol/http_api_pubsub.ts";
import { PUBSUB_SERVICE_LIMITS } from "./commands.ts";
import type { GroupStart } from "./commands.ts";
import {
  deadlineRange,
  decodeGroup,
  decodeGroupPartition,
  dueOfDeadlineKey,
  dueRange,
  groupKey,
  groupPartitionKey,
  type GroupPartitionRow,
  groupRange,
  type GroupRow,
  parseDeadlineKey,
  parseGroupKey,
  pausedAt,
} from "./group_rows.ts";
import { readPartition, readTopic, type Rows, scanMerged } from "./records.ts";

const SCAN_ALL = 1_000_000;

function wireStart(start: GroupStart): WireGroupStart {
  switch (start.kind) {
    case "all":
    case "new":
      return start.kind;
    case "offsets":
      return { offsets: { ...start.offsets } };
    case "time":
      return { timeMs: start.timeMs };
  }
}

/** Group reads over a state store. */
export class GroupReads {
  readonly #rows: Rows;

  constructor(store: StateStore) {
    this.#rows = { store, overlay: new Map() };
  }

  #group(topic: string, group: string): GroupRow | null {
    const row = this.#rows.store.get(groupKey(topic, group));
    return row === null ? null : decodeGroup(row.value);
  }

  #partition(
    topic: string,
    group: string,
    p: number,
  ): GroupPartitionRow | null {
    const row = this.#rows.store.get(groupPartitionKey(topic, group, p));
    return row === null ? null : decodeGroupPartition(row.value);
  }

  /** Groups of `topic` (or all), by topic then group. */
  list(topic?: string): WireGroupSummary[] {
    return scanMerged(this.#rows, groupRange(topic), SCAN_ALL).map((row) => {
      const [topicName, group] = parseGroupKey(row.key);
      const decoded = decodeGroup(row.value);
      return {
        topic: topicName,
        group,
        generation: decoded.generation,
        members: decoded.members.length,
        paused: decoded.paused,
      };
    });
  }

  /** One group, or null. */
  describe(topic: string, group: string): GroupDescribeResponse | null {
    const row = this.#group(topic, group);
    const topicRow = readTopic(this.#rows, topic);
    if (row === null || topicRow === null) return null;
    const owned = new Map<string, number[]>();
    const partitions: WireGroupPartition[] = [];
    for (let p = 0; p < topicRow.partitions; p++) {
      const part = this.#partition(topic, group, p);
      if (part === null) continue;
      const { next } = readPartition(this.#rows, topic, p);
      if (part.owner !== null) {
        const list = owned.get(part.owner) ?? [];
        list.push(p);
        owned.set(part.owner, list);
      }
      partitions.push({
        partition: p,
        owner: part.owner,
        ownerSince: part.ownerSince,
        cursor: part.cursor,
        nextOffset: next,
        lag: Math.max(0, next - part.cursor),
        pending: part.inFlight,
        redelivered: part.redelivered,
        skipped: part.skipped,
      });
    }
    return {
      topic,
      group,
      generation: row.generation,
      paused: row.paused,
      pausedUntilMs: row.pausedUntilMs,
      options: {
        start: wireStart(row.options.start),
        ackDeadlineMs: row.options.ackDeadlineMs,
        maxDeliveries: row.options.maxDeliveries,
        maxAckPending: row.options.maxAckPending,
        deadLetterTopic: row.options.deadLetterTopic,
      },
      members: row.members.map((member) => ({
        id: member.id,
        lease: member.lease,
        partitions: owned.get(member.id) ?? [],
      })),
      partitions,
      deadLettered: row.deadLettered,
    };
  }

  /** Group names of `topic`. */
  namesOf(topic: string): string[] {
    return scanMerged(this.#rows, groupRange(topic), SCAN_ALL).map((row) =>
      parseGroupKey(row.key)[1]
    );
  }

  /**
   * The earliest time something of the groups falls due (a delivery
   * deadline, a nack's delay, the end of a pause), or null: the leader
   * ticks then.
   */
  nextDueMs(): number | null {
    const [first] = this.#rows.store.scan({ ...deadlineRange(), limit: 1 });
    return first === undefined ? null : dueOfDeadlineKey(first.key);
  }

  /**
   * Whether `member` may get a message now (something available on a
   * partition it owns, within `maxAckPending`, or a delivery of the group
   * due by `nowMs`): a fetch waits until then.
   */
  hasDeliverable(
    topic: string,
    group: string,
    memberId: string,
    nowMs: number,
  ): boolean {
    const row = this.#group(topic, group);
    const topicRow = readTopic(this.#rows, topic);
    if (row === null || topicRow === null || pausedAt(row, nowMs)) {
      return false;
    }
    if (!row.members.some((member) => member.id === memberId)) return false;
    const owned = new Set<number>();
    for (let p = 0; p < topicRow.partitions; p++) {
      const part = this.#partition(topic, group, p);
      if (part === null || part.owner !== memberId) continue;
      owned.add(p);
      if (part.available > 0) return true;
      const { first, next } = readPartition(this.#rows, topic, p);
      if (
        Math.max(part.nextDeliver, first) < next &&
        part.inFlight < row.options.maxAckPending
      ) return true;
    }
    if (owned.size === 0) return false;
    const due = this.#rows.store.scan({
      ...dueRange(nowMs),
      limit: PUBSUB_SERVICE_LIMITS.tickItemsMax,
    });
    return due.some((dueRow) => {
      const item = parseDeadlineKey(dueRow.key);
      return item.kind === "delivery" && item.topic === topic &&
        item.group === group && owned.has(item.partition);
    });
  }
}
