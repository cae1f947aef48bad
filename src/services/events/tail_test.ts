import assert from "node:assert/strict";
import fc from "fast-check";
import type { KvRow } from "../../model/types.ts";
import type { ScanOptions } from "../../state/state_store.ts";
import { compareBytes } from "../../base/bytes.ts";
import { encodeU64, EVENTS_META, historyKey } from "./keys.ts";
import { encodeRecord, type HistoryEvent } from "./records.ts";
import {
  type EventPosition,
  EventsCompactedError,
  EventsReads,
} from "./reads.ts";
import { HistoryTail } from "./tail.ts";

/** A history-only store: rows in key order, an applied index and the floor. */
class HistoryStore {
  rows: KvRow[] = [];
  head = 0;
  floor = 0n;
  scans = 0;

  scan(options: ScanOptions): KvRow[] {
    this.scans++;
    return this.rows.filter((row) =>
      compareBytes(row.key, options.start) >= 0 &&
      compareBytes(row.key, options.end) < 0
    ).slice(0, options.limit);
  }

  appliedIndex() {
    return this.head as never;
  }

  meta(name: string): Uint8Array | null {
    return name === EVENTS_META.floor ? encodeU64(this.floor) : null;
  }

  /** Applies one entry with `count` events of `bytes` each. */
  append(count: number, bytes: number, tag: number): void {
    this.head++;
    for (let index = 0; index < count; index++) {
      const event: HistoryEvent = {
        revision: BigInt(this.head),
        index,
        type: index % 2 === 0 ? "kv.set" : "leader.changed",
        data: { tag, pad: "x".repeat(bytes) },
      };
      this.rows.push({
        key: historyKey(event.revision, index),
        value: encodeRecord(event),
        encoding: "bytes",
        versionstamp: new Uint8Array(10) as never,
        expireAtMs: null,
      });
    }
  }

  compact(below: bigint): void {
    if (below <= this.floor) return;
    this.floor = below;
    this.rows = this.rows.filter((row) =>
      compareBytes(row.key, historyKey(below, 0)) >= 0
    );
  }
}

/** A page, or the compaction it threw. */
function pageOf(
  reads: EventsReads,
  position: EventPosition,
  options: Parameters<EventsReads["page"]>[1],
): unknown {
  try {
    return reads.page(position, options);
  } catch (error) {
    if (!(error instanceof EventsCompactedError)) throw error;
    return { compacted: error.compactRevision };
  }
}

const step = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("append" as const),
      count: fc.integer({ min: 0, max: 5 }),
      bytes: fc.integer({ min: 0, max: 64 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("compact" as const),
      back: fc.integer({ min: 0, max: 8 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("read" as const),
      back: fc.integer({ min: 0, max: 12 }),
      after: fc.option(fc.integer({ min: 0, max: 5 })),
      limit: fc.integer({ min: 1, max: 8 }),
      bytesMax: fc.option(fc.integer({ min: 1, max: 400 })),
      to: fc.option(fc.integer({ min: 0, max: 12 })),
      types: fc.constantFrom("all", "kv.set", "leader.changed"),
    }),
  },
);

Deno.test("EventsReads with a tail pages exactly as the store does, under appends, compactions and small bounds", () => {
  fc.assert(
    fc.property(
      fc.array(step, { minLength: 1, maxLength: 120 }),
      fc.integer({ min: 1, max: 24 }),
      fc.integer({ min: 64, max: 4_000 }),
      (steps, rowsMax, bytesMax) => {
        const store = new HistoryStore();
        const plain = new EventsReads(store);
        const tailed = new EventsReads(
          store,
          new HistoryTail(store, { rowsMax, bytesMax }),
        );
        let tag = 0;
        for (const s of steps) {
          if (s.kind === "append") store.append(s.count, s.bytes, tag++);
          else if (s.kind === "compact") {
            store.compact(BigInt(Math.max(0, store.head - s.back)));
          } else {
            const revision = BigInt(Math.max(0, store.head + 1 - s.back));
            const position: EventPosition = s.after === null
              ? { from: revision }
              : { after: { revision, index: s.after } };
            const options = {
              limit: s.limit,
              ...(s.bytesMax === null ? {} : { bytesMax: s.bytesMax }),
              ...(s.to === null
                ? {}
                : { to: BigInt(Math.max(0, store.head - s.to)) }),
              keep: (event: HistoryEvent) =>
                s.types === "all" || event.type === s.types,
            };
            assert.deepEqual(
              pageOf(tailed, position, options),
              pageOf(plain, position, options),
            );
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("HistoryTail reads each new revision from the store once for many readers at the tail", () => {
  const store = new HistoryStore();
  const tail = new HistoryTail(store);
  const reads = new EventsReads(store, tail);
  const positions: EventPosition[] = Array.from({ length: 16 }, () => ({
    from: 1n,
  }));
  let events = 0;
  for (let round = 0; round < 50; round++) {
    store.append(3, 16, round);
    const before = store.scans;
    for (let i = 0; i < positions.length; i++) {
      const page = reads.page(positions[i]!, { limit: 256 });
      events += page.events.length;
      positions[i] = page.next;
    }
    // One catch-up scan per new revision, whatever the number of readers.
    assert(
      store.scans - before <= 1,
      `round ${round}: ${store.scans - before} scans`,
    );
  }
  assert.deepEqual(events, 16 * 50 * 3);
  assert.ok(tail.size > 0);
});
