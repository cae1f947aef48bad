/** Backup over HTTP from a running node, restore into a new cluster, read it back. */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import {
  BackupFormatError,
  decodeBackup,
  restoreBackup,
} from "../src/node/backup.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode, SNAPSHOT_ROUTE } from "../src/node/serve.ts";

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
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const response = await fetch(`${url}/health`);
    await response.body?.cancel();
    if (response.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`No leader at ${url} within 15 s`);
}

Deno.test("snapshot save and restore round-trip every key into a new one-node cluster", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-backup-" });
  const source = await start(`${root}/source`);
  let restored: Awaited<ReturnType<typeof start>> | null = null;
  try {
    await waitForLeader(source.url);
    const client = connect(source.url, { token: source.kvConnectTokens[0] });
    for (let i = 0; i < 100; i++) {
      await client.kv.set(["item", i], new TextEncoder().encode(`value-${i}`));
    }
    // A backup needs the admin scope: the data token is refused.
    const refused = await fetch(`${source.url}${SNAPSHOT_ROUTE}`, {
      headers: { authorization: `Bearer ${source.kvConnectTokens[0]}` },
    });
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const response = await fetch(`${source.url}${SNAPSHOT_ROUTE}`, {
      headers: { authorization: `Bearer ${source.adminTokens[0]}` },
    });
    assert.equal(response.status, 200);
    const backup = new Uint8Array(await response.arrayBuffer());
    assert.ok(decodeBackup(backup).appliedIndex >= 100);

    const header = await restoreBackup(backup, `${root}/restored`);
    await assert.rejects(
      restoreBackup(backup, `${root}/restored`),
      /already holds a node/,
    );
    restored = await start(`${root}/restored`);
    await waitForLeader(restored.url);
    const copy = connect(restored.url, { token: restored.kvConnectTokens[0] });
    for (let i = 0; i < 100; i += 9) {
      const entry = await copy.kv.get(["item", i]);
      assert.equal(
        new TextDecoder().decode(entry.value as Uint8Array),
        `value-${i}`,
      );
    }
    // The new cluster continues after the backup's index: versionstamps keep increasing.
    const after = await copy.kv.set(["after"], new Uint8Array([1]));
    assert.ok(
      BigInt(`0x${after.versionstamp}`) > BigInt(header.appliedIndex) << 16n,
    );
    assert.notEqual(
      restored.node.status().clusterId,
      source.node.status().clusterId,
    );
  } finally {
    await restored?.stop();
    await source.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("decodeBackup() refuses a damaged or foreign file", () => {
  assert.throws(
    () =>
      decodeBackup(new TextEncoder().encode("not a backup at all, clearly")),
    BackupFormatError,
  );
  const root = new Uint8Array(80);
  root.set(new TextEncoder().encode("ASPNBKP1"));
  assert.throws(() => decodeBackup(root), /checksum/);
});
