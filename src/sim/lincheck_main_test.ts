import assert from "node:assert/strict";

const fixtures = "fixtures/linearizability/";

async function lincheck(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "src/sim/lincheck_main.ts", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

Deno.test("lincheck_main exits with the verdict's code", async (t) => {
  const cases: {
    args: string[];
    code: number;
    stdout?: RegExp;
    stderr?: RegExp;
  }[] = [
    {
      args: [`${fixtures}jepsen/etcd_002.log`],
      code: 0,
      stdout: /^linearizable\n$/,
    },
    {
      args: [`${fixtures}jepsen/etcd_095.log`],
      code: 0,
      stdout: /^linearizable\n$/,
    },
    {
      args: [`${fixtures}kv/c10-ok.txt`, "--model", "kv"],
      code: 0,
      stdout: /^linearizable\n$/,
    },
    {
      args: [`${fixtures}kv/c01-bad.txt`],
      code: 1,
      stdout:
        /^not linearizable\npartition: key "7"\n[^]*get\("7"\) -> "x 0 0 y"/,
    },
    {
      args: [`${fixtures}jepsen/etcd_000.log`, "--timeout=60"],
      code: 1,
      stdout: /^not linearizable\n/,
    },
    {
      // Not a history: the parsers' own tests cover malformed lines mid-file.
      args: [`${fixtures}README.md`],
      code: 2,
      stderr: /Cannot parse line 1: expected a Jepsen/,
    },
    {
      args: [`${fixtures}jepsen/etcd_002.log`, "--model", "kv"],
      code: 2,
      stderr: /Cannot parse line 1: /,
    },
    {
      args: [`${fixtures}kv/c10-ok.txt`, "--model", "queue"],
      code: 2,
      stderr: /Cannot use model 'queue'/,
    },
    {
      args: [`${fixtures}kv/c10-ok.txt`, "--timeout", "soon"],
      code: 2,
      stderr: /'--timeout'/,
    },
    { args: [], code: 2, stderr: /Cannot check without a FILE/ },
    { args: [`${fixtures}missing.log`], code: 2, stderr: /Cannot read/ },
    {
      args: [`${fixtures}kv/c50-ok.txt`, "--timeout", "0"],
      code: 3,
      stdout: /^undecided\n$/,
    },
  ];
  for (const { args, code, stdout, stderr } of cases) {
    await t.step(
      `${args.join(" ") || "(no arguments)"} exits ${code}`,
      async () => {
        const result = await lincheck(...args);
        assert.equal(result.code, code, result.stderr);
        if (stdout !== undefined) assert.match(result.stdout, stdout);
        if (stderr !== undefined) assert.match(result.stderr, stderr);
      },
    );
  }
});
