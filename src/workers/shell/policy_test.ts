import assert from "node:assert/strict";
import {
  ARGV_BYTES_MAX,
  ARGV_ITEMS_MAX,
  checkShellPayload,
  shellPolicy,
  ShellPolicyError,
  type ShellPolicyErrorCode,
} from "./policy.ts";
import { resolveWorkingFolder } from "./workdir.ts";

const policy = shellPolicy({
  allowCommands: ["/usr/bin/printf", "/bin/sleep"],
  jobEnvAllow: ["GREETING"],
  stateDir: "/tmp/aspen-shell-policy-unused",
});

Deno.test("shellPolicy() fills the defaults", () => {
  assert.deepEqual(policy.envAllow, ["PATH", "LANG", "TZ"]);
  assert.deepEqual(policy.jobEnvAllow, ["GREETING"]);
  assert.equal(policy.cwdRoot, null);
  assert.equal(policy.graceMs, 5_000);
  assert.equal(policy.outputHeadBytes, 16 * 1024);
  assert.equal(policy.outputTailBytes, 16 * 1024);
});

Deno.test("shellPolicy() refuses a bad configuration", async (t) => {
  const base = { allowCommands: ["/bin/true"], stateDir: "/tmp/x" };
  const cases = [
    { name: "no commands", options: { ...base, allowCommands: [] } },
    {
      name: "a relative command",
      options: { ...base, allowCommands: ["true"] },
    },
    {
      name: "a command with ..",
      options: { ...base, allowCommands: ["/usr/../bin/true"] },
    },
    { name: "a relative state folder", options: { ...base, stateDir: "data" } },
    {
      name: "a token in envAllow",
      options: { ...base, envAllow: ["ASPEN_TOKEN"] },
    },
    {
      name: "a reserved name in jobEnvAllow",
      options: { ...base, jobEnvAllow: ["ASPEN_JOB_ID"] },
    },
    { name: "an invalid name", options: { ...base, envAllow: ["A=B"] } },
    {
      name: "a head over 256 KiB",
      options: { ...base, outputHeadBytes: 256 * 1024 + 1 },
    },
    { name: "a negative grace", options: { ...base, graceMs: -1 } },
  ];
  for (const { name, options } of cases) {
    await t.step(name, () => {
      assert.throws(() => shellPolicy(options), RangeError);
    });
  }
});

Deno.test("checkShellPayload() refuses what the policy does not allow", async (t) => {
  const cases: {
    name: string;
    payload: unknown;
    code: ShellPolicyErrorCode;
  }[] = [
    { name: "not an object", payload: ["/bin/sleep"], code: "payloadInvalid" },
    {
      name: "an unknown field",
      payload: { argv: ["/bin/sleep", "1"], shell: true },
      code: "payloadInvalid",
    },
    {
      name: "a string argv",
      payload: { argv: "/bin/sleep 1" },
      code: "argvInvalid",
    },
    { name: "an empty argv", payload: { argv: [] }, code: "argvInvalid" },
    {
      name: "a non-string item",
      payload: { argv: ["/bin/sleep", 1] },
      code: "argvInvalid",
    },
    {
      name: "too many items",
      payload: { argv: ["/bin/sleep", ...Array(ARGV_ITEMS_MAX).fill("1")] },
      code: "argvInvalid",
    },
    {
      name: "too many bytes",
      payload: { argv: ["/usr/bin/printf", "x".repeat(ARGV_BYTES_MAX)] },
      code: "argvInvalid",
    },
    {
      name: "a command not allowed",
      payload: { argv: ["/bin/rm", "-rf", "/"] },
      code: "commandNotAllowed",
    },
    {
      name: "an allowed command by a relative name",
      payload: { argv: ["sleep", "1"] },
      code: "commandNotAllowed",
    },
    {
      name: "an env name not allowed",
      payload: { argv: ["/bin/sleep", "1"], env: { LD_PRELOAD: "/x.so" } },
      code: "envNotAllowed",
    },
    {
      name: "a non-string env value",
      payload: { argv: ["/bin/sleep", "1"], env: { GREETING: 1 } },
      code: "payloadInvalid",
    },
    {
      name: "a zero timeout",
      payload: { argv: ["/bin/sleep", "1"], timeoutMs: 0 },
      code: "payloadInvalid",
    },
    {
      name: "a timeout over 24 h",
      payload: { argv: ["/bin/sleep", "1"], timeoutMs: 86_400_001 },
      code: "payloadInvalid",
    },
  ];
  for (const { name, payload, code } of cases) {
    await t.step(name, () => {
      assert.throws(
        () => checkShellPayload(payload, policy),
        (error: unknown) =>
          error instanceof ShellPolicyError && error.code === code &&
          error.retryable === false,
      );
    });
  }
});

Deno.test("checkShellPayload() passes an allowed payload through", () => {
  const spec = checkShellPayload({
    argv: ["/usr/bin/printf", "%s", "$(id)"],
    env: { GREETING: "hi" },
    stdin: "in",
    timeoutMs: 1_000,
  }, policy);
  assert.deepEqual(spec, {
    argv: ["/usr/bin/printf", "%s", "$(id)"],
    cwd: null,
    env: { GREETING: "hi" },
    stdin: "in",
    timeoutMs: 1_000,
  });
});

Deno.test("resolveWorkingFolder() keeps cwd under the root after symlinks and ..", async (t) => {
  const top = await Deno.makeTempDir({ prefix: "aspen-shell-cwd-" });
  try {
    const root = `${top}/root`;
    await Deno.mkdir(`${root}/sub`, { recursive: true });
    await Deno.mkdir(`${top}/outside`);
    // Deno.symlink needs unscoped permissions; ln(1) needs --allow-run only.
    const ln = await new Deno.Command("/bin/ln", {
      args: ["-s", `${top}/outside`, `${root}/link`],
    }).output();
    assert.equal(ln.code, 0);
    await Deno.writeTextFile(`${root}/file`, "");
    const rooted = shellPolicy({
      allowCommands: ["/bin/true"],
      cwdRoot: root,
      stateDir: `${top}/state`,
    });
    const realRoot = await Deno.realPath(root);
    await t.step("a folder under the root", async () => {
      const folder = await resolveWorkingFolder(rooted, "sub", "job-1", 1);
      assert.deepEqual(folder, { path: `${realRoot}/sub`, fresh: false });
      const absolute = await resolveWorkingFolder(
        rooted,
        `${root}/sub/..`,
        "job-1",
        1,
      );
      assert.deepEqual(absolute, { path: realRoot, fresh: false });
    });
    for (
      const cwd of [
        "..",
        "sub/../..",
        "link",
        `${top}/outside`,
        "missing",
        "file",
        "/",
      ]
    ) {
      await t.step(`refuses '${cwd}'`, async () => {
        await assert.rejects(
          resolveWorkingFolder(rooted, cwd, "job-1", 1),
          (error: unknown) =>
            error instanceof ShellPolicyError && error.code === "cwdNotAllowed",
        );
      });
    }
    await t.step(
      "no cwd: a fresh folder of the attempt under the state folder",
      async () => {
        const folder = await resolveWorkingFolder(rooted, null, "job-1", 2);
        assert.equal(folder.fresh, true);
        assert.equal(
          folder.path,
          `${await Deno.realPath(`${top}/state`)}/attempts/job-1.2`,
        );
        assert.equal((await Deno.stat(folder.path)).isDirectory, true);
      },
    );
    await t.step("a cwd without a root is refused", async () => {
      const rootless = shellPolicy({
        allowCommands: ["/bin/true"],
        stateDir: `${top}/state`,
      });
      await assert.rejects(
        resolveWorkingFolder(rootless, "/tmp", "job-1", 1),
        (error: unknown) =>
          error instanceof ShellPolicyError && error.code === "cwdNotAllowed",
      );
    });
    await t.step("a job id that is not a name is refused", async () => {
      await assert.rejects(
        resolveWorkingFolder(rooted, null, "../x", 1),
        RangeError,
      );
    });
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});
