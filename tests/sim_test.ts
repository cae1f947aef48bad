import assert from "node:assert/strict";
import { EventQueue } from "../src/sim/event_queue.ts";
import { parseCli, reproduceCommand } from "../src/sim/main.ts";
import {
  type BugName,
  BUGS,
  DEFAULT_OPTIONS,
  EVENTS_BUGS,
  HOOKS_BUGS,
  LEASE_BUGS,
  runServices,
  SERVICE_BUGS,
  type SimOptions,
} from "../src/sim/options.ts";
import { SeededRandom } from "../src/sim/random.ts";
import { CLOCK_DRIFT, runSeed, type SeedResult } from "../src/sim/simulator.ts";

/** Seeds each planted bug must be found within (3 nodes, all faults). */
const BUG_SEED_CAP = 500;
/** Nemesis actions of issue 3 that must happen under `--faults all`. */
const NEW_FAULTS = [
  "learner",
  "promote",
  "remove",
  "replace",
  "transfer",
  "snapshot",
  "skew",
  "stale-leader",
  "stall",
  "zombie",

  "corrupt-tail",
] as const;

function options(
  seed: number,
  overrides: Partial<SimOptions> = {},
): SimOptions {
  return { ...DEFAULT_OPTIONS, seed, ...overrides };
}

async function runSeeds(count: number, nodes: number): Promise<SeedResult[]> {
  const failures: SeedResult[] = [];
  for (let seed = 1; seed <= count; seed++) {
    const result = await runSeed(options(seed, { nodes }));
    if (result.violation !== null) failures.push(result);
  }
  return failures;
}

function describe(failures: readonly SeedResult[]): string {
  return failures.map((f) => `seed ${f.seed}: ${f.violation}`).join("\n");
}

async function sim(args: string[]): Promise<{ code: number; stdout: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read=fixtures", "src/sim/main.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
  };
}

Deno.test("SeededRandom draws the same stream for the same seed and label", () => {
  const draw = (seed: number, label: string) => {
    const random = new SeededRandom(seed, label);
    return Array.from({ length: 8 }, () => random.nextInt(1000));
  };
  assert.deepEqual(draw(7, "node:n1"), draw(7, "node:n1"));
  assert.notDeepEqual(draw(7, "node:n1"), draw(7, "node:n2"));
  assert.notDeepEqual(draw(7, "node:n1"), draw(8, "node:n1"));
  const random = new SeededRandom(1, "bounds");
  for (let i = 0; i < 1000; i++) {
    const value = random.between(3, 5);
    assert.ok(value >= 3 && value <= 5);
  }
});

Deno.test("EventQueue runs events by time, ties in insertion order", () => {
  const queue = new EventQueue();
  const order: string[] = [];
  queue.after(5, () => order.push("b"));
  queue.after(1, () => order.push("a"));
  queue.after(5, () => order.push("c"));
  queue.after(1, () => queue.after(4, () => order.push("d")));
  while (queue.runNext()) { /* drain */ }
  assert.deepEqual(order, ["a", "b", "c", "d"]);
  assert.equal(queue.now, 5);
});

Deno.test("parseCli() reads flags and rejects bad ones", () => {
  const cli = parseCli([
    "--seed",
    "9",
    "--nodes",
    "5",
    "--faults",
    "crash,drop",
  ]);
  assert.equal(cli.seedStart, 9);
  assert.equal(cli.seedCount, 1);
  assert.equal(cli.nodes, 5);
  assert.deepEqual(cli.faults, ["crash", "drop"]);
  assert.throws(() => parseCli(["--nodes", "4"]), TypeError);
  assert.throws(() => parseCli(["--faults", "meteor"]), TypeError);
  assert.throws(() => parseCli(["--bug", "none"]), TypeError);
  assert.throws(() => parseCli(["--wat"]), TypeError);
  const modes = parseCli(["--reads", "lease", "--state-machine", "kv"]);
  assert.equal(modes.readMode, "lease");
  assert.equal(modes.stateMachine, "kv");
  assert.throws(() => parseCli(["--reads", "fast"]), TypeError);
  assert.throws(() => parseCli(["--state-machine", "sql"]), TypeError);
  assert.deepEqual(parseCli(["--services", "leases,locks"]).services, [
    "leases",
    "locks",
  ]);
  assert.deepEqual(parseCli(["--services", "none"]).services, []);
  assert.deepEqual(parseCli([]).services, []);
  assert.throws(() => parseCli(["--services", "queues"]), TypeError);
  assert.deepEqual(parseCli(["--services", "events"]).services, ["events"]);
  assert.deepEqual(
    parseCli(["--services", "leases,locks,events"]).services,
    ["leases", "locks", "events"],
  );
  assert.deepEqual(parseCli(["--services", "hooks"]).services, ["hooks"]);
});

Deno.test("runServices() runs events and leases with hooks, and hooks for a bug of theirs", () => {
  assert.deepEqual(
    runServices(options(1, { services: ["hooks"] })),
    ["hooks", "events", "leases"],
  );
  assert.deepEqual(
    runServices(options(1, { bug: "cursor-apart-from-finish" })),
    ["hooks", "events", "leases"],
  );
  assert.deepEqual(runServices(options(1, { services: ["events"] })), [
    "events",
  ]);
});

Deno.test("runSeed() finds no violation in 100 seeds × 3 nodes with all faults", async () => {
  const failures = await runSeeds(100, 3);
  assert.equal(failures.length, 0, describe(failures));
});

Deno.test("runSeed() finds no violation in 100 seeds × 5 nodes with all faults", async () => {
  const failures = await runSeeds(100, 5);
  assert.equal(failures.length, 0, describe(failures));
});

Deno.test("runSeed() makes progress under faults and records a history", async () => {
  const result = await runSeed(options(1));
  assert.equal(result.violation, null);
  assert.ok(result.stats.acknowledged > 50, JSON.stringify(result.stats));
  assert.ok(result.stats.historyLength >= result.stats.acknowledged);
});

Deno.test("runSeed() passes without faults", async () => {
  for (const nodes of [3, 5]) {
    const result = await runSeed(options(3, { nodes, faults: [] }));
    assert.equal(result.violation, null);
    assert.equal(result.stats.unknown, 0);
  }
});

// The services' bugs are searched for by the services' own tests below.
for (
  const bug of (Object.keys(BUGS) as BugName[]).filter((name) =>
    !SERVICE_BUGS.has(name) && !EVENTS_BUGS.has(name) &&
    !HOOKS_BUGS.has(name)
  )
) {
  Deno.test({
    name:
      `runSeed() finds planted bug '${bug}' within ${BUG_SEED_CAP} seeds, and its seed passes without it`,
    fn: async () => {
      let found: SeedResult | null = null;
      for (let seed = 1; seed <= BUG_SEED_CAP && found === null; seed++) {
        const result = await runSeed(options(seed, { bug }));
        if (result.violation !== null) found = result;
      }
      assert.ok(found !== null, `'${bug}' not found in ${BUG_SEED_CAP} seeds`);
      const again = await runSeed(options(found.seed, { bug }));
      assert.equal(again.violation, found.violation);
      const clean = await runSeed(options(found.seed));
      assert.equal(clean.violation, null, clean.violation ?? "");
      if (LEASE_BUGS.has(bug)) {
        // The bug's runs read by lease: the seed must pass with leases too.
        const lease = await runSeed(options(found.seed, { readMode: "lease" }));
        assert.equal(lease.stats.modes.readOnly, "lease");
        assert.equal(lease.violation, null, lease.violation ?? "");
      }
    },
  });
}

Deno.test("runSeed() exercises membership, transfer, snapshot and skew nemeses on 3 and 5 nodes", async () => {
  for (const nodes of [3, 5]) {
    const faults = new Map<string, number>();
    let confChanges = 0;
    let installs = 0;
    let shrunk = 0;
    // 40 seeds: shrinking below the founding size is rare on purpose (the
    // nemesis allows it now and then), and which seeds do it moves with
    // every change to the runner's event order.
    for (let seed = 1; seed <= 40; seed++) {
      const result = await runSeed(options(seed, { nodes }));
      assert.equal(result.violation, null, `seed ${seed}: ${result.violation}`);
      for (const [name, count] of Object.entries(result.stats.faults)) {
        faults.set(name, (faults.get(name) ?? 0) + count);
      }
      confChanges += result.stats.confChanges;
      installs += result.stats.snapshotsInstalled;
      if (result.stats.finalMembers.length < nodes) shrunk++;
    }
    for (const name of NEW_FAULTS) {
      assert.ok((faults.get(name) ?? 0) > 0, `${nodes} nodes: no '${name}'`);
    }
    assert.ok(confChanges >= 15, `${nodes} nodes: ${confChanges} conf changes`);
    assert.ok(installs > 0, `${nodes} nodes: no snapshot installed`);
    assert.ok(shrunk > 0, `${nodes} nodes: membership never shrank`);
  }
});

Deno.test("runSeed() passes 25 seeds with lease reads (3 nodes)", async () => {
  for (let seed = 1; seed <= 25; seed++) {
    const result = await runSeed(options(seed, { readMode: "lease" }));
    assert.equal(result.stats.modes.readOnly, "lease");
    assert.equal(result.violation, null, `seed ${seed}: ${result.violation}`);
  }
});

Deno.test("runSeed() queues reads at paused and stalled nodes and passes with leases (3 and 5 nodes)", async () => {
  for (const nodes of [3, 5]) {
    let queued = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const result = await runSeed(options(seed, { nodes, readMode: "lease" }));
      assert.equal(result.violation, null, `seed ${seed}: ${result.violation}`);
      queued += result.stats.readsQueued;
    }
    assert.ok(queued > 0, `${nodes} nodes: no read queued across a pause`);
  }
});

Deno.test("runSeed() replicates the real KV state machine with equal state hashes (3 and 5 nodes)", async () => {
  for (const nodes of [3, 5]) {
    for (let seed = 1; seed <= 10; seed++) {
      const result = await runSeed(
        options(seed, { nodes, stateMachine: "kv" }),
      );
      assert.equal(result.stats.modes.stateMachine, "kv");
      assert.equal(result.violation, null, `seed ${seed}: ${result.violation}`);
      assert.ok(result.stats.acknowledged > 20, JSON.stringify(result.stats));
    }
  }
});

Deno.test("sim --trace is byte-identical across two processes (seed 1234, 5 nodes)", async () => {
  const args = ["--seed", "1234", "--nodes", "5", "--faults", "all", "--trace"];
  const [first, second] = await Promise.all([sim(args), sim(args)]);
  assert.equal(first.code, 0, first.stdout.slice(-2000));
  assert.ok(first.stdout.length > 10_000);
  assert.match(first.stdout, /^hash n5 [0-9a-f]{64}$/m);
  assert.equal(first.stdout, second.stdout);
});

Deno.test("sim --bug exits 1 with the seed; --seed reproduces it, and passes without the bug", async () => {
  const search = await sim([
    "--bug",
    "forget-vote-on-restart",
    "--seeds",
    "500",
  ]);
  assert.equal(search.code, 1, search.stdout);
  const match = search.stdout.match(/^violation: seed (\d+) .*vote safety/m);
  assert.ok(match !== null, search.stdout);
  const seed = match[1]!;
  const [withBug, without] = await Promise.all([
    sim(["--seed", seed, "--bug", "forget-vote-on-restart"]),
    sim(["--seed", seed]),
  ]);
  assert.equal(withBug.code, 1, withBug.stdout);
  assert.match(withBug.stdout, new RegExp(`violation: seed ${seed} `));
  assert.equal(without.code, 0, without.stdout);
  assert.match(without.stdout, /\nsim: 1 seeds, 0 violations\n$/);
});

Deno.test("sim exits 2 for a bad flag", async () => {
  const { code } = await sim(["--nodes", "4"]);
  assert.equal(code, 2);
});

Deno.test("runSeed() passes every regression seed", async () => {
  const text = await Deno.readTextFile("fixtures/sim/regression_seeds.txt");
  const failures: string[] = [];
  let count = 0;
  for (const line of text.split("\n")) {
    const fields = line.replace(/#.*/, "").trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) continue;
    const numbers = fields.filter((field) => !field.includes("="));
    const flags = new Map(
      fields.filter((field) => field.includes("=")).map((field) =>
        field.split("=", 2) as [string, string]
      ),
    );
    const [nodes, seed, ticks, ops] = numbers.map(Number);
    const readMode = flags.get("reads") ?? DEFAULT_OPTIONS.readMode;
    const stateMachine = flags.get("state") ?? DEFAULT_OPTIONS.stateMachine;
    const result = await runSeed(options(seed!, {
      nodes: nodes!,
      ticks: ticks ?? DEFAULT_OPTIONS.ticks,
      ops: ops ?? DEFAULT_OPTIONS.ops,
      readMode: readMode as SimOptions["readMode"],
      stateMachine: stateMachine as SimOptions["stateMachine"],
    }));
    count++;
    if (result.violation !== null) {
      failures.push(`${line}: ${result.violation}`);
    }
  }
  assert.ok(count >= 5);
  assert.deepEqual(failures, []);
});

// --- Leases and locks (issue 16) ------------------------------------------

/** Clean seeds of the services run per cluster size (CI time stays small). */
const SERVICE_CLEAN_SEEDS = 8;

Deno.test({
  name:
    "runSeed() with --services leases,locks passes clean seeds under all faults (3 and 5 nodes), its clients holding, writing fenced and losing leases",
  fn: async () => {
    for (const nodes of [3, 5]) {
      let acquired = 0;
      let fenced = 0;
      let lost = 0;
      for (let seed = 1; seed <= SERVICE_CLEAN_SEEDS; seed++) {
        const run = options(seed, { nodes, services: ["leases", "locks"] });
        const result = await runSeed(run);
        assert.equal(
          result.violation,
          null,
          `${result.violation}\nreproduce: ${reproduceCommand(run)}`,
        );
        const counts = result.stats.coordination!;
        acquired += counts.acquired;
        fenced += counts.fencedAccepted;
        lost += counts.leasesLost + counts.died;
      }
      assert.ok(acquired > 20, `${nodes} nodes: ${acquired} acquired`);
      assert.ok(fenced > 10, `${nodes} nodes: ${fenced} fenced writes`);
      assert.ok(lost > 0, `${nodes} nodes: no lease lost`);
    }
  },
});

Deno.test("runSeed() with --services leases passes seeds 201 and 342, whose leader's clock runs beyond the drift bound and expires a lease by it", async () => {
  // Safe-read seeds: the nemesis skews the leader n1 37% (201) and 28%
  // (342) fast, and its keeper rightly ends a dead client's lease after
  // 1,000 ms of its own clock, 794 and 828 ms of simulated time after the
  // last keep-alive's send. The expiry property once measured in simulated
  // time less a 15% drift allowance, and failed them.
  for (const seed of [201, 342]) {
    const run = options(seed, { services: ["leases"], trace: true });
    const result = await runSeed(run);
    assert.equal(
      result.violation,
      null,
      `${result.violation}\nreproduce: ${reproduceCommand(run)}`,
    );
    const skews = (result.trace ?? []).flatMap((line) => {
      const match = line.match(/ fault skew \S+ fast (\d+)%$/);
      return match === null ? [] : [Number(match[1])];
    });
    assert.ok(
      skews.some((percent) => percent > 100 * CLOCK_DRIFT),
      `seed ${seed}: no clock skewed beyond the drift bound: ${
        skews.join(", ")
      }`,
    );
    assert.ok(
      result.stats.coordination!.died > 0,
      `seed ${seed}: no client died`,
    );
  }
});

for (const bug of SERVICE_BUGS) {
  Deno.test({
    name:
      `runSeed() finds the services' planted bug '${bug}' within ${BUG_SEED_CAP} seeds, and its seed passes without it`,
    fn: async () => {
      let found: SeedResult | null = null;
      let run: SimOptions | null = null;
      for (let seed = 1; seed <= BUG_SEED_CAP && found === null; seed++) {
        run = options(seed, { bug });
        const result = await runSeed(run);
        if (result.violation !== null) found = result;
      }
      assert.ok(found !== null, `'${bug}' not found in ${BUG_SEED_CAP} seeds`);
      console.log(
        `'${bug}' found at seed ${found.seed}: ${found.violation}\nreproduce: ${
          reproduceCommand(run!)
        }`,
      );
      assert.match(found.violation!, /^coordination/);
      const clean = options(found.seed, { services: ["leases", "locks"] });
      const without = await runSeed(clean);
      assert.equal(
        without.violation,
        null,
        `${without.violation}\nreproduce: ${reproduceCommand(clean)}`,
      );
    },
  });
}

// --- Events watch (issue 17) ----------------------------------------------

/** Clean seeds of the events watch run per cluster size (CI time stays small). */
const EVENTS_CLEAN_SEEDS = 12;

Deno.test({
  name:
    "runSeed() with --services events passes clean seeds under all faults and compaction (3 and 5 nodes), its watchers resuming after events and past compactions",
  fn: async () => {
    for (const nodes of [3, 5]) {
      const totals = { events: 0, resumedAfter: 0, compacted: 0, floorMax: 0 };
      let compactions = 0;
      for (let seed = 1; seed <= EVENTS_CLEAN_SEEDS; seed++) {
        const run = options(seed, { nodes, services: ["events"] });
        const result = await runSeed(run);
        assert.equal(
          result.violation,
          null,
          `${result.violation}\nreproduce: ${reproduceCommand(run)}`,
        );
        const counts = result.stats.watchers!;
        totals.events += counts.events;
        totals.resumedAfter += counts.resumedAfter;
        totals.compacted += counts.compacted;
        totals.floorMax = Math.max(totals.floorMax, counts.floorMax);
        compactions += counts.compactions;
      }
      const text = `${nodes} nodes: ${JSON.stringify(totals)}`;
      assert.ok(totals.events > 200, text);
      assert.ok(totals.resumedAfter > 50, text);
      assert.ok(totals.compacted > 0, text);
      assert.ok(totals.floorMax > 20, text);
      assert.ok(compactions > 0, text);
    }
  },
});

Deno.test("runSeed() with --services leases,locks,events passes clean seeds, with both workloads at work", async () => {
  for (let seed = 1; seed <= 3; seed++) {
    const run = options(seed, { services: ["leases", "locks", "events"] });
    const result = await runSeed(run);
    assert.equal(
      result.violation,
      null,
      `${result.violation}\nreproduce: ${reproduceCommand(run)}`,
    );
    assert.ok(result.stats.coordination!.acquired > 0);
    assert.ok(result.stats.watchers!.events > 0);
  }
});

Deno.test("runSeed() with --services events is a function of its seed (same trace twice)", async () => {
  const run = options(7, { services: ["events"], trace: true });
  const first = await runSeed(run);
  const second = await runSeed(run);
  assert.equal(first.violation, null, first.violation ?? "");
  assert.ok(first.trace!.some((line) => line.includes("events watcher")));
  assert.deepEqual(second.trace, first.trace);
  assert.deepEqual(second.stats.watchers, first.stats.watchers);
});

for (const bug of EVENTS_BUGS) {
  Deno.test({
    name:
      `runSeed() finds the events planted bug '${bug}' within ${BUG_SEED_CAP} seeds, its seed reproduces it, and passes without it`,
    fn: async () => {
      let found: SeedResult | null = null;
      let run: SimOptions | null = null;
      for (let seed = 1; seed <= BUG_SEED_CAP && found === null; seed++) {
        run = options(seed, { bug });
        const result = await runSeed(run);
        if (result.violation !== null) found = result;
      }
      assert.ok(found !== null, `'${bug}' not found in ${BUG_SEED_CAP} seeds`);
      console.log(
        `'${bug}' found at seed ${found.seed}: ${found.violation}\nreproduce: ${
          reproduceCommand(run!)
        }`,
      );
      // Skipped at a resume: a gap, or a `synced` owing the skipped event.
      assert.match(
        found.violation!,
        /^events: watcher .*(a gap of 1 event|said synced at revision \d+ .*without sending)/,
      );
      const again = await runSeed(run!);
      assert.equal(again.violation, found.violation);
      const clean = options(found.seed, { services: ["events"] });
      const without = await runSeed(clean);
      assert.equal(
        without.violation,
        null,
        `${without.violation}\nreproduce: ${reproduceCommand(clean)}`,
      );
    },
  });
}

/** Clean seeds of the hooks run per cluster size (CI time stays small). */
const HOOKS_CLEAN_SEEDS = 4;

Deno.test("runSeed() with --services hooks passes clean seeds under all faults (3 and 5 nodes), its workers delivering, failing, dying and resending", async () => {
  const totals = { ok: 0, failed: 0, died: 0, arrivals: 0, hooks: 0 };
  for (const nodes of [3, 5]) {
    for (let seed = 1; seed <= HOOKS_CLEAN_SEEDS; seed++) {
      const run = options(seed, { nodes, services: ["hooks"] });
      const result = await runSeed(run);
      assert.equal(
        result.violation,
        null,
        `${result.violation}\nreproduce: ${reproduceCommand(run)}`,
      );
      const counts = result.stats.hooks!;
      totals.ok += counts.ok;
      totals.failed += counts.failed;
      totals.died += counts.died;
      totals.arrivals += counts.arrivals;
      totals.hooks += counts.hooks;
    }
  }
  const text = JSON.stringify(totals);
  assert.equal(totals.hooks >= 2 * HOOKS_CLEAN_SEEDS, true, text);
  assert.ok(totals.ok > 100, text);
  assert.ok(totals.failed > 0, text);
  assert.ok(totals.died > 0, text);
  assert.ok(totals.arrivals >= totals.ok + totals.failed, text);
});

Deno.test("runSeed() with --services hooks is a function of its seed (same trace twice)", async () => {
  const run = options(3, { services: ["hooks"], trace: true });
  const first = await runSeed(run);
  const second = await runSeed(run);
  assert.equal(first.violation, null, first.violation ?? "");
  assert.ok(first.trace!.some((line) => line.includes("hooks worker")));
  assert.deepEqual(second.trace, first.trace);
  assert.deepEqual(second.stats.hooks, first.stats.hooks);
});

for (const bug of HOOKS_BUGS) {
  Deno.test(`runSeed() finds the hooks planted bug '${bug}' within ${BUG_SEED_CAP} seeds, its seed reproduces it, and passes without it`, async () => {
    let found: SeedResult | null = null;
    let run: SimOptions | null = null;
    for (let seed = 1; seed <= BUG_SEED_CAP && found === null; seed++) {
      run = options(seed, { bug });
      const result = await runSeed(run);
      if (result.violation !== null) found = result;
    }
    assert.ok(found !== null, `'${bug}' not found in ${BUG_SEED_CAP} seeds`);
    console.log(
      `'${bug}' found at seed ${found.seed}: ${found.violation}\nreproduce: ${
        reproduceCommand(run!)
      }`,
    );
    // A delivered event delivered again by the next worker (a second
    // finished record of one attempt), or a cursor left behind an ok
    // delivery (no begin came after it).
    assert.match(
      found.violation!,
      /^hooks: hook .*: (attempt \S+ has \d+ finished delivery records|its cursor .* is behind event)/,
    );
    const again = await runSeed(run!);
    assert.equal(again.violation, found.violation);
    const clean = options(found.seed, { services: ["hooks"] });
    const without = await runSeed(clean);
    assert.equal(
      without.violation,
      null,
      `${without.violation}\nreproduce: ${reproduceCommand(clean)}`,
    );
  });
}
