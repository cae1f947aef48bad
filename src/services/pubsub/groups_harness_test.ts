/**
 * Test helpers of consumer groups (no tests of its own): a state host with
 * a stand-in pub/sub service that applies group commands through
 * {@linkcode GroupWriter} and creates topics and appends records through
 * `records.ts` (the topics half is built apart), a stand-in leases service
 * that writes and ends lease records the way the real one does (records
 * first, then the groups' `leasesEnded` in the same entry), and a checker
 * of every invariant of the group rows over the whole store, run after
 * every entry.
 *
 * @module
 */
import assert from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { toHex } from "../../base/bytes.ts";
import { logIndex } from "../../raft/types.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { encodeEnvelope } from "../../state/envelope.ts";
import { StateHost } from "../../state/host.ts";
import {
  type ServiceDefinition,
  ServiceRegistry,
} from "../../state/registry.ts";
import { internalRowWriter } from "../../state/write_context.ts";
import { leaseLive, leaseRecordKey, LEASES_KEYSPACE } from "../leases/api.ts";
import {
  EventsReads,
  eventsService,
  type HistoryEvent,
} from "../events/api.ts";
import { assignment } from "./assignment.ts";
import {
  type GroupOptions,
  type PubsubAnswer,
  type PubsubCommand,
  PubsubError,
  type PubsubErrorCode,
  type Retention,
  validatePubsubCommand,
} from "./commands.ts";
import type { GroupGap } from "./group_cache.ts";
import { GroupReads } from "./group_reads.ts";
import {
  deadlineRange,
  decodeGroup,
  decodeGroupPartition,
  decodeInFlight,
  groupInFlightRange,
  groupPartitionKey,
  groupRange,
  isAvailable,
  memberLeaseKey,
  parseDeadlineKey,
  parseGroupKey,
  parseInFlightKey,
  pauseDueKey,
} from "./group_rows.ts";
import { GroupWriter, type PubsubKnobs } from "./groups.ts";
import { PUBSUB_KEYSPACES, pubsubKey, TAG } from "./keys.ts";
import {
  appendRecord,
  readRecord,
  readTopic,
  type RecordRow,
  scanMerged,
  topicCount,
  trimBelow,
  writeTopic,
  writeTopicCount,
} from "./records.ts";

const PUBSUB_ID = 7;
const FAKE_LEASES_ID = 250;
const EVENTS_ID = 6;

/** A command of the stand-in pub/sub service. */
type TestCommand =
  | { readonly kind: "group"; readonly command: PubsubCommand }
  | {
    readonly kind: "topic";
    readonly name: string;
    readonly partitions: number;
    readonly retention: Retention;
  }
  | {
    readonly kind: "append";
    readonly topic: string;
    readonly partition: number;
    readonly value: Uint8Array;
    readonly key: string | null;
    readonly headers: [string, string][];
    readonly nowMs: number;
  }
  | { readonly kind: "dropGroups"; readonly topic: string }
  | { readonly kind: "ackAtomic"; readonly command: PubsubCommand }
  | {
    readonly kind: "trim";
    readonly topic: string;
    readonly partition: number;
    readonly below: number;
  };

/** What a stand-in command answers. */
export type TestResult =
  | {
    readonly ok: true;
    readonly answer: PubsubAnswer | number | [boolean, boolean];
    /** Gaps the entry recorded (group commands). */
    readonly gaps?: readonly GroupGap[];
  }
  | {
    readonly ok: false;
    readonly reason: PubsubErrorCode;
    readonly message: string;
    readonly details: Readonly<Record<string, unknown>> | undefined;
  };

function applyGroupCommand(
  writer: GroupWriter,
  command: PubsubCommand,
): PubsubAnswer {
  switch (command.type) {
    case "join":
      return writer.join(command);
    case "leave":
      return writer.leave(command);
    case "fetch":
      return writer.fetch(command);
    case "ack":
      return writer.ack(command);
    case "reset":
      return writer.reset(command);
    case "pause":
      return writer.pause(command);
    case "resume":
      return writer.resume(command);
    default:
      throw new Error(`Not a group command: ${command.type}`);
  }
}

function pubsubStandIn(
  knobs: PubsubKnobs,
  tickBudget: () => number,
): ServiceDefinition<TestCommand, TestResult> {
  return {
    name: "pubsub",
    keyspaces: PUBSUB_KEYSPACES,
    reaches: ["events"],
    decode: (payload) => decode(payload) as TestCommand,
    apply(command, context): TestResult {
      switch (command.kind) {
        case "group": {
          const writer = new GroupWriter(context, knobs);
          const valid = validatePubsubCommand(command.command);
          if (valid.type === "tick") {
            const { expired, more } = writer.tick(valid.nowMs, tickBudget());
            return {
              ok: true,
              answer: { type: "tick", released: 0, trimmed: 0, expired, more },
            };
          }
          const answer = applyGroupCommand(writer, valid);
          return { ok: true, answer, gaps: [...writer.gaps()] };
        }
        case "topic":
          writeTopic(context, {
            name: command.name,
            partitions: command.partitions,
            retention: command.retention,
            dedupWindowMs: 120_000,
            createdAtMs: 0,
            roundRobin: 0,
          });
          writeTopicCount(context, topicCount(context) + 1);
          return { ok: true, answer: 0 };
        case "append": {
          const topic = readTopic(context, command.topic)!;
          const bytes = command.value.byteLength +
            (command.key === null ? 0 : command.key.length) +
            command.headers.reduce((n, [a, b]) => n + a.length + b.length, 0);
          const { offset } = appendRecord(context, topic, command.partition, {
            key: command.key,
            value: command.value,
            encoding: "bytes",
            headers: command.headers,
            bytes,
          }, command.nowMs);
          return { ok: true, answer: offset };
        }
        case "ackAtomic": {
          const valid = validatePubsubCommand(command.command);
          assert.ok(valid.type === "ack");
          return {
            ok: true,
            answer: new GroupWriter(context, knobs).ackAtomic(valid),
          };
        }
        case "dropGroups": {
          const writer = new GroupWriter(context, knobs);
          const before = writer.hasGroups(command.topic);
          writer.topicDeleted(command.topic);
          return {
            ok: true,
            answer: [before, writer.hasGroups(command.topic)],
          };
        }
        case "trim":
          return {
            ok: true,
            answer: trimBelow(
              context,
              command.topic,
              command.partition,
              command.below,
            ),
          };
      }
    },
    failure(error): TestResult {
      if (!(error instanceof PubsubError)) throw error;
      return {
        ok: false,
        reason: error.code,
        message: error.message,
        details: error.details,
      };
    },
  };
}

function leasesStandIn(knobs: PubsubKnobs): ServiceDefinition {
  return {
    name: "leases",
    keyspaces: [LEASES_KEYSPACE],
    reaches: ["pubsub", "events"],
    decode: (payload) => decode(payload) as [string, unknown],
    apply(command: [string, unknown], context) {
      const rows = internalRowWriter(context.overlay, context.versionstamp);
      if (command[0] === "grant") {
        rows.put(leaseRecordKey(command[1] as string), new Uint8Array([1]));
        return { ok: true };
      }
      const ids = (command[1] as string[]).filter((id) =>
        leaseLive(context, id)
      );
      for (const id of ids) rows.remove(leaseRecordKey(id));
      new GroupWriter(context, knobs).leasesEnded(ids);
      return { ok: true };
    },
    failure(error) {
      throw error;
    },
  };
}

/** A lease id from a small number. */
export function leaseId(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** Options with the defaults, changed by `change`. */
export function options(
  topic: string,
  group: string,
  change: Partial<GroupOptions> = {},
): GroupOptions {
  return {
    start: { kind: "all" },
    ackDeadlineMs: 30_000,
    maxDeliveries: 5,
    maxAckPending: 1_000,
    deadLetterTopic: `${topic}.dlq.${group}`,
    ...change,
  };
}

/** A state host with the stand-in pub/sub and leases services. */
export class GroupsHarness {
  readonly store = new MemoryStateStore();
  readonly host: StateHost;
  readonly reads: GroupReads;
  /** Items one tick handles. */
  tickBudget = 1_000;
  index = 0;
  /** Check the invariants after every entry (on by default). */
  check = true;

  constructor(knobs: PubsubKnobs = {}) {
    const registry = new ServiceRegistry([
      {
        id: PUBSUB_ID,
        service: pubsubStandIn(knobs, () => this.tickBudget),
      },
      { id: FAKE_LEASES_ID, service: leasesStandIn(knobs) },
      // Hooks (which reach queues) are not exercised here.
      { id: EVENTS_ID, service: { ...eventsService(), reaches: [] } },
    ]);
    this.host = new StateHost(this.store, registry);
    this.reads = new GroupReads(this.store);
  }

  /** Every history event of `type` the entries recorded, in order. */
  events(type: string): HistoryEvent[] {
    return new EventsReads(this.store).page({ from: 0n }, {
      limit: 10_000,
      keep: (event) => event.type === type,
    }).events;
  }

  #apply(serviceId: number, command: unknown): unknown {
    const result = this.host.applyData(
      logIndex(++this.index),
      encodeEnvelope({ serviceId, payload: encode(command) }),
    );
    if (this.check) checkGroupInvariants(this);
    return result;
  }

  /** Applies a group command as the next entry. */
  run(command: PubsubCommand): TestResult {
    return this.#apply(PUBSUB_ID, { kind: "group", command }) as TestResult;
  }

  /** Applies a group command that must succeed; answers its answer. */
  ok<T extends PubsubAnswer["type"]>(
    command: PubsubCommand & { type: T },
  ): Extract<PubsubAnswer, { type: T }> {
    const result = this.run(command);
    if (!result.ok) {
      throw new Error(
        `${command.type} failed: ${result.reason}: ${result.message}`,
      );
    }
    return result.answer as Extract<PubsubAnswer, { type: T }>;
  }

  /** Creates a topic with `partitions` partitions. */
  createTopic(
    name: string,
    partitions: number,
    retention: Partial<Retention> = {},
  ): void {
    this.#apply(PUBSUB_ID, {
      kind: "topic",
      name,
      partitions,
      retention: {
        maxMessages: null,
        maxBytes: null,
        maxAgeMs: null,
        ...retention,
      },
    });
  }

  /** Appends a record; answers its offset. */
  append(
    topic: string,
    partition: number,
    value: string,
    nowMs = 0,
    key: string | null = null,
    headers: [string, string][] = [],
  ): number {
    const result = this.#apply(PUBSUB_ID, {
      kind: "append",
      topic,
      partition,
      value: new TextEncoder().encode(value),
      key,
      headers,
      nowMs,
    }) as TestResult;
    assert.ok(result.ok);
    return result.answer as number;
  }

  /** Trims a partition below `below`. */
  trim(topic: string, partition: number, below: number): void {
    this.#apply(PUBSUB_ID, { kind: "trim", topic, partition, below });
  }

  /** Applies an ack command as an atomic commit's step. */
  ackAtomic(command: PubsubCommand): TestResult {
    return this.#apply(PUBSUB_ID, { kind: "ackAtomic", command }) as TestResult;
  }

  /** Deletes every group of `topic` (as a forced topic delete does); answers hasGroups before and after. */
  dropGroups(topic: string): [boolean, boolean] {
    const result = this.#apply(PUBSUB_ID, { kind: "dropGroups", topic }) as {
      answer: [boolean, boolean];
    };
    return result.answer;
  }

  /** Grants lease `id` (writes its record). */
  grant(id: string): void {
    this.#apply(FAKE_LEASES_ID, ["grant", id]);
  }

  /** Ends leases `ids` in one entry, as revoke or expiry does. */
  endLeases(...ids: string[]): void {
    this.#apply(FAKE_LEASES_ID, ["end", ids]);
  }

  /** Joins `member` on `lease` (granted first when not live). */
  join(
    topic: string,
    group: string,
    member: string,
    lease: string,
    groupOptions: GroupOptions | null = null,
    nowMs = 0,
  ): TestResult {
    return this.run({
      type: "join",
      topic,
      group,
      memberId: member,
      lease,
      options: groupOptions,
      nowMs,
    });
  }

  /** A record as stored. */
  record(topic: string, partition: number, offset: number): RecordRow | null {
    return readRecord(
      { store: this.store, overlay: new Map() },
      topic,
      partition,
      offset,
    );
  }

  /** Every row of the store, as hex key → hex value (to compare states). */
  dump(): Map<string, string> {
    const rows = this.store.scan({
      start: new Uint8Array([0]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 1_000_000,
    });
    return new Map(rows.map((row) => [toHex(row.key), toHex(row.value)]));
  }
}

/**
 * Checks every invariant of the group rows over the whole store: counters
 * equal rows (in flight, available), a deadline row for each in-flight row
 * not available and none else, cursor = min(lowest in-flight,
 * nextDeliver), owners are the rendezvous assignment of the members, a
 * member-lease row per member and none else, a pause row per timed pause.
 */
export function checkGroupInvariants(h: GroupsHarness): void {
  const rows = { store: h.store, overlay: new Map() };
  const scan = (range: { start: Uint8Array; end: Uint8Array }) =>
    h.store.scan({ ...range, limit: 1_000_000 });
  const deadlines = new Set(
    scan(deadlineRange()).map((row) => toHex(row.key)),
  );
  const expected = new Set<string>();
  const leaseRows = new Set(
    scan({
      start: pubsubKey(TAG.memberLease),
      end: pubsubKey(TAG.memberLease + 1),
    }).map((row) => toHex(row.key)),
  );
  const expectedLeases = new Set<string>();
  for (const groupRow of scan(groupRange())) {
    const [topic, name] = parseGroupKey(groupRow.key);
    const group = decodeGroup(groupRow.value);
    const topicRow = readTopic(rows, topic);
    assert.ok(topicRow !== null, `topic of group ${name}`);
    const owners = assignment(
      name,
      topicRow.partitions,
      group.members.map((m) => m.id),
    );
    for (const member of group.members) {
      expectedLeases.add(
        toHex(memberLeaseKey(member.lease, topic, name, member.id)),
      );
    }
    if (group.paused && group.pausedUntilMs !== null) {
      expected.add(toHex(pauseDueKey(group.pausedUntilMs, topic, name)));
    }
    const flights = scanMerged(rows, groupInFlightRange(topic, name), 1_000_000)
      .map((row) => {
        const [p, offset] = parseInFlightKey(row.key);
        return { p, offset, row: decodeInFlight(row.value) };
      });
    for (let p = 0; p < topicRow.partitions; p++) {
      const stored = h.store.get(groupPartitionKey(topic, name, p));
      assert.ok(stored !== null, `partition row ${p} of ${name}`);
      const part = decodeGroupPartition(stored.value);
      assert.equal(part.owner, owners[p], `owner of ${name}/${p}`);
      assert.ok(part.ownerSince <= group.generation, `ownerSince ≤ generation`);
      const mine = flights.filter((f) => f.p === p);
      assert.equal(part.inFlight, mine.length, `inFlight of ${name}/${p}`);
      assert.equal(
        part.available,
        mine.filter((f) => isAvailable(f.row, part)).length,
        `available of ${name}/${p}`,
      );
      const lowest = mine.length === 0
        ? Infinity
        : Math.min(...mine.map((f) => f.offset));
      assert.equal(
        part.cursor,
        Math.min(lowest, part.nextDeliver),
        `cursor of ${name}/${p}`,
      );
      for (const f of mine) {
        assert.ok(f.offset < part.nextDeliver, `in flight below nextDeliver`);
        if (f.row.state !== "available") {
          expected.add(
            toHex(
              pubsubKey(
                TAG.deadline,
                { u64: f.row.dueMs },
                { name: topic },
                { name },
                { u16: p },
                { u64: f.offset },
              ),
            ),
          );
        }
      }
    }
  }
  assert.deepEqual(deadlines, expected, "deadline rows");
  assert.deepEqual(leaseRows, expectedLeases, "member-lease rows");
  for (const key of deadlines) {
    // Every deadline row parses (a pause or a delivery of a group).
    const bytes = Uint8Array.from(
      key.match(/../g)!.map((byte) => parseInt(byte, 16)),
    );
    assert.ok(parseDeadlineKey(bytes).group.length > 0);
  }
}
