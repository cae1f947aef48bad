/**
 * The rows of consumer groups one entry reads and changes: group and group
 * partition rows cached (decoded once, written once by
 * {@linkcode GroupRowCache.flush}, which also recomputes each changed
 * partition's cursor), in-flight rows written through with their deadline
 * rows kept beside them.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { compareBytes } from "../../base/bytes.ts";
import { type ApplyContext, readThrough } from "../../state/write_context.ts";
import { PubsubError } from "./commands.ts";
import {
  deadlineKey,
  decodeGroup,
  decodeGroupPartition,
  decodeInFlight,
  encodeGroup,
  encodeGroupPartition,
  encodeInFlight,
  groupKey,
  groupPartitionKey,
  type GroupRow,
  inFlightKey,
  inFlightRange,
  type InFlightRow,
  isAvailable,
  parseInFlightKey,
} from "./group_rows.ts";
import { readTopic, rowWriter, scanMerged, type TopicRow } from "./records.ts";
import { appendEvents } from "../events/api.ts";

/** A group partition row being changed in this entry. */
export interface WorkingPartition {
  owner: string | null;
  ownerSince: number;
  nextDeliver: number;
  cursor: number;
  inFlight: number;
  available: number;
  redelivered: number;
  skipped: number;
}

/** A group row being changed in this entry. */
export interface WorkingGroup {
  readonly topic: string;
  readonly name: string;
  row: GroupRow;
}

/**
 * Records a group skipped in one entry (`[fromOffset, toOffset)` of a
 * partition): trimmed by retention before the group finished them (or,
 * rarely, lost because the dead-letter topic could not be created). The
 * service turns them into `topic.gap` events.
 */
export interface GroupGap {
  readonly topic: string;
  readonly group: string;
  readonly partition: number;
  readonly fromOffset: number;
  readonly toOffset: number;
}

/** The group rows of one entry. */
export class GroupRowCache {
  /** Gaps of this entry, in the order they happened. */
  readonly gaps: GroupGap[] = [];
  /** How many of {@linkcode gaps} are already history events. */
  #gapsRecorded = 0;
  readonly #context: ApplyContext;
  readonly #rows: ReturnType<typeof rowWriter>;
  readonly #groups = new Map<string, WorkingGroup>();
  readonly #partitions = new Map<
    string,
    {
      topic: string;
      group: string;
      partition: number;
      row: WorkingPartition;
      dirty: boolean;
    }
  >();
  readonly #dirtyGroups = new Set<string>();

  constructor(context: ApplyContext) {
    this.#context = context;
    this.#rows = rowWriter(context);
  }

  /** The entry's context. */
  get context(): ApplyContext {
    return this.#context;
  }

  /** Writes and deletes internal rows of the entry. */
  get rows(): ReturnType<typeof rowWriter> {
    return this.#rows;
  }

  /**
   * Counts `[fromOffset, toOffset)` of partition `p` of a group as skipped
   * (trimmed before the group finished them) and records the gap.
   */
  skip(
    topic: string,
    group: string,
    p: number,
    fromOffset: number,
    toOffset: number,
  ): void {
    assert(toOffset > fromOffset, `A gap holds at least one offset`);
    this.partition(topic, group, p).skipped += toOffset - fromOffset;
    this.gaps.push({ topic, group, partition: p, fromOffset, toOffset });
  }

  /** Adds a group created in this entry. */
  addGroup(working: WorkingGroup): void {
    const key = `${working.topic}\0${working.name}`;
    this.#groups.set(key, working);
    this.#dirtyGroups.add(key);
  }

  /** Forgets every cached row of `topic`'s groups (deleted in this entry). */
  forgetTopic(topic: string): void {
    for (const [key, working] of this.#groups) {
      if (working.topic !== topic) continue;
      this.#groups.delete(key);
      this.#dirtyGroups.delete(key);
    }
    for (const [key, entry] of this.#partitions) {
      if (entry.topic === topic) this.#partitions.delete(key);
    }
  }

  /** The topic `name`. @throws {PubsubError} `topicNotFound`. */
  topic(name: string): TopicRow {
    const topic = readTopic(this.#context, name);
    if (topic === null) {
      throw new PubsubError("topicNotFound", `Topic '${name}' does not exist`);
    }
    return topic;
  }

  /** A group, or null. */
  group(topic: string, group: string): WorkingGroup | null {
    const key = `${topic}\0${group}`;
    const cached = this.#groups.get(key);
    if (cached !== undefined) return cached;
    const row = readThrough(this.#context, groupKey(topic, group));
    if (row === null) return null;
    const working = { topic, name: group, row: decodeGroup(row.value) };
    this.#groups.set(key, working);
    return working;
  }

  /** A group. @throws {PubsubError} `groupNotFound`. */
  existingGroup(topic: string, group: string): WorkingGroup {
    const working = this.group(topic, group);
    if (working === null) {
      throw new PubsubError(
        "groupNotFound",
        `Group '${group}' of topic '${topic}' does not exist`,
      );
    }
    return working;
  }

  /** Changes a group's row. */
  setGroup(working: WorkingGroup, row: GroupRow): void {
    working.row = row;
    this.#dirtyGroups.add(`${working.topic}\0${working.name}`);
  }

  /** Partition `p` of a group, to read or change (changes are written at the end). */
  partition(topic: string, group: string, p: number): WorkingPartition {
    const key = `${topic}\0${group}\0${p}`;
    const cached = this.#partitions.get(key);
    if (cached !== undefined) {
      cached.dirty = true;
      return cached.row;
    }
    const stored = readThrough(
      this.#context,
      groupPartitionKey(topic, group, p),
    );
    assert(
      stored !== null,
      `Group '${group}' of topic '${topic}' has a row for partition ${p}`,
    );
    const row = { ...decodeGroupPartition(stored.value) };
    this.#partitions.set(key, {
      topic,
      group,
      partition: p,
      row,
      dirty: true,
    });
    return row;
  }

  /** Adds a partition row of a group created in this entry. */
  newPartition(
    topic: string,
    group: string,
    p: number,
    cursor: number,
  ): void {
    this.#partitions.set(`${topic}\0${group}\0${p}`, {
      topic,
      group,
      partition: p,
      dirty: true,
      row: {
        owner: null,
        ownerSince: 0,
        nextDeliver: cursor,
        cursor,
        inFlight: 0,
        available: 0,
        redelivered: 0,
        skipped: 0,
      },
    });
  }

  /** The in-flight row of `offset`, or null. */
  inFlight(
    topic: string,
    group: string,
    p: number,
    offset: number,
  ): InFlightRow | null {
    const row = readThrough(
      this.#context,
      inFlightKey(topic, group, p, offset),
    );
    return row === null ? null : decodeInFlight(row.value);
  }

  /**
   * Writes an in-flight row in place of `previous` (null: a new one),
   * keeping its deadline row: one at `dueMs` unless available.
   */
  putFlightRow(
    topic: string,
    group: string,
    p: number,
    offset: number,
    row: InFlightRow,
    previous: InFlightRow | null,
  ): void {
    if (previous !== null && previous.state !== "available") {
      this.#rows.remove(deadlineKey(previous.dueMs, topic, group, p, offset));
    }
    this.#rows.put(inFlightKey(topic, group, p, offset), encodeInFlight(row));
    if (row.state !== "available") {
      this.#rows.put(
        deadlineKey(row.dueMs, topic, group, p, offset),
        new Uint8Array(0),
      );
    }
  }

  /** Deletes an in-flight row and its deadline row. */
  removeFlightRow(
    topic: string,
    group: string,
    p: number,
    offset: number,
    previous: InFlightRow,
  ): void {
    if (previous.state !== "available") {
      this.#rows.remove(deadlineKey(previous.dueMs, topic, group, p, offset));
    }
    this.#rows.remove(inFlightKey(topic, group, p, offset));
  }

  /** Removes a finished in-flight row and counts it out of its partition. */
  finish(
    topic: string,
    group: string,
    p: number,
    offset: number,
    row: InFlightRow,
  ): void {
    const part = this.partition(topic, group, p);
    if (isAvailable(row, part)) part.available--;
    part.inFlight--;
    assert(
      part.inFlight >= 0 && part.available >= 0,
      `In-flight counts of partition ${p} of group '${group}' stay non-negative`,
    );
    this.removeFlightRow(topic, group, p, offset, row);
  }

  /** Scans in-flight rows of a partition from `from` on, at most `limit`. */
  scanFlights(
    topic: string,
    group: string,
    p: number,
    from: number,
    limit: number,
  ): [number, InFlightRow][] {
    return scanMerged(
      this.#context,
      inFlightRange(topic, group, p, from),
      limit,
    ).map((row) => [parseInFlightKey(row.key)[1], decodeInFlight(row.value)]);
  }

  /** The apply context (for record reads). */

  /**
   * Writes every changed group and partition row (partitions with their
   * cursors), and records this entry's new gaps as `topic.gap` events.
   */
  flush(): void {
    if (this.gaps.length > this.#gapsRecorded) {
      appendEvents(
        this.#context,
        this.gaps.slice(this.#gapsRecorded).map((gap) => ({
          type: "topic.gap",
          data: { ...gap },
        })),
      );
      this.#gapsRecorded = this.gaps.length;
    }
    for (const key of this.#dirtyGroups) {
      const working = this.#groups.get(key)!;
      this.#rows.put(
        groupKey(working.topic, working.name),
        encodeGroup(working.row),
      );
    }
    this.#dirtyGroups.clear();
    for (const entry of this.#partitions.values()) {
      if (!entry.dirty) continue;
      const { topic, group, partition, row } = entry;
      const lowest = this.scanFlights(topic, group, partition, 0, 1)[0];
      row.cursor = lowest === undefined
        ? row.nextDeliver
        : Math.min(lowest[0], row.nextDeliver);
      entry.dirty = false;
      const key = groupPartitionKey(topic, group, partition);
      const value = encodeGroupPartition(row);
      // An unchanged row is not rewritten (no change for the feed).
      const stored = readThrough(this.#context, key);
      if (stored !== null && compareBytes(stored.value, value) === 0) continue;
      this.#rows.put(key, value);
    }
  }
  /** A partition row to read only (not marked changed). */
  peek(topic: string, group: string, p: number): WorkingPartition {
    const cached = this.#partitions.get(`${topic}\0${group}\0${p}`);
    if (cached !== undefined) return cached.row;
    const stored = readThrough(
      this.#context,
      groupPartitionKey(topic, group, p),
    );
    assert(
      stored !== null,
      `Group '${group}' of topic '${topic}' has a row for partition ${p}`,
    );
    const row = { ...decodeGroupPartition(stored.value) };
    this.#partitions.set(`${topic}\0${group}\0${p}`, {
      topic,
      group,
      partition: p,
      row,
      dirty: false,
    });
    return row;
  }
}
