/**
 * Dedup by producer over one publish: a producer remembers `(sequence,
 * atMs, outcome)` for the sequences it published within the topic's
 * `dedupWindowMs` (by the commands' `nowMs`), at most
 * {@linkcode DEDUP_ENTRIES_MAX}, plus its highest sequence. A remembered
 * sequence answers its outcome (a duplicate); any other sequence at or
 * below the highest is `sequenceTooOld`. A topic remembers at most
 * `producersPerTopicMax` producers, the longest idle forgotten first.
 *
 * @module
 */
import { assert } from "../../base/assert.ts";
import { type ApplyContext, readThrough } from "../../state/write_context.ts";
import { type PublishOutcome, PubsubError } from "./commands.ts";
import type { PubsubKnobs } from "./groups.ts";
import { prefixRange, pubsubKey, TAG } from "./keys.ts";
import { rowWriter, scanMerged, type TopicRow } from "./records.ts";
import {
  decodeCount,
  decodeProducer,
  encodeCount,
  encodeProducer,
  producerCountKey,
  producerIdleKey,
  producerKey,
  producerOfIdleKey,
  type ProducerRow,
} from "./topic_rows.ts";

/** Sequences one producer remembers at most (the oldest forgotten first). */
export const DEDUP_ENTRIES_MAX = 2_000;

/** One producer's dedup state over one publish: checked and remembered per message, saved once. */
export class ProducerDedup {
  readonly #context: ApplyContext;
  readonly #topic: string;
  readonly #producerId: string;
  readonly #nowMs: number;
  readonly #before: ProducerRow | null;
  #highest: number;
  readonly #window: Map<number, readonly [number, number, PublishOutcome]>;

  constructor(
    context: ApplyContext,
    topic: TopicRow,
    producerId: string,
    nowMs: number,
  ) {
    assert(producerId.length > 0, "A producer id is not empty");
    this.#context = context;
    this.#topic = topic.name;
    this.#producerId = producerId;
    this.#nowMs = nowMs;
    const bytes = readThrough(context, producerKey(topic.name, producerId))
      ?.value ?? null;
    this.#before = bytes === null ? null : decodeProducer(bytes);
    this.#highest = this.#before?.highest ?? -1;
    this.#window = new Map();
    for (const entry of this.#before?.window ?? []) {
      // In the window: younger than dedupWindowMs (by the commands' times).
      if (nowMs - entry[1] < topic.dedupWindowMs) {
        this.#window.set(entry[0], entry);
      }
    }
  }

  /**
   * The remembered outcome of `sequence` (a duplicate), or null when it is
   * new.
   *
   * @throws {PubsubError} `sequenceTooOld` for a sequence at or below the
   *   highest that is no longer remembered.
   */
  check(sequence: number, knobs: PubsubKnobs): PublishOutcome | null {
    const seen = this.#window.get(sequence);
    if (seen !== undefined) {
      // Planted bug: a sequence inside the window is appended again.
      return knobs.dedupAfterWindowAppend ? null : seen[2];
    }
    if (sequence <= this.#highest) {
      throw new PubsubError(
        "sequenceTooOld",
        `Sequence ${sequence} of producer '${this.#producerId}' is at or below its highest (${this.#highest}) and outside the dedup window`,
        { producerId: this.#producerId, sequence, highest: this.#highest },
      );
    }
    return null;
  }

  /** Remembers `sequence`'s outcome. */
  remember(sequence: number, outcome: PublishOutcome): void {
    this.#window.delete(sequence);
    this.#window.set(sequence, [sequence, this.#nowMs, outcome]);
    while (this.#window.size > DEDUP_ENTRIES_MAX) {
      this.#window.delete(this.#window.keys().next().value!);
    }
    this.#highest = Math.max(this.#highest, sequence);
  }

  /** Writes the state and its idle index; a new producer past the cap evicts the longest idle. */
  save(producersMax: number): void {
    const rows = rowWriter(this.#context);
    const countKey = producerCountKey(this.#topic);
    let count = decodeCount(readThrough(this.#context, countKey)?.value);
    if (this.#before === null) {
      const idle = scanMerged(
        this.#context,
        prefixRange(pubsubKey(TAG.producerIdle, { name: this.#topic })),
        Math.max(0, count + 1 - producersMax),
      );
      for (const row of idle) {
        const { producerId } = producerOfIdleKey(row.key);
        rows.remove(row.key);
        rows.remove(producerKey(this.#topic, producerId));
        count--;
      }
      count++;
      rows.put(countKey, encodeCount(count));
    } else if (this.#before.lastSeenMs !== this.#nowMs) {
      rows.remove(
        producerIdleKey(this.#topic, this.#before.lastSeenMs, this.#producerId),
      );
    }
    assert(count <= producersMax, "Producers stay within the per-topic cap");
    rows.put(
      producerIdleKey(this.#topic, this.#nowMs, this.#producerId),
      new Uint8Array(),
    );
    rows.put(
      producerKey(this.#topic, this.#producerId),
      encodeProducer({
        highest: this.#highest,
        lastSeenMs: this.#nowMs,
        window: [...this.#window.values()],
      }),
    );
  }
}
