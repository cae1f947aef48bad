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
 * - **Acks** (`group_acks.ts`): `ack` finishes; `nack` makes the message
 *   available (after `delayMs`), or dead-letters it at `maxDeliveries`;
 *   `inProgress` moves a pending delivery's deadline; `terminate`
 *   dead-letters now. An expired deadline is a failed delivery, like a
 *   nack without delay. Dead letters are appended through `records.ts`; a
 *   message whose record was trimmed, or whose dead-letter topic cannot be
 *   created (the topic limit) when the leader's clock fails it, is counted
 *   in `skipped` instead.
 * - **Start and reset.** A new group's cursors follow its `start` (`all`:
 *   the first retained offset; `new`: the next; `offsets`: the given ones
 *   clamped to the retained range, unnamed partitions from the first;
 *   `time`: the first record published at or after it). A reset needs an
 *   empty group unless forced; a forced one bumps the generation and sets
 *   `ownerSince` of the reset partitions to it, so their owners' older
 *   acks and fetches are fenced; either drops their in-flight deliveries.
 *
 * Rows are in `group_rows.ts`, the entry's cached view of them in
 * `group_cache.ts`, a fetch's round in `group_fetch.ts`, the assignment in
 * `assignment.ts`.
 *
 * Bounds: a rebalance reads every partition row (≤ 256) and hashes
 * `added + 1` members per kept partition (all members for an orphaned
 * one); a tick and a fetch handle at most `tickItemsMax` due rows; a
 * reset and a forced topic delete delete the in-flight rows they drop
 * (≤ `maxAckPending` per partition).
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { compareBytes } from "../../base/bytes.ts";
import type { ApplyContext } from "../../state/write_context.ts";
import { leaseLive } from "../leases/api.ts";
import {
  type GroupOptions,
  type GroupStart,
  PUBSUB_SERVICE_LIMITS,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type ResetTarget,
} from "./commands.ts";
import { reassignedOwner } from "./assignment.ts";
import { ackOne, dropInFlight, expireDue, setPause } from "./group_acks.ts";
import {
  type GroupGap,
  GroupRowCache,
  type WorkingGroup,
} from "./group_cache.ts";
import { DeliveryRound } from "./group_fetch.ts";
import {
  decodeGroup,
  decodeInFlight,
  encodeOptions,
  groupInFlightRange,
  groupPartitionRange,
  groupRange,
  memberLeaseKey,
  memberLeaseRange,
  type MemberRow,
  parseGroupKey,
  parseInFlightKey,
  parseMemberLeaseKey,
  pausedAt,
  pauseDueKey,
} from "./group_rows.ts";
import {
  offsetAtTime,
  readPartition,
  readTopic,
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
  return compareBytes(encodeOptions(a), encodeOptions(b)) === 0;
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
  readonly #cache: GroupRowCache;
  readonly #knobs: PubsubKnobs;

  constructor(context: ApplyContext, knobs: PubsubKnobs = {}) {
    this.#cache = new GroupRowCache(context);
    this.#knobs = knobs;
  }

  // -------------------------------------------------------------------------
  // Commands

  /** Adds or refreshes a member (creating the group), then rebalances. */
  join(command: Of<"join">): AnswerOf<"join"> {
    const topic = this.#cache.topic(command.topic);
    if (!leaseLive(this.#cache.context, command.lease)) {
      throw new PubsubError(
        "leaseNotFound",
        `Cannot join group '${command.group}': lease '${command.lease}' is not live`,
      );
    }
    const working = this.#cache.group(command.topic, command.group) ??
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
      this.#cache.rows.remove(
        memberLeaseKey(
          existing.lease,
          command.topic,
          command.group,
          existing.id,
        ),
      );
    }
    this.#cache.rows.put(
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
    this.#cache.setGroup(working, {
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
    this.#cache.flush();
    return answer;
  }

  /** Removes a member, then rebalances. */
  leave(command: Of<"leave">): AnswerOf<"leave"> {
    const topic = this.#cache.topic(command.topic);
    const working = this.#cache.existingGroup(command.topic, command.group);
    const member = working.row.members.find((m) => m.id === command.memberId);
    if (member === undefined) {
      return {
        type: "leave",
        generation: working.row.generation,
        left: false,
      };
    }
    this.#removeMembers(topic, working, [member]);
    this.#cache.flush();
    return { type: "leave", generation: working.row.generation, left: true };
  }

  /** Records deliveries for the member and answers them. */
  fetch(command: Of<"fetch">): AnswerOf<"fetch"> {
    const topic = this.#cache.topic(command.topic);
    const working = this.#cache.existingGroup(command.topic, command.group);
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
    expireDue(this.#cache, command.nowMs, PUBSUB_SERVICE_LIMITS.tickItemsMax, {
      topic: command.topic,
      group: command.group,
    });
    const round = new DeliveryRound(this.#cache, {
      topic,
      group: command.group,
      options: working.row.options,
      generation: working.row.generation,
      memberId: command.memberId,
      nowMs: command.nowMs,
      batch: command.batch,
      maxBytes: command.maxBytes,
    });
    const start = owned.length === 0
      ? 0
      : this.#cache.context.index % owned.length;
    const messages = round.run([
      ...owned.slice(start),
      ...owned.slice(0, start),
    ]);
    this.#cache.flush();
    return { type: "fetch", generation: working.row.generation, messages };
  }

  /** Applies acks. */
  ack(command: Of<"ack">): AnswerOf<"ack"> {
    const topic = this.#cache.topic(command.topic);
    const working = this.#cache.existingGroup(command.topic, command.group);
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
      ok: ackOne(this.#cache, topic, working, ack, command.nowMs),
    }));
    this.#cache.flush();
    return { type: "ack", results };
  }

  /**
   * Applies acks as one step of an atomic commit (KV write, publish and
   * ack in one entry): like {@linkcode GroupWriter.ack}, but a message not
   * in flight refuses the whole entry. The entry's writes must then be
   * dropped, as the state host does when apply throws.
   *
   * @throws {PubsubError} `messageFinished` (details: partition, offset)
   * for a message already finished or never delivered; `staleGeneration`
   * for a fenced member.
   */
  ackAtomic(command: Of<"ack">): AnswerOf<"ack"> {
    const answer = this.ack(command);
    const refused = answer.results.find((result) => !result.ok);
    if (refused !== undefined) {
      throw new PubsubError(
        "messageFinished",
        `Cannot ack ${command.topic}/${refused.partition}/${refused.offset} in group '${command.group}': it is not in flight`,
        { partition: refused.partition, offset: refused.offset },
      );
    }
    return answer;
  }

  /** Moves cursors. */
  reset(command: Of<"reset">): AnswerOf<"reset"> {
    const topic = this.#cache.topic(command.topic);
    const working = this.#cache.existingGroup(command.topic, command.group);
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
      this.#cache.setGroup(working, {
        ...working.row,
        generation: working.row.generation + 1,
      });
    }
    const generation = working.row.generation;
    const targets = command.partition === null
      ? Array.from({ length: topic.partitions }, (_, p) => p)
      : [command.partition];
    const partitions = targets.map((p) => {
      dropInFlight(this.#cache, topic.name, working.name, p);
      const row = this.#cache.partition(topic.name, working.name, p);
      const target = startOffset(
        this.#cache.context,
        topic.name,
        p,
        command.to,
      );
      row.nextDeliver = target;
      row.cursor = target;
      row.inFlight = 0;
      row.available = 0;
      if (command.force) row.ownerSince = generation;
      return { partition: p, cursor: target };
    });
    this.#cache.flush();
    return { type: "reset", generation, partitions };
  }

  /** Pauses a group. */
  pause(command: Of<"pause">): AnswerOf<"pause"> {
    const working = this.#cache.existingGroup(command.topic, command.group);
    setPause(this.#cache, working, true, command.untilMs);
    this.#cache.flush();
    return { type: "pause", paused: true, pausedUntilMs: command.untilMs };
  }

  /** Resumes a group. */
  resume(command: Of<"resume">): AnswerOf<"pause"> {
    const working = this.#cache.existingGroup(command.topic, command.group);
    setPause(this.#cache, working, false, null);
    this.#cache.flush();
    return { type: "pause", paused: false, pausedUntilMs: null };
  }

  /**
   * The leader's clock: expired deadlines become failed deliveries (or
   * dead letters past `maxDeliveries`), ended pauses end; at most `budget`
   * items. Returns how many and whether more were due.
   */
  tick(nowMs: number, budget: number): { expired: number; more: boolean } {
    const result = expireDue(this.#cache, nowMs, budget, null);
    this.#cache.flush();
    return result;
  }

  /** Removes the members of the leases `ids` (ended in this entry) and rebalances. */
  leasesEnded(ids: readonly string[]): void {
    const byGroup = new Map<string, { topic: string; group: string }>();
    const leases = new Set(ids);
    for (const id of ids) {
      for (
        const row of scanMerged(
          this.#cache.context,
          memberLeaseRange(id),
          SCAN_ALL,
        )
      ) {
        const { topic, group } = parseMemberLeaseKey(row.key);
        byGroup.set(`${topic}\0${group}`, { topic, group });
      }
    }
    for (const { topic, group } of byGroup.values()) {
      const working = this.#cache.group(topic, group);
      const topicRow = readTopic(this.#cache.context, topic);
      assert(
        working !== null && topicRow !== null,
        `A member-lease row names group '${group}' of topic '${topic}', which exists`,
      );
      const ended = working.row.members.filter((m) => leases.has(m.lease));
      if (ended.length > 0) this.#removeMembers(topicRow, working, ended);
    }
    this.#cache.flush();
  }

  /**
   * What the groups skipped in this entry so far (records trimmed by
   * retention before they finished them), for `topic.gap` events.
   */
  gaps(): readonly GroupGap[] {
    return this.#cache.gaps;
  }

  /** Whether `topic` has groups. */
  hasGroups(topic: string): boolean {
    return scanMerged(this.#cache.context, groupRange(topic), 1).length > 0;
  }

  /** Deletes every group of `topic` (a forced topic delete). */
  topicDeleted(topic: string): void {
    for (
      const row of scanMerged(this.#cache.context, groupRange(topic), SCAN_ALL)
    ) {
      const [, name] = parseGroupKey(row.key);
      const group = decodeGroup(row.value);
      for (const member of group.members) {
        this.#cache.rows.remove(
          memberLeaseKey(member.lease, topic, name, member.id),
        );
      }
      if (group.paused && group.pausedUntilMs !== null) {
        this.#cache.rows.remove(pauseDueKey(group.pausedUntilMs, topic, name));
      }
      for (
        const flight of scanMerged(
          this.#cache.context,
          groupInFlightRange(topic, name),
          SCAN_ALL,
        )
      ) {
        const [p, offset] = parseInFlightKey(flight.key);
        this.#cache.removeFlightRow(
          topic,
          name,
          p,
          offset,
          decodeInFlight(flight.value),
        );
      }
      for (
        const part of scanMerged(
          this.#cache.context,
          groupPartitionRange(topic, name),
          SCAN_ALL,
        )
      ) this.#cache.rows.remove(part.key);
      this.#cache.rows.remove(row.key);
    }
    this.#cache.forgetTopic(topic);
  }

  // -------------------------------------------------------------------------
  // Membership

  #createGroup(topic: TopicRow, command: Of<"join">): WorkingGroup {
    const count = scanMerged(
      this.#cache.context,
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
      const cursor = startOffset(
        this.#cache.context,
        topic.name,
        p,
        options.start,
      );
      this.#cache.newPartition(topic.name, command.group, p, cursor);
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
    this.#cache.addGroup(working);
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
      if (this.#cache.peek(topic.name, working.name, p).owner === memberId) {
        owned.push(p);
      }
    }
    return owned;
  }

  #removeMembers(
    topic: TopicRow,
    working: WorkingGroup,
    members: readonly MemberRow[],
  ): void {
    const gone = new Set(members.map((m) => m.id));
    for (const member of members) {
      this.#cache.rows.remove(
        memberLeaseKey(member.lease, topic.name, working.name, member.id),
      );
    }
    this.#cache.setGroup(working, {
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
      const before = this.#cache.peek(topic.name, working.name, p);
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
      const row = this.#cache.partition(topic.name, working.name, p);
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
        const row = this.#cache.peek(topic.name, working.name, p);
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
      const owner = this.#cache.peek(topic.name, working.name, p).owner;
      if (owner !== null) assignment[String(p)] = owner;
    }
    throw new PubsubError(
      "staleGeneration",
      `Member '${memberId}' of group '${working.name}' at generation ${generation} is fenced: ${reason} (generation ${group.generation})`,
      { generation: group.generation, assignment },
    );
  }
}
