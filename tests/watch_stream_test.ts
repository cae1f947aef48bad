/**
 * The one watch stream loop of the front ends (`frontends/common/watch_stream.ts`):
 * frames each yield, sends keep-alives while nothing changes, skips yields
 * the front end does not frame, releases its slot once however it ends
 * (also when the backend refuses the watch at once), and stops the
 * backend's watch when the reader cancels.
 */
import assert from "node:assert/strict";
import { watchStream } from "../src/frontends/common/watch_stream.ts";
import { type KvBackend, KvUnavailableError } from "../src/services/kv/api.ts";
import { LocalKvBackend } from "../src/server/local_backend.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { setOperation } from "./helpers/node_kv.ts";

const KEY = encodeKey(["s"]);
const PING = new Uint8Array([0]);

Deno.test("watchStream frames changes, pings while idle, and frees the watch on cancel", async () => {
  using backend = new LocalKvBackend({ expirySweepIntervalMs: 0 });
  let ends = 0;
  const stream = watchStream(backend, [KEY], {
    frame: (entries) =>
      new Uint8Array([1, entries[0] === null ? 0 : entries[0]!.value.data[0]!]),
    keepAlive: PING,
    keepAliveMs: 20,
    onEnd: () => ends++,
  });
  const reader = stream.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([1, 0]));
  assert.deepEqual((await reader.read()).value, PING);
  await backend.commit({
    ...setOperation("s", ""),
    mutations: [{
      type: "set",
      key: KEY,
      value: { encoding: "bytes", data: new Uint8Array([9]) },
    }],
  });
  let chunk = (await reader.read()).value!;
  while (chunk.length === 1) chunk = (await reader.read()).value!;
  assert.deepEqual(chunk, new Uint8Array([1, 9]));
  assert.equal(backend.watchesOpen, 1);
  await reader.cancel();
  assert.equal(ends, 1);
  assert.equal(backend.watchesOpen, 0);
});

Deno.test("watchStream releases its slot once and rethrows when the backend refuses the watch", () => {
  let ends = 0;
  const refusing = {
    watch: () => {
      throw new KvUnavailableError("Cannot watch: 1 watches are open already");
    },
  } as unknown as KvBackend;
  assert.throws(
    () =>
      watchStream(refusing, [KEY], {
        frame: () => null,
        keepAlive: null,
        keepAliveMs: 0,
        onEnd: () => ends++,
      }),
    KvUnavailableError,
  );
  assert.equal(ends, 1);
});

Deno.test("watchStream skips yields the front end does not frame, and errors when the watch fails", async () => {
  let ends = 0;
  const failing = {
    watch: async function* () {
      yield [null];
      yield [null];
      throw new KvUnavailableError("Cannot serve a strong read: no leader");
    },
  } as unknown as KvBackend;
  let framed = 0;
  const stream = watchStream(failing, [KEY], {
    frame: () => framed++ === 0 ? new Uint8Array([7]) : null,
    keepAlive: null,
    keepAliveMs: 0,
    onEnd: () => ends++,
  });
  const reader = stream.getReader();
  assert.deepEqual((await reader.read()).value, new Uint8Array([7]));
  await assert.rejects(reader.read(), KvUnavailableError);
  assert.equal(framed, 2);
  assert.equal(ends, 1);
});
