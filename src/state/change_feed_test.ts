import assert from "node:assert/strict";
import {
  ChangeFeed,
  ChangeFeedCompactedError,
  ChangeFeedFullError,
} from "./change_feed.ts";
import type { ChangeEvent, Revision } from "./changes.ts";

function set(revision: Revision, key: number, bytes = 1): ChangeEvent {
  return {
    revision,
    index: 0,
    service: "kv",
    kind: "set",
    key: new Uint8Array([key]),
    after: {
      value: new Uint8Array(bytes),
      encoding: "bytes",
      versionstamp: new Uint8Array(10),
    },
  };
}

function keysOf(events: readonly ChangeEvent[]): number[] {
  return events.map((e) => e.key[0]!);
}

Deno.test("ChangeFeed hands a subscriber the changes after its revision, in log order, filtered", () => {
  const feed = new ChangeFeed();
  feed.applied(1n, [set(1n, 1)]);
  const all = feed.subscribe(1n);
  const odd = feed.subscribe(0n, (e) => e.key[0]! % 2 === 1);
  feed.applied(2n, [set(2n, 2), set(2n, 3)]);
  feed.applied(3n, []);
  feed.applied(4n, [set(4n, 5)]);
  assert.deepEqual(keysOf(all.take()), [2, 3, 5]);
  assert.equal(all.revision, 4n);
  assert.deepEqual(all.take(), []);
  assert.deepEqual(keysOf(odd.take()), [1, 3, 5]);
  all.close();
  odd.close();
  assert.equal(feed.subscriberCount, 0);
});

Deno.test("ChangeFeed keeps at most entriesMax entries and refuses a subscriber that fell behind with the oldest revision", () => {
  const feed = new ChangeFeed({ entriesMax: 3 });
  const slow = feed.subscribe();
  for (let r = 1n; r <= 10n; r++) feed.applied(r, [set(r, Number(r))]);
  assert.equal(feed.entryCount, 3);
  assert.equal(feed.oldestRevision, 7n);
  assert.throws(
    () => slow.take(),
    (error: unknown) =>
      error instanceof ChangeFeedCompactedError &&
      error.requestedRevision === 0n && error.oldestRevision === 7n,
  );
  assert.throws(() => feed.subscribe(6n), ChangeFeedCompactedError);
  const fresh = feed.subscribe(7n);
  assert.deepEqual(keysOf(fresh.take()), [8, 9, 10]);
  slow.close();
  fresh.close();
});

Deno.test("ChangeFeed keeps at most bytesMax bytes, even dropping an entry bigger than the bound", () => {
  const feed = new ChangeFeed({ bytesMax: 1000 });
  feed.applied(1n, [set(1n, 1, 500)]);
  feed.applied(2n, [set(2n, 2, 500)]);
  assert.equal(feed.entryCount, 1);
  assert.ok(feed.byteCount <= 1000);
  assert.equal(feed.oldestRevision, 1n);
  feed.applied(3n, [set(3n, 3, 5000)]);
  assert.equal(feed.entryCount, 0);
  assert.equal(feed.byteCount, 0);
  assert.equal(feed.oldestRevision, 3n);
  // Nothing is lost for a subscriber that is up to date.
  const current = feed.subscribe();
  feed.applied(4n, [set(4n, 4)]);
  assert.deepEqual(keysOf(current.take()), [4]);
  current.close();
});

Deno.test("ChangeFeed.reset() compacts every subscriber, even one ahead of the new revision", () => {
  const feed = new ChangeFeed();
  feed.applied(5n, [set(5n, 1)]);
  const sub = feed.subscribe();
  feed.reset(3n);
  assert.equal(feed.revision, 3n);
  assert.throws(() => sub.take(), ChangeFeedCompactedError);
  sub.close();
});

Deno.test("ChangeFeed subscription waits until the feed moves past it, or aborts, or closes", async () => {
  const feed = new ChangeFeed();
  const sub = feed.subscribe();
  let woke = false;
  const waiting = sub.wait().then(() => (woke = true));
  await Promise.resolve();
  assert.equal(woke, false);
  feed.applied(1n, []);
  await waiting;
  assert.equal(woke, true);
  // Not taken yet: it resolves at once.
  await sub.wait();
  sub.take();
  const abort = new AbortController();
  const aborted = sub.wait(abort.signal);
  abort.abort();
  await aborted;
  const closing = sub.wait();
  sub.close();
  await closing;
  assert.deepEqual(sub.take(), []);
});

Deno.test("ChangeFeed refuses more than subscribersMax subscriptions", () => {
  const feed = new ChangeFeed({ subscribersMax: 2 });
  const a = feed.subscribe();
  const b = feed.subscribe();
  assert.throws(() => feed.subscribe(), ChangeFeedFullError);
  a.close();
  a.close();
  feed.subscribe().close();
  b.close();
  assert.equal(feed.subscriberCount, 0);
});

Deno.test("ChangeFeed memory stays bounded however far a subscriber falls behind", () => {
  const feed = new ChangeFeed({ entriesMax: 16, bytesMax: 4096 });
  const idle = feed.subscribe();
  for (let r = 1n; r <= 5000n; r++) feed.applied(r, [set(r, 1, 10)]);
  assert.ok(feed.entryCount <= 16);
  assert.ok(feed.byteCount <= 4096);
  assert.throws(() => idle.take(), ChangeFeedCompactedError);
  idle.close();
});

Deno.test("ChangeFeed rejects bounds that are not positive integers", () => {
  assert.throws(() => new ChangeFeed({ entriesMax: 0 }), RangeError);
  assert.throws(() => new ChangeFeed({ bytesMax: 1.5 }), RangeError);
});
