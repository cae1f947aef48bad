/**
 * The import rule (issue 14): every import in `src/` obeys the one table in
 * `tests/helpers/layers.ts`, the pure layers touch no clock, timer,
 * randomness or `Deno.*`, and private `_files` stay in their folder. The
 * self-tests plant violations in an in-memory file set (and in a temporary
 * tree for `scripts/import_rule.ts`) to prove the check fails on them.
 */
import assert from "node:assert/strict";
import {
  checkImportRule,
  formatViolation,
  readSourceTree,
} from "./helpers/import_rule.ts";
import type { LayerRule } from "./helpers/layers.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const IMPORT_MAP = {
  "hono": "npm:hono@4.13.19",
  "hono/": "npm:/hono@4.13.19/",
  "@msgpack/msgpack": "npm:@msgpack/msgpack@3.1.3",
};

function check(
  files: Record<string, string>,
  options: { allowed?: Parameters<typeof checkImportRule>[0]["allowed"] } = {},
) {
  return checkImportRule({
    files: new Map(Object.entries(files)),
    importMap: IMPORT_MAP,
    allowed: options.allowed ?? [],
  });
}

/** The allow-list keys of the violations found, sorted. */
function keysOf(files: Record<string, string>): string[] {
  return check(files).violations.map((v) => v.key).sort();
}

Deno.test("import rule: src/ has no violations and no stale allow-list entries", async () => {
  const { files, importMap } = await readSourceTree(ROOT);
  const result = checkImportRule({ files, importMap });
  assert.ok(result.files > 100, `read only ${result.files} files`);
  assert.ok(result.imports > 500, `read only ${result.imports} imports`);
  const report = [
    ...result.violations.map(formatViolation),
    ...result.staleAllowed.map((k) =>
      `stale allow-list entry (remove it from tests/helpers/layers.ts): ${k}`
    ),
  ];
  assert.deepEqual(report, [], `\n${report.join("\n")}`);
});

Deno.test("import rule: allowed imports pass", () => {
  const result = check({
    "src/base/bytes.ts": "export const a = 1;",
    "src/model/key.ts": 'import { a } from "../base/bytes.ts";',
    "src/model/types.ts": 'import type { LogIndex } from "../raft/types.ts";',
    "src/protocol/frame.ts": [
      'import { a } from "../base/bytes.ts";',
      'import type { RaftNode } from "../raft/raft_node.ts";',
      'import { logIndex } from "../raft/types.ts";',
      'import { encode } from "@msgpack/msgpack";',
      'import { helper } from "./_private.ts";',
    ].join("\n"),
    "src/services/kv/apply.ts": 'import { q } from "../queues/api.ts";',
    "src/frontends/http/kv.ts": [
      'import { Hono } from "hono";',
      'import { streamSSE } from "hono/streaming";',
      'import type { NodeApi } from "../../node/node_api.ts";',
      'import { KvBackend } from "../../services/kv/api.ts";',
      'import { guard } from "../common/connection_guard.ts";',
    ].join("\n"),
    "src/storage/log_writer.ts":
      'new Worker(new URL("./_log_writer_worker.ts", import.meta.url));',
    "src/state/host.ts": [
      "// Date.now() and setTimeout(f) in a comment do not count",
      "/** Deno.readFile in a doc comment neither */",
      'const text = "Math.random() in a string";',
      "type Key = Deno.KvKey; // a type, not the host",
    ].join("\n"),
    "src/state/host_test.ts": [
      'import { fake } from "../sim/_fake.ts";',
      "Date.now(); Deno.env.get('X');",
    ].join("\n"),
    "src/server/serve.ts": [
      'import { createHttpApp } from "../frontends/http/app.ts";',
      'import { AspenNode } from "../node/aspen_node.ts";',
      'const worker = await import("../storage/sqlite_log_store.ts");',
    ].join("\n"),
  });
  assert.deepEqual(result.violations.map(formatViolation), []);
  assert.equal(result.imports, 18);
});

Deno.test("import rule: a layer importing up or sideways fails, naming file, import and rule", () => {
  const result = check({
    "src/base/bytes.ts": 'import { KvKey } from "../model/types.ts";',
  });
  assert.equal(result.violations.length, 1);
  const [v] = result.violations;
  assert.equal(v!.file, "src/base/bytes.ts");
  assert.equal(v!.line, 1);
  assert.equal(v!.what, 'import "../model/types.ts"');
  assert.equal(v!.key, "src/base/bytes.ts -> src/model/types.ts");
  assert.match(v!.rule, /base imports nothing/);
  assert.match(formatViolation(v!), /^src\/base\/bytes\.ts:1: import/);
});

Deno.test("import rule: each rule of the table is enforced", () => {
  assert.deepEqual(
    keysOf({
      // node never imports frontends
      "src/node/runner.ts": 'import { x } from "../frontends/http/app.ts";',
      // a front end never imports another front end, nor storage
      "src/frontends/kv_connect/app.ts": [
        'import { y } from "../http/kv.ts";',
        'import { z } from "../../storage/sqlite_log_store.ts";',
      ].join("\n"),
      // services reach each other only through api.ts
      "src/services/kv/apply.ts": 'import { keys } from "../queues/keys.ts";',
      // raft is pure: it imports base only
      "src/raft/log.ts": 'import { codec } from "../protocol/raft_codec.ts";',
      // client imports protocol, model, base only
      "src/client/kv.ts": 'import { n } from "../node/node_api.ts";',
      // workers import the client
      "src/workers/shell.ts": 'import { s } from "../state/host.ts";',
    }),
    [
      "src/client/kv.ts -> src/node/node_api.ts",
      "src/frontends/kv_connect/app.ts -> src/frontends/http/kv.ts",
      "src/frontends/kv_connect/app.ts -> src/storage/sqlite_log_store.ts",
      "src/node/runner.ts -> src/frontends/http/app.ts",
      "src/raft/log.ts -> src/protocol/raft_codec.ts",
      "src/services/kv/apply.ts -> src/services/queues/keys.ts",
      "src/workers/shell.ts -> src/state/host.ts",
    ],
  );
});

Deno.test("import rule: type-only layers refuse value imports", () => {
  const result = check({
    "src/state/host.ts": [
      'import { RaftNode } from "../raft/raft_node.ts";',
      'import type { Ready } from "../raft/raft_node.ts";',
      'import { type Entry, type Message } from "../raft/raft_node.ts";',
      'export type { Snapshot } from "../raft/raft_node.ts";',
      'type R = import("../raft/raft_node.ts").RaftNode;',
    ].join("\n"),
  });
  assert.deepEqual(result.violations.map((v) => v.line), [1]);
  assert.match(result.violations[0]!.rule, /only `import type` is allowed/);
});

Deno.test("import rule: dynamic imports, re-exports and Worker URLs are read", () => {
  assert.deepEqual(
    keysOf({
      "src/model/a.ts": [
        'export { x } from "../state/x.ts";',
        'export * from "../state/y.ts";',
        'const m = await import("../state/z.ts");',
        'new Worker(new URL("../storage/w.ts", import.meta.url));',
        "const n = await import(`../state/${name}.ts`);",
      ].join("\n"),
    }),
    [
      "src/model/a.ts -> <expression>",
      "src/model/a.ts -> src/state/x.ts",
      "src/model/a.ts -> src/state/y.ts",
      "src/model/a.ts -> src/state/z.ts",
      "src/model/a.ts -> src/storage/w.ts",
    ],
  );
});

Deno.test("import rule: libraries are allowed per layer", () => {
  assert.deepEqual(
    keysOf({
      "src/state/host.ts": 'import { Hono } from "hono";',
      "src/services/kv/reads.ts": 'import { x } from "hono/streaming";',
      "src/base/a.ts": 'import { encode } from "@msgpack/msgpack";',
      "src/model/b.ts": 'import { c } from "npm:left-pad@1.3.0";',
      "src/protocol/c.ts": 'import { d } from "unmapped-package";',
      "src/client/d.ts": 'import { e } from "https://example.com/e.ts";',
    }),
    [
      "src/base/a.ts -> @msgpack/msgpack",
      "src/client/d.ts -> https://example.com/e.ts",
      "src/model/b.ts -> left-pad",
      "src/protocol/c.ts -> unmapped-package",
      "src/services/kv/reads.ts -> hono",
      "src/state/host.ts -> hono",
    ],
  );
});

Deno.test("import rule: private _files are not imported from another folder", () => {
  const result = check({
    "src/protocol/_fields.ts": "export const f = 1;",
    "src/protocol/envelope.ts": 'import { f } from "./_fields.ts";',
    "src/cluster/ticket.ts": 'import { f } from "../protocol/_fields.ts";',
    // server may import anything, but not another folder's private file
    "src/server/serve.ts": 'import { e } from "../frontends/http/_errors.ts";',
  });
  assert.deepEqual(result.violations.map((v) => v.key), [
    "src/cluster/ticket.ts -> src/protocol/_fields.ts",
    "src/server/serve.ts -> src/frontends/http/_errors.ts",
  ]);
  assert.match(result.violations[0]!.rule, /private to src\/protocol\//);
});

Deno.test("import rule: no clock, timers, randomness or Deno.* in the pure layers", () => {
  const result = check({
    "src/state/host.ts": "const t = Date.now();",
    "src/raft/node.ts": "setTimeout(() => {}, 1);",
    "src/model/m.ts": "const r = Math.random();",
    "src/protocol/p.ts": "const t = performance.now();",
    "src/base/b.ts": "crypto.getRandomValues(new Uint8Array(4));",
    "src/base/c.ts": "const d = new Date(); const e = new Date(0);",
    "src/state/g.ts": "globalThis.setTimeout(() => {}, 1);",
    "src/services/kv/apply.ts":
      "queueMicrotask(() => {}); Deno.readFileSync('x');",
    // Not pure: a service's leader driver, storage, node.
    "src/services/kv/leader.ts": "const t = Date.now();",
    "src/storage/s.ts": "Deno.readFileSync('x');",
    "src/node/n.ts": "setInterval(() => {}, 1000);",
  });
  assert.deepEqual(result.violations.map((v) => v.key).sort(), [
    "src/base/b.ts: crypto.getRandomValues",
    "src/base/c.ts: new Date()",
    "src/model/m.ts: Math.random",
    "src/protocol/p.ts: performance.now",
    "src/raft/node.ts: setTimeout",
    "src/services/kv/apply.ts: Deno.readFileSync",
    "src/services/kv/apply.ts: queueMicrotask",
    "src/state/g.ts: globalThis.setTimeout",
    "src/state/host.ts: Date.now",
  ]);
  assert.match(result.violations[0]!.rule, /Clock\/Scheduler port/);
});

Deno.test("import rule: product code does not import test support, and a new layer must be added to the table", () => {
  assert.deepEqual(
    keysOf({
      "src/storage/log_store_conformance.ts": "export const suite = 1;",
      "src/storage/sqlite.ts":
        'import { suite } from "./log_store_conformance.ts";',
      "src/gadgets/g.ts": "export const g = 1;",
    }),
    [
      "src/gadgets/g.ts: layer",
      "src/storage/sqlite.ts -> src/storage/log_store_conformance.ts",
    ],
  );
});

Deno.test("import rule: the allow-list skips its entries and reports stale ones", () => {
  const files = {
    "src/base/a.ts": 'import { b } from "../model/b.ts";',
    "src/base/c.ts": 'import { d } from "../state/d.ts";',
  };
  const result = check(files, {
    allowed: [{
      owner: "someone",
      reason: "planted",
      keys: ["src/base/a.ts -> src/model/*", "src/base/gone.ts -> src/x.ts"],
    }],
  });
  assert.deepEqual(result.violations.map((v) => v.key), [
    "src/base/c.ts -> src/state/d.ts",
  ]);
  assert.deepEqual(result.staleAllowed, ["src/base/gone.ts -> src/x.ts"]);
});

Deno.test("import rule: a custom table is honoured", () => {
  const layers: LayerRule[] = [
    { layer: "a", may: ["b"], libraries: [], pure: false, why: "a uses b" },
    { layer: "b", may: [], libraries: [], pure: false, why: "b is a leaf" },
  ];
  const result = checkImportRule({
    files: new Map([
      ["src/a/x.ts", 'import { y } from "../b/y.ts";'],
      ["src/b/y.ts", 'import { x } from "../a/x.ts";'],
    ]),
    importMap: {},
    layers,
    allowed: [],
  });
  assert.deepEqual(result.violations.map((v) => `${v.key}: ${v.rule}`), [
    "src/b/y.ts -> src/a/x.ts: b is a leaf",
  ]);
});

Deno.test("import rule: scripts/import_rule.ts prints a planted violation and exits 1", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen_import_rule_" });
  try {
    await Deno.mkdir(`${root}/src/base`, { recursive: true });
    await Deno.mkdir(`${root}/src/node`, { recursive: true });
    await Deno.writeTextFile(
      `${root}/deno.json`,
      JSON.stringify({ imports: {} }),
    );
    await Deno.writeTextFile(
      `${root}/src/base/clock.ts`,
      'import { AspenNode } from "../node/aspen_node.ts";\nexport const now = () => Date.now();\n',
    );
    await Deno.writeTextFile(
      `${root}/src/node/aspen_node.ts`,
      "export class AspenNode {}\n",
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-env",
        "scripts/import_rule.ts",
        root,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    assert.equal(
      output.code,
      1,
      stdout + new TextDecoder().decode(output.stderr),
    );
    assert.match(
      stdout,
      /src\/base\/clock\.ts:1: import "\.\.\/node\/aspen_node\.ts"/,
    );
    assert.match(stdout, /rule: base imports nothing/);
    assert.match(stdout, /src\/base\/clock\.ts:2: Date\.now/);
    assert.match(stdout, /2 violations/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
