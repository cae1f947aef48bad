import assert from "node:assert/strict";
import fc from "fast-check";
import { logIndex } from "../../raft/types.ts";
import {
  decodeKvEntry as decodeCommand,
  encodeKvEntry as encodeCommand,
} from "../entries.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { MemoryStateStore } from "../../storage/memory_state_store.ts";
import { SqliteStateStore } from "../../storage/sqlite_state_store.ts";
import { KvStateMachine } from "../state_machine.ts";
import { stateHash } from "../../state/state_hash.ts";
import type { StateStore } from "../../state/state_store.ts";
import type {
  KvApplyResult,
  KvCommand,
  KvEnqueue,
  KvQueueDelivery,
} from "../../model/types.ts";
import { DEFAULT_BACKOFF_SCHEDULE_MS } from "./queue.ts";
import { makeVersionstamp } from "../../model/versionstamp.ts";

const k = (...parts: string[]) => encodeKey(parts);
const payload = (byte: number) => new Uint8Array([0xff, 0x0f, 0x49, byte]);

class Harness {
  readonly machine: KvStateMachine;
  index = 0;
  constructor(store: StateStore = new MemoryStateStore()) {
    this.machine = new KvStateMachine(store);
  }
  apply(command: KvCommand): KvApplyResult {
    return this.machine.apply(logIndex(++this.index), encodeCommand(command));
  }
  enqueue(...enqueues: Partial<KvEnqueue>[]): KvApplyResult {
    return this.apply({
      type: "atomic",
      operation: {
        checks: [],
        mutations: [],
        enqueues: enqueues.map((e) => ({
          payload: payload(2),
          deadlineMs: 1000,
          keysIfUndelivered: [],
          backoffSchedule: [10, 20],
          ...e,
        })),
      },
    });
  }
  lease(timestampMs: number, countMax = 10, queue = ""): KvQueueDelivery[] {
    const result = this.apply({
      type: "queueLease",
      queue,
      timestampMs,
      leaseDeadlineMs: timestampMs + 500,
      countMax,
    });
    assert.ok(result.ok);
    return [...(result.queueDeliveries ?? [])];
  }
  count(command: KvCommand): number {
    const result = this.apply(command);
    assert.ok(result.ok);
    return result.queueMessageCount ?? -1;
  }
}

Deno.test("KvStateMachine.apply() stores enqueues where Deno KV reads cannot see them", () => {
  const h = new Harness();
  const result = h.enqueue({ payload: payload(7) }, { queue: "mail" });
  assert.ok(result.ok);
  assert.deepEqual(h.machine.queueInfo(""), {
    queue: "",
    length: 1,
    leasedCount: 0,
    concurrencyMax: null,
  });
  assert.equal(h.machine.queueInfo("mail").length, 1);
  const [peeked] = h.machine.peekQueue("", 10);
  assert.deepEqual(peeked, {
    id: makeVersionstamp(logIndex(1), 0),
    queue: "",
    payload: payload(7),
    readyAtMs: 1000,
    delivery: 0,
  });
  assert.deepEqual(
    h.machine.peekQueue("mail", 10).map((m) => m.id),
    [makeVersionstamp(logIndex(1), 1)],
  );
  // Rows exist, but no read reaches them.
  assert.ok(
    h.machine.store.scan({
      start: new Uint8Array([0xff]),
      end: new Uint8Array([0xff, 0xff]),
      limit: 100,
    }).length > 0,
  );
  assert.deepEqual(
    h.machine.readRange(new Uint8Array(0), new Uint8Array([0xff, 0xff]), 100),
    [],
  );
  assert.deepEqual(
    h.machine.readRange(new Uint8Array([0xff]), new Uint8Array([0xff, 1]), 1),
    [],
  );
  assert.equal(h.machine.get(new Uint8Array([0xff, 0x71, 0x73])), null);
  assert.deepEqual(
    h.machine.list({ prefix: new Uint8Array(0) }, { limit: 10 }),
    {
      entries: [],
      cursor: null,
    },
  );
});

Deno.test("KvStateMachine.apply() leases messages once they are ready, oldest ready first", () => {
  const h = new Harness();
  h.enqueue({ deadlineMs: 2000, payload: payload(2) }, {
    deadlineMs: 1000,
    payload: payload(1),
  });
  assert.deepEqual(h.lease(999), [], "nothing is ready before its deadline");
  const first = h.lease(1500);
  assert.deepEqual(first.map((d) => [d.payload, d.delivery]), [[
    payload(1),
    1,
  ]]);
  assert.equal(first[0]!.leaseDeadlineMs, 2000);
  assert.deepEqual(h.lease(1500), [], "a leased message is not leased again");
  const second = h.lease(5000);
  assert.deepEqual(second.map((d) => d.payload), [payload(2)]);
  assert.deepEqual(h.machine.queueInfo("").leasedCount, 2);
  assert.deepEqual(
    h.machine.peekQueue("", 10),
    [],
    "peek shows waiting messages only",
  );
  assert.deepEqual(h.lease(5000, 10, "other"), [], "queues are separate");
});

Deno.test("KvStateMachine.apply() acks delete a message and its counters", () => {
  const h = new Harness();
  h.enqueue({}, {});
  const [a, b] = h.lease(1000);
  assert.equal(h.count({ type: "queueAck", ids: [a!.id] }), 1);
  assert.equal(
    h.count({ type: "queueAck", ids: [a!.id] }),
    0,
    "acks are idempotent",
  );
  assert.deepEqual(h.machine.queueInfo(""), {
    queue: "",
    length: 1,
    leasedCount: 1,
    concurrencyMax: null,
  });
  assert.equal(h.count({ type: "queueAck", ids: [b!.id] }), 1);
  assert.equal(h.machine.queueInfo("").length, 0);
  // Nothing of the queue is left: the state equals a store that never had it.
  const clean = new Harness();
  for (let i = 0; i < h.index; i++) {
    clean.apply({ type: "expire", timestampMs: 0, keyCountMax: 1 });
  }
  assert.equal(stateHash(h.machine.store), stateHash(clean.machine.store));
});

Deno.test("KvStateMachine.apply() retries a failed delivery after each backoff step, then dead-letters", () => {
  const h = new Harness();
  h.enqueue({
    payload: payload(9),
    backoffSchedule: [10, 20],
    keysIfUndelivered: [k("dead", "a"), k("dead", "b")],
  });
  const [first] = h.lease(1000);
  assert.equal(first!.delivery, 1);
  assert.equal(
    h.count({
      type: "queueNack",
      timestampMs: 1100,
      messages: [{ id: first!.id, delivery: 2 }],
    }),
    0,
    "a nack quoting another delivery is ignored",
  );
  assert.equal(
    h.count({
      type: "queueNack",
      timestampMs: 1100,
      messages: [{ id: first!.id, delivery: 1 }],
    }),
    1,
  );
  assert.deepEqual(h.machine.peekQueue("", 1)[0]!.readyAtMs, 1110);
  assert.deepEqual(h.lease(1109), [], "not before the first backoff step");
  const [second] = h.lease(1110);
  assert.equal(second!.delivery, 2);
  // The lease ends unacknowledged (a crashed consumer): the second step applies.
  assert.equal(
    h.count({ type: "queueExpireLeases", timestampMs: 1609, countMax: 10 }),
    0,
  );
  assert.equal(
    h.count({ type: "queueExpireLeases", timestampMs: 1610, countMax: 10 }),
    1,
  );
  assert.equal(h.machine.peekQueue("", 1)[0]!.readyAtMs, 1630);
  const [third] = h.lease(1630);
  assert.equal(third!.delivery, 3);
  const nack = h.apply({
    type: "queueNack",
    timestampMs: 1700,
    messages: [{ id: third!.id, delivery: 3 }],
  });
  assert.ok(nack.ok);
  for (const key of [k("dead", "a"), k("dead", "b")]) {
    const entry = h.machine.get(key);
    assert.deepEqual(entry?.value, { encoding: "v8", data: payload(9) });
    assert.deepEqual(entry?.versionstamp, nack.versionstamp);
  }
  assert.equal(h.machine.queueInfo("").length, 0);
  assert.deepEqual(h.machine.peekQueue("", 10), []);
});

Deno.test("KvStateMachine.apply() uses Deno's default backoff schedule when none is given", () => {
  const h = new Harness();
  h.enqueue({ backoffSchedule: null, deadlineMs: 0 });
  let now = 0;
  for (const delayMs of DEFAULT_BACKOFF_SCHEDULE_MS) {
    const [delivery] = h.lease(now);
    assert.ok(delivery !== undefined);
    h.count({ type: "queueNack", timestampMs: now, messages: [delivery] });
    assert.equal(h.machine.peekQueue("", 1)[0]!.readyAtMs, now + delayMs);
    now += delayMs;
  }
  const [last] = h.lease(now);
  assert.equal(last!.delivery, 6);
  h.count({ type: "queueNack", timestampMs: now, messages: [last!] });
  assert.equal(
    h.machine.queueInfo("").length,
    0,
    "dropped after 1 + 5 deliveries",
  );
});

Deno.test("KvStateMachine.apply() leases within a queue's concurrency limit", () => {
  const h = new Harness();
  assert.ok(
    h.apply({ type: "queueConfigure", queue: "q", concurrencyMax: 2 }).ok,
  );
  h.enqueue({ queue: "q" }, { queue: "q" }, { queue: "q" });
  assert.equal(h.lease(1000, 10, "q").length, 2);
  assert.equal(h.lease(1000, 10, "q").length, 0);
  const info = h.machine.queueInfo("q");
  assert.deepEqual(info, {
    queue: "q",
    length: 3,
    leasedCount: 2,
    concurrencyMax: 2,
  });
  h.count({ type: "queueExpireLeases", timestampMs: 1500, countMax: 1 });
  assert.equal(h.lease(1500, 10, "q").length, 1);
  h.apply({ type: "queueConfigure", queue: "q", concurrencyMax: null });
  assert.equal(h.machine.queueInfo("q").concurrencyMax, null);
});

Deno.test("KvStateMachine.apply() refuses bad queue commands identically on every replica", async (t) => {
  const cases: [string, KvCommand, RegExp][] = [
    ["bad queue name", {
      type: "queueLease",
      queue: "a b",
      timestampMs: 0,
      leaseDeadlineMs: 1,
      countMax: 1,
    }, /Invalid queue name/],
    ["lease count 0", {
      type: "queueLease",
      queue: "",
      timestampMs: 0,
      leaseDeadlineMs: 1,
      countMax: 0,
    }, /countMax/],
    [
      "short id",
      { type: "queueAck", ids: [new Uint8Array(3)] },
      /Invalid message id/,
    ],
    [
      "concurrency 0",
      { type: "queueConfigure", queue: "", concurrencyMax: 0 },
      /concurrencyMax/,
    ],
  ];
  for (const [name, command, message] of cases) {
    await t.step(name, () => {
      const h = new Harness();
      const result = h.apply(command);
      assert.ok(!result.ok);
      assert.equal(result.reason, "invalidCommand");
      assert.match(result.message, message);
      assert.equal(h.machine.appliedIndex(), 1);
    });
  }
});

Deno.test("encodeCommand() round-trips every queue command", () => {
  const commands: KvCommand[] = [
    {
      type: "queueLease",
      queue: "q",
      timestampMs: 5,
      leaseDeadlineMs: 9,
      countMax: 3,
    },
    { type: "queueAck", ids: [makeVersionstamp(logIndex(4), 1)] },
    {
      type: "queueNack",
      timestampMs: 7,
      messages: [{ id: makeVersionstamp(logIndex(4)), delivery: 2 }],
    },
    { type: "queueExpireLeases", timestampMs: 8, countMax: 100 },
    { type: "queueConfigure", queue: "", concurrencyMax: null },
    { type: "queueConfigure", queue: "x", concurrencyMax: 4 },
    {
      type: "atomic",
      operation: {
        checks: [],
        mutations: [],
        enqueues: [{
          payload: payload(1),
          deadlineMs: 3,
          keysIfUndelivered: [],
          backoffSchedule: null,
          queue: "named",
        }],
      },
    },
  ];
  for (const command of commands) {
    assert.deepEqual(decodeCommand(encodeCommand(command)), command);
  }
});

/** A random run of queue traffic, as the leader and consumers would propose it. */
const queueCommands = fc.array(
  fc.oneof(
    fc.record({
      kind: fc.constant("enqueue" as const),
      queue: fc.constantFrom("", "a"),
      delayMs: fc.integer({ min: 0, max: 50 }),
      schedule: fc.option(
        fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 3 }),
      ),
      dead: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant("lease" as const),
      queue: fc.constantFrom("", "a"),
      countMax: fc.integer({ min: 1, max: 3 }),
    }),
    fc.record({ kind: fc.constant("ack" as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant("nack" as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant("expire" as const) }),
    fc.record({
      kind: fc.constant("configure" as const),
      limit: fc.option(fc.integer({ min: 1, max: 3 })),
    }),
  ),
  { maxLength: 60 },
);

Deno.test("KvStateMachine queue commands reach the same state hash on memory and SQLite stores, and through a snapshot", () => {
  const directory = Deno.makeTempDirSync({ prefix: "aspen_queue_" });
  let run = 0;
  try {
    fc.assert(
      fc.property(queueCommands, (steps) => {
        const memory = new Harness();
        const sqlite = new Harness(
          new SqliteStateStore({ path: `${directory}/state_${run++}.sqlite` }),
        );
        try {
          let now = 1000;
          const leased: KvQueueDelivery[] = [];
          for (const step of steps) {
            now += 7;
            let command: KvCommand;
            switch (step.kind) {
              case "enqueue":
                command = {
                  type: "atomic",
                  operation: {
                    checks: [],
                    mutations: [],
                    enqueues: [{
                      payload: payload(now % 100),
                      deadlineMs: now + step.delayMs,
                      keysIfUndelivered: step.dead
                        ? [k("dead", String(now))]
                        : [],
                      backoffSchedule: step.schedule,
                      queue: step.queue,
                    }],
                  },
                };
                break;
              case "lease":
                command = {
                  type: "queueLease",
                  queue: step.queue,
                  timestampMs: now,
                  leaseDeadlineMs: now + 20,
                  countMax: step.countMax,
                };
                break;
              case "ack":
                command = {
                  type: "queueAck",
                  ids: leased.length === 0
                    ? []
                    : [leased[step.pick % leased.length]!.id],
                };
                break;
              case "nack": {
                const picked = leased[step.pick % Math.max(1, leased.length)];
                command = {
                  type: "queueNack",
                  timestampMs: now,
                  messages: picked === undefined ? [] : [picked],
                };
                break;
              }
              case "expire":
                command = {
                  type: "queueExpireLeases",
                  timestampMs: now,
                  countMax: 5,
                };
                break;
              case "configure":
                command = {
                  type: "queueConfigure",
                  queue: "a",
                  concurrencyMax: step.limit,
                };
                break;
            }
            const a = memory.apply(command);
            const b = sqlite.apply(command);
            assert.deepEqual(b, a);
            if (a.ok) leased.push(...(a.queueDeliveries ?? []));
          }
          assert.equal(
            stateHash(sqlite.machine.store),
            stateHash(memory.machine.store),
          );
          for (const queue of ["", "a"]) {
            const info = memory.machine.queueInfo(queue);
            assert.ok(info.leasedCount <= info.length);
            assert.deepEqual(sqlite.machine.queueInfo(queue), info);
          }
          // A snapshot carries the queue: installed elsewhere, the hash is the same.
          const copy = new MemoryStateStore();
          const installer = copy.beginInstall();
          const chunks = memory.machine.store.exportSnapshot(256);
          for (let next = chunks.next(); !next.done; next = chunks.next()) {
            installer.write(next.value);
          }
          installer.commit();
          assert.equal(stateHash(copy), stateHash(memory.machine.store));
          assert.deepEqual(
            new KvStateMachine(copy).peekQueue("", 1000),
            memory.machine.peekQueue("", 1000),
          );
        } finally {
          sqlite.machine.store.close();
        }
      }),
      { numRuns: 40 },
    );
  } finally {
    Deno.removeSync(directory, { recursive: true });
  }
});
