import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeKvEntry } from "../entries.ts";
import { encodeKey, type KvKeyPart } from "../../model/key_codec.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { KvStateMachine } from "../state_machine.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { type LogIndex, logIndex, type Term } from "../../raft/types.ts";
import type { KvMutation } from "../../model/types.ts";
import { SERVICE_IDS } from "../table.ts";
import {
  encodeEventsCommand,
  type EventsCommand,
  EventsCompactedError,
  EventsLeader,
  EventsReads,
  type HistoryEvent,
  type KeySelector,
  matches,
  SelectorError,
  selectsKey,
  typeMatcher,
} from "./api.ts";
import { compareBytes } from "../../base/bytes.ts";

const encoder = new TextEncoder();

class Harness {
  readonly store = new MemoryStateStore();
  readonly kv = new KvStateMachine(this.store);
  readonly reads = new EventsReads(this.store);
  index = 0;

  write(mutations: KvMutation[]): number {
    const index = ++this.index;
    this.kv.apply(
      logIndex(index),
      encodeKvEntry({
        type: "atomic",
        operation: { checks: [], mutations, enqueues: [] },
      }),
    );
    return index;
  }

  set(key: KvKeyPart[], text: string): number {
    return this.write([{
      type: "set",
      key: encodeKey(key),
      value: { encoding: "bytes", data: encoder.encode(text) },
    }]);
  }

  delete(key: KvKeyPart[]): number {
    return this.write([{ type: "delete", key: encodeKey(key) }]);
  }

  events(command: EventsCommand): unknown {
    const index = ++this.index;
    return this.kv.apply(
      logIndex(index),
      encodeEnvelope({
        serviceId: SERVICE_IDS.events,
        payload: encodeEventsCommand(command),
      }),
    );
  }

  conf(
    voters: string[],
    learners: string[] = [],
    votersOutgoing: string[] = [],
  ): number {
    const index = ++this.index;
    this.kv.host.apply({
      term: 1 as Term,
      index: logIndex(index) as LogIndex,
      type: "confChange",
      data: encoder.encode(
        JSON.stringify({ voters, votersOutgoing, learners }),
      ),
    });
    return index;
  }

  all(): HistoryEvent[] {
    const window = this.reads.window();
    return this.reads.page({ from: window.floor }, { limit: 100_000 }).events;
  }
}

Deno.test("apply records kv.set and kv.delete with the row before and after, in (revision, index) order", () => {
  const h = new Harness();
  const r1 = h.set(["a", 1], "one");
  const r2 = h.write([
    {
      type: "set",
      key: encodeKey(["a", 1]),
      value: { encoding: "bytes", data: encoder.encode("uno") },
    },
    {
      type: "set",
      key: encodeKey(["b"]),
      value: { encoding: "bytes", data: encoder.encode("bee") },
    },
  ]);
  const r3 = h.delete(["a", 1]);
  const events = h.all();
  assert.deepEqual(
    events.map((e) => [Number(e.revision), e.type]),
    [[r1, "kv.set"], [r2, "kv.set"], [r2, "kv.set"], [r3, "kv.delete"]],
  );
  assert.ok(events[1]!.index < events[2]!.index);
  const [first, second, , deleted] = events;
  assert.equal(first!.before, null);
  assert.deepEqual(first!.after!.value, encoder.encode("one"));
  assert.deepEqual(second!.before!.value, encoder.encode("one"));
  assert.deepEqual(second!.after!.value, encoder.encode("uno"));
  assert.equal(deleted!.after, null);
  assert.equal(deleted!.cause, "write");
  assert.deepEqual(deleted!.before!.value, encoder.encode("uno"));
  // The versionstamp carried is the one the key was written with.
  assert.deepEqual(
    second!.after!.versionstamp,
    h.kv.get(encodeKey(["b"]))!.versionstamp,
  );
  const window = h.reads.window();
  assert.equal(window.count, 4);
  assert.ok(window.bytes > 0);
});

Deno.test("leader records leader.changed once per new term; an older or equal term records nothing", () => {
  const h = new Harness();
  h.events({ type: "leader", term: 2, leader: "n1" });
  h.events({ type: "leader", term: 2, leader: "n1" });
  h.events({ type: "leader", term: 1, leader: "n0" });
  h.events({ type: "leader", term: 3, leader: "n2" });
  const leaders = h.all().filter((e) => e.type === "leader.changed");
  assert.deepEqual(leaders.map((e) => e.data), [
    { term: 2, leader: "n1", previous: null },
    { term: 3, leader: "n2", previous: "n1" },
  ]);
});

Deno.test("configuration entries record member.added, member.promoted and member.removed (joint entries count once)", () => {
  const h = new Harness();
  // A provisioned cluster's first change: its members before are the entry's own.
  h.conf(["n1", "n3"], ["n2"]);
  h.conf(["n1", "n2", "n3"], [], ["n1", "n3"]);
  h.conf(["n1", "n2", "n3"]);
  h.conf(["n2", "n3"], [], ["n1", "n2", "n3"]);
  h.conf(["n2", "n3"]);
  const members = h.all().filter((e) => e.type.startsWith("member."));
  assert.deepEqual(
    members.map((e) => [e.type, e.data]),
    [
      ["member.added", { node: "n2", role: "learner" }],
      ["member.promoted", { node: "n2", role: "voter" }],
      ["member.removed", { node: "n1", role: "voter" }],
    ],
  );
});

Deno.test("compact deletes exactly below the revision; reads below the window are refused with compacted", () => {
  const h = new Harness();
  const revisions = Array.from({ length: 10 }, (_, i) => h.set(["k", i], "v"));
  const below = revisions[4]!;
  h.events({ type: "compact", belowRevision: below });
  const events = h.all();
  assert.equal(Number(events[0]!.revision), below);
  assert.equal(events.length, 6);
  assert.equal(h.reads.window().floor, BigInt(below));
  assert.equal(h.reads.window().count, 6);
  assert.throws(
    () => h.reads.page({ from: BigInt(below - 1) }, { limit: 10 }),
    (error) =>
      error instanceof EventsCompactedError &&
      error.compactRevision === BigInt(below),
  );
  // A compaction below the floor changes nothing.
  h.events({ type: "compact", belowRevision: 2 });
  assert.equal(h.reads.window().floor, BigInt(below));
  // Two replicas applying the same entries hold the same window.
  const twin = new Harness();
  for (let i = 0; i < 10; i++) twin.set(["k", i], "v");
  twin.events({ type: "compact", belowRevision: below });
  assert.deepEqual(
    twin.all().map((e) => `${e.revision}.${e.index}`),
    events.map((e) => `${e.revision}.${e.index}`),
  );
});

Deno.test("pages stop at their limit or byte budget and continue exactly after the last event read", () => {
  const h = new Harness();
  for (let i = 0; i < 30; i++) {
    h.write([0, 1, 2].map((j) => ({
      type: "set" as const,
      key: encodeKey(["p", i, j]),
      value: { encoding: "bytes" as const, data: new Uint8Array(100) },
    })));
  }
  const all = h.all();
  for (const page of [{ limit: 4 }, { limit: 1000, bytesMax: 250 }]) {
    const got: HistoryEvent[] = [];
    let position = { from: 0n } as Parameters<EventsReads["page"]>[0];
    for (let i = 0; i < 1000; i++) {
      const answer = h.reads.page(position, page);
      got.push(...answer.events);
      position = answer.next;
      if (answer.done) break;
    }
    assert.deepEqual(
      got.map((e) => `${e.revision}.${e.index}`),
      all.map((e) => `${e.revision}.${e.index}`),
    );
  }
});

Deno.test("typeMatcher: names and trailing globs; refuses malformed patterns and more than 16", () => {
  const kv = typeMatcher();
  assert.ok(kv("kv.set") && kv("kv.delete") && !kv("leader.changed"));
  const some = typeMatcher(["leader.changed", "member.*"]);
  assert.ok(some("leader.changed") && some("member.added"));
  assert.ok(!some("leader.changedx") && !some("members.added"));
  assert.ok(typeMatcher(["*"])("anything.at.all"));
  for (const bad of [[], ["KV.set"], ["kv.*.set"], ["kv*"], [""], ["a..b"]]) {
    assert.throws(() => typeMatcher(bad), SelectorError, JSON.stringify(bad));
  }
  assert.throws(
    () => typeMatcher(Array.from({ length: 17 }, () => "kv.set")),
    SelectorError,
  );
});

const keyPart = fc.oneof(
  fc.string({ maxLength: 4 }),
  fc.integer({ min: -5, max: 5 }),
  fc.boolean(),
);
const key = fc.array(keyPart, { minLength: 1, maxLength: 3 });

Deno.test("property: a prefix selects exactly the keys strictly under it; a range selects start ≤ key < end", () => {
  fc.assert(
    fc.property(key, key, key, (a, b, k) => {
      const prefix = encodeKey(a);
      const encoded = encodeKey(k);
      const under = k.length > a.length &&
        a.every((part, i) => Object.is(part, k[i]));
      assert.equal(
        selectsKey({ kind: "prefix", prefix }, encoded),
        under,
      );
      const [start, end] = compareBytes(encodeKey(a), encodeKey(b)) <= 0
        ? [encodeKey(a), encodeKey(b)]
        : [encodeKey(b), encodeKey(a)];
      const range: KeySelector = { kind: "range", start, end };
      assert.equal(
        selectsKey(range, encoded),
        compareBytes(start, encoded) <= 0 && compareBytes(encoded, end) < 0,
      );
      // Keyless events pass any selector; types still filter them.
      assert.ok(matches(range, typeMatcher(["*"]), { type: "leader.changed" }));
      assert.ok(!matches(range, typeMatcher(), { type: "leader.changed" }));
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: a glob matches exactly the names with its prefix; a name only itself", () => {
  const segment = fc.stringMatching(/^[a-z]{1,3}$/);
  const name = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) =>
    s.join(".")
  );
  fc.assert(
    fc.property(name, name, (pattern, type) => {
      assert.equal(typeMatcher([pattern])(type), pattern === type);
      assert.equal(
        typeMatcher([`${pattern}.*`])(type),
        type.startsWith(`${pattern}.`),
      );
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: compaction never crosses a pinned cursor while the history is under its byte cap, and the byte cap wins with a gap reported", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 60 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 20 }),
      fc.boolean(),
      (writes, pinOffset, keepRevisions, tinyCap) => {
        const h = new Harness();
        for (let i = 0; i < writes; i++) h.set(["c", i], "x".repeat(50));
        const pinned = BigInt(Math.min(pinOffset, writes) + 1);
        const gaps: [bigint, bigint][] = [];
        const leader = new EventsLeader({
          store: h.store,
          nodeId: "n1",
          term: () => 1,
          keepMs: 0,
          keepRevisions,
          bytesMax: tinyCap ? 400 : 1024 * 1024,
          pinned: () => pinned,
          onOvertaken: (from, to) => gaps.push([from, to]),
        });
        // Two passes: the first only samples time.
        leader.target(0);
        gaps.length = 0;
        const below = leader.target(10);
        if (below === null) return;
        h.events({ type: "compact", belowRevision: Number(below) });
        const window = h.reads.window();
        if (!tinyCap) {
          assert.ok(below <= pinned, `compacted ${below} past pin ${pinned}`);
          assert.deepEqual(gaps, []);
        } else if (below > pinned) {
          assert.deepEqual(gaps, [[pinned, below - 1n]]);
        }
        assert.ok(
          below <= BigInt(h.index) + 1n - BigInt(keepRevisions) ||
            (tinyCap && window.bytes <= 400 + 200),
        );
      },
    ),
    { numRuns: 200 },
  );
});
