/**
 * Child program of `tests/process_stock_resend_test.ts`: one stock
 * `Deno.openKv(url)` client, pinned to one node, doing puts and gets on a
 * few shared register keys and recording a history. A put of `v` on `k` is
 * one atomic operation: `["reg", k] = v`, a sum of 1 on `["count", name]`
 * and `["mark", name, n] = true`, so a write applied twice shows as a count
 * above the number of marks. Puts are plain (no check): exactly the writes
 * the stock client resends without a request id.
 *
 * Prints one JSON line per event: `{"call": id, "op": …, "key": …,
 * "value"?: …, "t": ms}` when an operation starts, `{"ret": id, "ok"?:
 * true, "value"?: …, "t": ms}` when it is answered, `{"unknown": id,
 * "message": …}` when it threw (outcome unknown), and `{"done": n}` at the
 * end; `t` is `performance.timeOrigin + performance.now()`, comparable
 * across processes on one host. Stops when stdin closes. Imports nothing:
 * it runs with only `--unstable-kv --allow-net=127.0.0.1
 * --allow-env=DENO_KV_ACCESS_TOKEN`.
 *
 * Usage: deno run … process_stock_history.ts <kv connect url> <name> <seed> <keys>
 *
 * @module
 */

const [url, name, seedText, keysText] = Deno.args;
const keys = Number(keysText ?? "3");
if (url === undefined || name === undefined) {
  throw new TypeError(
    "Usage: process_stock_history.ts <url> <name> <seed> <keys>",
  );
}

let seed = Number(seedText ?? "1") >>> 0;
function random(): number {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function report(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

let stopping = false;
const stdinClosed = (async () => {
  for await (const _ of Deno.stdin.readable) { /* the parent never writes */ }
  stopping = true;
})();

const kv = await Deno.openKv(url);
let n = 0;
for (; n < 100_000 && !stopping; n++) {
  const key = `r${Math.floor(random() * keys)}`;
  const put = random() < 0.6;
  if (put) {
    const value = `${name}.${n}`;
    report({ call: n, op: "put", key, value, t: now() });
    try {
      const result = await kv.atomic()
        .set(["reg", key], value)
        .sum(["count", name], 1n)
        .set(["mark", name, n], true)
        .commit();
      report({ ret: n, ok: result.ok, t: now() });
    } catch (error) {
      report({ unknown: n, message: String((error as Error)?.message) });
    }
  } else {
    report({ call: n, op: "get", key, t: now() });
    try {
      const entry = await kv.get<string>(["reg", key]);
      report({ ret: n, value: entry.value, t: now() });
    } catch (error) {
      report({ unknown: n, message: String((error as Error)?.message) });
    }
  }
}
report({ done: n });
kv.close();
await stdinClosed;
