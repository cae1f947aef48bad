/**
 * The coordination cells' bookkeeping against in-process fake drivers,
 * never their timings: what an operation counts, how the keep-alive leases
 * are split, that the clients' safety checks catch falling tokens, and the
 * `--workload lock,keepalive` options and report.
 */
import assert from "node:assert/strict";
import {
  type CoordinationDriver,
  EtcdCoordinationDriver,
  prepareLeases,
  runCoordinationCell,
} from "./_coordination.ts";
import { UnexpectedStatusError } from "./_drivers.ts";
import { pause } from "./_load.ts";
import { parseCompareOptions } from "./compare.ts";
import {
  coordinationRatios,
  formatCoordinationTable,
  type TargetResult,
} from "./_report.ts";

/** A fake target: one FIFO mutex per name, unless told to break it. */
class FakeDriver implements CoordinationDriver {
  readonly keepAliveCalls: string[][] = [];
  readonly acquired: string[] = [];
  #lease = 0;
  #revision = 0;
  readonly #held = new Map<string, Array<() => void> | null>();

  constructor(
    readonly broken: {
      /** Hands out falling tokens. */
      readonly fallingTokens?: boolean;
      /** Leases the keep-alives do not find. */
      readonly lostLeases?: ReadonlySet<string>;
    } = {},
  ) {}

  grantLease(): Promise<string> {
    return Promise.resolve(String(this.#lease++).padStart(16, "0"));
  }

  keepAlive(ids: readonly string[]): Promise<number> {
    this.keepAliveCalls.push([...ids]);
    const lost = this.broken.lostLeases ?? new Set();
    return Promise.resolve(ids.filter((id) => !lost.has(id)).length);
  }

  async acquire(
    name: string,
    _lease: string,
  ): Promise<{ token: string; ordered: boolean }> {
    while (this.#held.has(name)) {
      await new Promise<void>((resolve) => {
        const queue = this.#held.get(name) ?? [];
        queue.push(resolve);
        this.#held.set(name, queue);
      });
    }
    this.#held.set(name, null);
    // Let other clients interleave, as a network would.
    await pause(1);
    this.#revision++;
    const revision = this.broken.fallingTokens
      ? 1_000_000 - this.#revision
      : this.#revision;
    this.acquired.push(name);
    return { token: String(revision).padStart(20, "0"), ordered: true };
  }

  async release(name: string): Promise<void> {
    await pause(0);
    const waiters = this.#held.get(name);
    this.#held.delete(name);
    for (const wake of waiters ?? []) wake();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const SHORT = { durationMs: 200, prepareTimeoutMs: 5_000 };

Deno.test("lock cells count acquire+release pairs and catch falling tokens", async (t) => {
  await t.step("own names: one name per client, no violation", async () => {
    const driver = new FakeDriver();
    const cell = await runCoordinationCell(driver, {
      ...SHORT,
      cell: "lock",
      clients: 4,
      leases: [],
    });
    assert.equal(cell.errors, 0);
    assert.equal(cell.violations, 0);
    assert.ok(cell.operations > 0);
    assert.equal(cell.operations, cell.calls);
    assert.equal(new Set(driver.acquired).size, 4);
  });
  await t.step("one name: a correct mutex has no violation", async () => {
    const driver = new FakeDriver();
    const cell = await runCoordinationCell(driver, {
      ...SHORT,
      cell: "lock-contended",
      clients: 4,
      leases: [],
    });
    assert.equal(cell.violations, 0);
    assert.ok(cell.operations > 0);
    assert.equal(new Set(driver.acquired).size, 1);
  });
  await t.step("falling tokens are violations", async () => {
    const cell = await runCoordinationCell(
      new FakeDriver({ fallingTokens: true }),
      { ...SHORT, cell: "lock", clients: 2, leases: [] },
    );
    assert.ok(cell.violations! > 0);
  });
});

Deno.test("keep-alive cells split the leases and count each one renewed", async (t) => {
  const leases = Array.from({ length: 1000 }, (_, i) => `lease-${i}`);
  await t.step(
    "keepalive: each call carries the client's whole share",
    async () => {
      const driver = new FakeDriver();
      const cell = await runCoordinationCell(driver, {
        ...SHORT,
        cell: "keepalive",
        clients: 16,
        leases,
      });
      assert.equal(cell.errors, 0);
      const sizes = new Set(driver.keepAliveCalls.map((c) => c.length));
      assert.deepEqual([...sizes].sort(), [62, 63]);
      const covered = new Set(driver.keepAliveCalls.flat());
      assert.equal(covered.size, 1000);
      assert.equal(
        cell.operations,
        driver.keepAliveCalls.reduce((n, c) => n + c.length, 0),
      );
      assert.equal(cell.calls, driver.keepAliveCalls.length);
    },
  );
  await t.step("keepalive-1: one id per call, cycling", async () => {
    const driver = new FakeDriver();
    const cell = await runCoordinationCell(driver, {
      ...SHORT,
      cell: "keepalive-1",
      clients: 16,
      leases,
    });
    assert.ok(driver.keepAliveCalls.every((c) => c.length === 1));
    assert.equal(cell.operations, cell.calls);
    // Each client walks its own share, so enough calls reach every lease.
    assert.ok(cell.calls! > 16 * 63 * 4, `only ${cell.calls} calls`);
    assert.equal(new Set(driver.keepAliveCalls.flat()).size, 1000);
  });
  await t.step("a lease not found is an error", async () => {
    const cell = await runCoordinationCell(
      new FakeDriver({ lostLeases: new Set(["lease-3"]) }),
      { ...SHORT, cell: "keepalive", clients: 16, leases },
    );
    assert.ok(cell.errors > 0);
    assert.match(cell.firstError ?? "", /1 of 63 leases were not found/);
  });
  await t.step("fewer leases than clients is refused", async () => {
    await assert.rejects(
      runCoordinationCell(new FakeDriver(), {
        ...SHORT,
        cell: "keepalive",
        clients: 16,
        leases: leases.slice(0, 8),
      }),
      RangeError,
    );
  });
});

Deno.test("parseCompareOptions() reads --workload lock,keepalive", () => {
  const options = parseCompareOptions([
    "--workload",
    "keepalive,lock",
    "--targets",
    "etcd-3,aspen-3",
  ]);
  assert.deepEqual(options.workloads, ["lock", "keepalive"]);
  assert.deepEqual(options.clients, [16]);
  assert.deepEqual(options.targets, ["aspen-3", "etcd-3"]);
  const mixed = parseCompareOptions(["--workloads", "put,lock"]);
  assert.deepEqual(mixed.workloads, ["put", "lock"]);
  assert.deepEqual(mixed.clients, [1, 16, 64, 256]);
  assert.throws(
    () => parseCompareOptions(["--workload", "lock", "--workloads", "put"]),
    RangeError,
  );
  assert.throws(() => parseCompareOptions(["--workload", "locks"]), RangeError);
});

Deno.test("formatCoordinationTable() gives units, calls and Aspen ratios", () => {
  const cell = (per: number, calls: number) => ({
    workload: "keepalive" as const,
    clients: 16,
    elapsedMs: 1000,
    operations: per,
    errors: 0,
    conflicts: 0,
    throughputPerSecond: per,
    latencyMs: { p50: 1, p99: 2, max: 3, mean: 1 },
    firstError: null,
    unit: "leases renewed",
    calls,
    callsPerSecond: calls,
    violations: 0,
  });
  const targets: TargetResult[] = [
    ["aspen-3", cell(8000, 128)],
    ["etcd-3", cell(2000, 2000)],
  ].map(([target, c]) => ({
    target: target as TargetResult["target"],
    status: "ran",
    reason: null,
    driver: "test",
    startMs: 1,
    cells: [c as ReturnType<typeof cell>],
  }));
  const text = formatCoordinationTable(targets);
  assert.match(text, /^\| cell /);
  assert.match(text, /\| etcd-3 +\| 2000 +\| 2000 .*0\.25x \(aspen-3\)/);
  assert.match(text, /keepalive x16: per s = leases renewed/);
  assert.deepEqual(coordinationRatios(targets), [
    "keepalive x16: aspen-3 8000 / etcd-3 2000 per s = 4.00x",
  ]);
  assert.equal(formatCoordinationTable([]), "");
  const failed = targets.map((t, i) =>
    i === 0 ? { ...t, cells: [{ ...cell(0, 0), operations: 0 }] } : t
  );
  assert.deepEqual(coordinationRatios(failed), []);
});

Deno.test("the etcd driver sends again the ids a streamed reply left unanswered", async () => {
  const bodies: string[] = [];
  // A gateway that ends its first reply after 2 answers, and knows no lease "9".
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const body = await request.text();
      bodies.push(body);
      const ids = body.split("\n").map((l) => JSON.parse(l).ID as string);
      const answered = bodies.length === 1 ? ids.slice(0, 2) : ids;
      return new Response(
        answered.map((id) =>
          JSON.stringify({
            result: id === "9" ? { ID: id } : { ID: id, TTL: "120" },
          })
        ).join("\n") + "\n",
      );
    },
  );
  try {
    const driver = new EtcdCoordinationDriver(
      `http://127.0.0.1:${server.addr.port}`,
    );
    assert.equal(await driver.keepAlive(["1", "2", "3", "9", "5"]), 4);
    assert.equal(driver.resends, 1);
    assert.equal(bodies.length, 2);
    assert.deepEqual(
      bodies[1]!.split("\n").map((l) => JSON.parse(l).ID),
      ["3", "9", "5"],
    );
  } finally {
    await server.shutdown();
  }
});

Deno.test("prepareLeases() gives up at once on a missing route, not on a 503", async () => {
  let calls = 0;
  const refusing = (status: number) =>
    ({
      ...new FakeDriver(),
      grantLease() {
        calls++;
        return Promise.reject(new UnexpectedStatusError(status, "", "fake"));
      },
    }) as unknown as CoordinationDriver;
  const begin = performance.now();
  await assert.rejects(
    prepareLeases(refusing(404), 16, 1000, 20_000),
    /granted 0.*Status 404/,
  );
  assert.ok(performance.now() - begin < 5_000);
  assert.equal(calls, 16);
  calls = 0;
  await assert.rejects(prepareLeases(refusing(503), 1, 1000, 300), /503/);
  assert.ok(calls > 1, `asked ${calls} times`);
});
