/**
 * Child program of `tests/process_stock_client_test.ts`: stock
 * `Deno.openKv(url)` writes `["stock", n] = "value-n"` together with a sum
 * on `["stock-count"]` in one atomic operation, for n = 0, 1, 2…, and reads
 * back what it wrote. It prints one JSON line per event on stdout:
 * `{"ack": n, "versionstamp": …}` for each acknowledged write,
 * `{"error": n, "message": …}` for a write that threw (outcome unknown),
 * `{"wrong": …}` for any answer that contradicts an acknowledged write, and
 * `{"done": n}` when it stops. It stops when its stdin closes or after
 * `count` writes. Imports nothing: it runs with only `--unstable-kv
 * --allow-net=127.0.0.1 --allow-env=DENO_KV_ACCESS_TOKEN`.
 *
 * Usage: deno run … process_stock_writer.ts <kv connect url> <count>
 *
 * @module
 */

const url = Deno.args[0];
const count = Number(Deno.args[1] ?? "1000");
if (url === undefined || !Number.isSafeInteger(count) || count < 1) {
  throw new TypeError("Usage: process_stock_writer.ts <url> <count>");
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
/** Acknowledged writes: n → versionstamp. */
const acked = new Map<number, string>();
let lastVersionstamp = "";
let n = 0;
for (; n < count && !stopping; n++) {
  const value = `value-${n}`;
  let versionstamp: string;
  try {
    const result = await kv.atomic()
      .set(["stock", n], value)
      .sum(["stock-count"], 1n)
      .commit();
    if (!result.ok) {
      report({ wrong: `commit of ${n} without checks answered ok: false` });
      continue;
    }
    versionstamp = result.versionstamp;
  } catch (error) {
    report({ error: n, message: String((error as Error)?.message ?? error) });
    continue;
  }
  report({ ack: n, versionstamp });
  acked.set(n, versionstamp);
  if (versionstamp <= lastVersionstamp) {
    report({
      wrong:
        `versionstamp of ${n} (${versionstamp}) is not after the previous one (${lastVersionstamp})`,
    });
  }
  lastVersionstamp = versionstamp;

  // Read back this write and up to 9 earlier acknowledged ones.
  const keys = [n, ...[...acked.keys()].slice(-10, -1)];
  const entries = await kv.getMany<string[]>(keys.map((k) => ["stock", k]));
  for (const [i, entry] of entries.entries()) {
    const k = keys[i]!;
    if (entry.value !== `value-${k}` || entry.versionstamp !== acked.get(k)) {
      report({
        wrong: `read of ${k} gave ${
          JSON.stringify(entry.value)
        } at ${entry.versionstamp}, acknowledged at ${acked.get(k)}`,
      });
    }
  }
}
report({ done: n });
kv.close();
await stdinClosed;
