/**
 * The Jepsen-style lock test of issue 16 with real processes: 3 node
 * processes and 5 lock client processes (`helpers/lock_history_client.ts`)
 * looping acquire (TTL 3 s) → read `["reg"]` → write it with `checkFence` →
 * release, while a seeded nemesis kill -9s and SIGSTOPs the leader and
 * SIGSTOPs holders past their TTL before SIGCONT, so stale holders do write.
 * In the history (`helpers/lock_history.ts`) no accepted write may carry a
 * token older than a grant made before its revision, and at least one
 * stale write must have been refused. The control run (the same without
 * `checkFence`) must fail that checker: it pauses a holder past its TTL
 * until another client holds the lock, so a stale write is accepted by
 * construction, not by luck.
 *
 * The seed of the nemesis is printed; set ASPEN_LOCK_TEST_SEED to replay
 * its choices (timing still varies). The checker's own tests over
 * hand-made histories come first.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  checkLockHistory,
  type LockEvent,
  type LockHistoryReport,
  parseLockEvents,
  revisionOf,
} from "./helpers/lock_history.ts";
import type { LockClientOptions } from "./helpers/lock_history_client.ts";
import {
  type ProcessCluster,
  withProcessCluster,
} from "./helpers/process_cluster.ts";
import { runNemesis, seededRandom } from "./helpers/process_history.ts";
import { lines } from "./helpers/stream_lines.ts";

function stamp(revision: number, counter = 0): string {
  return revision.toString(16).padStart(16, "0") +
    counter.toString(16).padStart(4, "0");
}

function grant(client: number, revision: number): LockEvent {
  return {
    type: "grant",
    client,
    name: "reg",
    lease: `${client}`.padStart(16, "0"),
    token: stamp(revision),
  };
}

function write(
  client: number,
  tokenRevision: number,
  outcome: "accepted" | "refused" | "unknown",
  revision?: number,
): LockEvent {
  return {
    type: "write",
    client,
    name: "reg",
    token: stamp(tokenRevision),
    outcome,
    ...(revision === undefined ? {} : { versionstamp: stamp(revision, 1) }),
  };
}

Deno.test("revisionOf() reads a token's revision and refuses other text", () => {
  assert.equal(revisionOf(stamp(0x1234, 7)), 0x1234);
  assert.throws(() => revisionOf("zz"), TypeError);
});

Deno.test("checkLockHistory() passes writes made while their token held", () => {
  const report = checkLockHistory([
    grant(1, 10),
    write(1, 10, "accepted", 12),
    grant(2, 14),
    write(2, 14, "accepted", 15),
    // A stale holder's fenced write refused, and one with no answer.
    write(1, 10, "refused"),
    write(3, 9, "unknown"),
  ]);
  assert.deepEqual(report, {
    grants: 2,
    accepted: 2,
    refused: 1,
    unknown: 1,
    failed: 0,
    stale: [],
  });
});

Deno.test("checkLockHistory() finds an accepted write whose token a newer grant had replaced", () => {
  const report = checkLockHistory([
    grant(1, 10),
    grant(2, 14),
    write(2, 14, "accepted", 15),
    // Client 1 was paused past its TTL and wrote after the lock moved.
    write(1, 10, "accepted", 16),
  ]);
  assert.equal(report.stale.length, 1);
  assert.match(
    report.stale[0]!,
    /^client 1 wrote 'reg' at revision 16 with token 0+a0000, but token 0+e0000 was granted at revision 14/,
  );
});

Deno.test("checkLockHistory() does not blame a write applied before the newer grant", () => {
  const report = checkLockHistory([
    grant(1, 10),
    write(1, 10, "accepted", 13),
    grant(2, 14),
  ]);
  assert.deepEqual(report.stale, []);
});

Deno.test("checkLockHistory() refuses an accepted write without its versionstamp", () => {
  assert.throws(
    () => checkLockHistory([write(1, 10, "accepted")]),
    TypeError,
  );
});

Deno.test("parseLockEvents() keeps event lines and skips logs and cut lines", () => {
  const events = parseLockEvents([
    "starting",
    JSON.stringify(grant(1, 10)),
    '{"type":"write","cli',
    JSON.stringify({ type: "other" }),
    JSON.stringify(write(1, 10, "refused")),
  ]);
  assert.deepEqual(events, [grant(1, 10), write(1, 10, "refused")]);
});

// --- The process test --------------------------------------------------------

const CLIENT = new URL("./helpers/lock_history_client.ts", import.meta.url)
  .pathname;
const CLIENTS = 5;
const LOCK_TTL_MS = 3_000;
/** A holder's pause between its read and its write (the nemesis' window). */
const WORK_MS = 300;
/** The fenced run's faulty phase; the control run's. */
const FENCED_LOAD_MS = 25_000;
const CONTROL_LOAD_MS = 6_000;
/** Attempts of the forced stale write (each pauses one holder). */
const FORCED_ATTEMPTS = 3;
/** How long a paused holder waits for another client's grant, at most. */
const HOLDER_PAUSE_MS_MAX = 15_000;
/** A client's whole life, after which it is killed whatever happens. */
const CLIENT_DEADLINE_MS = 120_000;

interface LockClientProcess {
  readonly id: number;
  readonly child: Deno.ChildProcess;
  readonly done: Promise<void>;
  paused: boolean;
}

/** The lock clients of one run and the events they printed, in arrival order. */
class LockClients {
  readonly events: LockEvent[] = [];
  readonly stderr: string[] = [];
  readonly processes: LockClientProcess[] = [];
  readonly #listeners = new Set<(event: LockEvent) => void>();

  constructor(cluster: ProcessCluster, token: string, fenced: boolean) {
    for (let id = 0; id < CLIENTS; id++) {
      const options: LockClientOptions = {
        client: id,
        urls: cluster.urls,
        token,
        name: "reg",
        fenced,
        untilMs: Date.now() + CLIENT_DEADLINE_MS,
        ttlMs: LOCK_TTL_MS,
        workMs: WORK_MS,
      };
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-net=127.0.0.1", CLIENT, JSON.stringify(options)],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const done = Promise.all([
        lines(child.stdout, (line) => {
          for (const event of parseLockEvents([line])) {
            this.events.push(event);
            for (const listener of this.#listeners) listener(event);
          }
        }),
        lines(child.stderr, (line) => {
          this.stderr.push(`client ${id}: ${line}`);
          if (this.stderr.length > 50) this.stderr.shift();
        }),
        child.status,
      ]).then(() => {});
      this.processes.push({ id, child, done, paused: false });
    }
  }

  /** Resolves with the first event from now on that passes `test`, or null after `timeoutMs`. */
  next(
    test: (event: LockEvent) => boolean,
    timeoutMs: number,
  ): Promise<LockEvent | null> {
    return new Promise((resolve) => {
      const listener = (event: LockEvent) => {
        if (!test(event)) return;
        finish(event);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      const finish = (event: LockEvent | null) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(event);
      };
      this.#listeners.add(listener);
    });
  }

  signal(id: number, signal: "SIGSTOP" | "SIGCONT"): void {
    const process = this.processes[id]!;
    try {
      process.child.kill(signal);
      process.paused = signal === "SIGSTOP";
    } catch {
      // Already exited.
    }
  }

  /** Kills every client and waits for their output. */
  async close(): Promise<void> {
    for (const process of this.processes) {
      try {
        process.child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
    }
    await Promise.all(this.processes.map((process) => process.done));
  }
}

/**
 * Pauses the next holder (SIGSTOP right after its grant, inside its work
 * pause) until another client is granted a newer token (its lease expired
 * meanwhile), then lets it run: it writes with its old token.
 *
 * @returns The paused holder's write, or null when no grant, no newer grant
 *   or no write came in time.
 */
async function pauseHolderPastTtl(
  clients: LockClients,
  log: (line: string) => void,
  grantWaitMs = 10_000,
): Promise<LockEvent | null> {
  const grant = await clients.next(
    (event) => event.type === "grant",
    grantWaitMs,
  );
  if (grant === null || grant.type !== "grant") return null;
  clients.signal(grant.client, "SIGSTOP");
  log(`SIGSTOP client ${grant.client} holding ${grant.token}`);
  const newer = await clients.next(
    (event) =>
      event.type === "grant" && event.client !== grant.client &&
      event.token > grant.token,
    HOLDER_PAUSE_MS_MAX,
  );
  const write = clients.next(
    (event) =>
      event.type === "write" && event.client === grant.client &&
      event.token === grant.token,
    10_000,
  );
  clients.signal(grant.client, "SIGCONT");
  log(
    `SIGCONT client ${grant.client} (${
      newer === null
        ? "no newer grant"
        : `newer grant ${newer.type === "grant" ? newer.token : ""}`
    })`,
  );
  return newer === null ? null : await write;
}

/** Seeded holder pauses until `until`, beside the node nemesis. */
async function holderNemesis(
  clients: LockClients,
  until: number,
  random: () => number,
  log: (line: string) => void,
): Promise<void> {
  while (Date.now() < until) {
    await new Promise((resolve) =>
      setTimeout(resolve, 1_000 + random() * 3_000)
    );
    if (Date.now() >= until) return;
    await pauseHolderPastTtl(clients, log, Math.max(1, until - Date.now()));
  }
}

interface LockRun {
  readonly report: LockHistoryReport;
  readonly faults: readonly string[];
  readonly events: readonly LockEvent[];
}

/**
 * One run: 5 clients on 3 nodes for `loadMs` under the seeded nemesis (node
 * faults and holder pauses), then holder pauses on a healthy cluster until
 * one yields the stale write the run must show (a refused one when fenced,
 * an accepted one in the control run), up to {@linkcode FORCED_ATTEMPTS}.
 */
async function runLocks(
  fenced: boolean,
  loadMs: number,
  seed: number,
): Promise<LockRun> {
  return await withProcessCluster({ count: 3 }, async (cluster) => {
    await cluster.waitForLeader();
    const token = await cluster.token();
    const faults: string[] = [];
    const log = (line: string) =>
      faults.push(`@${performance.now().toFixed(0)} ${line}`);
    const clients = new LockClients(cluster, token, fenced);
    try {
      const until = Date.now() + loadMs;
      await Promise.all([
        runNemesis(cluster, { until, random: seededRandom(seed), log }),
        holderNemesis(clients, until, seededRandom(seed ^ 0x10c), log),
      ]);
      await cluster.waitForLeader(30_000);
      for (let attempt = 0; attempt < FORCED_ATTEMPTS; attempt++) {
        const write = await pauseHolderPastTtl(clients, log);
        if (write?.type !== "write") continue;
        const wanted = fenced ? "refused" : "accepted";
        if (write.outcome === wanted) break;
      }
    } finally {
      await clients.close();
    }
    if (clients.events.some((event) => event.type === "error")) {
      throw new Error(
        `A lock client failed: ${
          JSON.stringify(
            clients.events.filter((event) => event.type === "error"),
          )
        }\n${clients.stderr.join("\n")}`,
      );
    }
    return {
      report: checkLockHistory(clients.events),
      faults,
      events: clients.events,
    };
  });
}

function lockSeed(): number {
  const text = Deno.env.get("ASPEN_LOCK_TEST_SEED");
  const seed = text === undefined
    ? Math.floor(Math.random() * 2 ** 31)
    : Number(text);
  console.log(
    `lock test seed ${seed} (ASPEN_LOCK_TEST_SEED=${seed} replays it)`,
  );
  return seed;
}

function summary(run: LockRun, seed: number): string {
  const { stale: _, ...counts } = run.report;
  return `seed ${seed} (ASPEN_LOCK_TEST_SEED=${seed}): ${
    JSON.stringify(counts)
  }; faults: ${run.faults.join("; ")}`;
}

Deno.test({
  name:
    "5 lock client processes on 3 nodes under kill -9, SIGSTOP of the leader and of holders past their TTL: no accepted write carries a stale token, and a stale write was refused",
  fn: async () => {
    const seed = lockSeed();
    const run = await runLocks(true, FENCED_LOAD_MS, seed);
    console.log(summary(run, seed));
    assert.deepEqual(run.report.stale, [], summary(run, seed));
    assert.ok(run.report.grants > CLIENTS, summary(run, seed));
    assert.ok(run.report.accepted > CLIENTS, summary(run, seed));
    assert.ok(
      run.report.refused >= 1,
      `no stale write refused: ${summary(run, seed)}`,
    );
  },
});

Deno.test({
  name:
    "the control run (the same writes without checkFence) fails the checker: a holder paused past its TTL writes after another grant",
  fn: async () => {
    const seed = lockSeed();
    const run = await runLocks(false, CONTROL_LOAD_MS, seed);
    console.log(summary(run, seed));
    assert.ok(
      run.report.stale.length >= 1,
      `no stale write accepted: ${summary(run, seed)}`,
    );
    console.log(`control run's stale writes: ${run.report.stale.join("; ")}`);
  },
});
