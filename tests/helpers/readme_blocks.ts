/**
 * The README's runnable blocks: each fenced code block right after a
 * `<!-- readme-smoke: NAME -->` comment, so `tests/readme_smoke.ts` runs the
 * README's own text and the two cannot drift.
 *
 * @module
 */

/** One marked code block of the README. */
export interface ReadmeBlock {
  /** The fence's language (`sh`, `ts`). */
  readonly lang: string;
  /** The block's text, without the fences. */
  readonly body: string;
}

/** A README without a block the smoke test needs. */
export class MissingReadmeBlockError extends Error {
  override readonly name = "MissingReadmeBlockError";
}

/** Every marked block of `readme`, by name. */
export function readmeBlocks(readme: string): Map<string, ReadmeBlock> {
  const blocks = new Map<string, ReadmeBlock>();
  const pattern =
    /<!-- readme-smoke: ([\w-]+) -->\s*\n```(\w*)\n([\s\S]*?)\n```/g;
  for (const match of readme.matchAll(pattern)) {
    blocks.set(match[1]!, { lang: match[2]!, body: match[3]! });
  }
  return blocks;
}

/** The block `name`, or a named error saying the README lost it. */
export function block(
  blocks: Map<string, ReadmeBlock>,
  name: string,
): ReadmeBlock {
  const found = blocks.get(name);
  if (found === undefined) {
    throw new MissingReadmeBlockError(
      `README.md has no '<!-- readme-smoke: ${name} -->' block`,
    );
  }
  return found;
}

/** The block's command line matching `pattern` (comments and blanks skipped). */
export function commandLine(
  found: ReadmeBlock,
  pattern: RegExp,
): string {
  const line = found.body.split("\n").map((l) => l.trim()).find((l) =>
    l !== "" && !l.startsWith("#") && pattern.test(l)
  );
  if (line === undefined) {
    throw new MissingReadmeBlockError(
      `README.md's block has no command matching ${pattern}`,
    );
  }
  return line;
}
