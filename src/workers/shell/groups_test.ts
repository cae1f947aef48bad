/**
 * Group records and the predecessor cleanup with real `setsid` groups the
 * test starts itself (and stops by pid in finally).
 */
import assert from "node:assert/strict";
import { lines } from "../../../tests/helpers/stream_lines.ts";
import { waitFor } from "../../../tests/helpers/wait_for.ts";
import {
  GroupRegistry,
  groupsFolder,
  signalGroup,
  StateDirLockedError,
  writeGroupRecord,
} from "./groups.ts";
import { defaultProcessTable, parseStat } from "./proc_table.ts";
import { ShellRunner } from "./run.ts";

const table = defaultProcessTable();

/** Starts `setsid sleep 300` and waits until it leads its own group. */
async function startGroup(): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("/usr/bin/setsid", {
    args: ["--", "/bin/sleep", "300"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    clearEnv: true,
  }).spawn();
  try {
    await waitFor(
      "the sleep to lead its own group",
      async () => (await table.stat(child.pid))?.pgid === child.pid,
      30_000,
    );
  } catch (error) {
    await stop(child);
    throw error;
  }
  return child;
}

/** Stops a child this test started, by its pid, and reaps it. */
async function stop(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
  try {
    child.kill("SIGKILL");
  } catch (error) {
    // Already exited: kill() on a reaped child throws TypeError.
    if (!(error instanceof TypeError)) throw error;
  }
  return await child.status;
}

async function withStateDir(body: (stateDir: string) => Promise<void>) {
  const top = await Deno.makeTempDir({ prefix: "aspen-shell-groups-" });
  try {
    await body(`${top}/state`);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
}

Deno.test("parseStat() reads pid, state, pgid and start time past a tricky name", () => {
  const line = "4242 (a) (b c) S 1 4242 4242 0 -1 4194304 144 0 0 0 0 0 0 0 " +
    "20 0 1 0 7270536 2125824 1 18446744073709551615";
  assert.deepEqual(parseStat(line), {
    pid: 4242,
    pgid: 4242,
    state: "S",
    startTimeTicks: 7270536,
  });
  assert.equal(parseStat(""), null);
  assert.equal(parseStat("4242 (x) S 1"), null);
});

Deno.test("ShellRunner.open() kills the groups its predecessor recorded", async () => {
  await withStateDir(async (stateDir) => {
    const child = await startGroup();
    try {
      const leader = await table.stat(child.pid);
      assert.notEqual(leader, null);
      await writeGroupRecord(stateDir, {
        pgid: child.pid,
        startTimeTicks: leader!.startTimeTicks,
        jobId: "orphan-1",
        attempt: 1,
      });
      const runner = await ShellRunner.open({
        allowCommands: ["/bin/true"],
        stateDir,
      }, table);
      try {
        assert.deepEqual(runner.cleanup.killed, [child.pid]);
        const status = await child.status;
        assert.equal(status.signal, "SIGKILL");
      } finally {
        runner.close();
      }
      assert.deepEqual(await recordNames(stateDir), []);
    } finally {
      await stop(child);
    }
  });
});

Deno.test("ShellRunner.open() leaves a group whose start time does not match", async () => {
  await withStateDir(async (stateDir) => {
    const child = await startGroup();
    try {
      const leader = await table.stat(child.pid);
      assert.notEqual(leader, null);
      // The same pid, another start: the pid was reused by someone else.
      await writeGroupRecord(stateDir, {
        pgid: child.pid,
        startTimeTicks: leader!.startTimeTicks + 1,
        jobId: "orphan-2",
        attempt: 1,
      });
      const runner = await ShellRunner.open({
        allowCommands: ["/bin/true"],
        stateDir,
      }, table);
      try {
        assert.deepEqual(runner.cleanup.reused, [child.pid]);
        assert.deepEqual(runner.cleanup.killed, []);
      } finally {
        runner.close();
      }
      const still = await table.stat(child.pid);
      assert.equal(still?.state !== undefined && still.state !== "Z", true);
      assert.equal(still?.startTimeTicks, leader!.startTimeTicks);
      // The record is dropped: the next start does not judge it again.
      assert.deepEqual(await recordNames(stateDir), []);
    } finally {
      const status = await stop(child);
      assert.equal(status.signal, "SIGKILL");
    }
  });
});

Deno.test("GroupRegistry.open() counts gone groups and drops bad records", async () => {
  await withStateDir(async (stateDir) => {
    // A pid that has exited: a process started and reaped here.
    const done = await new Deno.Command("/bin/true").spawn();
    await done.status;
    await writeGroupRecord(stateDir, {
      pgid: done.pid,
      startTimeTicks: 1,
      jobId: "gone-1",
      attempt: 1,
    });
    await Deno.writeTextFile(`${groupsFolder(stateDir)}/7.json`, "{not json");
    const { registry, cleanup } = await GroupRegistry.open(stateDir, table);
    registry.close();
    // Unless another process took the pid since (then it is "reused").
    assert.equal(
      cleanup.gone.includes(done.pid) || cleanup.reused.includes(done.pid),
      true,
    );
    assert.deepEqual(cleanup.killed, []);
    assert.deepEqual(cleanup.invalid, ["7.json"]);
    assert.deepEqual(await recordNames(stateDir), []);
  });
});

Deno.test("GroupRegistry.open() refuses a state folder another registry holds", async () => {
  await withStateDir(async (stateDir) => {
    const first = await GroupRegistry.open(stateDir, table);
    try {
      await assert.rejects(
        GroupRegistry.open(stateDir, table),
        StateDirLockedError,
      );
    } finally {
      first.registry.close();
    }
    const again = await GroupRegistry.open(stateDir, table);
    again.registry.close();
    await assert.rejects(again.registry.record(2, "x", 1), TypeError);
  });
});

Deno.test("signalGroup() is false for a group that does not exist", async () => {
  const done = await new Deno.Command("/bin/true").spawn();
  await done.status;
  // A reaped child's pid names no group unless reused; a new group would
  // need a process of that pid to make itself leader.
  const info = await table.stat(done.pid);
  if (info === null) assert.equal(signalGroup(done.pid, "SIGCONT"), false);
  assert.throws(() => signalGroup(1, "SIGCONT"), RangeError);
  assert.throws(() => signalGroup(-5, "SIGCONT"), RangeError);
});

async function recordNames(stateDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(groupsFolder(stateDir))) {
    if (entry.name.endsWith(".json")) names.push(entry.name);
  }
  return names;
}

Deno.test("a worker restarted after kill -9 kills the orphaned group", async () => {
  await withStateDir(async (stateDir) => {
    const script = new URL(
      "../../../tests/helpers/shell_runner_process.ts",
      import.meta.url,
    ).pathname;
    const worker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        // --allow-all: the worker reads /proc itself (procfsTable), the
        // test through ps and cat, so both adapters meet on one record.
        "--allow-all",
        script,
        stateDir,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let pgid = 0;
    try {
      const printed: string[] = [];
      const reading = lines(worker.stdout, (line) => printed.push(line));
      await waitFor(
        () =>
          `the worker to record its group (printed ${printed.length} lines)`,
        () => printed.some((line) => line.startsWith('{"running"')),
        60_000,
      );
      pgid = JSON.parse(printed.find((l) => l.startsWith('{"running"'))!)
        .running;
      worker.kill("SIGKILL");
      assert.equal((await worker.status).signal, "SIGKILL");
      await reading;
      // The group outlives its worker: setsid took it out of the worker's.
      assert.equal(await liveCount(pgid) >= 1, true);
      const runner = await ShellRunner.open({
        allowCommands: ["/bin/true"],
        stateDir,
      }, table);
      try {
        assert.deepEqual(runner.cleanup.killed, [pgid]);
      } finally {
        runner.close();
      }
      await waitFor(
        "the orphaned group to die",
        async () => await liveCount(pgid) === 0,
        30_000,
      );
    } finally {
      await stop(worker);
      if (pgid > 1) signalGroup(pgid, "SIGKILL");
    }
  });
});

/** How many live (not zombie) processes group `pgid` has. */
async function liveCount(pgid: number): Promise<number> {
  return (await table.members(pgid)).filter((p) => p.state !== "Z").length;
}

Deno.test("GroupRegistry.open() judges a group whose leader left by its members' start times", async (t) => {
  for (
    const { name, offsetTicks, verdict } of [
      {
        name: "members started after the leader: killed",
        offsetTicks: 0,
        verdict: "killed",
      },
      {
        name: "a member started before the record: left",
        offsetTicks: 1,
        verdict: "reused",
      },
    ] as const
  ) {
    await t.step(name, async () => {
      await withStateDir(async (stateDir) => {
        // The leader starts a member and exits; the member keeps the group.
        const leader = new Deno.Command("/usr/bin/setsid", {
          args: ["--", "/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"],
          stdin: "null",
          stdout: "piped",
          stderr: "null",
          clearEnv: true,
        }).spawn();
        const pgid = leader.pid;
        let member = 0;
        try {
          const output = await leader.output();
          member = Number(new TextDecoder().decode(output.stdout).trim());
          assert.equal(Number.isSafeInteger(member) && member > 1, true);
          const info = await table.stat(member);
          assert.equal(info?.pgid, pgid);
          assert.equal(await table.stat(pgid), null);
          await writeGroupRecord(stateDir, {
            pgid,
            // A leader starts no later than its members; +1 is after one.
            startTimeTicks: info!.startTimeTicks + offsetTicks,
            jobId: "orphan-3",
            attempt: 1,
          });
          const { registry, cleanup } = await GroupRegistry.open(
            stateDir,
            table,
          );
          registry.close();
          assert.deepEqual(cleanup[verdict], [pgid]);
          if (verdict === "killed") {
            await waitFor(
              "the member to die",
              async () => await liveCount(pgid) === 0,
              30_000,
            );
          } else {
            assert.equal(await liveCount(pgid), 1);
          }
        } finally {
          if (member > 1) signalGroup(pgid, "SIGKILL");
        }
      });
    });
  }
});
