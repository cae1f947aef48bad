/**
 * One error path for every `aspen` command: a table of every leaf command
 * against an unreachable node (by --url and by --ticket), a wrong token, no
 * token, an unknown flag and a malformed --timeout, each asserting the
 * documented exit code (0 ok, 1 refused, 2 usage, 3 unavailable, 4 auth)
 * and one readable line on stderr.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CommandUnknownOpts } from "@commander-js/extra-typings";
import { program } from "../cli/aspen.ts";
import { formatTicket } from "../src/cluster/ticket.ts";
import {
  aspen,
  type CliResult,
  deadUrl,
  inBatches,
} from "./helpers/cli_run.ts";
import { startTestCluster, TEST_TOKEN } from "./helpers/http_cluster.ts";

/** A well-formed lease id and holder token for the coordination commands. */
const LEASE = "0123456789abcdef";
const HOLDER_TOKEN = "0000000000000001000a";

/** Commands that talk to a cluster, with valid arguments. */
function networkCommands(dir: string): Record<string, string[]> {
  return {
    "kv get": ["kv", "get", "a"],
    "kv set": ["kv", "set", "a", "b"],
    "kv delete": ["kv", "delete", "a"],
    "kv list": ["kv", "list"],
    "kv atomic": ["kv", "atomic", "--set", "a=b"],
    "kv watch": ["kv", "watch", "a", "--count", "1"],
    "lease grant": ["lease", "grant", "5000"],
    "lease keepalive": ["lease", "keepalive", LEASE, "--once"],
    "lease revoke": ["lease", "revoke", LEASE],
    "lease ttl": ["lease", "ttl", LEASE],
    "lease list": ["lease", "list"],
    "lock acquire": ["lock", "acquire", "a", "--timeout", "1000"],
    "lock release": ["lock", "release", "a", "--token", HOLDER_TOKEN],
    "lock status": ["lock", "status", "a"],
    "elect campaign": ["elect", "campaign", "a", "v", "--timeout", "1000"],
    "elect proclaim": ["elect", "proclaim", "a", "v", "--token", HOLDER_TOKEN],
    "elect leader": ["elect", "leader", "a"],
    "elect observe": ["elect", "observe", "a", "--count", "1"],
    "elect resign": ["elect", "resign", "a", "--token", HOLDER_TOKEN],
    "events watch": ["events", "watch", "a", "--count", "1"],
    "events list": ["events", "list", "a"],
    "events status": ["events", "status"],
    "cluster status": ["cluster", "status"],
    "cluster members": ["cluster", "members"],
    "cluster ticket": ["cluster", "ticket"],
    "cluster join-ticket": ["cluster", "join-ticket"],
    "cluster add-learner": [
      "cluster",
      "add-learner",
      "n9",
      "--http-url",
      "http://127.0.0.1:9",
      "--quic-host",
      "127.0.0.1",
      "--quic-port",
      "9",
      "--node-key",
      "AAAA",
      "--certificate-hash",
      "AAAA",
    ],
    "cluster promote": ["cluster", "promote", "n2"],
    "cluster remove": ["cluster", "remove", "n2"],
    "cluster transfer-leader": ["cluster", "transfer-leader", "n2"],
    "cluster health": ["cluster", "health"],
    "cluster endpoints": ["cluster", "endpoints"],
    "snapshot save": ["snapshot", "save", `${dir}/backup`],
    "hook create": [
      "hook",
      "create",
      "--name",
      "h",
      "--webhook",
      "https://example.com/h",
    ],
    "hook list": ["hook", "list"],
    "hook get": ["hook", "get", "h"],
    "hook delete": ["hook", "delete", "h"],
    "hook enable": ["hook", "enable", "h"],
    "hook disable": ["hook", "disable", "h"],
    "hook rotate-secret": ["hook", "rotate-secret", "h"],
    "hook deliveries": ["hook", "deliveries", "h"],
    "hook replay": [
      "hook",
      "replay",
      "h",
      "--from-revision",
      "1",
      "--to-revision",
      "2",
    ],
    "hook trigger": ["hook", "trigger", "h"],
    "topic create": ["topic", "create", "t"],
    "topic list": ["topic", "list"],
    "topic describe": ["topic", "describe", "t"],
    "topic delete": ["topic", "delete", "t"],
    "topic publish": ["topic", "publish", "t", "v"],
    "group list": ["group", "list"],
    "group describe": ["group", "describe", "g", "--topic", "t"],
    "group reset": ["group", "reset", "g", "--topic", "t", "--to", "earliest"],
    "consume": ["consume", "t", "--group", "g", "--count", "1"],
  };
}

/** Commands that work on this machine only (no node to reach). */
function localCommands(dir: string): Record<string, string[]> {
  return {
    "snapshot restore": [
      "snapshot",
      "restore",
      `${dir}/backup`,
      "--data-dir",
      `${dir}/restored`,
    ],
    "node start": ["node", "start", "--data-dir", `${dir}/node`],
    "dev cluster": ["dev", "cluster", "--data-dir", `${dir}/dev`],
    "dev status": ["dev", "status", "--data-dir", `${dir}/dev`],
    "completions": ["completions", "bash"],
    // Runs until interrupted: only its parse errors are in the table.
    "worker start": ["worker", "start"],
  };
}

function leafCommands(command: CommandUnknownOpts, path = ""): string[] {
  const here = path === "" ? "" : path;
  if (command.commands.length === 0) return [here];
  return command.commands.flatMap((c) =>
    leafCommands(c, here === "" ? c.name() : `${here} ${c.name()}`)
  );
}

function assertOneLine(label: string, result: CliResult, code: number) {
  const detail = `${label}: exit ${result.code}, stderr '${
    result.stderr.slice(0, 400)
  }'`;
  assert.equal(result.code, code, detail);
  assert.match(result.stderr, /^aspen: [^\n]+\n$/, detail);
  assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, `${detail}: a stack`);
}

Deno.test("the exit-code table names every leaf command", () => {
  const listed = [
    ...Object.keys(networkCommands("/d")),
    ...Object.keys(localCommands("/d")),
  ].sort();
  assert.deepEqual(leafCommands(program()).sort(), listed);
});

Deno.test("every command: unreachable node 3, wrong or missing token 4, bad flag or --timeout 2, one line each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-cli-exit-" });
  const cluster = await startTestCluster({ serve: true });
  try {
    const live = cluster.follower().url!;
    const dead = deadUrl();
    const deadTicket = formatTicket({
      kind: "client",
      clusterId: new Uint8Array(32).fill(7),
      nodes: [{
        nodeKey: new Uint8Array(32).fill(1),
        httpUrls: [dead],
        quicAddresses: [],
      }],
    });
    type Case = {
      label: string;
      args: string[];
      code: number;
      stderr?: RegExp;
      output?: RegExp;
    };
    const cases: Case[] = [];
    for (const [name, args] of Object.entries(networkCommands(dir))) {
      const port = dead.split(":").at(-1)!;
      const unreachable = new RegExp(
        `[Cc]annot reach.*127\\.0\\.0\\.1:${port}`,
      );
      cases.push(
        {
          label: `${name} / unreachable --url`,
          args: ["--url", dead, "--token", "t", "--timeout", "5000", ...args],
          code: 3,
          output: unreachable,
        },
        {
          label: `${name} / unreachable --ticket`,
          args: [
            "--ticket",
            deadTicket,
            "--token",
            "t",
            "--timeout",
            "5000",
            ...args,
          ],
          code: 3,
          output: unreachable,
        },
        {
          label: `${name} / wrong token`,
          args: ["--url", live, "--token", "wrong", ...args],
          code: 4,
          stderr: /^aspen: Invalid bearer token\n$/,
        },
        {
          label: `${name} / no token`,
          args: ["--url", live, ...args],
          code: 4,
          stderr: /^aspen: Missing bearer token/,
        },
      );
    }
    const every = {
      ...networkCommands(dir),
      ...localCommands(dir),
    };
    for (const [name, args] of Object.entries(every)) {
      cases.push(
        {
          label: `${name} / unknown flag`,
          args: [...args, "--frobnicate"],
          code: 2,
          stderr:
            /^aspen: unknown option '--frobnicate' \(see 'aspen .*--help'\)\n$/,
        },
        {
          label: `${name} / --timeout abc`,
          args: ["--timeout", "abc", ...args],
          code: 2,
          stderr: /^aspen: option '--timeout <ms>' argument 'abc' is invalid\./,
        },
      );
    }
    // A bad value for a command's own option: the same one line, exit 2.
    cases.push(
      {
        label: "dev cluster / --nodes 9",
        args: ["dev", "cluster", "--nodes", "9"],
        code: 2,
        stderr: /^aspen: --nodes must be in \[1, 7\]/,
      },
      {
        label: "node start / --http-port abc",
        args: ["node", "start", "--http-port", "abc"],
        code: 2,
        stderr: /^aspen: option '--http-port <port>' argument 'abc' is invalid/,
      },
      {
        label: "kv list / --limit x",
        args: [
          "--url",
          live,
          "--token",
          TEST_TOKEN,
          "kv",
          "list",
          "--limit",
          "x",
        ],
        code: 2,
        stderr: /^aspen: Invalid number 'x'/,
      },
      {
        label: "snapshot restore / missing file",
        args: [
          "snapshot",
          "restore",
          `${dir}/absent`,
          "--data-dir",
          `${dir}/r`,
        ],
        code: 2,
      },
    );
    const results = await inBatches(
      cases.map((c) => () => aspen(c.args)),
      4,
    );
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      try {
        const result = results[i]!;
        assertOneLine(c.label, result, c.code);
        if (c.stderr !== undefined) {
          assert.match(result.stderr, c.stderr, `${c.label}: ${result.stderr}`);
        }
        if (c.output !== undefined) {
          assert.match(
            result.stdout + result.stderr,
            c.output,
            `${c.label}: ${result.stderr}`,
          );
        }
      } catch (error) {
        failures.push((error as Error).message.split("\n")[0]!);
      }
    }
    assert.deepEqual(failures, []);
    // Nothing was written by any of them.
    assert.equal(
      (await Array.fromAsync(
        (await import("../mod.ts")).connect(live, { token: TEST_TOKEN }).kv
          .list({ prefix: [] }),
      )).length,
      0,
    );
  } finally {
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("node start --join exits 3 when no member of the ticket answers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-cli-join-" });
  try {
    const dead = deadUrl();
    const ticket = formatTicket({
      kind: "join",
      clusterId: new Uint8Array(32).fill(7),
      nodes: [{
        nodeKey: new Uint8Array(32).fill(1),
        httpUrls: [dead],
        quicAddresses: [],
      }],
      joinToken: new Uint8Array(64).fill(3),
    });
    const result = await aspen(
      ["node", "start", "--data-dir", `${dir}/n`, "--join", ticket],
      {},
      ["--unstable-net", "--allow-env", `--allow-write=${dir}`],
    );
    assertOneLine("node start --join", result, 3);
    assert.match(result.stderr, /^aspen: Cannot join the cluster: /);
    assert.ok(result.stderr.includes(dead), result.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
