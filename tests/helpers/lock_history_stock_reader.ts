/**
 * Child program of `tests/process_lease_expiry_test.ts`: stock
 * `Deno.openKv(url)` reads `[prefix, 0]` … `[prefix, count - 1]` with
 * eventual consistency (so the node answers from its own replica) until
 * every key reads absent or `timeoutMs` passes, then prints one JSON line:
 * `{"absent": true, "polls": n, "afterMs": ms}` or `{"absent": false,
 * "present": [n, …]}`. Imports nothing: it runs with only `--unstable-kv
 * --allow-net=127.0.0.1 --allow-env=DENO_KV_ACCESS_TOKEN`.
 *
 * Usage: deno run … lock_history_stock_reader.ts <kv url> <prefix> <count> <timeout ms>
 *
 * @module
 */

const [url, prefix, countText, timeoutText] = Deno.args;
const count = Number(countText);
const timeoutMs = Number(timeoutText);
if (
  url === undefined || prefix === undefined || !Number.isSafeInteger(count) ||
  !Number.isSafeInteger(timeoutMs)
) {
  throw new TypeError(
    "Usage: lock_history_stock_reader.ts <url> <prefix> <count> <timeout ms>",
  );
}

/** getMany takes at most 10 keys. */
const BATCH_KEYS = 10;
const POLL_INTERVAL_MS = 200;

const kv = await Deno.openKv(url);
const started = performance.now();
let polls = 0;
let present: number[] = [];
for (;;) {
  polls++;
  present = [];
  for (let first = 0; first < count; first += BATCH_KEYS) {
    const keys: Deno.KvKey[] = [];
    for (let n = first; n < Math.min(count, first + BATCH_KEYS); n++) {
      keys.push([prefix, n]);
    }
    const entries = await kv.getMany(keys, { consistency: "eventual" });
    for (const entry of entries) {
      if (entry.versionstamp !== null) present.push(entry.key[1] as number);
    }
  }
  if (present.length === 0 || performance.now() - started > timeoutMs) break;
  await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
}
console.log(JSON.stringify(
  present.length === 0
    ? {
      absent: true,
      polls,
      afterMs: Math.round(performance.now() - started),
    }
    : { absent: false, present },
));
kv.close();
