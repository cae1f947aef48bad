import assert from "node:assert/strict";

const DENO = Deno.execPath();

async function run(...args: string[]): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(DENO, {
    args,
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    out: decoder.decode(output.stdout) + decoder.decode(output.stderr),
  };
}

Deno.test("mod.ts module graph has no node: import and no Deno API (runs in browsers)", async () => {
  const { code, out } = await run("info", "--json", "mod.ts");
  assert.equal(code, 0, out);
  const graph = JSON.parse(out.slice(out.indexOf("{")));
  const specifiers: string[] = graph.modules.map((m: { specifier: string }) =>
    m.specifier
  );
  assert.ok(specifiers.length > 5);
  assert.deepEqual(specifiers.filter((s) => s.startsWith("node:")), []);
  for (const specifier of specifiers.filter((s) => s.startsWith("file:"))) {
    const source = await Deno.readTextFile(new URL(specifier));
    const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bDeno\./, specifier);
  }
});

Deno.test("mod.ts passes deno doc --lint", async () => {
  const { code, out } = await run("doc", "--lint", "mod.ts");
  assert.equal(code, 0, out);
});
