/**
 * What happens to deliveries after a fetch: acks (`ack`, `nack`,
 * `inProgress`, `terminate`), dead letters, the leader's clock (expired
 * deadlines, nack delays and pause ends falling due) and the drop of a
 * partition's deliveries by a reset.
 *
 * A failed delivery (an expired deadline, or a nack) at `maxDeliveries`
 * goes to the dead-letter topic; otherwise it becomes available for
 * redelivery (a nack with a delay after it). Dead letters are appended
 * through `records.ts` to the group's dead-letter topic (created on
 * demand), partition = source partition mod its partitions, with
 * `aspen-dlq-reason`, `aspen-source` (`topic/partition/offset`) and
 * `aspen-deliveries` headers.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { type AckOp, PubsubError } from "./commands.ts";
import type { GroupRowCache, WorkingGroup } from "./group_cache.ts";
import {
  decodeInFlight,
  dueRange,
  inFlightRange,
  type InFlightRow,
  isAvailable,
  parseDeadlineKey,
  parseInFlightKey,
  pauseDueKey,
} from "./group_rows.ts";
import {
  appendRecord,
  ensureTopic,
  readRecord,
  scanMerged,
  type TopicRow,
} from "./records.ts";

/** Why a message went to the dead-letter topic. */
export type DeadLetterReason = "maxDeliveries" | "terminated";

const SCAN_ALL = 1_000_000;
const utf8 = new TextEncoder();

/**
 * Applies one ack of a member to a delivery; false when the message is
 * not in flight (finished, or never delivered) or, for `inProgress`, not
 * pending.
 */
export function ackOne(
  cache: GroupRowCache,
  topic: TopicRow,
  working: WorkingGroup,
  ack: AckOp,
  nowMs: number,
): boolean {
  if (ack.partition >= topic.partitions) return false;
  const t = topic.name;
  const g = working.name;
  const row = cache.inFlight(t, g, ack.partition, ack.offset);
  if (row === null) return false;
  const part = cache.partition(t, g, ack.partition);
  const options = working.row.options;
  const wasAvailable = isAvailable(row, part);
  const generation = working.row.generation;
  switch (ack.action) {
    case "ack":
      cache.finish(t, g, ack.partition, ack.offset, row);
      return true;
    case "terminate":
      deadLetter(cache, working, ack.partition, ack.offset, row, {
        reason: "terminated",
        nowMs,
        onTopicLimit: "throw",
      });
      return true;
    case "nack":
      if (row.delivery >= options.maxDeliveries) {
        deadLetter(cache, working, ack.partition, ack.offset, row, {
          reason: "maxDeliveries",
          nowMs,
          onTopicLimit: "throw",
        });
        return true;
      }
      if (ack.delayMs === 0) {
        if (!wasAvailable) part.available++;
        cache.putFlightRow(t, g, ack.partition, ack.offset, {
          ...row,
          state: "available",
          dueMs: 0,
          generation,
        }, row);
      } else {
        if (wasAvailable) part.available--;
        cache.putFlightRow(t, g, ack.partition, ack.offset, {
          ...row,
          state: "waiting",
          dueMs: nowMs + ack.delayMs,
          generation,
        }, row);
      }
      return true;
    case "inProgress":
      if (wasAvailable || row.state !== "pending") return false;
      cache.putFlightRow(t, g, ack.partition, ack.offset, {
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
export function deadLetter(
  cache: GroupRowCache,
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
  cache.finish(t, working.name, p, offset, row);
  const record = readRecord(cache.context, t, p, offset);
  if (record === null) {
    cache.skip(t, working.name, p, offset, offset + 1);
    return;
  }
  let dlq: TopicRow;
  try {
    dlq = ensureTopic(
      cache.context,
      working.row.options.deadLetterTopic,
      how.nowMs,
    );
  } catch (error) {
    if (how.onTopicLimit === "throw" || !(error instanceof PubsubError)) {
      throw error;
    }
    cache.skip(t, working.name, p, offset, offset + 1);
    return;
  }
  const extra: [string, string][] = [
    ["aspen-dlq-reason", how.reason],
    ["aspen-source", `${t}/${p}/${offset}`],
    ["aspen-deliveries", String(row.delivery)],
  ];
  let bytes = record.bytes;
  for (const [name, value] of extra) {
    bytes += utf8.encode(name).byteLength + utf8.encode(value).byteLength;
  }
  appendRecord(cache.context, dlq, p % dlq.partitions, {
    key: record.key,
    value: record.value,
    encoding: record.encoding,
    headers: [...record.headers, ...extra],
    bytes,
  }, how.nowMs);
  cache.setGroup(working, {
    ...working.row,
    deadLettered: working.row.deadLettered + 1,
  });
}

/**
 * Handles up to `budget` due rows (deadlines and pause ends at or before
 * `nowMs`), or only those of one group (`only`, for a fetch).
 */
export function expireDue(
  cache: GroupRowCache,
  nowMs: number,
  budget: number,
  only: { topic: string; group: string } | null,
): { expired: number; more: boolean } {
  const due = scanMerged(cache.context, dueRange(nowMs), budget + 1);
  let expired = 0;
  for (const row of due.slice(0, budget)) {
    const item = parseDeadlineKey(row.key);
    if (
      only !== null &&
      (item.topic !== only.topic || item.group !== only.group)
    ) continue;
    const working = cache.group(item.topic, item.group);
    assert(working !== null, `A deadline row names a group that exists`);
    if (item.kind === "pause") {
      cache.rows.remove(row.key);
      if (working.row.pausedUntilMs === item.dueMs) {
        cache.setGroup(working, {
          ...working.row,
          paused: false,
          pausedUntilMs: null,
        });
      }
      continue;
    }
    const { partition: p, offset } = item;
    const flight = cache.inFlight(item.topic, item.group, p, offset);
    assert(
      flight !== null && flight.state !== "available" &&
        flight.dueMs === item.dueMs,
      `A deadline row's in-flight row is due then`,
    );
    const part = cache.partition(item.topic, item.group, p);
    const stale = isAvailable(flight, part);
    if (flight.state === "pending" && !stale) {
      expired++;
      if (flight.delivery >= working.row.options.maxDeliveries) {
        deadLetter(cache, working, p, offset, flight, {
          reason: "maxDeliveries",
          nowMs,
          onTopicLimit: "skip",
        });
        continue;
      }
    }
    if (!stale) part.available++;
    cache.putFlightRow(item.topic, item.group, p, offset, {
      ...flight,
      state: "available",
      dueMs: 0,
    }, flight);
  }
  return { expired, more: due.length > budget };
}

/** Pauses (until `untilMs`, or until resumed) or resumes a group. */
export function setPause(
  cache: GroupRowCache,
  working: WorkingGroup,
  paused: boolean,
  untilMs: number | null,
): void {
  const before = working.row;
  if (before.paused && before.pausedUntilMs !== null) {
    cache.rows.remove(
      pauseDueKey(before.pausedUntilMs, working.topic, working.name),
    );
  }
  if (paused && untilMs !== null) {
    cache.rows.put(
      pauseDueKey(untilMs, working.topic, working.name),
      new Uint8Array(0),
    );
  }
  cache.setGroup(working, { ...before, paused, pausedUntilMs: untilMs });
}

/** Drops every in-flight row of partition `p` of a group (a reset). */
export function dropInFlight(
  cache: GroupRowCache,
  topic: string,
  group: string,
  p: number,
): void {
  for (
    const row of scanMerged(
      cache.context,
      inFlightRange(topic, group, p),
      SCAN_ALL,
    )
  ) {
    const [, offset] = parseInFlightKey(row.key);
    cache.removeFlightRow(topic, group, p, offset, decodeInFlight(row.value));
  }
}
