/**
 * The events cells' bookkeeping, never their timings: against an
 * in-process fake target, the watch cell counts each delivered event once
 * and catches missing, duplicated, reordered, altered and misrouted ones;
 * the etcd driver speaks the gateway's watch stream (a fake gateway);
 * against a real one-node Aspen, every acknowledged write's event arrives
 * and the hooks cells create, use and delete their hooks, with and without
 * a webhook worker claiming them; the `--workload watch,hooks` options and
 * the summary lines.
 */
import assert from "node:assert/strict";
import { pause } from "./_load.ts";
import { startAspenCluster } from "./_clusters.ts";
import { BENCH_ASPEN_TOKEN } from "./_drivers.ts";
import { parseCompareOptions } from "./compare.ts";
import { ROUTES } from "../src/protocol/http_api.ts";
import type { WireHook } from "../src/protocol/http_api_hooks.ts";
import {
  AspenWatchDriver,
  EtcdWatchDriver,
  eventLines,
  type EventMeasurement,
  HOOK_ROUNDS,
  HOOKS_PER_PREFIX,
  type OnEvent,
  type OpenWatch,
  runHookCells,
  runWatchCell,
  WATCH_PREFIXES,
  type WatchDriver,
  webhookWorkerStarter,
} from "./_watch.ts";

/** Ways the fake target breaks delivery, by write id (`writer.seq`). */
interface Breakage {
  readonly drop?: string;
  readonly duplicate?: string;
  readonly wrongValue?: string;
  /** Delivered late, after the writer's next write. */
  readonly late?: string;
  /** Delivered to the next prefix's watcher as well. */
  readonly misroute?: string;
}

/** A fake target: each put's event goes to its prefix's watcher after the ack. */
class FakeWatchDriver implements WatchDriver {
  readonly description = "fake";
  readonly watchers = new Map<number, OnEvent>();
  /** Puts whose prefix is not their writer's modulo 16. */
  wrongPrefixes = 0;
  #pending = 0;

  constructor(readonly broken: Breakage = {}) {}

  watch(
    _tag: string,
    prefix: number,
    _valueBase64: string,
    onEvent: OnEvent,
  ): Promise<OpenWatch> {
    this.watchers.set(prefix, onEvent);
    let end!: (error: string | null) => void;
    const ended = new Promise<string | null>((resolve) => end = resolve);
    return Promise.resolve({ ended, close: () => end(null) });
  }

  async put(
    _tag: string,
    prefix: number,
    id: string,
    _value: Uint8Array,
  ): Promise<void> {
    await pause(1);
    if (Number(id.split(".")[0]) % WATCH_PREFIXES !== prefix) {
      this.wrongPrefixes++;
    }
    const onEvent = this.watchers.get(prefix)!;
    if (id === this.broken.drop) return;
    this.#pending++;
    setTimeout(() => {
      this.#pending--;
      onEvent(id, id !== this.broken.wrongValue);
      if (id === this.broken.duplicate) onEvent(id, true);
      if (id === this.broken.misroute) {
        this.watchers.get((prefix + 1) % WATCH_PREFIXES)!(id, true);
      }
    }, id === this.broken.late ? 30 : 0);
  }
}

const value = new Uint8Array(256).fill(7);

Deno.test("runWatchCell() counts each event once and catches missing, duplicated, reordered, altered and misrouted ones", async (t) => {
  await t.step(
    "a faithful target: every write delivered, no violation",
    async () => {
      const driver = new FakeWatchDriver();
      const cell = await runWatchCell(driver, {
        clients: 20,
        durationMs: 200,
        value,
      });
      assert.equal(driver.watchers.size, WATCH_PREFIXES);
      assert.equal(driver.wrongPrefixes, 0);
      assert.equal(cell.workload, "watch");
      assert.equal(cell.clients, 20);
      assert.ok(cell.calls! > 20, `${cell.calls} writes`);
      assert.equal(cell.operations, cell.calls);
      assert.equal(cell.violations, 0);
      assert.equal(cell.errors, 0);
      assert.equal(cell.watch!.missing, 0);
      assert.equal(cell.watch!.writes, cell.calls);
      assert.ok(cell.latencyMs.p50 >= 0 && cell.latencyMs.p99 >= 0);
    },
  );
  await t.step("a broken target: one violation of each kind", async () => {
    const driver = new FakeWatchDriver({
      drop: "0.1",
      duplicate: "1.1",
      wrongValue: "2.1",
      late: "3.1",
      misroute: "4.1",
    });
    const cell = await runWatchCell(driver, {
      clients: 20,
      durationMs: 300,
      value,
      drainTimeoutMs: 500,
    });
    const w = cell.watch!;
    assert.deepEqual(
      [w.missing, w.duplicates, w.wrongValues, w.outOfOrder, w.misrouted],
      [1, 1, 1, 1, 1],
    );
    assert.equal(cell.violations, 5);
    assert.equal(cell.operations, cell.calls! - 1);
  });
});

/**
 * A fake etcd gateway: `/v3/watch` answers `created`, then one line per put
 * under the watched range; `/v3/kv/put` stores nothing but feeds the watchers.
 */
function fakeGateway() {
  const watchers: {
    from: string;
    to: string;
    send: (line: string) => void;
  }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      const body = await request.json();
      if (path === "/v3/watch") {
        const create = body.create_request;
        let controller!: ReadableStreamDefaultController<Uint8Array>;
        const stream = new ReadableStream<Uint8Array>({
          start: (c) => controller = c,
        });
        const encoder = new TextEncoder();
        const send = (line: string) => {
          try {
            controller.enqueue(encoder.encode(line + "\n"));
          } catch {
            // The watcher went away.
          }
        };
        watchers.push({
          from: atob(create.key),
          to: atob(create.range_end),
          send,
        });
        send(JSON.stringify({ result: { header: {}, created: true } }));
        return new Response(stream);
      }
      if (path === "/v3/kv/put") {
        const key = atob(body.key);
        for (const w of watchers) {
          if (key >= w.from && key < w.to) {
            w.send(JSON.stringify({
              result: {
                header: {},
                events: [{ kv: { key: body.key, value: body.value } }],
              },
            }));
          }
        }
        return Response.json({ header: {} });
      }
      return new Response("not found", { status: 404 });
    },
  );
  return { server, watchers, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("EtcdWatchDriver reads the gateway's watch stream: created, then one line per put", async () => {
  const gateway = fakeGateway();
  try {
    const driver = new EtcdWatchDriver(gateway.url, [gateway.url]);
    const cell = await runWatchCell(driver, {
      clients: 16,
      durationMs: 300,
      value,
    });
    assert.equal(gateway.watchers.length, WATCH_PREFIXES);
    // Each watcher's range is its prefix: "w-<tag>/07/" to "w-<tag>/070".
    for (const w of gateway.watchers) {
      assert.match(w.from, /^w-[0-9a-f]{8}\/\d\d\/$/);
      assert.equal(w.to, `${w.from.slice(0, -1)}0`);
    }
    assert.ok(cell.calls! > 16, `${cell.calls} writes`);
    assert.equal(cell.operations, cell.calls);
    assert.equal(cell.violations, 0);
    assert.equal(cell.errors, 0);
  } finally {
    await gateway.server.shutdown();
  }
});

Deno.test({
  name:
    "the watch and hooks cells against a one-node Aspen: every write's event arrives; hooks are created and deleted",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const cluster = await startAspenCluster({ nodes: 1, workDir: "/tmp" });
    try {
      const url = cluster.urls[0]!;
      const watch = await runWatchCell(new AspenWatchDriver(url, [url]), {
        clients: 8,
        durationMs: 500,
        value,
      });
      assert.equal(watch.errors, 0, String(watch.firstError));
      assert.ok(watch.calls! > 0);
      assert.equal(watch.operations, watch.calls);
      assert.equal(watch.violations, 0);

      const [plain, hooked] = await runHookCells(url, {
        clients: 4,
        durationMs: 300,
        value,
      }) as [EventMeasurement, EventMeasurement];
      assert.deepEqual([plain.workload, hooked.workload], [
        "put-plain",
        "put-hooks",
      ]);
      for (const c of [plain, hooked]) {
        assert.equal(c.errors, 0, String(c.firstError));
        assert.ok(c.operations > 0);
      }
      assert.equal(hooked.hooks!.hooks, HOOKS_PER_PREFIX);
      assert.equal(hooked.hooks!.worker, false);
      assert.equal(hooked.rounds!.length, HOOK_ROUNDS);
      assert.equal(plain.rounds!.length, HOOK_ROUNDS);
      assert.equal(plain.hooks!.hooks, 0);
      const listed = await fetch(url + ROUTES.hookList, {
        method: "POST",
        headers: {
          authorization: `Bearer ${BENCH_ASPEN_TOKEN}`,
          "content-type": "application/json",
        },
        body: "{}",
      });
      assert.equal(listed.status, 200);
      const hooks = (await listed.json() as { hooks: WireHook[] }).hooks;
      assert.deepEqual(hooks.map((h) => h.name), []);

      // With main's webhook worker: it claims all 10 hooks of each hooked
      // part (or the cells throw) and both cells still run.
      const starter = await webhookWorkerStarter([url]);
      assert.ok(starter !== undefined, "the checkout has a webhook worker");
      const withWorker = await runHookCells(url, {
        clients: 4,
        durationMs: 400,
        value,
        startWorker: starter,
      });
      assert.equal(withWorker[1]!.hooks!.worker, true);
      for (const c of withWorker) {
        assert.equal(c.errors, 0, String(c.firstError));
        assert.ok(c.operations > 0);
      }
      const lines = eventLines([{
        target: "aspen-1",
        cells: [watch, plain, hooked],
      }]);
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /^aspen-1 watch x8: \d+ writes acknowledged/);
      assert.match(
        lines[1]!,
        /^aspen-1 put-hooks x4: \d+ \/ put-plain \d+ puts\/s = \d+\.\d\dx/,
      );
    } finally {
      await cluster.stop();
    }
  },
});

Deno.test("parseCompareOptions() reads --workload watch,hooks: 64 writers unless told", () => {
  const options = parseCompareOptions([
    "--workload",
    "hooks,watch",
    "--targets",
    "etcd-3,aspen-3",
  ]);
  assert.deepEqual(options.workloads, ["watch", "hooks"]);
  assert.deepEqual(options.clients, [64]);
  const told = parseCompareOptions(["--workload", "watch", "--clients", "8"]);
  assert.deepEqual(told.clients, [8]);
  const withLock = parseCompareOptions(["--workloads", "lock,watch"]);
  assert.deepEqual(withLock.clients, [16]);
  // Only when asked: the default set is the four KV workloads.
  assert.deepEqual(parseCompareOptions([]).workloads, [
    "put",
    "get",
    "mixed",
    "cas",
  ]);
});
