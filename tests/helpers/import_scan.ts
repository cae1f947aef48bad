/**
 * Reads what a TypeScript source imports and which ambient nondeterminism it
 * touches, from the compiler's syntax tree (so comments, strings and type
 * positions never count): static `import`/`export … from`, dynamic `import()`,
 * `import("…")` types, and `new URL("…", import.meta.url)` (Worker URLs).
 *
 * @module
 */
import ts from "typescript";

/** One import as written in a source file. */
export interface ImportRef {
  /** The specifier as written; `null` when it is not a string literal. */
  readonly specifier: string | null;
  /** True when only types cross (`import type`, all-`type` names, `import("…")` types). */
  readonly typeOnly: boolean;
  /** 1-based line of the import. */
  readonly line: number;
  /** How it was written: "import", "export", "import()", "import type()", "new URL". */
  readonly form: string;
}

/** One use of an ambient nondeterministic or host API (`Date.now`, `Deno.*`, timers…). */
export interface AmbientRef {
  /** The name used, e.g. `Date.now` or `Deno.readFile` or `setTimeout`. */
  readonly name: string;
  /** 1-based line of the use. */
  readonly line: number;
}

/** What one file imports and uses. */
export interface FileScan {
  readonly imports: readonly ImportRef[];
  readonly ambient: readonly AmbientRef[];
}

/** Globals that read time, randomness or schedule work. */
const AMBIENT_CALLS = new Set([
  "setTimeout",
  "setInterval",
  "clearTimeout",
  "clearInterval",
  "queueMicrotask",
  "requestAnimationFrame",
]);

/** `object.member` pairs that read time or randomness. */
const AMBIENT_MEMBERS = new Set([
  "Date.now",
  "performance.now",
  "Math.random",
  "crypto.getRandomValues",
  "crypto.randomUUID",
]);

/** Scans one file's text; `path` only names it in parse errors. */
export function scanSource(path: string, text: string): FileScan {
  const source = ts.createSourceFile(
    path,
    text,
    ts.ScriptTarget.Latest,
    true,
    ts.ScriptKind.TS,
  );
  const imports: ImportRef[] = [];
  const ambient: AmbientRef[] = [];
  const lineOf = (node: ts.Node) =>
    source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const literal = (node: ts.Node | undefined): string | null =>
    node !== undefined &&
      (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))
      ? node.text
      : null;

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const typeOnly = clause !== undefined && (clause.isTypeOnly ||
        (clause.name === undefined && clause.namedBindings !== undefined &&
          ts.isNamedImports(clause.namedBindings) &&
          clause.namedBindings.elements.length > 0 &&
          clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      imports.push({
        specifier: literal(node.moduleSpecifier),
        typeOnly,
        line: lineOf(node),
        form: "import",
      });
    } else if (
      ts.isExportDeclaration(node) && node.moduleSpecifier !== undefined
    ) {
      const clause = node.exportClause;
      const typeOnly = node.isTypeOnly ||
        (clause !== undefined && ts.isNamedExports(clause) &&
          clause.elements.length > 0 &&
          clause.elements.every((e) => e.isTypeOnly));
      imports.push({
        specifier: literal(node.moduleSpecifier),
        typeOnly,
        line: lineOf(node),
        form: "export",
      });
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      imports.push({
        specifier: ts.isLiteralTypeNode(arg) ? literal(arg.literal) : null,
        typeOnly: true,
        line: lineOf(node),
        form: "import type()",
      });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword
    ) {
      imports.push({
        specifier: literal(node.arguments[0]),
        typeOnly: false,
        line: lineOf(node),
        form: "import()",
      });
    } else if (
      ts.isNewExpression(node) && ts.isIdentifier(node.expression) &&
      node.expression.text === "URL" && node.arguments?.length === 2 &&
      isImportMetaUrl(node.arguments[1]!)
    ) {
      imports.push({
        specifier: literal(node.arguments[0]),
        typeOnly: false,
        line: lineOf(node),
        form: "new URL",
      });
    } else if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression)
    ) {
      const name = `${node.expression.text}.${node.name.text}`;
      const global = node.expression.text === "globalThis" &&
        (AMBIENT_CALLS.has(node.name.text) ||
          ["Deno", "Date", "performance", "Math", "crypto"].includes(
            node.name.text,
          ));
      if (
        node.expression.text === "Deno" || AMBIENT_MEMBERS.has(name) || global
      ) {
        ambient.push({ name, line: lineOf(node) });
      }
    } else if (
      (ts.isNewExpression(node) || ts.isCallExpression(node)) &&
      ts.isIdentifier(node.expression) && node.expression.text === "Date" &&
      (node.arguments === undefined || node.arguments.length === 0)
    ) {
      // `new Date()` and `Date()` read the clock; `new Date(ms)` does not.
      ambient.push({
        name: ts.isNewExpression(node) ? "new Date()" : "Date()",
        line: lineOf(node),
      });
    } else if (
      ts.isCallExpression(node) && ts.isIdentifier(node.expression) &&
      AMBIENT_CALLS.has(node.expression.text)
    ) {
      ambient.push({ name: node.expression.text, line: lineOf(node) });
    } else if (
      ts.isIdentifier(node) && node.text === "Deno" &&
      isValueUse(node)
    ) {
      // `const d = Deno;` or `f(Deno)`: a bare value use of the namespace.
      ambient.push({ name: "Deno", line: lineOf(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { imports, ambient };
}

function isImportMetaUrl(node: ts.Node): boolean {
  return ts.isPropertyAccessExpression(node) && node.name.text === "url" &&
    ts.isMetaProperty(node.expression) &&
    node.expression.keywordToken === ts.SyntaxKind.ImportKeyword;
}

/** A bare `Deno` identifier used as a value, not as `Deno.x` (counted above) or a type. */
function isValueUse(node: ts.Identifier): boolean {
  const parent = node.parent;
  if (ts.isPropertyAccessExpression(parent) && parent.expression === node) {
    return false;
  }
  if (ts.isQualifiedName(parent) || ts.isTypeReferenceNode(parent)) {
    return false;
  }
  return ts.isExpression(parent) || ts.isVariableDeclaration(parent) ||
    ts.isCallExpression(parent) || ts.isShorthandPropertyAssignment(parent);
}
