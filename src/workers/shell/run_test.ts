/**
 * runShellJob() with real processes under setsid: whole groups killed on
 * timeout, abort and exit; output capture; the cleared environment; argv
 * verbatim; policy refusals. Every test closes its runner and then opens
 * a registry on the same state folder, which SIGKILLs any group still
 * recorded there (by pgid, checked by start time).
 */
import assert from "node:assert/strict";
import { waitFor } from "../../../tests/helpers/wait_for.ts";
import { GroupRegistry, groupsFolder } from "./groups.ts";
import { ShellPolicyError, type ShellPolicyOptions } from "./policy.ts";
import { commandTable, defaultProcessTable } from "./proc_table.ts";
import { ShellRunner } from "./run.ts";

const table = defaultProcessTable();

/** Opens a runner on a fresh state folder, runs `body`, then cleans up. */
async function withRunner(
  options: Partial<ShellPolicyOptions>,
  body: (runner: ShellRunner, top: string) => Promise<void>,
): Promise<void> {
  const top = await Deno.makeTempDir({ prefix: "aspen-shell-run-" });
  const stateDir = `${top}/state`;
  const runner = await ShellRunner.open({
    allowCommands: [
      "/bin/sh",
      "/bin/sleep",
      "/usr/bin/env",
      "/usr/bin/printf",
      "/bin/cat",
      "/bin/pwd",
    ],
    // Long: a child that dies of SIGTERM never waits it out, and a loaded
    // machine must not turn its SIGTERM death into a SIGKILL. Tests of the
    // grace set their own.
    graceMs: 10_000,
    stateDir,
    ...options,
  }, table);
  try {
    await body(runner, top);
  } finally {
    runner.close();
    // Kills whatever group a failed test left recorded.
    const { registry } = await GroupRegistry.open(stateDir, table);
    registry.close();
    await Deno.remove(top, { recursive: true });
  }
}

/** The live (not zombie) processes of group `pgid`. */
async function liveMembers(pgid: number): Promise<number[]> {
  const members = await table.members(pgid);
  return members.filter((p) => p.state !== "Z").map((p) => p.pid);
}

/** True when `pid` is gone or a zombie. */
async function dead(pid: number): Promise<boolean> {
  const info = await table.stat(pid);
  return info === null || info.state === "Z";
}

async function recordNames(stateDir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(groupsFolder(stateDir))) {
    if (entry.name.endsWith(".json")) names.push(entry.name);
  }
  return names;
}

Deno.test("runShellJob() runs argv verbatim, without a shell", async () => {
  await withRunner({}, async (runner) => {
    const items = [
      "a b",
      "'single'",
      '"double"',
      "$(id)",
      "`id`",
      "*",
      "$HOME",
      "",
      "-n",
      "--",
      "é",
    ];
    const result = await runner.run(
      { argv: ["/usr/bin/printf", "%s\\n", ...items] },
      { jobId: "argv-1", attempt: 1 },
    );
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout.head, items.map((item) => `${item}\n`).join(""));
    assert.equal(result.stdout.truncated, false);
    assert.equal(result.stderr.bytes, 0);
  });
});

Deno.test("runShellJob() starts the child as leader of its own process group", async () => {
  await withRunner({}, async (runner) => {
    // $$ is the shell's pid; field 5 of /proc/self/stat read by cat is its pgid.
    const result = await runner.run(
      { argv: ["/bin/sh", "-c", 'echo $$; cut -d" " -f5 /proc/$$/stat'] },
      { jobId: "group-1", attempt: 1 },
    );
    const [pid, pgid] = result.stdout.head.trim().split("\n").map(Number);
    assert.equal(pid, result.pid);
    assert.equal(pgid, result.pid);
  });
});

Deno.test("runShellJob() clears the environment but for allowed names", async () => {
  Deno.env.set("ASPEN_TOKEN", "secret-token");
  Deno.env.set("ASPEN_SHELL_TEST_OTHER", "other");
  Deno.env.set("TZ", "Europe/Berlin");
  try {
    await withRunner({ jobEnvAllow: ["GREETING"] }, async (runner) => {
      const result = await runner.run(
        { argv: ["/usr/bin/env"], env: { GREETING: "hello world" } },
        { jobId: "env-1", attempt: 3 },
      );
      assert.equal(result.exitCode, 0);
      const lines = result.stdout.head.trim().split("\n");
      const seen = Object.fromEntries(lines.map((line) => {
        const at = line.indexOf("=");
        return [line.slice(0, at), line.slice(at + 1)];
      }));
      const expected: Record<string, string> = {
        GREETING: "hello world",
        ASPEN_JOB_ID: "env-1",
        ASPEN_JOB_ATTEMPT: "3",
        TZ: "Europe/Berlin",
      };
      for (const name of ["PATH", "LANG"]) {
        const value = Deno.env.get(name);
        if (value !== undefined) expected[name] = value;
      }
      assert.deepEqual(seen, expected);
      assert.equal(result.stdout.head.includes("secret-token"), false);
    });
  } finally {
    Deno.env.delete("ASPEN_TOKEN");
    Deno.env.delete("ASPEN_SHELL_TEST_OTHER");
    Deno.env.delete("TZ");
  }
});

Deno.test("runShellJob() keeps the head and tail of 300,000 bytes of stdout", async () => {
  await withRunner({}, async (runner) => {
    const result = await runner.run(
      {
        argv: ["/bin/sh", "-c", "seq 1 100000 | head -c 300000; echo oops >&2"],
      },
      { jobId: "output-1", attempt: 1 },
    );
    const all = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join("")
      .slice(0, 300_000);
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout.bytes, 300_000);
    assert.equal(result.stdout.truncated, true);
    assert.equal(result.stdout.head, all.slice(0, 16 * 1024));
    assert.equal(result.stdout.tail, all.slice(-16 * 1024));
    assert.deepEqual(result.stderr, {
      head: "oops\n",
      tail: "",
      bytes: 5,
      truncated: false,
    });
  });
});

Deno.test("runShellJob() writes stdin, then closes it", async () => {
  await withRunner({}, async (runner) => {
    const result = await runner.run(
      { argv: ["/bin/cat"], stdin: "line one\nline two\n" },
      { jobId: "stdin-1", attempt: 1 },
    );
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout.head, "line one\nline two\n");
  });
});

Deno.test("runShellJob() reports an exit status as a result", async () => {
  await withRunner({}, async (runner, top) => {
    const result = await runner.run(
      { argv: ["/bin/sh", "-c", "exit 3"] },
      { jobId: "exit-1", attempt: 1 },
    );
    assert.equal(result.exitCode, 3);
    assert.equal(result.signal, null);
    assert.equal(result.timedOut, false);
    assert.equal(result.killedWith, null);
    // The attempt's fresh folder and its group record are gone.
    assert.deepEqual(await recordNames(`${top}/state`), []);
    await assert.rejects(
      Deno.stat(`${top}/state/attempts/exit-1.1`),
      Deno.errors.NotFound,
    );
  });
});

Deno.test("runShellJob() on timeout leaves nothing of the group", async (t) => {
  await withRunner({}, async (runner, top) => {
    await t.step("a sleep past the timeout", async () => {
      const result = await runner.run(
        { argv: ["/bin/sleep", "300"], timeoutMs: 300 },
        { jobId: "timeout-1", attempt: 1 },
      );
      assert.equal(result.timedOut, true);
      assert.equal(result.killedWith, "SIGTERM");
      assert.equal(result.signal, "SIGTERM");
      assert.equal(result.exitCode, null);
      assert.deepEqual(await liveMembers(result.pid), []);
    });
    await t.step("a shell with a background grandchild", async () => {
      const result = await runner.run(
        { argv: ["/bin/sh", "-c", "sleep 300 & sleep 300"], timeoutMs: 1_000 },
        { jobId: "timeout-2", attempt: 1 },
      );
      assert.equal(result.timedOut, true);
      assert.equal(result.killedWith, "SIGTERM");
      assert.deepEqual(await liveMembers(result.pid), []);
    });
    assert.deepEqual(await recordNames(`${top}/state`), []);
  });
});

Deno.test("runShellJob() on abort kills the child and its grandchild", async () => {
  await withRunner({ cwdRoot: "/tmp" }, async (runner, top) => {
    const controller = new AbortController();
    const running = runner.run(
      {
        argv: [
          "/bin/sh",
          "-c",
          "sleep 300 & echo $! > bg.tmp; mv bg.tmp bg; sleep 300",
        ],
        cwd: top,
      },
      { jobId: "abort-1", attempt: 1, signal: controller.signal },
    );
    const grandchild = await readPidFile(`${top}/bg`);
    assert.equal((await table.stat(grandchild))?.state !== "Z", true);
    controller.abort();
    const result = await running;
    assert.equal(result.timedOut, false);
    assert.equal(result.killedWith, "SIGTERM");
    assert.equal(result.signal, "SIGTERM");
    assert.equal(await dead(grandchild), true);
    assert.deepEqual(await liveMembers(result.pid), []);
  });
});

Deno.test("runShellJob() kills what is left of the group when the child exits", async () => {
  await withRunner({}, async (runner) => {
    const result = await runner.run(
      { argv: ["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"] },
      { jobId: "leftover-1", attempt: 1 },
    );
    assert.equal(result.exitCode, 0);
    assert.equal(result.killedWith, null);
    const grandchild = Number(result.stdout.head.trim());
    assert.equal(Number.isSafeInteger(grandchild) && grandchild > 1, true);
    assert.equal(await dead(grandchild), true);
    assert.deepEqual(await liveMembers(result.pid), []);
  });
});

Deno.test("runShellJob() ends a child that ignores SIGTERM with SIGKILL after the grace", async () => {
  await withRunner({ cwdRoot: "/tmp", graceMs: 300 }, async (runner, top) => {
    const controller = new AbortController();
    const running = runner.run(
      {
        argv: [
          "/bin/sh",
          "-c",
          "trap '' TERM; echo $$ > ready.tmp; mv ready.tmp ready; sleep 300; sleep 300",
        ],
        cwd: top,
      },
      { jobId: "trap-1", attempt: 1, signal: controller.signal },
    );
    const pid = await readPidFile(`${top}/ready`);
    controller.abort();
    const result = await running;
    assert.equal(result.pid, pid);
    assert.equal(result.killedWith, "SIGKILL");
    assert.equal(result.signal, "SIGKILL");
    assert.deepEqual(await liveMembers(result.pid), []);
  });
});

Deno.test("runShellJob() refuses a payload the policy does not allow, running nothing", async (t) => {
  await withRunner(
    { cwdRoot: "/tmp" },
    async (runner, top) => {
      const cases = [
        {
          name: "a command not allowed",
          payload: { argv: ["/bin/rm", `${top}/x`] },
          code: "commandNotAllowed",
        },
        {
          name: "an env name not allowed",
          payload: { argv: ["/usr/bin/env"], env: { HOME: "/" } },
          code: "envNotAllowed",
        },
        {
          name: "a cwd escaping the root",
          payload: { argv: ["/bin/pwd"], cwd: "../.." },
          code: "cwdNotAllowed",
        },
      ];
      for (const { name, payload, code } of cases) {
        await t.step(name, async () => {
          await assert.rejects(
            runner.run(payload, { jobId: "refused-1", attempt: 1 }),
            (error: unknown) =>
              error instanceof ShellPolicyError && error.code === code,
          );
        });
      }
      assert.deepEqual(await recordNames(`${top}/state`), []);
    },
  );
});

Deno.test("runShellJob() runs in a cwd under the root", async () => {
  await withRunner({ cwdRoot: "/tmp" }, async (runner, top) => {
    await Deno.mkdir(`${top}/work`);
    const result = await runner.run(
      { argv: ["/bin/pwd"], cwd: `${top}/work` },
      { jobId: "cwd-1", attempt: 1 },
    );
    assert.equal(result.stdout.head, `${await Deno.realPath(`${top}/work`)}\n`);
  });
});

/** Waits for a file holding a pid (written with a rename: never half). */
async function readPidFile(path: string): Promise<number> {
  let pid = 0;
  await waitFor(`a pid in ${path}`, async () => {
    try {
      pid = Number((await Deno.readTextFile(path)).trim());
      return Number.isSafeInteger(pid) && pid > 1;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }, 30_000);
  return pid;
}

Deno.test("defaultProcessTable() reads through commands under the test gate's permissions", async () => {
  // The gate grants no --allow-all, which Deno asks for other processes' /proc files.
  assert.equal(table, commandTable);
  const self = await table.stat(Deno.pid);
  assert.equal(self?.pid, Deno.pid);
});

Deno.test("ShellRunner.open() refuses a cwdRoot that is not a folder, before any work", async () => {
  const top = await Deno.makeTempDir({ prefix: "aspen-shell-open-" });
  try {
    await assert.rejects(
      ShellRunner.open({
        allowCommands: ["/bin/true"],
        cwdRoot: `${top}/missing`,
        stateDir: `${top}/state`,
      }, table),
      RangeError,
    );
    await assert.rejects(Deno.stat(`${top}/state`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});
