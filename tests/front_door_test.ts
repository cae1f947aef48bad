/**
 * The front door (issue 11): the tasks of `deno.json` come from one place and
 * run from a fresh clone with no terminal, on data folders and backups
 * outside the repository; `mod.ts` loads from a project without Aspen's
 * `deno.json`, and its KvU64 is the platform's.
 */
import assert from "node:assert/strict";
import { tasks } from "../scripts/tasks.ts";
import {
  ASPEN_ENV_VARS,
  grantFlags,
  grantsFor,
  parseCommandLine,
  UnsupportedPathError,
} from "../cli/permissions.ts";
import { createNodeCertificate } from "../src/cluster/certificate.ts";
import { generateNodeIdentity } from "../src/cluster/identity.ts";
import { freeTcpPorts, freeUdpPorts } from "../src/node/provision.ts";
import { block, commandLine, readmeBlocks } from "./helpers/readme_blocks.ts";
import { waitFor } from "./helpers/wait_for.ts";
import {
  freshClone,
  healthy,
  PERMISSION_PROBLEM,
  REPO_ROOT,
  runIn,
  startIn,
} from "./helpers/fresh_clone.ts";

const DENO = Deno.execPath();
const SRC = `${REPO_ROOT}/src`;
const noEnv = () => undefined;

Deno.test("deno.json's tasks are exactly the ones scripts/tasks.ts generates from cli/permissions.ts", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`));
  assert.deepEqual(config.tasks, tasks());
  for (const [name, line] of Object.entries(config.tasks as object)) {
    assert.doesNotMatch(String(line), /(^| )-A( |$)|--allow-all/, name);
  }
});

Deno.test("every environment variable the node and the CLI name is one the tasks grant", async () => {
  const named = new Set<string>();
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (/(?<!_test)\.ts$/.test(entry.name)) {
        const source = await Deno.readTextFile(path);
        for (
          const match of source.matchAll(
            /(?:\.env\(\s*|Deno\.env\.get\(\s*|\b)"((?:ASPEN|DENO_KV)_[A-Z_]+)"/g,
          )
        ) named.add(match[1]!);
      }
    }
  };
  await walk(`${REPO_ROOT}/cli`);
  await walk(SRC);
  assert.ok(named.has("ASPEN_HTTPS_CERT_FILE") && named.has("ASPEN_URL"));
  const granted = new Set(ASPEN_ENV_VARS);
  assert.deepEqual([...named].filter((name) => !granted.has(name)), []);
});

Deno.test("src/deps/msgpack.ts names the import map's MessagePack version", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`));
  const source = await Deno.readTextFile(`${SRC}/deps/msgpack.ts`);
  assert.ok(
    source.includes(`"${config.imports["@msgpack/msgpack"]}"`),
    "src/deps/msgpack.ts and deno.json's @msgpack/msgpack differ",
  );
});

Deno.test("README: the smoke test's blocks exist, and every Deno command in a code block goes through npx -y deno@2.9.6", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
  const blocks = readmeBlocks(readme);
  assert.match(
    commandLine(block(blocks, "start"), /task start$/),
    /^npx -y deno@2\.9\.6 task start$/,
  );
  assert.match(
    block(blocks, "app").body,
    /^\/\/ .*npx -y deno@2\.9\.6 run .*app\.ts\n/,
  );
  assert.match(
    block(blocks, "app").body,
    /Deno\.openKv\("http:\/\/127\.0\.0\.1:8080\/kv"\)/,
  );
  assert.match(
    commandLine(block(blocks, "dev-cluster"), /dev cluster/),
    /^npx -y deno@2\.9\.6 task aspen dev cluster --nodes 3$/,
  );
  assert.match(block(blocks, "cli").body, /kv set .*--ticket "\$TICKET"/);
  assert.match(readme, /Enqueue operations are not supported in KV Connect/);
  for (const match of readme.matchAll(/```\w*\n([\s\S]*?)\n```/g)) {
    for (const line of match[1]!.split("\n")) {
      if (/\bdeno (run|task|test|eval|install)\b/.test(line)) {
        assert.match(
          line,
          /npx -y deno@2\.9\.6 (run|task|test|eval|install)\b/,
          line,
        );
      }
    }
  }
});

Deno.test("parseCommandLine() separates words from option values", () => {
  const line = parseCommandLine([
    "--url",
    "http://x",
    "snapshot",
    "save",
    "--json",
    "/tmp/b.bin",
    "--timeout=5",
  ]);
  assert.deepEqual(line.words, ["snapshot", "save", "/tmp/b.bin"]);
  assert.deepEqual(line.values.get("--url"), ["http://x"]);
  assert.deepEqual(line.values.get("--timeout"), ["5"]);
});

Deno.test("grantsFor() grants exactly the paths a command line names", () => {
  const save = grantsFor({
    args: ["snapshot", "save", "/tmp/b.bin", "--url", "http://x"],
    env: noEnv,
    srcDir: SRC,
  });
  assert.deepEqual(save.write, ["/tmp/b.bin", "/tmp/b.bin.partial"]);
  assert.deepEqual(save.read, ["/tmp/b.bin", "/tmp/b.bin.partial"]);
  assert.equal(save.run, false);

  const restore = grantsFor({
    args: ["snapshot", "restore", "/b/x.bin", "--data-dir", "/srv/n"],
    env: noEnv,
    srcDir: SRC,
  });
  assert.deepEqual(restore.read.sort(), ["/b/x.bin", "/srv/n"]);
  assert.deepEqual(restore.write, ["/srv/n"]);

  const start = grantsFor({
    args: ["node", "start", "--config", "/etc/a.json"],
    env: (name) =>
      ({
        ASPEN_HTTPS_CERT_FILE: "/c/cert.pem",
        ASPEN_HTTPS_KEY_FILE: "/c/key.pem",
      })[name],
    readConfig: () => JSON.stringify({ dataDir: "/var/lib/aspen" }),
    srcDir: SRC,
  });
  assert.deepEqual(start.write, ["/var/lib/aspen"]);
  assert.deepEqual(
    start.read.sort(),
    ["/c/cert.pem", "/c/key.pem", "/etc/a.json", "/var/lib/aspen", SRC].sort(),
  );
  assert.ok(start.env.includes("ASPEN_HTTPS_CERT_FILE"));

  const plain = grantsFor({ args: ["node", "start"], env: noEnv, srcDir: SRC });
  assert.deepEqual(plain.write, ["./data"]);

  const dev = grantsFor({
    args: ["dev", "cluster", "--nodes", "3", "--data-dir=/tmp/d"],
    env: noEnv,
    srcDir: SRC,
  });
  assert.deepEqual(dev.write, ["/tmp/d"]);
  assert.equal(dev.run, true);

  const get = grantsFor({ args: ["kv", "get", "k"], env: noEnv, srcDir: SRC });
  assert.deepEqual([get.read, get.write, get.run], [[], [], false]);
  assert.ok(!grantFlags(get).some((f) => /allow-(read|write|run)/.test(f)));

  assert.throws(
    () =>
      grantsFor({
        args: ["snapshot", "save", "/tmp/a,b"],
        env: noEnv,
        srcDir: SRC,
      }),
    UnsupportedPathError,
  );
});

Deno.test("mod.ts loads from a project without Aspen's deno.json, by path and by file:// URL; its KvU64 is Deno.KvU64", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-other-project-" });
  try {
    const program = (mod: string, values: string) =>
      `import { connect, KvU64 } from ${JSON.stringify(mod)};
import { valueFromWire, valueToWire } from ${JSON.stringify(values)};
const u = new KvU64(5n);
const back = valueFromWire(valueToWire(u));
const platform = (globalThis as any).Deno.KvU64;
console.log(JSON.stringify({
  connect: typeof connect,
  value: String((back as { value: bigint }).value),
  platform: typeof platform === "function",
  made: typeof platform === "function" && u instanceof platform,
  decoded: typeof platform === "function" && back instanceof platform,
}));
`;
    const byPath = program(`${REPO_ROOT}/mod.ts`, `${SRC}/client/_values.ts`);
    const byUrl = program(
      new URL(`file://${REPO_ROOT}/mod.ts`).href,
      new URL(`file://${SRC}/client/_values.ts`).href,
    );
    await Deno.writeTextFile(`${dir}/by_path.ts`, byPath);
    await Deno.writeTextFile(`${dir}/by_url.ts`, byUrl);
    for (const file of ["by_path.ts", "by_url.ts"]) {
      for (const unstable of [true, false]) {
        const { code, output } = await runIn(dir, DENO, [
          "run",
          ...(unstable ? ["--unstable-kv"] : []),
          file,
        ]);
        assert.equal(code, 0, `${file}: ${output}`);
        const result = JSON.parse(output.trim().split("\n").at(-1)!);
        assert.equal(result.connect, "function");
        assert.equal(result.value, "5");
        assert.equal(result.platform, unstable);
        assert.equal(result.made, unstable, `${file}: ${output}`);
        assert.equal(result.decoded, unstable, `${file}: ${output}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "a fresh clone runs deno.json's tasks as written with stdin closed: start (HTTPS, data outside the repo), aspen kv/snapshot save/restore/node start outside it, sim, lincheck",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const clone = await freshClone("aspen-front-door-");
    const outside = await Deno.makeTempDir({ prefix: "aspen-outside-" });
    const started = [];
    try {
      const certificate = await createNodeCertificate(
        await generateNodeIdentity(),
        { ipAddresses: ["127.0.0.1"] },
      );
      await Deno.writeTextFile(
        `${outside}/cert.pem`,
        certificate.certificatePem,
      );
      await Deno.writeTextFile(`${outside}/key.pem`, certificate.privateKeyPem);
      const [httpPort, httpPort2] = freeTcpPorts("127.0.0.1", 2);
      const [quicPort, quicPort2] = freeUdpPorts("127.0.0.1", 2);
      const env = {
        ASPEN_DATA_DIR: `${outside}/node`,
        ASPEN_HTTP_PORT: String(httpPort),
        ASPEN_QUIC_PORT: String(quicPort),
        ASPEN_HTTPS_CERT_FILE: `${outside}/cert.pem`,
        ASPEN_HTTPS_KEY_FILE: `${outside}/key.pem`,
      };
      const start = startIn(clone, DENO, ["task", "start"], env);
      started.push(start);
      const url = `https://127.0.0.1:${httpPort}`;
      const client = Deno.createHttpClient({
        caCerts: [certificate.certificatePem],
      });
      try {
        await waitFor("task start answers /health over HTTPS", async () => {
          if (start.exited) throw new Error(`exited: ${start.output}`);
          const response = await fetch(`${url}/health`, {
            client,
            signal: AbortSignal.timeout(5_000),
          });
          await response.body?.cancel();
          return response.ok;
        }, { timeoutMs: 180_000, intervalMs: 250, retryErrors: true });
      } finally {
        client.close();
      }
      assert.doesNotMatch(start.output, PERMISSION_PROBLEM, start.output);
      const token = (await Deno.readTextFile(`${outside}/node/access.token`))
        .trim();
      const adminToken =
        (await Deno.readTextFile(`${outside}/node/admin.token`)).trim();

      // The CLI over HTTPS needs the node's certificate: Deno reads it from
      // DENO_CERT, which is the user's choice, not a permission.
      const cli = { DENO_CERT: `${outside}/cert.pem` };
      const aspen = async (...args: string[]) => {
        const result = await runIn(
          clone,
          DENO,
          ["task", "aspen", ...args],
          cli,
        );
        assert.doesNotMatch(result.output, PERMISSION_PROBLEM, result.output);
        assert.equal(
          result.code,
          0,
          `aspen ${args.join(" ")}: ${result.output}`,
        );
        return result.output;
      };
      await aspen(
        "kv",
        "set",
        "greeting",
        "hello",
        "--url",
        url,
        "--token",
        token,
      );
      assert.match(
        await aspen("kv", "get", "greeting", "--url", url, "--token", token),
        /hello/,
      );
      await aspen(
        "snapshot",
        "save",
        `${outside}/backup.bin`,
        "--url",
        url,
        "--admin-token",
        adminToken,
      );
      assert.ok((await Deno.stat(`${outside}/backup.bin`)).size > 0);
      await aspen(
        "snapshot",
        "restore",
        `${outside}/backup.bin`,
        "--data-dir",
        `${outside}/restored`,
        // Permissions are what this checks; signatures have their own tests.
        "--trust-unsigned",
      );
      const status = await start.stop();
      assert.doesNotMatch(start.output, PERMISSION_PROBLEM, start.output);
      assert.ok(status.code === 0 || status.signal !== null, start.output);

      // The launcher passes the CLI's exit code on: 3, unavailable.
      const gone = await runIn(clone, DENO, [
        "task",
        "aspen",
        "kv",
        "get",
        "greeting",
        "--url",
        url,
        "--timeout",
        "3000",
      ], cli);
      assert.equal(gone.code, 3, gone.output);

      const restored = startIn(clone, DENO, [
        "task",
        "aspen",
        "node",
        "start",
        "--data-dir",
        `${outside}/restored`,
        "--http-port",
        String(httpPort2),
        "--quic-port",
        String(quicPort2),
      ]);
      started.push(restored);
      const url2 = `http://127.0.0.1:${httpPort2}`;
      await waitFor("the restored node answers /health", async () => {
        if (restored.exited) throw new Error(`exited: ${restored.output}`);
        return await healthy(url2);
      }, { timeoutMs: 180_000, intervalMs: 250, retryErrors: true });
      const token2 =
        (await Deno.readTextFile(`${outside}/restored/access.token`))
          .trim();
      assert.match(
        await aspen("kv", "get", "greeting", "--url", url2, "--token", token2),
        /hello/,
      );
      await restored.stop();
      assert.doesNotMatch(restored.output, PERMISSION_PROBLEM, restored.output);

      for (
        const args of [
          ["task", "sim", "--seeds", "2", "--nodes", "3"],
          ["task", "lincheck", "fixtures/linearizability/kv/c50-ok.txt"],
        ]
      ) {
        const result = await runIn(clone, DENO, args);
        assert.doesNotMatch(result.output, PERMISSION_PROBLEM, result.output);
        assert.equal(result.code, 0, `${args.join(" ")}: ${result.output}`);
      }
    } finally {
      for (const process of started) await process.stop();
      await Deno.remove(outside, { recursive: true }).catch(() => {});
      await Deno.remove(clone.replace(/\/aspen$/, ""), { recursive: true })
        .catch(() => {});
    }
  },
});
