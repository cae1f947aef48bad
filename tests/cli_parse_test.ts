/**
 * What the CLI reads before it talks to a node: node ids by unique prefix,
 * key parts with a reason, and the help and version output.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MembershipError } from "../mod.ts";
import {
  describeFailure,
  EXIT,
  parseKey,
  resolveNodeId,
  UsageError,
} from "../cli/commands/_context.ts";
import { VERSION } from "../cli/aspen.ts";
import { aspen } from "./helpers/cli_run.ts";
import { configFromJson, resolveNodeConfig } from "../src/node/config.ts";

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

const IDS = [
  "qdeyb757mgi7p5schmlueisrnvkuaxsukgbulkjsg56s7edfx3rq",
  "qdeyb7xxxxi7p5schmlueisrnvkuaxsukgbulkjsg56s7edfx3rq",
  "6x4vcawwofobcjenwfd2j47fc7fmuaopawfk2nnjrcfaonguiqvq",
];

Deno.test("resolveNodeId takes the id or a unique prefix of at least 6 characters", () => {
  assert.equal(resolveNodeId(IDS[2]!, IDS), IDS[2]);
  assert.equal(resolveNodeId("6x4vca", IDS), IDS[2]);
  assert.equal(resolveNodeId("qdeyb757mg", IDS), IDS[0]);
  assert.equal(resolveNodeId("n1", ["n1", "n10"]), "n1", "an exact id wins");
  const ambiguous = thrown(() => resolveNodeId("qdeyb7", IDS));
  assert.ok(ambiguous instanceof UsageError);
  assert.match(
    ambiguous.message,
    /^Node id prefix 'qdeyb7' is ambiguous: it matches qdeyb757mg, qdeyb7xxxx; give more characters$/,
  );
  assert.equal(describeFailure(ambiguous).code, EXIT.usage);
  assert.throws(() => resolveNodeId("6x4", IDS), /too short: give at least 6/);
  const unknown = thrown(() => resolveNodeId("zzzzzzzz", IDS));
  assert.ok(unknown instanceof MembershipError);
  assert.match(unknown.message, /^Unknown node 'zzzzzzzz'/);
  assert.equal(describeFailure(unknown).code, EXIT.failed);
});

Deno.test("parseKey says which key part is wrong and why", () => {
  assert.throws(
    () => parseKey('[{"a":1}]'),
    /^UsageError: Invalid key part 'key\[0\]' \{"a":1\}: an object part needs a 'type' \(string, number, bigint, boolean, bytes\) and a 'value'/,
  );
  assert.throws(
    () => parseKey('["ok", {"type": 5, "value": 1}]'),
    /Invalid key part 'key\[1\]' .*: its 'type' must be one of string/,
  );
  assert.throws(
    () => parseKey('[{"type":"bigint","value":"x"}]'),
    /Invalid key part 'key\[0\]': a 'bigint' part needs a decimal integer string/,
  );
  assert.deepEqual(parseKey('["a", {"type":"bigint","value":"5"}]'), [
    "a",
    5n,
  ]);
});

Deno.test("aspen --version, and kv get --help shows the global options and key examples", async () => {
  const version = await aspen(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.stdout, `${VERSION}\n`);
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  const help = await aspen(["kv", "get", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Global Options:\n(.*\n)*\s+--url <urls>/);
  assert.match(help.stdout, /--token <token>/);
  assert.match(help.stdout, /--timeout <ms>/);
  assert.match(help.stdout, /'\[\{"type":"bigint","value":"5"\}\]'/);
  assert.match(help.stdout, /aspen kv get '\["users", 1\]'/);
  const bad = await aspen([
    "kv",
    "get",
    '[{"a":1}]',
    "--url",
    "http://127.0.0.1:9",
  ]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /^aspen: Invalid key part 'key\[0\]' \{"a":1\}: an object part needs a 'type'/,
  );
});

Deno.test("a node's name is optional, from the file or --name, and validated", () => {
  assert.equal(resolveNodeConfig().name, "");
  assert.equal(
    resolveNodeConfig(configFromJson('{"name": "rack-a.1"}', "f")).name,
    "rack-a.1",
  );
  assert.equal(
    resolveNodeConfig({ name: "from-file" }, { name: "from-flag" }).name,
    "from-flag",
  );
  for (const bad of ["has space", "x".repeat(65), "ünï"]) {
    assert.throws(
      () => resolveNodeConfig({ name: bad }),
      /'name' must be 1 to 64 of A-Z a-z 0-9 \. _ -/,
    );
  }
});

Deno.test("quicIdleTimeoutMs defaults to 10 s, comes from the file, and is bounded", () => {
  assert.equal(resolveNodeConfig().quicIdleTimeoutMs, 10_000);
  assert.equal(
    resolveNodeConfig(configFromJson('{"quicIdleTimeoutMs": 60000}', "f"))
      .quicIdleTimeoutMs,
    60_000,
  );
  for (const bad of [999, 600_001, 1.5]) {
    assert.throws(
      () => resolveNodeConfig({ quicIdleTimeoutMs: bad }),
      /quicIdleTimeoutMs/,
    );
  }
});
