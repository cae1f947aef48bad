/**
 * Stock Deno against Aspen's KV Connect server: a child `deno run
 * --unstable-kv` process opens `Deno.openKv("http://127.0.0.1:PORT/kv")`
 * (h2c) and reports what it observed; the values stored through it are then
 * checked byte for byte against Aspen's V8 codec.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startKvConnectServer } from "./helpers/kv_connect_server.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { deserializeV8, serializeV8 } from "../src/model/v8_codec.ts";

const CHILD_TIMEOUT_MS = 45_000;

async function runStockClient(
  url: string,
  token: string,
): Promise<Record<string, unknown>> {
  const script = new URL(
    "./helpers/kv_connect_stock_client.ts",
    import.meta.url,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--allow-net=127.0.0.1",
      "--allow-env=DENO_KV_ACCESS_TOKEN",
      script.pathname,
      url,
    ],
    env: { DENO_KV_ACCESS_TOKEN: token, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
  try {
    const { code, stdout, stderr } = await child.output();
    const out = new TextDecoder().decode(stdout);
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, `stock client failed (${code}):\n${out}\n${err}`);
    return JSON.parse(out.trim().split("\n").at(-1)!);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("stock Deno.openKv(url) works against kvConnectApp()", async () => {
  await using server = startKvConnectServer({ expirySweepIntervalMs: 50 });
  const results = await runStockClient(server.url, server.token);

  const basic = results.setGetDelete as Record<string, unknown>;
  assert.equal(basic.setOk, true);
  assert.equal(basic.value, "hello");
  assert.equal(basic.versionstamp, basic.setVersionstamp);
  assert.equal(basic.goneValue, null);
  assert.equal(basic.goneVersionstamp, null);

  assert.deepEqual(results.valueTypes, {
    text: "héllo €",
    number: 1.5,
    integer: -7,
    big: "12345678901234567890",
    date: new Date(1_700_000_000_000).toISOString(),
    bytes: [1, 2, 3],
    map: [["x", 1]],
    set: ["y"],
    list: [1, "two", null, true],
    nestedLength: 1,
    u64IsKvU64: true,
    u64: "42",
    raw: [9, 8, 7],
  });
  assert.deepEqual(results.getMany, ["one", null, "two"]);

  assert.deepEqual(results.list, {
    prefix: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    startEnd: [3, 4, 5],
    prefixStart: [7, 8, 9],
    limited: [0, 1, 2],
    reversed: [9, 8, 7, 6],
    batched: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    firstKeys: [0, 1, 2, 3],
    rest: [4, 5, 6],
    reverseRest: [7, 6],
    eventual: [0, 1],
  });

  assert.deepEqual(results.atomicChecks, {
    ok: true,
    stale: false,
    absentOk: true,
    absentFails: false,
    several: true,
    value: 2,
    s1: null,
    s2: "b",
  });

  const arithmetic = results.arithmetic as Record<string, string>;
  assert.equal(arithmetic.sum, "12");
  assert.equal(arithmetic.wrap, "1");
  assert.equal(arithmetic.min, "3");
  assert.equal(arithmetic.max, "9");
  assert.match(arithmetic.mismatch!, /status=400/);
  assert.match(
    arithmetic.mismatch!,
    /Failed to perform 'sum' mutation on a non-U64 value in the database/,
  );
  assert.match(arithmetic.minMismatch!, /'min' mutation on a non-U64 value/);
  assert.equal(arithmetic.strAfter, "not a number");

  assert.deepEqual(results.versionstamps, {
    increasing: true,
    readMatches: true,
    length: 20,
  });
  assert.deepEqual(results.expireIn, {
    before: "soon",
    after: null,
    keep: "stay",
  });
  assert.deepEqual(results.watch, [
    [null, null],
    ["first", null],
    ["first", "second"],
    [null, "second"],
  ]);
  // The stock client refuses an oversize value before sending it.
  assert.match(
    (results.limits as Record<string, string>).big!,
    /Value too large/,
  );

  // What stock Deno stored is V8-serialized exactly as Aspen's codec writes it.
  const stored = server.backend.stateMachine.get(encodeKey(["types"]));
  assert.ok(stored !== null);
  assert.equal(stored.value.encoding, "v8");
  const decoded = deserializeV8(stored.value.data) as Record<string, unknown>;
  assert.equal(decoded.text, "héllo €");
  assert.equal(decoded.big, 12345678901234567890n);
  assert.deepEqual(serializeV8(decoded), stored.value.data);
  const u64 = server.backend.stateMachine.get(encodeKey(["u64"]));
  assert.equal(u64?.value.encoding, "le64");
  const raw = server.backend.stateMachine.get(encodeKey(["raw"]));
  assert.equal(raw?.value.encoding, "bytes");
});

Deno.test("stock Deno reads values Aspen's V8 codec wrote", async () => {
  await using server = startKvConnectServer();
  const value = {
    greeting: "grüße ☃",
    when: new Date(0),
    ids: [1, 2.5, -3],
    tags: new Set(["a"]),
    blob: new Uint16Array([1, 65535]),
  };
  await server.backend.commit({
    checks: [],
    mutations: [{
      type: "set",
      key: encodeKey(["from-aspen"]),
      value: { encoding: "v8", data: serializeV8(value) },
    }],
    enqueues: [],
  });
  const script = `
    const kv = await Deno.openKv(${JSON.stringify(server.url)});
    const { value } = await kv.get(["from-aspen"]);
    kv.close();
    console.log(JSON.stringify({
      greeting: value.greeting,
      when: value.when.toISOString(),
      ids: value.ids,
      tags: [...value.tags],
      blob: value.blob instanceof Uint16Array ? [...value.blob] : "wrong type",
    }));`;
  const path = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(path, script);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-kv",
        "--allow-net=127.0.0.1",
        "--allow-env=DENO_KV_ACCESS_TOKEN",
        path,
      ],
      env: { DENO_KV_ACCESS_TOKEN: server.token, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    const { code, stdout, stderr } = await child.output();
    clearTimeout(timer);
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(stdout)), {
      greeting: "grüße ☃",
      when: new Date(0).toISOString(),
      ids: [1, 2.5, -3],
      tags: ["a"],
      blob: [1, 65535],
    });
  } finally {
    await Deno.remove(path);
  }
});
