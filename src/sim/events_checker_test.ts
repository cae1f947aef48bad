import assert from "node:assert/strict";
import { encodeKey } from "../model/key_codec.ts";
import {
  type EventPosition,
  type HistoryEvent,
  typeMatcher,
} from "../services/events/api.ts";
import {
  checkWatcher,
  EventsReference,
  eventText,
  type WatcherLog,
  type WatchStep,
} from "./events_checker.ts";

const encoder = new TextEncoder();

/** A `kv.set` of `key` at `(revision, index)`. */
function set(revision: number, index: number, key: string): HistoryEvent {
  return {
    revision: BigInt(revision),
    index,
    type: "kv.set",
    key: encodeKey(["sim", key]),
    after: {
      value: encoder.encode(`${revision}`),
      encoding: "bytes",
      versionstamp: new Uint8Array(10).fill(revision),
    },
    before: null,
  };
}

/**
 * Revisions 1–8: each sets k0 and k1 (k1 at index 1), revision 4 records
 * nothing, and a compaction below 5 applies at revision 6.
 */
function reference(): EventsReference {
  const history = new EventsReference();
  for (let revision = 1; revision <= 8; revision++) {
    const events = revision === 4
      ? []
      : [set(revision, 0, "k0"), set(revision, 1, "k1")];
    assert.equal(
      history.record(BigInt(revision), events, revision >= 6 ? 5n : 0n),
      null,
    );
  }
  return history;
}

const k0: Pick<WatcherLog, "selector" | "types" | "describe"> = {
  selector: {
    kind: "range",
    start: encodeKey(["sim", "k0"]),
    end: encodeKey(["sim", "k1"]),
  },
  types: typeMatcher(["kv.*"]),
  describe: "k0",
};

function log(steps: WatchStep[]): WatcherLog {
  return { name: "w1", ...k0, steps };
}

function open(position: EventPosition, node = "n1"): WatchStep {
  return { kind: "open", node, position, atMs: 0 };
}

function event(revision: number, index = 0): WatchStep {
  return { kind: "event", event: set(revision, index, "k0") };
}

const drop: WatchStep = { kind: "drop", reason: "budget", atMs: 0 };

function after(revision: number): EventPosition {
  return { after: { revision: BigInt(revision), index: 0 } };
}

Deno.test("checkWatcher() accepts segments that join into the filtered history", () => {
  const steps = [
    open({ from: 1n }),
    event(1),
    event(2),
    drop,
    open(after(2), "n2"),
    event(3),
    event(5),
    drop,
    open(after(5), "n3"),
    // Nothing newer yet: an empty segment is fine.
    drop,
    open(after(5)),
    event(6),
  ];
  assert.equal(checkWatcher(log(steps), reference()), null);
});

Deno.test("checkWatcher() reports a gap, a duplicate and a wrong record", () => {
  const gap = [open({ from: 1n }), event(1), drop, open(after(1)), event(3)];
  assert.match(
    checkWatcher(log(gap), reference())!,
    /a gap of 1 event\(s\) at position 'after 1\.0'.*expected 2\.0/,
  );
  const duplicate = [
    open({ from: 1n }),
    event(1),
    event(2),
    drop,
    open({ after: { revision: 1n, index: 0 } }),
  ];
  assert.match(
    checkWatcher(log(duplicate), reference())!,
    /resumed after 1\.0 on 'n1'.*last position was after 2\.0/,
  );
  const repeated = [open({ from: 1n }), event(1), event(1)];
  assert.match(
    checkWatcher(log(repeated), reference())!,
    /a duplicate or an event out of order/,
  );
  const wrong: WatchStep = {
    kind: "event",
    event: { ...set(2, 0, "k0"), before: set(1, 0, "k0").after! },
  };
  assert.match(
    checkWatcher(log([open({ from: 1n }), event(1), wrong]), reference())!,
    /an event not in the committed history/,
  );
});

Deno.test("checkWatcher() allows a gap only below the window, resumed at its floor", () => {
  const compacted = (
    fromRevision: bigint,
    compactRevision: bigint,
    applied: bigint,
  ): WatchStep => ({
    kind: "compacted",
    node: "n2",
    fromRevision,
    compactRevision,
    appliedLow: applied,
    appliedHigh: applied,
    atMs: 0,
  });
  const legit = [
    open({ from: 1n }),
    event(1),
    drop,
    open(after(1), "n2"),
    compacted(1n, 5n, 7n),
    open({ from: 5n }),
    event(5),
  ];
  assert.equal(checkWatcher(log(legit), reference()), null);
  // The floor at revision 5 was still 0: the node had no reason to refuse.
  const early = [open(after(1)), compacted(1n, 5n, 5n)];
  assert.match(
    checkWatcher(log(early), reference())!,
    /window starts at 5 at its revision 5, where the history's floor is 0/,
  );
  // Inside the window: compacted must not be said.
  const inside = [open({ from: 5n }), compacted(5n, 5n, 7n)];
  assert.match(checkWatcher(log(inside), reference())!, /inside its window/);
  // After compacted, the stream must start again exactly at the floor.
  const skipped = [
    open(after(1)),
    compacted(1n, 5n, 7n),
    open({ from: 6n }),
  ];
  assert.match(
    checkWatcher(log(skipped), reference())!,
    /resumed from 6 .* last position was from 5/,
  );
  // A compacted floor ahead of the events that follow it is a gap too.
  const ahead = [
    open(after(1)),
    compacted(1n, 5n, 7n),
    open({ from: 5n }),
    event(6),
  ];
  assert.match(checkWatcher(log(ahead), reference())!, /a gap of 1 event/);
});

Deno.test("checkWatcher() allows a compacted frame mid-stream only after everything before its revision", () => {
  const frame = (fromRevision: bigint): WatchStep => ({
    kind: "compacted",
    node: "n1",
    fromRevision,
    compactRevision: 5n,
    appliedLow: 6n,
    appliedHigh: 8n,
    atMs: 0,
  });
  // The stream read past revision 1 (and the empty revision 4's neighbours
  // were not needed) when revision 6 compacted below 5 under it.
  const overtaken = [
    open({ from: 1n }),
    event(1),
    frame(2n),
    open({ from: 5n }, "n2"),
    event(5),
  ];
  assert.equal(checkWatcher(log(overtaken), reference()), null);
  // Its reads had passed revision 2 without sending it.
  const passed = [open({ from: 1n }), event(1), frame(3n)];
  assert.match(
    checkWatcher(log(passed), reference())!,
    /without sending 2\.0 kv\.set/,
  );
  // Behind what it had sent already.
  const behind = [open({ from: 1n }), event(1), event(2), frame(1n)];
  assert.match(
    checkWatcher(log(behind), reference())!,
    /compacted from revision 1 for a watch at position 'after 2\.0'/,
  );
});

Deno.test("EventsReference.record() reports replicas that recorded a revision differently", () => {
  const history = reference();
  assert.equal(
    history.record(3n, [set(3, 0, "k0"), set(3, 1, "k1")], 0n),
    null,
  );
  assert.match(
    history.record(3n, [set(3, 0, "k0")], 0n)!,
    /revision 3 recorded/,
  );
  assert.match(
    history.record(3n, [set(3, 0, "k0"), set(3, 1, "k1")], 2n)!,
    /left the floor at 2/,
  );
  assert.equal(history.highest, 8n);
  const all = history.filtered(8n, () => true);
  assert.ok(Array.isArray(all));
  assert.equal(all.length, 14);
  assert.equal(eventText(all[0]!), eventText(set(1, 0, "k0")));
});

Deno.test("checkWatcher() reports a synced frame before every match up to its revision was sent", () => {
  const synced = (revision: number): WatchStep => ({
    kind: "synced",
    revision: BigInt(revision),
  });
  const whole = [open({ from: 1n }), event(1), event(2), synced(3)];
  assert.match(
    checkWatcher(log(whole), reference())!,
    /said synced at revision 3 .* without sending 3\.0 kv\.set/,
  );
  // Revision 4 recorded nothing: synced at 4 after event 3 is right.
  const right = [open({ from: 1n }), event(1), event(2), event(3), synced(4)];
  assert.equal(checkWatcher(log(right), reference()), null);
  // A node behind the position says synced at its own head: nothing owed.
  assert.equal(
    checkWatcher(log([open(after(6)), synced(3)]), reference()),
    null,
  );
});
