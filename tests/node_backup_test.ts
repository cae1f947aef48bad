/**
 * Backups: streamed over HTTP from a running node and signed by its cluster
 * key; restored into a NEW one-node cluster (new id, only its own member);
 * crafted, tampered or foreign backups refused before anything is left in
 * the target folder; clients refuse a node of another cluster.
 */
import assert from "node:assert/strict";
import { connect, WrongClusterError } from "../mod.ts";
import { decodeBase32 } from "../src/base/base32.ts";
import { formatClusterId } from "../src/cluster/credential.ts";
import { generateSigningKey, type SigningKey } from "../src/cluster/keys.ts";
import { formatTicket, parseTicket } from "../src/cluster/ticket.ts";
import type { SnapshotChunk } from "../src/state/state_store.ts";
import type { KvRow } from "../src/model/types.ts";
import type { LogIndex } from "../src/raft/types.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { readyKey } from "../src/services/queues/keys.ts";
import { decodeBase64Url } from "../src/base/base64.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import {
  BackupContentError,
  BackupFormatError,
  backupStream,
  restoreBackup,
} from "../src/node/backup.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode, SNAPSHOT_ROUTE } from "../src/server/serve.ts";
import { waitFor } from "./helpers/wait_for.ts";

const HOST = "127.0.0.1";
const quiet = () => {};

async function start(dataDir: string) {
  // QUIC port 0: Deno keeps a closed QUIC endpoint's port bound for the process.
  const config = resolveNodeConfig({
    dataDir,
    httpPort: freeTcpPorts(HOST, 1)[0]!,
    quicPort: 0,
    tickMs: 20,
  });
  return await serveNode(config, { log: quiet });
}

async function waitForLeader(url: string): Promise<void> {
  await waitFor(`a leader at ${url}`, async () => {
    const response = await fetch(`${url}/health`);
    await response.body?.cancel();
    return response.ok;
  }, { timeoutMs: 30_000, intervalMs: 50 });
}

async function listing(dir: string): Promise<string[] | null> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    return names.sort();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

Deno.test("snapshot save and restore: a new one-node cluster with every key, its own id and only its own member; clients refuse a node of another cluster", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-backup-" });
  const source = await start(`${root}/source`);
  const sourceToken = () => source.kvConnectTokens[0]!;
  let restored: Awaited<ReturnType<typeof start>> | null = null;
  try {
    await waitForLeader(source.url);
    const client = connect(source.url, { token: sourceToken() });
    for (let i = 0; i < 100; i++) {
      await client.kv.set(["item", i], new TextEncoder().encode(`value-${i}`));
    }
    await client.kv.enqueue("queued message");
    client.close();
    // A backup needs the admin scope: the data token is refused.
    const refused = await fetch(`${source.url}${SNAPSHOT_ROUTE}`, {
      headers: { authorization: `Bearer ${sourceToken()}` },
    });
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const response = await fetch(`${source.url}${SNAPSHOT_ROUTE}`, {
      headers: { authorization: `Bearer ${source.adminTokens[0]}` },
    });
    assert.equal(response.status, 200);
    const backup = await response.bytes();
    const sourceId = source.node.status().clusterId;

    await assert.rejects(
      restoreBackup(backup, `${root}/unsure`),
      /pass the source cluster's id/,
    );
    await assert.rejects(
      restoreBackup(backup, `${root}/other`, {
        expectedClusterId: formatClusterId(
          (await generateSigningKey()).publicKey,
        ),
      }),
      /comes from cluster .*not the expected/,
    );
    assert.equal(await listing(`${root}/other`), null);

    const result = await restoreBackup(backup, `${root}/restored`, {
      expectedClusterId: sourceId,
    });
    assert.equal(result.verified, true);
    assert.ok(result.appliedIndex >= 100);
    assert.notEqual(result.newClusterId, sourceId);
    await assert.rejects(
      restoreBackup(backup, `${root}/restored`, { trustUnsigned: true }),
      /already holds a node/,
    );
    restored = await start(`${root}/restored`);
    await waitForLeader(restored.url);
    assert.equal(restored.node.status().clusterId, result.newClusterId);
    // Its ticket lists this node alone (was: the backup's members too).
    const ticket = parseTicket(restored.node.clientTicket());
    assert.equal(ticket.nodes.length, 1);
    assert.deepEqual(
      ticket.nodes[0]!.nodeKey,
      decodeBase64Url(restored.node.address.nodeKey),
    );
    const token = restored.kvConnectTokens[0]!;
    const copy = connect(restored.node.clientTicket(), { token });
    try {
      for (let i = 0; i < 100; i += 9) {
        const entry = await copy.kv.get(["item", i]);
        assert.equal(
          new TextDecoder().decode(entry.value as Uint8Array),
          `value-${i}`,
        );
      }
      // The new cluster continues after the backup's index.
      const after = await copy.kv.set(["after"], new Uint8Array([1]));
      assert.ok(
        BigInt(`0x${after.versionstamp}`) > BigInt(result.appliedIndex) << 16n,
      );
    } finally {
      copy.close();
    }

    // A ticket of the source cluster pointing at the restored node: refused
    // before anything is applied there.
    const misdirected = formatTicket({
      kind: "client",
      clusterId: decodeBase32(sourceId),
      nodes: [{
        nodeKey: decodeBase64Url(restored.node.address.nodeKey),
        httpUrls: [restored.url],
        quicAddresses: [],
      }],
    });
    const wrong = connect(misdirected, { attemptsMax: 2, token });
    try {
      await assert.rejects(
        wrong.kv.set(["misdirected"], 1),
        (error) =>
          error instanceof WrongClusterError && error.code === "wrongCluster",
      );
      await assert.rejects(wrong.kv.get(["item", 0]), WrongClusterError);
    } finally {
      wrong.close();
    }
    const direct = connect(restored.url, { token });
    try {
      assert.equal((await direct.kv.get(["misdirected"])).value, null);
    } finally {
      direct.close();
    }
    // Given URLs only, the first answer names the cluster: once the source
    // is gone, the restored node (another cluster) is refused.
    const mixed = connect([source.url, restored.url], {
      attemptsMax: 4,
      token: sourceToken(),
    });
    try {
      assert.equal(
        (await mixed.kv.get(["item", 1])).versionstamp !== null,
        true,
      );
      await source.stop();
      await assert.rejects(mixed.kv.get(["item", 1]), WrongClusterError);
    } finally {
      mixed.close();
    }
    // KV Connect: a metadata URL bound to another cluster is refused.
    const bound = await fetch(
      `${restored.url}/kv?cluster=${sourceId}`,
      { method: "POST", body: "{}" },
    );
    assert.equal(bound.status, 409);
    assert.equal((await bound.json()).error.code, "wrongCluster");
  } finally {
    await restored?.stop();
    await source.stop();
    await Deno.remove(root, { recursive: true });
  }
});

function row(key: Uint8Array, value: Uint8Array, encoding = "bytes"): KvRow {
  return {
    key,
    value,
    encoding: encoding as KvRow["encoding"],
    versionstamp: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 0, 0),
    expireAtMs: null,
  };
}

async function craft(
  rows: KvRow[],
  signer: SigningKey,
  clusterId = formatClusterId(signer.publicKey),
): Promise<Uint8Array> {
  const chunk: SnapshotChunk = {
    appliedIndex: 5 as LogIndex,
    sequence: 0,
    rows,
    meta: [],
    last: true,
  };
  return await new Response(
    backupStream(
      { clusterId, databaseId: crypto.randomUUID(), createdAtMs: 0 },
      [chunk][Symbol.iterator](),
      signer,
    ),
  ).bytes();
}

Deno.test("restore refuses a crafted 0xff row, a non-KV key and a tampered byte, leaving the folder as it was", async (t) => {
  const root = await Deno.makeTempDir({ prefix: "aspen-backup-bad-" });
  const key = await generateSigningKey();
  const id = formatClusterId(key.publicKey);
  const good = row(encodeKey(["ok"]), new Uint8Array([1]));
  // The folder holds an unrelated file before each restore.
  const target = `${root}/target`;
  await Deno.mkdir(target);
  await Deno.writeTextFile(`${target}/keep.txt`, "mine");
  const unchanged = async () => {
    assert.deepEqual(await listing(target), ["keep.txt"]);
    assert.equal(await listing(`${root}/absent`), null);
    const leftovers = (await listing(root))!.filter((n) =>
      n.includes("restoring")
    );
    assert.deepEqual(leftovers, []);
  };
  try {
    await t.step(
      "a well-formed crafted backup restores (control)",
      async () => {
        const bytes = await craft([good], key);
        const result = await restoreBackup(bytes, `${root}/control`, {
          expectedClusterId: id,
        });
        assert.equal(result.rows, 1);
      },
    );
    await t.step("an internal (0xff) row that does not decode", async () => {
      // The queue stats row of queue "q", holding an invalid MessagePack byte.
      const bytes = await craft(
        [
          good,
          row(new Uint8Array([0xff, 0x71, 0x73, 0x71]), Uint8Array.of(0xc1)),
        ],
        key,
      );
      for (const dir of [target, `${root}/absent`]) {
        await assert.rejects(
          restoreBackup(bytes, dir, { expectedClusterId: id }),
          (e) =>
            e instanceof BackupContentError &&
            /queue stats that does not decode/.test(e.message),
        );
      }
      await unchanged();
    });
    await t.step("an internal row of no known record", async () => {
      const bytes = await craft(
        [good, row(new Uint8Array([0xff, 0x00]), new Uint8Array())],
        key,
      );
      await assert.rejects(
        restoreBackup(bytes, target, { expectedClusterId: id }),
        /no known record/,
      );
      await unchanged();
    });
    await t.step(
      "queue records that disagree (a ready row of no message)",
      async () => {
        const bytes = await craft(
          [
            good,
            row(readyKey("q", 5, new Uint8Array(10).fill(7)), new Uint8Array()),
          ],
          key,
        );
        await assert.rejects(
          restoreBackup(bytes, target, { expectedClusterId: id }),
          /queue records disagree: ready row of missing message/,
        );
        await unchanged();
      },
    );
    await t.step("a versionstamp after the backup's index", async () => {
      const future = row(encodeKey(["future"]), Uint8Array.of(1));
      const bytes = await craft(
        [{
          ...future,
          versionstamp: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 9, 0, 0),
        }],
        key,
      );
      await assert.rejects(
        restoreBackup(bytes, target, { expectedClusterId: id }),
        /versionstamp of index 9 after the backup's index 5/,
      );
      await unchanged();
    });
    await t.step("a key that is not a Deno KV key", async () => {
      const bytes = await craft(
        [row(Uint8Array.of(0x99, 1), Uint8Array.of(1))],
        key,
      );
      await assert.rejects(
        restoreBackup(bytes, target, { expectedClusterId: id }),
        BackupContentError,
      );
      await unchanged();
    });
    await t.step("a V8 value that does not decode", async () => {
      const bytes = await craft([
        row(encodeKey(["v"]), Uint8Array.of(1, 2), "v8"),
      ], key);
      await assert.rejects(
        restoreBackup(bytes, target, { expectedClusterId: id }),
        BackupContentError,
      );
      await unchanged();
    });
    await t.step("a tampered byte", async () => {
      const bytes = await craft(
        [row(encodeKey(["secret"]), new TextEncoder().encode("abcdef"))],
        key,
      );
      const text = new TextDecoder("latin1").decode(bytes);
      const at = text.indexOf("abcdef");
      assert.ok(at > 0);
      bytes[at + 2] = "z".charCodeAt(0);
      for (
        const options of [{ expectedClusterId: id }, { trustUnsigned: true }]
      ) {
        await assert.rejects(
          restoreBackup(bytes, target, options),
          (e) => e instanceof BackupFormatError && /checksum/.test(e.message),
        );
      }
      await unchanged();
    });
    await t.step(
      "a backup re-signed by another key than its cluster's",
      async () => {
        const other = await generateSigningKey();
        const bytes = await craft([good], other, id);
        await assert.rejects(
          restoreBackup(bytes, target, { expectedClusterId: id }),
          /signature does not verify/,
        );
        await unchanged();
      },
    );
    await t.step("a truncated backup", async () => {
      const bytes = await craft([good], key);
      await assert.rejects(
        restoreBackup(bytes.subarray(0, bytes.length - 10), target, {
          trustUnsigned: true,
        }),
        /ends early/,
      );
      await unchanged();
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

async function cli(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-net",
      new URL("../cli/aspen.ts", import.meta.url).pathname,
      ...args,
    ],
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("CLI: snapshot save streams to a 0600 file; restore needs --cluster-id or --trust-unsigned; stock Deno.openKv binds a URL to a cluster", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-backup-cli-" });
  const source = await start(`${root}/source`);
  try {
    await waitForLeader(source.url);
    const client = connect(source.url, { token: source.kvConnectTokens[0] });
    for (let i = 0; i < 20; i++) await client.kv.set(["k", i], `v${i}`);
    client.close();
    const id = source.node.status().clusterId;
    const file = `${root}/aspen.backup`;
    const save = await cli(
      "snapshot",
      "save",
      file,
      "--ticket",
      source.node.clientTicket(),
      "--admin-token",
      source.adminTokens[0]!,
    );
    assert.equal(save.code, 0, save.stderr);
    assert.match(save.stdout, new RegExp(`signed by cluster ${id}`));
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    assert.equal(await listing(`${root}/aspen.backup.partial`), null);

    const unsure = await cli(
      "snapshot",
      "restore",
      file,
      "--data-dir",
      `${root}/r`,
    );
    assert.equal(unsure.code, 2);
    assert.match(unsure.stderr, /--cluster-id ID .*--trust-unsigned/);
    assert.equal(await listing(`${root}/r`), null);
    const restore = await cli(
      "snapshot",
      "restore",
      file,
      "--data-dir",
      `${root}/r`,
      "--cluster-id",
      id,
    );
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(
      restore.stdout,
      /restored \d+ rows .*signature verified.*as new cluster/,
    );

    // Stock Deno: a metadata URL bound to this cluster works, another is refused.
    const stock = async (cluster: string) =>
      await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          "--unstable-kv",
          `const kv = await Deno.openKv(${
            JSON.stringify(`${source.url}/kv?cluster=${cluster}`)
          }); console.log((await kv.get(["k", 3])).value); kv.close();`,
        ],
        env: { DENO_KV_ACCESS_TOKEN: source.kvConnectTokens[0]! },
        stdin: "null",
      }).output();
    const right = await stock(id);
    assert.equal(new TextDecoder().decode(right.stdout).trim(), "v3");
    const other = await stock(
      formatClusterId((await generateSigningKey()).publicKey),
    );
    assert.notEqual(other.code, 0);
    assert.match(new TextDecoder().decode(other.stderr), /409.*wrongCluster/);
  } finally {
    await source.stop();
    await Deno.remove(root, { recursive: true });
  }
});
