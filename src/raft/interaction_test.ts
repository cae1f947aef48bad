/**
 * Data-driven Raft tests: every `testdata/*.txt` script is a sequence of
 * commands, each followed by `----` and the trace it must print. Run with
 * `UPDATE_TRACES=1` to rewrite the traces, then review the diff.
 */
import assert from "node:assert/strict";
import { InteractionEnv, parseCommand } from "./_interaction_env.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);

interface Block {
  /** Comment lines just above the command, kept on rewrite. */
  readonly comments: readonly string[];
  readonly command: string;
  readonly expected: string;
}

function parseScript(text: string, file: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  let i = 0;
  let comments: string[] = [];
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.startsWith("#")) {
      comments.push(line);
      i++;
      continue;
    }
    if (line.trim() === "") {
      i++;
      continue;
    }
    assert.equal(
      lines[i + 1],
      "----",
      `${file}:${i + 2}: expected '----' after command '${line}'`,
    );
    const output: string[] = [];
    i += 2;
    while (i < lines.length && lines[i] !== "") output.push(lines[i++]!);
    blocks.push({ comments, command: line, expected: output.join("\n") });
    comments = [];
  }
  return blocks;
}

function render(blocks: readonly Block[]): string {
  return blocks.map((b) => {
    const comments = b.comments.map((c) => `${c}\n`).join("");
    return `${comments}${b.command}\n----\n${b.expected}${
      b.expected === "" ? "" : "\n"
    }`;
  }).join("\n");
}

const update = Deno.env.get("UPDATE_TRACES") === "1";

for (
  const entry of [...Deno.readDirSync(TESTDATA)].sort((a, b) =>
    a.name.localeCompare(b.name)
  )
) {
  if (!entry.name.endsWith(".txt")) continue;
  Deno.test(`RaftNode interaction script ${entry.name} prints its expected trace`, () => {
    const url = new URL(entry.name, TESTDATA);
    const text = Deno.readTextFileSync(url);
    const env = new InteractionEnv();
    const blocks = parseScript(text, entry.name);
    const actual = blocks.map((block) => ({
      ...block,
      expected: env.run(parseCommand(block.command)),
    }));
    if (update) {
      Deno.writeTextFileSync(url, render(actual));
      return;
    }
    for (const [i, block] of actual.entries()) {
      assert.equal(
        block.expected,
        blocks[i]!.expected,
        `${entry.name}: trace of '${block.command}' differs`,
      );
    }
  });
}
