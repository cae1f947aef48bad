/**
 * Checks a set of source files against the import rule in
 * `tests/helpers/layers.ts`: every import's target layer and library, private
 * `_files` across folders, and ambient nondeterminism in the pure layers.
 * Works on an in-memory file set (the self-test plants violations in one) or
 * on the repository's `src/` ({@link readSourceTree}).
 *
 * @module
 */
import { type ImportRef, scanSource } from "./import_scan.ts";
import {
  ALLOWED,
  type AllowedGroup,
  type LayerRule,
  LAYERS,
  LIBRARY_SHIMS,
  TEST_SUPPORT,
} from "./layers.ts";

/** One broken rule. */
export interface Violation {
  /** The importing file, `src/…`. */
  readonly file: string;
  readonly line: number;
  /** What was written: `import "../x.ts"`, or the ambient API's name. */
  readonly what: string;
  /** The allow-list key: `src/a.ts -> src/b.ts`, `src/a.ts -> hono` or `src/a.ts: Date.now`. */
  readonly key: string;
  /** The rule broken, in words. */
  readonly rule: string;
}

/** The result of one check. */
export interface CheckResult {
  /** Violations not in the allow-list. */
  readonly violations: readonly Violation[];
  /** Allow-list keys that matched nothing (stale: remove them). */
  readonly staleAllowed: readonly string[];
  /** How many files and imports were read. */
  readonly files: number;
  readonly imports: number;
}

/** Inputs to {@link checkImportRule}. */
export interface CheckInput {
  /** Path (`src/…`, `/` separated) to source text. */
  readonly files: ReadonlyMap<string, string>;
  /** deno.json's `imports` (bare specifier → target). */
  readonly importMap: Readonly<Record<string, string>>;
  /** The rule table; defaults to {@link LAYERS}. */
  readonly layers?: readonly LayerRule[];
  /** The allow-list; defaults to {@link ALLOWED}. */
  readonly allowed?: readonly AllowedGroup[];
}

/** Checks every file in `input.files`. */
export function checkImportRule(input: CheckInput): CheckResult {
  const layers = input.layers ?? LAYERS;
  const allowed = input.allowed ?? ALLOWED;
  const found: Violation[] = [];
  let imports = 0;
  for (
    const [file, text] of [...input.files].sort(([a], [b]) => a < b ? -1 : 1)
  ) {
    if (!file.endsWith(".ts") || file.endsWith(".d.ts")) continue;
    const scan = scanSource(file, text);
    imports += scan.imports.length;
    const testing = isTestSupport(file);
    const layer = layerOf(file);
    const rule = testing ? undefined : ruleFor(layers, layer);
    if (!testing && rule === undefined) {
      found.push({
        file,
        line: 1,
        what: `layer ${layer}`,
        key: `${file}: layer`,
        rule:
          `layer "${layer}" is not in the rule table (tests/helpers/layers.ts): add it`,
      });
      continue;
    }
    for (const ref of scan.imports) {
      const v = testing
        ? checkTestImport(file, ref)
        : checkImport(file, layer, rule!, ref, input.importMap);
      if (v !== undefined) found.push(v);
    }
    if (rule !== undefined && isPure(rule, file)) {
      for (const use of scan.ambient) {
        found.push({
          file,
          line: use.line,
          what: use.name,
          key: `${file}: ${use.name}`,
          rule:
            `no Deno.*, timers, Date.now, performance.now, Math.random or crypto randomness in ${layer} (${rule.why}); take the Clock/Scheduler port or the value from the proposal`,
        });
      }
    }
  }
  const keys = allowed.flatMap((group) => group.keys);
  const used = new Set<string>();
  const violations = found.filter((v) => {
    const key = keys.find((k) => keyMatches(k, v.key));
    if (key === undefined) return true;
    used.add(key);
    return false;
  });
  const staleAllowed = keys.filter((k) => !used.has(k));
  return { violations, staleAllowed, files: input.files.size, imports };
}

function keyMatches(pattern: string, key: string): boolean {
  return pattern.endsWith("*")
    ? key.startsWith(pattern.slice(0, -1))
    : key === pattern;
}

/** One violation as a line: `file:line: what: rule`. */
export function formatViolation(v: Violation): string {
  return `${v.file}:${v.line}: ${v.what}\n    rule: ${v.rule}\n    key:  ${v.key}`;
}

/** The layer of a `src/…` path: its first folder, two for services and front ends. */
export function layerOf(path: string): string {
  const parts = path.split("/").slice(1, -1);
  if (parts[0] === "services" || parts[0] === "frontends") {
    return parts.slice(0, 2).join("/");
  }
  return parts[0] ?? "";
}

function isTestSupport(path: string): boolean {
  return TEST_SUPPORT.some((re) => re.test(path));
}

function ruleFor(
  layers: readonly LayerRule[],
  layer: string,
): LayerRule | undefined {
  return layers.find((r) => r.layer === layer) ??
    layers.find((r) => matchesLayerPattern(r.layer, layer));
}

function matchesLayerPattern(pattern: string, layer: string): boolean {
  return globToRegExp(pattern).test(layer);
}

function globToRegExp(glob: string): RegExp {
  const body = glob.split("*").map((s) =>
    s.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")
  )
    .join("[^/]+");
  return new RegExp(`^${body}$`);
}

function isPure(rule: LayerRule, file: string): boolean {
  if (typeof rule.pure === "boolean") return rule.pure;
  const name = file.slice(file.lastIndexOf("/") + 1);
  return rule.pure.includes(name);
}

/** Does `selector` cover the `src/`-relative `target`? */
function selects(selector: string, target: string): boolean {
  if (selector.endsWith(".ts")) return globToRegExp(selector).test(target);
  const prefix = globToRegExp(selector).source.slice(1, -1);
  return new RegExp(`^${prefix}/`).test(target);
}

type Resolved =
  | { kind: "file"; path: string }
  | { kind: "library"; name: string }
  | { kind: "outside"; path: string }
  | { kind: "unknown"; reason: string };

function resolve(
  file: string,
  specifier: string | null,
  importMap: Readonly<Record<string, string>>,
): Resolved {
  if (specifier === null) {
    return { kind: "unknown", reason: "specifier is not a string literal" };
  }
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    const path = joinPath(file.slice(0, file.lastIndexOf("/")), specifier);
    if (!path.startsWith("src/")) return { kind: "outside", path };
    const shim = LIBRARY_SHIMS[path.slice(4)];
    return shim === undefined
      ? { kind: "file", path }
      : { kind: "library", name: shim };
  }
  if (specifier.startsWith("node:")) {
    return { kind: "library", name: specifier.split("/")[0]! };
  }
  if (specifier.startsWith("npm:") || specifier.startsWith("jsr:")) {
    return { kind: "library", name: packageName(specifier.slice(4)) };
  }
  if (/^[a-z]+:/.test(specifier)) {
    return { kind: "unknown", reason: "URL imports are not allowed" };
  }
  for (const key of Object.keys(importMap)) {
    if (
      specifier === key || (key.endsWith("/") && specifier.startsWith(key))
    ) {
      return { kind: "library", name: packageName(specifier) };
    }
  }
  return { kind: "unknown", reason: "bare specifier not in deno.json imports" };
}

/** `@scope/name@1.2/sub` or `name/sub` → `@scope/name` or `name`. */
function packageName(spec: string): string {
  const parts = spec.replace(/^\//, "").split("/");
  const head = parts[0]!.startsWith("@")
    ? `${parts[0]}/${parts[1] ?? ""}`
    : parts[0]!;
  const at = head.lastIndexOf("@");
  return at > 0 ? head.slice(0, at) : head;
}

function joinPath(dir: string, rel: string): string {
  const out = dir.split("/");
  for (const part of rel.split("/")) {
    if (part === "..") out.pop();
    else if (part !== ".") out.push(part);
  }
  return out.join("/");
}

function written(ref: ImportRef): string {
  const spec = ref.specifier === null ? "<expression>" : `"${ref.specifier}"`;
  return `${ref.form}${
    ref.typeOnly && ref.form !== "import type()" ? " type" : ""
  } ${spec}`;
}

function checkTestImport(file: string, ref: ImportRef): Violation | undefined {
  // Tests may import anything, but only what can be resolved statically.
  if (ref.specifier !== null || ref.form === "new URL") return undefined;
  return {
    file,
    line: ref.line,
    what: written(ref),
    key: `${file} -> <expression>`,
    rule: "imports must name a string literal",
  };
}

function checkImport(
  file: string,
  layer: string,
  rule: LayerRule,
  ref: ImportRef,
  importMap: Readonly<Record<string, string>>,
): Violation | undefined {
  const target = resolve(file, ref.specifier, importMap);
  const base = { file, line: ref.line, what: written(ref) };
  switch (target.kind) {
    case "unknown":
      return {
        ...base,
        key: `${file} -> ${ref.specifier ?? "<expression>"}`,
        rule: `cannot check this import: ${target.reason}`,
      };
    case "outside":
      return {
        ...base,
        key: `${file} -> ${target.path}`,
        rule:
          `src/ imports only src/ and libraries (${target.path} is outside)`,
      };
    case "library": {
      const ok = rule.libraries === "any" ||
        rule.libraries.some((l) =>
          l === target.name ||
          (l.endsWith("*") && target.name.startsWith(l.slice(0, -1)))
        );
      return ok ? undefined : {
        ...base,
        key: `${file} -> ${target.name}`,
        rule: `${layer} may not use the library ${target.name} (allowed: ${
          rule.libraries.length === 0 ? "none" : rule.libraries.join(", ")
        })`,
      };
    }
    case "file": {
      const key = `${file} -> ${target.path}`;
      const rel = target.path.slice(4);
      const name = rel.slice(rel.lastIndexOf("/") + 1);
      const fileDir = file.slice(0, file.lastIndexOf("/"));
      const targetDir = target.path.slice(0, target.path.lastIndexOf("/"));
      if (name.startsWith("_") && fileDir !== targetDir) {
        return {
          ...base,
          key,
          rule:
            `${name} is private to ${targetDir}/: import it only from that folder`,
        };
      }
      if (isTestSupport(target.path)) {
        return {
          ...base,
          key,
          rule: `product code does not import test support (${name})`,
        };
      }
      if (layerOf(target.path) === layer || rule.may === "anything") {
        return undefined;
      }
      const selectors = ref.typeOnly
        ? [...rule.may, ...(rule.mayType ?? [])]
        : rule.may;
      if (selectors.some((s) => selects(s, rel))) return undefined;
      const typeHint = !ref.typeOnly &&
          (rule.mayType ?? []).some((s) => selects(s, rel))
        ? " (only `import type` is allowed from there)"
        : "";
      return { ...base, key, rule: `${rule.why}${typeHint}` };
    }
  }
}

/** Reads every `.ts` file under `root/src` and `root/deno.json`'s imports. */
export async function readSourceTree(
  root: string,
): Promise<
  { files: Map<string, string>; importMap: Record<string, string> }
> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) {
        files.set(path, await Deno.readTextFile(`${root}/${path}`));
      }
    }
  };
  await walk("src");
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)) as {
    imports?: Record<string, string>;
  };
  return { files, importMap: config.imports ?? {} };
}
