/**
 * The conformance suite every {@linkcode KvBackend} must pass (the
 * in-process `LocalKvBackend` is the reference; `RaftKvBackend` on one and
 * on three nodes runs it in `tests/kv_backend_conformance_test.ts`): reads,
 * ranges, atomic commits with checks, `sum`/`min`/`max`, expiry, enqueues
 * (and their delivery where the backend has queues), watches and the watch
 * bounds. Registers one `Deno.test` per implementation, one step per
 * behaviour, on one fixture (each step uses keys of its own).
 *
 * @module
 */
import assert from "node:assert/strict";
import { compareBytes } from "../../base/bytes.ts";
import { encodeKey } from "../../model/key_codec.ts";
import { KvLimitError } from "../../model/errors.ts";
import type {
  KvAtomicOperation,
  KvEntry,
  KvMutation,
  KvQueueDelivery,
  KvValue,
} from "../../model/types.ts";
import type { KvBackend } from "./api.ts";
import { KvUnavailableError } from "./api.ts";

/** A backend under test. */
export interface KvBackendFixture {
  /** The backend, ready to serve (a leader elected, for a cluster). */
  readonly backend: KvBackend;
  /** Another backend of the same database (another node), or the same one. */
  readonly other: KvBackend;
  /** The watch bound the factory was asked for. */
  readonly watchersMax: number;
  /** Runs one expiry sweep now, where the backend does not sweep on its own timer. */
  readonly sweep?: () => void;
  /** Stops everything the fixture started. */
  readonly cleanup: () => Promise<void>;
}

/** Builds a fixture whose backends bound watches at `watchersMax`. */
export type KvBackendFactory = (
  options: { readonly watchersMax: number },
) => Promise<KvBackendFixture>;

/** Watches the suite's fixture allows (small, so the bound is reached quickly). */
const WATCHERS_MAX = 4;
/** Polls wait this long at most (the machine may be loaded). */
const DEADLINE_MS = 20_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function bytes(text: string): KvValue {
  return { encoding: "bytes", data: encoder.encode(text) };
}

function u64(value: bigint): KvValue {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigUint64(0, value, true);
  return { encoding: "le64", data };
}

function u64Of(entry: KvEntry | null | undefined): bigint | null {
  if (entry === null || entry === undefined) return null;
  assert.equal(entry.value.encoding, "le64");
  return new DataView(
    entry.value.data.buffer,
    entry.value.data.byteOffset,
    8,
  ).getBigUint64(0, true);
}

function textOf(entry: KvEntry | null | undefined): string | null {
  return entry === null || entry === undefined
    ? null
    : decoder.decode(entry.value.data);
}

function op(
  mutations: KvMutation[],
  more: Partial<KvAtomicOperation> = {},
): KvAtomicOperation {
  return { checks: [], mutations, enqueues: [], ...more };
}

function set(key: Uint8Array, value: KvValue, expireAtMs?: number): KvMutation {
  return {
    type: "set",
    key,
    value,
    ...(expireAtMs === undefined ? {} : { expireAtMs }),
  };
}

async function get(
  backend: KvBackend,
  key: Uint8Array,
): Promise<KvEntry | null> {
  const [rows] = await backend.read([{
    start: key,
    end: new Uint8Array([...key, 0]),
    limit: 1,
    reverse: false,
  }], "strong");
  return rows?.[0] ?? null;
}

async function commitOk(
  backend: KvBackend,
  operation: KvAtomicOperation,
): Promise<Uint8Array> {
  const result = await backend.commit(operation);
  assert.equal(result.ok, true, result.ok ? "" : result.message);
  return result.ok ? result.versionstamp : new Uint8Array();
}

async function poll(what: string, done: () => Promise<boolean>) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves with the next yield of `iterator`, or rejects after the deadline. */
async function nextOf<T>(iterator: AsyncIterator<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out waiting for ${what}`)),
      DEADLINE_MS,
    );
  });
  try {
    const result = await Promise.race([iterator.next(), deadline]);
    assert.equal(result.done, false, `${what}: the watch ended`);
    return result.value as T;
  } finally {
    clearTimeout(timer);
  }
}

/** Opens a watch and takes its first yield (where a refusal surfaces at the latest). */
async function openWatch(
  backend: KvBackend,
  keys: Uint8Array[],
) {
  const abort = new AbortController();
  try {
    const iterator = backend.watch(keys, abort.signal)[Symbol.asyncIterator]();
    const first = await nextOf(iterator, "the first frame");
    return {
      iterator,
      first,
      close: async () => {
        abort.abort();
        await iterator.return?.();
      },
    };
  } catch (error) {
    abort.abort();
    throw error;
  }
}

/** Registers the suite for one implementation. */
export function runKvBackendConformance(
  name: string,
  factory: KvBackendFactory,
): void {
  Deno.test(`KvBackend conformance: ${name}`, async (t) => {
    const fixture = await factory({ watchersMax: WATCHERS_MAX });
    const { backend, other } = fixture;
    try {
      await t.step(
        "a commit is read back everywhere, with a versionstamp that grows",
        async () => {
          const key = encodeKey(["c", "rw"]);
          const first = await commitOk(backend, op([set(key, bytes("one"))]));
          const second = await commitOk(backend, op([set(key, bytes("two"))]));
          assert.equal(first.byteLength, 10);
          assert.ok(compareBytes(first, second) < 0, "versionstamps must grow");
          const entry = await get(other, key);
          assert.equal(textOf(entry), "two");
          assert.deepEqual(entry!.versionstamp, second);
          assert.equal(await get(backend, encodeKey(["c", "absent"])), null);
        },
      );

      await t.step(
        "getMany and list read ranges in order, forward and reverse, with limits",
        async () => {
          const keys = [1, 2, 3, 4].map((i) => encodeKey(["c", "list", i]));
          await commitOk(
            backend,
            op(keys.map((key, i) => set(key, bytes(`v${i + 1}`)))),
          );
          const prefix = encodeKey(["c", "list"]);
          const start = new Uint8Array([...prefix, 0x00]);
          const end = new Uint8Array([...prefix, 0xff]);
          const [forward, reverse, point] = await backend.read([
            { start, end, limit: 3, reverse: false },
            { start, end, limit: 2, reverse: true },
            {
              start: keys[1]!,
              end: new Uint8Array([...keys[1]!, 0]),
              limit: 1,
              reverse: false,
            },
          ], "strong");
          assert.deepEqual(forward!.map(textOf), ["v1", "v2", "v3"]);
          assert.deepEqual(reverse!.map(textOf), ["v4", "v3"]);
          assert.deepEqual(point!.map(textOf), ["v2"]);
          await assert.rejects(
            backend.read(
              [{ start, end, limit: 1001, reverse: false }],
              "strong",
            ),
            KvLimitError,
          );
        },
      );

      await t.step("checks decide the whole operation", async () => {
        const key = encodeKey(["c", "check"]);
        const absent = op([set(key, bytes("first"))], {
          checks: [{ key, versionstamp: null }],
        });
        const stamp = await commitOk(backend, absent);
        const again = await backend.commit(absent);
        assert.equal(again.ok, false);
        if (!again.ok) {
          assert.equal(again.reason, "checkFailed");
          assert.deepEqual([...again.failedChecks], [0]);
        }
        const other2 = encodeKey(["c", "check", "side"]);
        const stale = await backend.commit(
          op([set(key, bytes("lost")), set(other2, bytes("lost"))], {
            checks: [{ key: other2, versionstamp: null }, {
              key,
              versionstamp: new Uint8Array(10).fill(1),
            }],
          }),
        );
        assert.equal(stale.ok, false);
        if (!stale.ok) assert.deepEqual([...stale.failedChecks], [1]);
        assert.equal(await get(backend, other2), null);
        await commitOk(
          backend,
          op([set(key, bytes("second"))], {
            checks: [{ key, versionstamp: stamp }],
          }),
        );
        assert.equal(textOf(await get(other, key)), "second");
      });

      await t.step(
        "sum, min and max on u64 values, and a type mismatch fails",
        async () => {
          const key = encodeKey(["c", "u64"]);
          await commitOk(backend, op([set(key, u64(5n))]));
          await commitOk(backend, op([{ type: "sum", key, value: u64(3n) }]));
          assert.equal(u64Of(await get(backend, key)), 8n);
          await commitOk(backend, op([{ type: "min", key, value: u64(2n) }]));
          assert.equal(u64Of(await get(backend, key)), 2n);
          await commitOk(backend, op([{ type: "max", key, value: u64(10n) }]));
          assert.equal(u64Of(await get(backend, key)), 10n);
          const fresh = encodeKey(["c", "u64", "fresh"]);
          await commitOk(
            backend,
            op([{ type: "sum", key: fresh, value: u64(7n) }]),
          );
          assert.equal(u64Of(await get(backend, fresh)), 7n);
          await commitOk(
            backend,
            op([{ type: "sum", key, value: u64(0xffff_ffff_ffff_fffen) }]),
          );
          assert.equal(u64Of(await get(backend, key)), 8n, "sum wraps");
          const text = encodeKey(["c", "u64", "text"]);
          await commitOk(backend, op([set(text, bytes("x"))]));
          const mismatch = await backend.commit(
            op([{ type: "sum", key: text, value: u64(1n) }]),
          );
          assert.equal(mismatch.ok, false);
          if (!mismatch.ok) assert.equal(mismatch.reason, "typeMismatch");
          assert.equal(textOf(await get(backend, text)), "x");
        },
      );

      await t.step(
        "an oversized value is refused as a limit, before anything applies",
        async () => {
          const key = encodeKey(["c", "big"]);
          await assert.rejects(
            backend.commit(op([set(key, {
              encoding: "bytes",
              data: new Uint8Array(65 * 1024),
            })])),
            KvLimitError,
          );
          assert.equal(await get(backend, key), null);
        },
      );

      await t.step("an expired key is deleted by the sweep", async () => {
        const key = encodeKey(["c", "expiring"]);
        const keep = encodeKey(["c", "kept"]);
        await commitOk(
          backend,
          op([
            set(key, bytes("soon"), Date.now() + 300),
            set(keep, bytes("kept"), Date.now() + 3_600_000),
          ]),
        );
        await poll("the expired key's deletion", async () => {
          fixture.sweep?.();
          return (await get(other, key)) === null;
        });
        assert.equal(textOf(await get(other, keep)), "kept");
      });

      await t.step(
        "an enqueue commits, and is delivered where the backend has queues",
        async () => {
          const payload = new Uint8Array([0xff, 0x0f, 0x22, 0x02, 0x68, 0x69]);
          await commitOk(
            backend,
            op([], {
              enqueues: [{
                payload,
                deadlineMs: Date.now(),
                keysIfUndelivered: [],
                backoffSchedule: null,
                queue: "conformance",
              }],
            }),
          );
          const queues = backend.queues;
          if (queues === undefined) return;
          const deadline = Date.now() + DEADLINE_MS;
          let delivered = false;
          while (!delivered && Date.now() < deadline) {
            try {
              const got: KvQueueDelivery[] = await queues.listen({
                queue: "conformance",
                countMax: 1,
                leaseMs: 30_000,
                waitMs: 500,
              });
              if (got.length > 0) {
                assert.deepEqual(got[0]!.payload, payload);
                assert.equal(await queues.ack([got[0]!.id]), 1);
                delivered = true;
              }
            } catch {
              // Not the leader (a leader change): try again.
              await new Promise((resolve) => setTimeout(resolve, 50));
            }
          }
          assert.ok(delivered, "the message was delivered");
        },
      );

      await t.step(
        "a watch yields the current values, then each change of a watched key only",
        async () => {
          const watched = encodeKey(["c", "watch", "a"]);
          const absent = encodeKey(["c", "watch", "absent"]);
          const unrelated = encodeKey(["c", "watch", "other"]);
          await commitOk(backend, op([set(watched, bytes("w1"))]));
          const watch = await openWatch(other, [watched, absent]);
          try {
            assert.deepEqual(watch.first.map(textOf), ["w1", null]);
            for (let i = 0; i < 5; i++) {
              await commitOk(backend, op([set(unrelated, bytes(`u${i}`))]));
            }
            const stamp = await commitOk(
              backend,
              op([set(watched, bytes("w2"))]),
            );
            // Unrelated writes yield nothing: the next yield is the change.
            const second = await nextOf(watch.iterator, "the change");
            assert.deepEqual(second.map(textOf), ["w2", null]);
            assert.deepEqual(second[0]!.versionstamp, stamp);
            await commitOk(backend, op([{ type: "delete", key: watched }]));
            const third = await nextOf(watch.iterator, "the delete");
            assert.deepEqual(third.map(textOf), [null, null]);
          } finally {
            await watch.close();
          }
        },
      );

      await t.step(
        "a watch of a slow consumer coalesces to the latest value",
        async () => {
          const key = encodeKey(["c", "watch", "slow"]);
          await commitOk(backend, op([set(key, u64(0n))]));
          const watch = await openWatch(backend, [key]);
          try {
            for (let i = 1n; i <= 20n; i++) {
              await commitOk(backend, op([set(key, u64(i))]));
            }
            let latest = u64Of(watch.first[0]);
            while (latest !== 20n) {
              const next = await nextOf(watch.iterator, "the latest value");
              const value = u64Of(next[0])!;
              assert.ok(value > latest!, "values never go back");
              latest = value;
            }
          } finally {
            await watch.close();
          }
        },
      );

      await t.step(
        "watches are bounded: keys per watch and watches at once",
        async () => {
          const keys = Array.from(
            { length: 11 },
            (_, i) => encodeKey(["k", i]),
          );
          await assert.rejects(openWatch(backend, keys), KvLimitError);
          const open = [];
          try {
            for (let i = 0; i < fixture.watchersMax; i++) {
              open.push(await openWatch(backend, [encodeKey(["c", "b", i])]));
            }
            await assert.rejects(
              openWatch(backend, [encodeKey(["c", "b", "over"])]),
              KvUnavailableError,
            );
            await open.pop()!.close();
            // A closed watch frees its slot.
            open.push(
              await openWatch(backend, [encodeKey(["c", "b", "again"])]),
            );
          } finally {
            for (const watch of open) {
              await watch.close();
            }
          }
        },
      );
    } finally {
      await fixture.cleanup();
    }
  });
}
