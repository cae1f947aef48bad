/**
 * Consumer groups at apply: members (on leases), rendezvous assignment,
 * generations and fencing, deliveries with deadlines, acks, dead letters,
 * cursors, resets and pauses. Deterministic: it sees only the command
 * (whose `nowMs` the proposer chose), the entry's index and the stored rows
 * (a lease is live while its record exists).
 *
 * - **Members and generations.** A group's row holds its members (id and
 *   lease); a member-lease row per member lets the entry that ends a lease
 *   remove its members ({@linkcode GroupWriter.leasesEnded}). A new member,
 *   a member rejoining on another lease, a leave and a lease end each bump
 *   the generation once and rebalance: a partition whose owner changes (or
 *   whose owner rejoined on a new lease) gets `ownerSince` = the new
 *   generation, and its in-flight deliveries become available at once
 *   (delivery counts kept): rows delivered before `ownerSince` count as
 *   available, so a move rewrites one partition row, not its deliveries.
 * - **Fencing.** A fetch is refused (`staleGeneration`, with the current
 *   generation and assignment) unless the member is in the group with a
 *   generation no newer than the group's and at least `ownerSince` of
 *   every partition it owns; an ack unless the member owns every partition
 *   it names with a generation at least its `ownerSince`. Unmoved
 *   partitions keep working with an older generation.
 * - **Fetch** goes round the member's partitions (starting at one chosen
 *   by the entry's index, so small batches serve all of them) one message
 *   at a time: available redeliveries lowest offset first, then new offsets
 *   while fewer than `maxAckPending` are in flight. Expired deadlines of the
 *   group are failed first, as a tick would.
 * - **Cursor** of a partition = min(lowest in-flight offset, next offset
 *   never delivered), recomputed whenever the partition changes.
 * - **Dead letters** are appended through `records.ts` to the group's
 *   dead-letter topic (created on demand), partition = source partition
 *   mod its partitions, with `aspen-dlq-reason`, `aspen-source` and
 *   `aspen-deliveries` headers. A message whose record was trimmed, or
 *   whose dead-letter topic cannot be created (the topic limit) when the
 *   leader's clock fails it, is counted in `skipped`.
 *
 * Bounds: a rebalance reads every partition row (≤ 256) and hashes
 * `added + 1` members per kept partition (all members for an orphaned
 * one); a tick and a fetch handle at most `tickItemsMax` due rows; a
 * reset, a forced topic delete and a lease end rewrite the in-flight rows
 * they drop (≤ `maxAckPending` per partition).
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import { readThrough } from "../../state/write_context.ts";
import { leaseLive } from "../leases/api.ts";
import {
  type AckOp,
  type GroupOptions,
  type GroupStart,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type ResetTarget,
} from "./commands.ts";
import { reassignedOwner } from "./assignment.ts";
import {
  deadlineKey,
  decodeGroup,
  decodeGroupPartition,
  decodeInFlight,
  dueRange,
  encodeGroup,
  encodeGroupPartition,
  encodeInFlight,
  encodeOptions,
  groupInFlightRange,
  groupKey,
  groupPartitionKey,
  groupPartitionRange,
  groupRange,
  type GroupRow,
  inFlightKey,
  inFlightRange,
  type InFlightRow,
  isAvailable,
  memberLeaseKey,
  memberLeaseRange,
  type MemberRow,
  parseDeadlineKey,
  parseGroupKey,
  parseInFlightKey,
  parseMemberLeaseKey,
  pausedAt,
  pauseDueKey,
} from "./group_rows.ts";
import {
  DeliveryRound,
  type WorkingPartitionRow as WorkingPartition,
} from "./group_fetch.ts";
import {
  appendRecord,
  ensureTopic,
  offsetAtTime,
  readPartition,
  readRecord,
  readTopic,
  rowWriter,
  scanMerged,
  type TopicRow,
} from "./records.ts";

/** Testing knobs of the pub/sub service: planted bugs of the simulator. */
export interface PubsubKnobs {
  /** Planted bug: an ack is applied without checking the member's generation. */
  readonly ackIgnoresGeneration?: boolean;
  /** Planted bug: a sequence seen inside the dedup window is appended again. */
  readonly dedupAfterWindowAppend?: boolean;
}

type Of<T extends PubsubCommand["type"]> = Extract<PubsubCommand, { type: T }>;
type AnswerOf<T extends PubsubAnswer["type"]> = Extract<
  PubsubAnswer,
  { type: T }
>;

/** A group row being changed in this entry. */
interface WorkingGroup {
  readonly topic: string;
  readonly name: string;
  row: GroupRow;
}

/** Why a message went to the dead-letter topic. */
export type DeadLetterReason = "maxDeliveries" | "terminated";

const SCAN_ALL = 1_000_000;

/** The options of a group created by a join without options. */
export function defaultGroupOptions(
  topic: string,
  group: string,
): GroupOptions {
  return {
    start: { kind: "all" },
    ackDeadlineMs: PUBSUB_SERVICE_LIMITS.ackDeadlineMsDefault,
    maxDeliveries: PUBSUB_SERVICE_LIMITS.maxDeliveriesDefault,
    maxAckPending: PUBSUB_SERVICE_LIMITS.maxAckPendingDefault,
    deadLetterTopic: `${topic}.dlq.${group}`,
  };
}

/** Whether two option sets are the same (offsets in any order). */
export function sameOptions(a: GroupOptions, b: GroupOptions): boolean {
  const x = encodeOptions(a);
  const y = encodeOptions(b);
  return x.length === y.length && x.every((byte, i) => byte === y[i]);
}

function startOffset(
  rows: ApplyContext,
  topic: string,
  partition: number,
  start: GroupStart | ResetTarget,
): number {
  const { first, next } = readPartition(rows, topic, partition);
  const clamp = (n: number) => Math.min(Math.max(n, first), next);
  switch (start.kind) {
    case "all":
    case "earliest":
      return first;
    case "new":
    case "latest":
      return next;
    case "offsets":
      return clamp(start.offsets[String(partition)] ?? first);
    case "offset":
      return clamp(start.offset);
    case "time":
      return offsetAtTime(rows, topic, partition, start.timeMs);
  }
}

/** The apply-time operations on groups over one entry. */
export class GroupWriter {
  readonly #context: ApplyContext;
  readonly #knobs: PubsubKnobs;
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

  constructor(context: ApplyContext, knobs: PubsubKnobs = {}) {
    this.#context = context;
    this.#knobs = knobs;
    this.#rows = rowWriter(context);
  }

  // -------------------------------------------------------------------------
  // Commands

  /** Adds or refreshes a member (creating the group), then rebalances. */
  join(command: Of<"join">): AnswerOf<"join"> {
    const topic = this.#topic(command.topic);
    if (!leaseLive(this.#context, command.lease)) {
      throw new PubsubError(
        "leaseNotFound",
        `Cannot join group '${command.group}': lease '${command.lease}' is not live`,
      );
    }
    const working = this.#group(command.topic, command.group) ??
      this.#createGroup(topic, command);
    const group = working.row;
    if (
      command.options !== null && !sameOptions(command.options, group.options)
    ) {
      throw new PubsubError(
        "groupConfigMismatch",
        `Cannot join group '${command.group}': its options differ from the ones given`,
      );
    }
    const existing = group.members.find((m) => m.id === command.memberId);
    if (existing !== undefined && existing.lease === command.lease) {
      return this.#joined(topic, working, command.memberId);
    }
    if (
      existing === undefined &&
      group.members.length >= PUBSUB_SERVICE_LIMITS.membersPerGroupMax
    ) {
      throw new PubsubError(
        "limitExceeded",
        `A group has at most ${PUBSUB_SERVICE_LIMITS.membersPerGroupMax} members`,
      );
    }
    if (existing !== undefined) {
      this.#rows.remove(
        memberLeaseKey(
          existing.lease,
          command.topic,
          command.group,
          existing.id,
        ),
      );
    }
    this.#rows.put(
      memberLeaseKey(
        command.lease,
        command.topic,
        command.group,
        command.memberId,
      ),
      new Uint8Array(0),
    );
    const member: MemberRow = { id: command.memberId, lease: command.lease };
    const members = group.members.filter((m) => m.id !== member.id);
    members.push(member);
    members.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.#setGroup(working, {
      ...group,
      members,
      generation: group.generation + 1,
    });
    this.#rebalance(
      topic,
      working,
      existing === undefined ? [member.id] : [],
      existing === undefined ? null : member.id,
    );
    const answer = this.#joined(topic, working, command.memberId);
    this.#flush();
    return answer;
  }

  /** Removes a member, then rebalances. */
  leave(command: Of<"leave">): AnswerOf<"leave"> {
    const topic = this.#topic(command.topic);
    const working = this.#existingGroup(command.topic, command.group);
    const member = working.row.members.find((m) => m.id === command.memberId);
    if (member === undefined) {
      return {
        type: "leave",
        generation: working.row.generation,
        left: false,
      };
    }
    this.#removeMembers(topic, working, [member]);
    this.#flush();
    return { type: "leave", generation: working.row.generation, left: true };
  }

  /** Records deliveries for the member and answers them. */
  fetch(command: Of<"fetch">): AnswerOf<"fetch"> {
    const topic = this.#topic(command.topic);
    const working = this.#existingGroup(command.topic, command.group);
    const owned = this.#owned(topic, working, command.memberId);
    this.#fence(
      topic,
      working,
      command.memberId,
      command.generation,
      owned,
    );
    if (pausedAt(working.row, command.nowMs)) {
      return {
        type: "fetch",
        generation: working.row.generation,
        messages: [],
      };
    }
    this.#expire(command.nowMs, PUBSUB_SERVICE_LIMITS.tickItemsMax, {
      topic: command.topic,
      group: command.group,
    });
    const round = new DeliveryRound(this, {
      topic,
      group: command.group,
      options: working.row.options,
      generation: working.row.generation,
      memberId: command.memberId,
      nowMs: command.nowMs,
      batch: command.batch,
      maxBytes: command.maxBytes,
    });
    const start = owned.length === 0 ? 0 : this.#context.index % owned.length;
    const messages = round.run([
      ...owned.slice(start),
      ...owned.slice(0, start),
    ]);
    this.#flush();
    return { type: "fetch", generation: working.row.generation, messages };
  }

  /** Applies acks. */
  ack(command: Of<"ack">): AnswerOf<"ack"> {
    const topic = this.#topic(command.topic);
    const working = this.#existingGroup(command.topic, command.group);
    if (this.#knobs.ackIgnoresGeneration !== true) {
      this.#fence(
        topic,
        working,
        command.memberId,
        command.generation,
        command.acks.map((ack) => ack.partition),
      );
    }
    const results = command.acks.map((ack) => ({
      partition: ack.partition,
      offset: ack.offset,
      ok: this.#ackOne(topic, working, ack, command.nowMs),
    }));
    this.#flush();
    return { type: "ack", results };
  }

  /** Moves cursors. */
  reset(command: Of<"reset">): AnswerOf<"reset"> {
    const topic = this.#topic(command.topic);
    const working = this.#existingGroup(command.topic, command.group);
    if (working.row.members.length > 0 && !command.force) {
      throw new PubsubError(
        "groupNotEmpty",
        `Cannot reset group '${command.group}': it has ${working.row.members.length} members (force to reset anyway)`,
      );
    }
    if (command.partition !== null && command.partition >= topic.partitions) {
      throw new PubsubError(
        "invalid",
        `Invalid partition: topic '${topic.name}' has ${topic.partitions}`,
      );
    }
    if (command.force) {
      this.#setGroup(working, {
        ...working.row,
        generation: working.row.generation + 1,
      });
    }
    const generation = working.row.generation;
    const targets = command.partition === null
      ? Array.from({ length: topic.partitions }, (_, p) => p)
      : [command.partition];
    const partitions = targets.map((p) => {
      this.#dropInFlight(topic.name, working.name, p);
      const row = this.partition(topic.name, working.name, p);
      const target = startOffset(this.#context, topic.name, p, command.to);
      row.nextDeliver = target;
      row.cursor = target;
      row.inFlight = 0;
      row.available = 0;
      if (command.force) row.ownerSince = generation;
      return { partition: p, cursor: target };
    });
    this.#flush();
    return { type: "reset", generation, partitions };
  }

  /** Pauses a group. */
  pause(command: Of<"pause">): AnswerOf<"pause"> {
    const working = this.#existingGroup(command.topic, command.group);
    this.#setPause(working, true, command.untilMs);
    this.#flush();
    return { type: "pause", paused: true, pausedUntilMs: command.untilMs };
  }

  /** Resumes a group. */
  resume(command: Of<"resume">): AnswerOf<"pause"> {
    const working = this.#existingGroup(command.topic, command.group);
    this.#setPause(working, false, null);
    this.#flush();
    return { type: "pause", paused: false, pausedUntilMs: null };
  }

  /**
   * The leader's clock: expired deadlines become failed deliveries (or
   * dead letters past `maxDeliveries`), ended pauses end; at most `budget`
   * items. Returns how many and whether more were due.
   */
  tick(nowMs: number, budget: number): { expired: number; more: boolean } {
    const result = this.#expire(nowMs, budget, null);
    this.#flush();
    return result;
  }

  /** Removes the members of the leases `ids` (ended in this entry) and rebalances. */
  leasesEnded(ids: readonly string[]): void {
    const byGroup = new Map<string, { topic: string; group: string }>();
    const leases = new Set(ids);
    for (const id of ids) {
      for (
        const row of scanMerged(this.#context, memberLeaseRange(id), SCAN_ALL)
      ) {
        const { topic, group } = parseMemberLeaseKey(row.key);
        byGroup.set(`${topic}\0${group}`, { topic, group });
      }
    }
    for (const { topic, group } of byGroup.values()) {
      const working = this.#group(topic, group);
      const topicRow = readTopic(this.#context, topic);
      assert(
        working !== null && topicRow !== null,
        `A member-lease row names group '${group}' of topic '${topic}', which exists`,
      );
      const ended = working.row.members.filter((m) => leases.has(m.lease));
      if (ended.length > 0) this.#removeMembers(topicRow, working, ended);
    }
    this.#flush();
  }

  /** Whether `topic` has groups. */
  hasGroups(topic: string): boolean {
    return scanMerged(this.#context, groupRange(topic), 1).length > 0;
  }

  /** Deletes every group of `topic` (a forced topic delete). */
  topicDeleted(topic: string): void {
    for (const row of scanMerged(this.#context, groupRange(topic), SCAN_ALL)) {
      const [, name] = parseGroupKey(row.key);
      const group = decodeGroup(row.value);
      for (const member of group.members) {
        this.#rows.remove(memberLeaseKey(member.lease, topic, name, member.id));
      }
      if (group.paused && group.pausedUntilMs !== null) {
        this.#rows.remove(pauseDueKey(group.pausedUntilMs, topic, name));
      }
      for (
        const flight of scanMerged(
          this.#context,
          groupInFlightRange(topic, name),
          SCAN_ALL,
        )
      ) {
        const [p, offset] = parseInFlightKey(flight.key);
        this.#removeFlightRow(
          topic,
          name,
          p,
          offset,
          decodeInFlight(flight.value),
        );
      }
      for (
        const part of scanMerged(
          this.#context,
          groupPartitionRange(topic, name),
          SCAN_ALL,
        )
      ) this.#rows.remove(part.key);
      this.#rows.remove(row.key);
      this.#groups.delete(`${topic}\0${name}`);
      this.#dirtyGroups.delete(`${topic}\0${name}`);
    }
    for (const [key, entry] of this.#partitions) {
      if (entry.topic === topic) this.#partitions.delete(key);
    }
  }

  // -------------------------------------------------------------------------
  // Rows (cached for the entry; written by #flush)

  #topic(name: string): TopicRow {
    const topic = readTopic(this.#context, name);
    if (topic === null) {
      throw new PubsubError("topicNotFound", `Topic '${name}' does not exist`);
    }
    return topic;
  }

  #group(topic: string, group: string): WorkingGroup | null {
    const key = `${topic}\0${group}`;
    const cached = this.#groups.get(key);
    if (cached !== undefined) return cached;
    const row = readThrough(this.#context, groupKey(topic, group));
    if (row === null) return null;
    const working = { topic, name: group, row: decodeGroup(row.value) };
    this.#groups.set(key, working);
    return working;
  }

  #existingGroup(topic: string, group: string): WorkingGroup {
    const working = this.#group(topic, group);
    if (working === null) {
      throw new PubsubError(
        "groupNotFound",
        `Group '${group}' of topic '${topic}' does not exist`,
      );
    }
    return working;
  }

  #setGroup(working: WorkingGroup, row: GroupRow): void {
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

  #newPartition(
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

  #removeFlightRow(
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
    this.#removeFlightRow(topic, group, p, offset, row);
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
  get context(): ApplyContext {
    return this.#context;
  }

  #flush(): void {
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
      this.#rows.put(
        groupPartitionKey(topic, group, partition),
        encodeGroupPartition(row),
      );
      entry.dirty = false;
    }
  }

  // -------------------------------------------------------------------------
  // Membership

  #createGroup(topic: TopicRow, command: Of<"join">): WorkingGroup {
    const count = scanMerged(
      this.#context,
      groupRange(topic.name),
      PUBSUB_SERVICE_LIMITS.groupsPerTopicMax,
    ).length;
    if (count >= PUBSUB_SERVICE_LIMITS.groupsPerTopicMax) {
      throw new PubsubError(
        "limitExceeded",
        `A topic has at most ${PUBSUB_SERVICE_LIMITS.groupsPerTopicMax} groups`,
      );
    }
    const options = command.options ??
      defaultGroupOptions(topic.name, command.group);
    for (let p = 0; p < topic.partitions; p++) {
      const cursor = startOffset(this.#context, topic.name, p, options.start);
      this.#newPartition(topic.name, command.group, p, cursor);
    }
    const working: WorkingGroup = {
      topic: topic.name,
      name: command.group,
      row: {
        options,
        generation: 0,
        members: [],
        paused: false,
        pausedUntilMs: null,
        deadLettered: 0,
        createdAtMs: command.nowMs,
      },
    };
    this.#groups.set(`${topic.name}\0${command.group}`, working);
    this.#dirtyGroups.add(`${topic.name}\0${command.group}`);
    return working;
  }

  #joined(
    topic: TopicRow,
    working: WorkingGroup,
    memberId: string,
  ): AnswerOf<"join"> {
    return {
      type: "join",
      memberId,
      generation: working.row.generation,
      partitions: this.#owned(topic, working, memberId),
    };
  }

  #owned(topic: TopicRow, working: WorkingGroup, memberId: string): number[] {
    const owned: number[] = [];
    for (let p = 0; p < topic.partitions; p++) {
      if (this.#peek(topic.name, working.name, p).owner === memberId) {
        owned.push(p);
      }
    }
    return owned;
  }

  /** A partition row to read only (not marked changed). */
  #peek(topic: string, group: string, p: number): WorkingPartition {
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

  #removeMembers(
    topic: TopicRow,
    working: WorkingGroup,
    members: readonly MemberRow[],
  ): void {
    const gone = new Set(members.map((m) => m.id));
    for (const member of members) {
      this.#rows.remove(
        memberLeaseKey(member.lease, topic.name, working.name, member.id),
      );
    }
    this.#setGroup(working, {
      ...working.row,
      members: working.row.members.filter((m) => !gone.has(m.id)),
      generation: working.row.generation + 1,
    });
    this.#rebalance(topic, working, [], null);
  }

  /**
   * Moves the partitions whose owner changed with the group's members
   * (`added` joined; `refreshed` rejoined on a new lease, so its partitions
   * count as moved to it): their `ownerSince` becomes the generation and
   * their in-flight deliveries available.
   */
  #rebalance(
    topic: TopicRow,
    working: WorkingGroup,
    added: readonly string[],
    refreshed: string | null,
  ): void {
    const members = new Set(working.row.members.map((m) => m.id));
    const generation = working.row.generation;
    for (let p = 0; p < topic.partitions; p++) {
      const before = this.#peek(topic.name, working.name, p);
      const owner = reassignedOwner(
        working.name,
        p,
        before.owner,
        members,
        added,
      );
      if (owner === before.owner && (owner === null || owner !== refreshed)) {
        continue;
      }
      const row = this.partition(topic.name, working.name, p);
      row.owner = owner;
      row.ownerSince = generation;
      row.available = row.inFlight;
    }
  }

  /**
   * Refuses a member's fetch or ack unless it is in the group, its
   * generation is not newer than the group's, and it owns each of
   * `partitions` with a generation at least its `ownerSince`.
   */
  #fence(
    topic: TopicRow,
    working: WorkingGroup,
    memberId: string,
    generation: number,
    partitions: readonly number[],
  ): void {
    const group = working.row;
    const member = group.members.some((m) => m.id === memberId);
    let reason: string | null = null;
    if (!member) reason = "it is not a member";
    else if (generation > group.generation) {
      reason = `generation ${generation} is newer than the group's`;
    } else {
      for (const p of partitions) {
        if (p >= topic.partitions) {
          reason = `partition ${p} does not exist`;
          break;
        }
        const row = this.#peek(topic.name, working.name, p);
        if (row.owner !== memberId) {
          reason = `partition ${p} is not its own`;
          break;
        }
        if (generation < row.ownerSince) {
          reason =
            `partition ${p} is its own since generation ${row.ownerSince}`;
          break;
        }
      }
    }
    if (reason === null) return;
    const assignment: Record<string, string> = {};
    for (let p = 0; p < topic.partitions; p++) {
      const owner = this.#peek(topic.name, working.name, p).owner;
      if (owner !== null) assignment[String(p)] = owner;
    }
    throw new PubsubError(
      "staleGeneration",
      `Member '${memberId}' of group '${working.name}' at generation ${generation} is fenced: ${reason} (generation ${group.generation})`,
      { generation: group.generation, assignment },
    );
  }

  // -------------------------------------------------------------------------
  // Acks, dead letters, the clock

  #ackOne(
    topic: TopicRow,
    working: WorkingGroup,
    ack: AckOp,
    nowMs: number,
  ): boolean {
    if (ack.partition >= topic.partitions) return false;
    const t = topic.name;
    const g = working.name;
    const row = this.inFlight(t, g, ack.partition, ack.offset);
    if (row === null) return false;
    const part = this.partition(t, g, ack.partition);
    const options = working.row.options;
    const wasAvailable = isAvailable(row, part);
    const generation = working.row.generation;
    switch (ack.action) {
      case "ack":
        this.finish(t, g, ack.partition, ack.offset, row);
        return true;
      case "terminate":
        this.#deadLetter(working, ack.partition, ack.offset, row, {
          reason: "terminated",
          nowMs,
          onTopicLimit: "throw",
        });
        return true;
      case "nack":
        if (row.delivery >= options.maxDeliveries) {
          this.#deadLetter(working, ack.partition, ack.offset, row, {
            reason: "maxDeliveries",
            nowMs,
            onTopicLimit: "throw",
          });
          return true;
        }
        if (ack.delayMs === 0) {
          if (!wasAvailable) part.available++;
          this.putFlightRow(t, g, ack.partition, ack.offset, {
            ...row,
            state: "available",
            dueMs: 0,
            generation,
          }, row);
        } else {
          if (wasAvailable) part.available--;
          this.putFlightRow(t, g, ack.partition, ack.offset, {
            ...row,
            state: "waiting",
            dueMs: nowMs + ack.delayMs,
            generation,
          }, row);
        }
        return true;
      case "inProgress":
        if (wasAvailable || row.state !== "pending") return false;
        this.putFlightRow(t, g, ack.partition, ack.offset, {
          ...row,
          dueMs: nowMs + options.ackDeadlineMs,
        }, row);
        return true;
    }
  }

  /**
   * Sends the in-flight message at `offset` to the group's dead-letter
   * topic (or counts it skipped when its record was trimmed, or, with
   * `onTopicLimit: "skip"`, when the dead-letter topic cannot be created).
   */
  #deadLetter(
    working: WorkingGroup,
    p: number,
    offset: number,
    row: InFlightRow,
    how: {
      reason: DeadLetterReason;
      nowMs: number;
      onTopicLimit: "throw" | "skip";
    },
  ): void {
    const t = working.topic;
    this.finish(t, working.name, p, offset, row);
    const record = readRecord(this.#context, t, p, offset);
    if (record === null) {
      this.partition(t, working.name, p).skipped++;
      return;
    }
    let dlq: TopicRow;
    try {
      dlq = ensureTopic(
        this.#context,
        working.row.options.deadLetterTopic,
        how.nowMs,
      );
    } catch (error) {
      if (how.onTopicLimit === "throw" || !(error instanceof PubsubError)) {
        throw error;
      }
      this.partition(t, working.name, p).skipped++;
      return;
    }
    const extra: [string, string][] = [
      ["aspen-dlq-reason", how.reason],
      ["aspen-source", `${t}/${p}/${offset}`],
      ["aspen-deliveries", String(row.delivery)],
    ];
    const utf8 = new TextEncoder();
    let bytes = record.bytes;
    for (const [name, value] of extra) {
      bytes += utf8.encode(name).byteLength + utf8.encode(value).byteLength;
    }
    appendRecord(this.#context, dlq, p % dlq.partitions, {
      key: record.key,
      value: record.value,
      encoding: record.encoding,
      headers: [...record.headers, ...extra],
      bytes,
    }, how.nowMs);
    this.#setGroup(working, {
      ...working.row,
      deadLettered: working.row.deadLettered + 1,
    });
  }

  /**
   * Handles up to `budget` due rows (deadlines and pause ends at or before
   * `nowMs`), or only those of one group (`only`, for a fetch).
   */
  #expire(
    nowMs: number,
    budget: number,
    only: { topic: string; group: string } | null,
  ): { expired: number; more: boolean } {
    const due = scanMerged(this.#context, dueRange(nowMs), budget + 1);
    let expired = 0;
    for (const row of due.slice(0, budget)) {
      const item = parseDeadlineKey(row.key);
      if (
        only !== null &&
        (item.topic !== only.topic || item.group !== only.group)
      ) continue;
      const working = this.#group(item.topic, item.group);
      assert(working !== null, `A deadline row names a group that exists`);
      if (item.kind === "pause") {
        this.#rows.remove(row.key);
        if (working.row.pausedUntilMs === item.dueMs) {
          this.#setGroup(working, {
            ...working.row,
            paused: false,
            pausedUntilMs: null,
          });
        }
        continue;
      }
      const { partition: p, offset } = item;
      const flight = this.inFlight(item.topic, item.group, p, offset);
      assert(
        flight !== null && flight.state !== "available" &&
          flight.dueMs === item.dueMs,
        `A deadline row's in-flight row is due then`,
      );
      const part = this.partition(item.topic, item.group, p);
      const stale = isAvailable(flight, part);
      if (flight.state === "pending" && !stale) {
        expired++;
        if (flight.delivery >= working.row.options.maxDeliveries) {
          this.#deadLetter(working, p, offset, flight, {
            reason: "maxDeliveries",
            nowMs,
            onTopicLimit: "skip",
          });
          continue;
        }
      }
      if (!stale) part.available++;
      this.putFlightRow(item.topic, item.group, p, offset, {
        ...flight,
        state: "available",
        dueMs: 0,
      }, flight);
    }
    return { expired, more: due.length > budget };
  }

  #setPause(
    working: WorkingGroup,
    paused: boolean,
    untilMs: number | null,
  ): void {
    const before = working.row;
    if (before.paused && before.pausedUntilMs !== null) {
      this.#rows.remove(
        pauseDueKey(before.pausedUntilMs, working.topic, working.name),
      );
    }
    if (paused && untilMs !== null) {
      this.#rows.put(
        pauseDueKey(untilMs, working.topic, working.name),
        new Uint8Array(0),
      );
    }
    this.#setGroup(working, { ...before, paused, pausedUntilMs: untilMs });
  }

  #dropInFlight(topic: string, group: string, p: number): void {
    for (
      const row of scanMerged(
        this.#context,
        inFlightRange(topic, group, p),
        SCAN_ALL,
      )
    ) {
      const [, offset] = parseInFlightKey(row.key);
      this.#removeFlightRow(topic, group, p, offset, decodeInFlight(row.value));
    }
  }
}
