/**
 * Reads of topics from a replica's applied state: list, describe and the
 * earliest time something of the topics falls due (the leader ticks then).
 * Topics being deleted are absent here; their purge is due at once.
 *
 * @module
 */
import type {
  TopicDescribeResponse,
  WireRetention,
  WireTopic,
} from "../../protocol/http_api_pubsub.ts";
import type { StateStore } from "../../state/state_store.ts";
import type { Retention } from "./commands.ts";
import { GroupReads } from "./group_reads.ts";
import { prefixRange, pubsubKey, TAG } from "./keys.ts";
import {
  decodeTopic,
  readPartition,
  readRecord,
  readTopic,
  type Rows,
  type TopicRow,
} from "./records.ts";
import {
  decodeCount,
  parseScheduleDueKey,
  scheduledCountKey,
  topicOfIndexKey,
} from "./topic_rows.ts";
import { PUBSUB_SERVICE_LIMITS } from "./commands.ts";

/** A retention as the wire carries it (absent fields: unbounded). */
export function wireRetention(retention: Retention): WireRetention {
  return {
    ...(retention.maxMessages !== null
      ? { maxMessages: retention.maxMessages }
      : {}),
    ...(retention.maxBytes !== null ? { maxBytes: retention.maxBytes } : {}),
    ...(retention.maxAgeMs !== null ? { maxAgeMs: retention.maxAgeMs } : {}),
  };
}

/** A topic row as the wire carries it. */
export function wireTopic(row: TopicRow): WireTopic {
  return {
    name: row.name,
    partitions: row.partitions,
    retention: wireRetention(row.retention),
    dedupWindowMs: row.dedupWindowMs,
    createdAtMs: row.createdAtMs,
  };
}

/** Topic reads over a state store. */
export class TopicReads {
  readonly #store: StateStore;
  readonly #rows: Rows;

  constructor(store: StateStore) {
    this.#store = store;
    this.#rows = { store, overlay: new Map() };
  }

  /** Every topic (not those being deleted), by name. */
  list(): WireTopic[] {
    const rows = this.#store.scan({
      ...prefixRange(pubsubKey(TAG.topic)),
      limit: PUBSUB_SERVICE_LIMITS.topicsMax,
    });
    const out: WireTopic[] = [];
    for (const row of rows) {
      const topic = decodeTopic(row.value);
      if (topic.deleting !== true) out.push(wireTopic(topic));
    }
    return out;
  }

  /** One topic's settings, partitions, groups and scheduled count, or null. */
  describe(name: string): TopicDescribeResponse | null {
    const topic = readTopic(this.#rows, name);
    if (topic === null) return null;
    const partitions = [];
    for (let p = 0; p < topic.partitions; p++) {
      const row = readPartition(this.#rows, name, p);
      partitions.push({
        partition: p,
        firstOffset: row.first,
        nextOffset: row.next,
        bytes: row.bytes,
      });
    }
    return {
      ...wireTopic(topic),
      partitions,
      groups: new GroupReads(this.#store).namesOf(name),
      scheduled: decodeCount(
        this.#store.get(scheduledCountKey(name))?.value,
      ),
    };
  }

  /** The topic row of `name` (null: absent or being deleted). */
  topic(name: string): TopicRow | null {
    return readTopic(this.#rows, name);
  }

  /**
   * The earliest time a tick has topic work (a delayed message due, a
   * record past its topic's `maxAgeMs`, a deleted topic to purge: 0), or
   * null.
   */
  nextDueMs(): number | null {
    return earliest(this.nextReleaseMs(), this.nextAgeTrimMs());
  }

  /**
   * The earliest delayed message's due time, or 0 while a deleted topic
   * is being purged, or null: two rows read.
   */
  nextReleaseMs(): number | null {
    if (
      this.#store.scan({
        ...prefixRange(pubsubKey(TAG.topicDeleting)),
        limit: 1,
      }).length > 0
    ) return 0;
    const first = this.#store.scan({
      ...prefixRange(pubsubKey(TAG.scheduleDue)),
      limit: 1,
    })[0];
    return first === undefined ? null : parseScheduleDueKey(first.key).dueMs;
  }

  /**
   * When the oldest record of a topic with age retention passes its
   * `maxAgeMs`, or null. Reads the first record of every partition of
   * every such topic (the leader caches it).
   */
  nextAgeTrimMs(): number | null {
    let due: number | null = null;
    const aged = this.#store.scan({
      ...prefixRange(pubsubKey(TAG.ageRetained)),
      limit: PUBSUB_SERVICE_LIMITS.topicsMax,
    });
    for (const row of aged) {
      const topic = readTopic(this.#rows, topicOfIndexKey(row.key));
      const maxAgeMs = topic?.retention.maxAgeMs ?? null;
      if (topic === null || maxAgeMs === null) continue;
      for (let p = 0; p < topic.partitions; p++) {
        const { first, next } = readPartition(this.#rows, topic.name, p);
        if (first >= next) continue;
        const record = readRecord(this.#rows, topic.name, p, first);
        if (record === null) continue;
        // Trimmed once strictly older than maxAgeMs: due a millisecond later.
        due = earliest(due, record.publishedAtMs + maxAgeMs + 1);
      }
    }
    return due;
  }
}

function earliest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}
