import assert from "node:assert/strict";
import { LocalKvBackend } from "./local_backend.ts";
import { KvUnavailableError } from "../services/kv/api.ts";
import { encodeKey } from "../model/key_codec.ts";
import type { KvAtomicOperation, KvEntry } from "../model/types.ts";

const set = (
  name: string,
  byte: number,
  expireAtMs?: number,
): KvAtomicOperation => ({
  checks: [],
  mutations: [{
    type: "set",
    key: encodeKey([name]),
    value: { encoding: "bytes", data: new Uint8Array([byte]) },
    expireAtMs,
  }],
  enqueues: [],
});

Deno.test("LocalKvBackend.commit() applies in order with increasing versionstamps", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const first = await backend.commit(set("a", 1));
  const second = await backend.commit(set("b", 2));
  assert.ok(first.ok && second.ok);
  assert.ok(first.versionstamp < second.versionstamp);
  const failed = await backend.commit({
    checks: [{ key: encodeKey(["a"]), versionstamp: null }],
    mutations: [],
    enqueues: [],
  });
  assert.deepEqual(failed, {
    ok: false,
    reason: "checkFailed",
    message: "Check failed",
    failedChecks: [0],
  });
  const [range] = await backend.read([{
    start: encodeKey(["a"]),
    end: encodeKey(["c"]),
    limit: 10,
    reverse: true,
  }], "strong");
  assert.deepEqual(range!.map((entry) => entry.value.data[0]), [2, 1]);
});

Deno.test("LocalKvBackend.watch() yields at once, then only when a watched key moves", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  const abort = new AbortController();
  const iterator = backend.watch([encodeKey(["w"])], abort.signal)
    [Symbol.asyncIterator]();
  const next = async () => (await iterator.next()).value as (KvEntry | null)[];
  assert.deepEqual(await next(), [null]);
  await backend.commit(set("other", 1));
  const pending = next();
  await backend.commit(set("w", 5));
  assert.deepEqual((await pending)[0]?.value.data, new Uint8Array([5]));
  abort.abort();
  assert.equal((await iterator.next()).done, true);
});

Deno.test("LocalKvBackend sweeps expired keys and wakes watches; close() ends them", async () => {
  let now = 1_000;
  using backend = new LocalKvBackend({
    expirySweepIntervalMs: 0,
    now: () => now,
  });
  await backend.commit(set("e", 1, 1_500));
  const iterator = backend.watch(
    [encodeKey(["e"])],
    new AbortController().signal,
  )[Symbol.asyncIterator]();
  assert.notEqual(
    ((await iterator.next()).value as (KvEntry | null)[])[0],
    null,
  );
  assert.equal(backend.sweepExpired(), 0);
  now = 2_000;
  assert.equal(backend.sweepExpired(), 1);
  assert.deepEqual((await iterator.next()).value, [null]);
  backend.close();
  assert.equal((await iterator.next()).done, true);
  await assert.rejects(backend.commit(set("x", 1)), KvUnavailableError);
});
