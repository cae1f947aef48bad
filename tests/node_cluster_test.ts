/**
 * Three AspenNodes in this process over real QUIC on loopback with SQLite
 * storage: election, writes through a follower, failover, restart recovery.
 */
import { readValue, setOperation } from "./helpers/node_kv.ts";
import { waitFor } from "./helpers/wait_for.ts";
import assert from "node:assert/strict";
import { AspenNode } from "../src/node/aspen_node.ts";
import { decodeBase64Url } from "../src/base/base64.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { provisionLocalCluster } from "./helpers/node_plan.ts";
import { freeTcpPorts, freeUdpPorts } from "../src/node/provision.ts";

const HOST = "127.0.0.1";

const quiet = () => {};

async function startNode(
  dir: string,
  httpPort: number,
  quicPort: number,
): Promise<AspenNode> {
  const config = resolveNodeConfig({
    dataDir: dir,
    httpPort,
    quicPort,
    tickMs: 20,
    requestTimeoutMs: 3000,
  });
  return await AspenNode.start(config, {
    httpUrl: `http://${HOST}:${httpPort}`,
    log: quiet,
  });
}

Deno.test("AspenNode cluster over QUIC replicates through a follower and survives losing its leader", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-cluster-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: (AspenNode | null)[] = [];
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(await startNode(plan.dataDir, httpPorts[i]!, plan.quicPort));
    }
    const live = () => nodes.filter((n): n is AspenNode => n !== null);
    const leader = () =>
      live().find((n) => n.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined);
    const follower = live().find((n) => n !== leader())!;
    for (let i = 0; i < 50; i++) {
      assert.equal(
        (await follower.backend.commit(setOperation(`k${i}`, `v${i}`))).ok,
        true,
      );
    }

    // Heartbeats have been timed and peer traffic counted.
    await waitFor(
      "peer round trips on /metrics",
      () => /aspen_peer_rtt_ms\{peer="\w{10}"\} \d/.test(leader()!.metrics()),
    );
    assert.match(leader()!.metrics(), /aspen_transport_bytes_sent_total [1-9]/);
    assert.match(
      leader()!.metrics(),
      /aspen_transport_bytes_received_total [1-9]/,
    );
    const oldLeader = leader()!;
    const oldIndex = nodes.indexOf(oldLeader);
    await oldLeader.stop();
    nodes[oldIndex] = null;
    await waitFor(
      "a new leader",
      () => leader() !== undefined && leader() !== oldLeader,
    );
    for (const node of live()) {
      assert.equal(await readValue(node.backend, "k49"), "v49");
    }
    assert.equal(
      (await live()[0]!.backend.commit(setOperation("after", "failover"))).ok,
      true,
    );
  } finally {
    for (const node of nodes) await node?.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("AspenNode restarts from its SQLite files with every acknowledged write", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-restart-" });
  // QUIC port 0: Deno 2.9.6 keeps a closed endpoint's UDP port bound for the
  // rest of the process, and a one-node cluster has no peer pinning its port.
  const start = () => startNode(dir, freeTcpPorts(HOST, 1)[0]!, 0);
  let node = await start();
  try {
    await waitFor("leadership", () => node.runner.status().role === "leader");
    for (let i = 0; i < 200; i++) {
      assert.equal(
        (await node.backend.commit(setOperation(`r${i}`, `v${i}`))).ok,
        true,
      );
    }
    await node.stop();
    node = await start();
    await waitFor(
      "leadership after restart",
      () => node.runner.status().role === "leader",
    );
    for (let i = 0; i < 200; i += 13) {
      assert.equal(await readValue(node.backend, `r${i}`), `v${i}`);
    }
    assert.equal(await readValue(node.backend, "r199"), "v199");
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AspenNode refuses a data folder another node holds, and one whose log is missing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-lock-" });
  const [httpPort] = freeTcpPorts(HOST, 1);
  const [quicPort] = freeUdpPorts(HOST, 1);
  const node = await startNode(dir, httpPort!, quicPort!);
  try {
    await assert.rejects(
      startNode(dir, httpPort!, quicPort!),
      /another node holds its lock/,
    );
  } finally {
    await node.stop();
  }
  await Deno.remove(`${dir}/raft-log.sqlite`);
  await assert.rejects(
    startNode(dir, httpPort!, quicPort!),
    /Raft log is missing/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a node restarted with a new certificate and port announces itself, and peers re-pin it", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-repin-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: (AspenNode | null)[] = [];
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(await startNode(plan.dataDir, httpPorts[i]!, plan.quicPort));
    }
    const live = () => nodes.filter((n): n is AspenNode => n !== null);
    const leader = () =>
      live().find((n) => n.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined);
    const index = nodes.findIndex((n) => n !== leader());
    await nodes[index]!.stop();
    nodes[index] = null;
    // A new certificate (new hash) and a new QUIC port: peers' pins are stale.
    await Deno.remove(`${plans[index]!.dataDir}/certificate.json`);
    const restarted = await startNode(
      plans[index]!.dataDir,
      httpPorts[index]!,
      freeUdpPorts(HOST, 1)[0]!,
    );
    nodes[index] = restarted;
    assert.equal(
      (await leader()!.backend.commit(setOperation("after-repin", "yes"))).ok,
      true,
    );
    const target = () => leader()!.runner.status().commit;
    await waitFor(
      "the restarted node to receive new writes",
      () => restarted.runner.status().applied >= target(),
    );
    assert.equal(await readValue(restarted.backend, "after-repin"), "yes");
  } finally {
    for (const node of nodes) await node?.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a node rotates its certificate without a restart, and peers re-pin the new hash", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-rotate-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: AspenNode[] = [];
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(await startNode(plan.dataDir, httpPorts[i]!, plan.quicPort));
    }
    const leader = () => nodes.find((n) => n.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined);
    const follower = nodes.find((n) => n !== leader())!;
    const oldHash = follower.address.certificateHash;
    assert.equal(await follower.rotateCertificate(true), true);
    const newHash = follower.address.certificateHash;
    assert.notEqual(newHash, oldHash);
    // The same port now serves the new certificate only.
    const dial = async (hash: string) => {
      const conn = await Deno.connectQuic({
        hostname: HOST,
        port: follower.address.quicPort,
        alpnProtocols: ["aspen/1"],
        serverCertificateHashes: [{
          algorithm: "sha-256",
          value: decodeBase64Url(hash) as Uint8Array<ArrayBuffer>,
        }],
      } as Deno.ConnectQuicOptions<false>);
      conn.close();
    };
    await dial(newHash);
    await assert.rejects(dial(oldHash));
    // The leader learned the new hash through the log and wrote it down.
    const leaderDir = plans[nodes.indexOf(leader()!)]!.dataDir;
    const pinned = async () => {
      const file = JSON.parse(
        await Deno.readTextFile(`${leaderDir}/cluster.json`),
      ) as {
        members: { nodeId: string; certificateHash: string }[];
      };
      return file.members.find((m) => m.nodeId === follower.id)
        ?.certificateHash;
    };
    const deadline = Date.now() + 15_000;
    while ((await pinned()) !== newHash && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(await pinned(), newHash);
    assert.equal(
      (await leader()!.backend.commit(setOperation("after-rotation", "yes")))
        .ok,
      true,
    );
    await waitFor(
      "the follower to apply it",
      () =>
        follower.runner.status().applied >= leader()!.runner.status().commit,
    );
    assert.equal(await readValue(follower.backend, "after-rotation"), "yes");
  } finally {
    for (const node of nodes) await node.stop();
    await Deno.remove(root, { recursive: true });
  }
});
