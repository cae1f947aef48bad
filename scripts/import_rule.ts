/**
 * Prints every violation of the import rule in `src/` (the table is
 * `tests/helpers/layers.ts`) and exits 1 when there is one, 0 when none:
 *
 * ```sh
 * deno run --allow-read scripts/import_rule.ts [repo-root]
 * ```
 *
 * @module
 */
import {
  checkImportRule,
  formatViolation,
  readSourceTree,
} from "../tests/helpers/import_rule.ts";

const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname;
const { files, importMap } = await readSourceTree(root.replace(/\/$/, ""));
const result = checkImportRule({ files, importMap });
for (const v of result.violations) console.log(formatViolation(v));
for (const key of result.staleAllowed) {
  console.log(
    `stale allow-list entry (no longer a violation, remove it from tests/helpers/layers.ts): ${key}`,
  );
}
const bad = result.violations.length + result.staleAllowed.length;
console.log(
  `import rule: ${result.files} files, ${result.imports} imports, ${result.violations.length} violations, ${result.staleAllowed.length} stale allow-list entries`,
);
Deno.exit(bad === 0 ? 0 : 1);
