/**
 * Child script of `tests/kv_connect_stock_test.ts`: drives stock
 * `Deno.openKv(url)` (KV Connect over h2c) against an Aspen server and
 * prints one JSON object of observations on stdout. Imports nothing, so it
 * runs with only `--unstable-kv --allow-net=127.0.0.1
 * --allow-env=DENO_KV_ACCESS_TOKEN`.
 *
 * Usage: deno run … kv_connect_stock_client.ts <metadata url>
 *
 * @module
 */

const url = Deno.args[0];
if (url === undefined) {
  throw new TypeError("Usage: kv_connect_stock_client.ts <url>");
}

const results: Record<string, unknown> = {};

async function step(name: string, run: () => Promise<unknown>): Promise<void> {
  try {
    results[name] = await run();
  } catch (error) {
    results[name] = { error: String((error as Error)?.message ?? error) };
  }
}

function errorOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => "no error",
    (error) => `${(error as Error).name}: ${(error as Error).message}`,
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const kv = await Deno.openKv(url);

await step("setGetDelete", async () => {
  const set = await kv.set(["a"], "hello");
  const got = await kv.get<string>(["a"]);
  await kv.delete(["a"]);
  const gone = await kv.get(["a"]);
  return {
    setOk: set.ok,
    setVersionstamp: set.versionstamp,
    value: got.value,
    versionstamp: got.versionstamp,
    goneValue: gone.value,
    goneVersionstamp: gone.versionstamp,
  };
});

await step("valueTypes", async () => {
  const value = {
    text: "héllo €",
    number: 1.5,
    integer: -7,
    big: 12345678901234567890n,
    date: new Date(1_700_000_000_000),
    bytes: new Uint8Array([1, 2, 3]),
    map: new Map<string, number>([["x", 1]]),
    set: new Set(["y"]),
    list: [1, "two", null, true],
    nested: { deep: [undefined] },
  };
  await kv.set(["types"], value);
  await kv.set(["u64"], new Deno.KvU64(42n));
  await kv.set(["raw"], new Uint8Array([9, 8, 7]));
  const got = (await kv.get<typeof value>(["types"])).value!;
  const u64 = (await kv.get<Deno.KvU64>(["u64"])).value!;
  const raw = (await kv.get<Uint8Array>(["raw"])).value!;
  return {
    text: got.text,
    number: got.number,
    integer: got.integer,
    big: String(got.big),
    date: got.date.toISOString(),
    bytes: [...got.bytes],
    map: [...got.map],
    set: [...got.set],
    list: got.list,
    nestedLength: got.nested.deep.length,
    u64IsKvU64: u64 instanceof Deno.KvU64,
    u64: String(u64.value),
    raw: raw instanceof Uint8Array ? [...raw] : "not bytes",
  };
});

await step("getMany", async () => {
  await kv.set(["m", 1], "one");
  await kv.set(["m", 2], "two");
  const entries = await kv.getMany<string[]>([["m", 1], ["m", 3], ["m", 2]]);
  return entries.map((entry) => entry.value);
});

await step("list", async () => {
  for (let i = 0; i < 10; i++) await kv.set(["l", i], i * 10);
  const keysOf = async (iterator: Deno.KvListIterator<number>) => {
    const keys: unknown[] = [];
    for await (const entry of iterator) keys.push(entry.key[1]);
    return keys;
  };
  const prefix = await keysOf(kv.list({ prefix: ["l"] }));
  const startEnd = await keysOf(kv.list({ start: ["l", 3], end: ["l", 6] }));
  const prefixStart = await keysOf(kv.list({ prefix: ["l"], start: ["l", 7] }));
  const limited = await keysOf(kv.list({ prefix: ["l"] }, { limit: 3 }));
  const reversed = await keysOf(
    kv.list({ prefix: ["l"] }, { reverse: true, limit: 4 }),
  );
  const batched = await keysOf(kv.list({ prefix: ["l"] }, { batchSize: 2 }));
  const first = kv.list<number>({ prefix: ["l"] }, { limit: 4 });
  const firstKeys = await keysOf(first);
  const rest = await keysOf(
    kv.list({ prefix: ["l"] }, { cursor: first.cursor, limit: 3 }),
  );
  const reverseCursorFirst = kv.list<number>({ prefix: ["l"] }, {
    limit: 2,
    reverse: true,
  });
  await keysOf(reverseCursorFirst);
  const reverseRest = await keysOf(
    kv.list({ prefix: ["l"] }, {
      cursor: reverseCursorFirst.cursor,
      reverse: true,
      limit: 2,
    }),
  );
  const eventual = await keysOf(
    kv.list({ prefix: ["l"] }, { consistency: "eventual", limit: 2 }),
  );
  return {
    prefix,
    startEnd,
    prefixStart,
    limited,
    reversed,
    batched,
    firstKeys,
    rest,
    reverseRest,
    eventual,
  };
});

await step("atomicChecks", async () => {
  const set = await kv.set(["c"], 1);
  const ok = await kv.atomic()
    .check({ key: ["c"], versionstamp: set.versionstamp })
    .set(["c"], 2)
    .commit();
  const stale = await kv.atomic()
    .check({ key: ["c"], versionstamp: set.versionstamp })
    .set(["c"], 3)
    .commit();
  const absentOk = await kv.atomic()
    .check({ key: ["c-new"], versionstamp: null })
    .set(["c-new"], 1)
    .commit();
  const absentFails = await kv.atomic()
    .check({ key: ["c-new"], versionstamp: null })
    .set(["c-new"], 2)
    .commit();
  const several = await kv.atomic()
    .set(["s1"], "a").set(["s2"], "b").delete(["s1"])
    .commit();
  const value = (await kv.get(["c"])).value;
  const s1 = (await kv.get(["s1"])).value;
  const s2 = (await kv.get(["s2"])).value;
  return {
    ok: ok.ok,
    stale: stale.ok,
    absentOk: absentOk.ok,
    absentFails: absentFails.ok,
    several: several.ok,
    value,
    s1,
    s2,
  };
});

await step("arithmetic", async () => {
  await kv.atomic().sum(["n"], 5n).commit();
  await kv.atomic().sum(["n"], 7n).commit();
  await kv.atomic().sum(["wrap"], 0xffffffffffffffffn).sum(["wrap"], 2n)
    .commit();
  await kv.atomic().min(["lo"], 10n).commit();
  await kv.atomic().min(["lo"], 3n).min(["lo"], 8n).commit();
  await kv.atomic().max(["hi"], 3n).commit();
  await kv.atomic().max(["hi"], 9n).max(["hi"], 4n).commit();
  await kv.set(["str"], "not a number");
  const mismatch = await errorOf(kv.atomic().sum(["str"], 1n).commit());
  const minMismatch = await errorOf(kv.atomic().min(["str"], 1n).commit());
  const read = async (key: string) =>
    String((await kv.get<Deno.KvU64>([key])).value?.value);
  return {
    sum: await read("n"),
    wrap: await read("wrap"),
    min: await read("lo"),
    max: await read("hi"),
    mismatch,
    minMismatch,
    strAfter: (await kv.get(["str"])).value,
  };
});

await step("versionstamps", async () => {
  const a = await kv.set(["v"], 1);
  const b = await kv.set(["v"], 1);
  const c = await kv.atomic().commit() as Deno.KvCommitResult;
  const d = await kv.atomic().commit() as Deno.KvCommitResult;
  const read = await kv.get(["v"]);
  return {
    increasing: a.versionstamp < b.versionstamp &&
      b.versionstamp < c.versionstamp && c.versionstamp < d.versionstamp,
    readMatches: read.versionstamp === b.versionstamp,
    length: a.versionstamp.length,
  };
});

await step("expireIn", async () => {
  await kv.set(["e"], "soon", { expireIn: 150 });
  await kv.set(["keep"], "stay", { expireIn: 3_600_000 });
  const before = (await kv.get(["e"])).value;
  let after: unknown = "still there";
  for (let i = 0; i < 40; i++) {
    await sleep(100);
    const entry = await kv.get(["e"]);
    if (entry.value === null) {
      after = null;
      break;
    }
  }
  return { before, after, keep: (await kv.get(["keep"])).value };
});

await step("watch", async () => {
  const stream = kv.watch([["w"], ["w2"]]);
  const reader = stream.getReader();
  const seen: unknown[] = [];
  const next = async () => {
    const timeout = sleep(5000).then(() => ({ timeout: true }));
    const result = await Promise.race([reader.read(), timeout]);
    if ("timeout" in result) throw new Error("watch timed out");
    return result.value!.map((entry) => entry.value);
  };
  seen.push(await next());
  await kv.set(["w"], "first");
  seen.push(await next());
  await kv.set(["w2"], "second");
  seen.push(await next());
  await kv.delete(["w"]);
  seen.push(await next());
  await reader.cancel();
  return seen;
});

await step("limits", async () => {
  const big = await errorOf(kv.set(["big"], new Uint8Array(70_000)));
  return { big };
});

kv.close();
console.log(JSON.stringify(results));
