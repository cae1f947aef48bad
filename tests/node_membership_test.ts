/**
 * Membership over real QUIC and SQLite: a fourth node joins with a join
 * ticket (as a learner), is promoted, and the old leader is removed.
 */
import { waitFor } from "./helpers/wait_for.ts";
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { provisionLocalCluster } from "./helpers/node_plan.ts";
import {
  JoinRefusedError,
  prepareJoin,
  verifyJoinToken,
} from "../src/node/join.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode, type ServingNode } from "../src/server/serve.ts";
import { generateSigningKey } from "../src/cluster/keys.ts";
import { ClusterAdminError } from "../src/node/node_api.ts";
import { loadOrCreateNodeIdentity } from "../src/cluster/identity.ts";
import {
  encodeCertificateRecord,
  signCertificateRecord,
} from "../src/cluster/certificate.ts";
import { decodeBase32 } from "../src/base/base32.ts";
import {
  loadOrCreateCertificate,
  readClusterFile,
} from "../src/node/data_dir.ts";
import { decodeBase64Url } from "../src/base/base64.ts";
import { startQuicNode } from "./helpers/transport_quic.ts";
import type { LogIndex, Term } from "../src/raft/types.ts";
import type { NodeAddress } from "../src/node/node_api.ts";

const HOST = "127.0.0.1";
const quiet = () => {};

async function retryWhilePending(action: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await action();
    } catch (error) {
      if (
        !(error instanceof ClusterAdminError) ||
        error.code !== "changePending" || Date.now() > deadline
      ) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/**
 * Starts a bare QUIC transport with the identity and credential a (stopped)
 * node's data folder holds: the removed node, as it would come back.
 */
async function transportOf(dir: string) {
  const identity = await loadOrCreateNodeIdentity(dir);
  const certificate = await loadOrCreateCertificate(dir, identity, [HOST]);
  const file = (await readClusterFile(dir))!;
  const revoked = new Set<string>();
  return await startQuicNode(null as never, {
    member: {
      identity,
      certificate,
      certificateRecord: encodeCertificateRecord(
        await signCertificateRecord(identity, certificate),
      ),
      revoked,
      context: {
        identity,
        clusterId: decodeBase32(file.clusterId),
        credential: decodeBase64Url(file.credential),
        revoked,
      },
    },
  });
}

function quicAddress(address: NodeAddress) {
  return {
    nodeId: address.nodeId as never,
    hostname: address.quicHost,
    port: address.quicPort,
    nodeKey: decodeBase64Url(address.nodeKey),
    certificateHash: decodeBase64Url(address.certificateHash),
  };
}

Deno.test("a node joins by ticket as a learner, is promoted, and the old leader is removed", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-membership-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: ServingNode[] = [];
  const logs = new Map<ServingNode, string[]>();
  try {
    for (const [i, plan] of plans.entries()) {
      const config = resolveNodeConfig({
        dataDir: plan.dataDir,
        httpPort: httpPorts[i],
        quicPort: plan.quicPort,
        tickMs: 20,
      });
      const lines: string[] = [];
      const node = await serveNode(config, {
        log: (line) => lines.length < 10_000 && lines.push(line),
      });
      nodes.push(node);
      logs.set(node, lines);
    }
    const leader = () =>
      nodes.find((n) => n.node.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined);
    // One cluster token: every node (and the joiner, below) accepts it.
    const token = nodes[0]!.kvConnectTokens[0]!;
    assert.ok(nodes.every((n) => n.kvConnectTokens[0] === token));
    const client = connect(nodes.map((n) => n.url), { token });
    for (let i = 0; i < 30; i++) {
      await client.kv.set(["before", i], new Uint8Array([i]));
    }

    const first = leader()!;
    const ticket = await first.node.joinTicket();
    const joinerConfig = await prepareJoin(
      resolveNodeConfig({
        dataDir: `${root}/n4`,
        httpPort: 0,
        quicPort: 0,
        tickMs: 20,
      }),
      ticket,
    );
    const joiner = await serveNode(joinerConfig, { log: quiet });
    nodes.push(joiner);
    const id4 = joiner.node.id;
    // The joiner never received the cluster's private key, only its id.
    await assert.rejects(
      Deno.stat(`${root}/n4/cluster.key`),
      Deno.errors.NotFound,
    );
    await assert.rejects(joiner.node.joinTicket(), ClusterAdminError);
    // The token admitted one node: a second node with the same ticket is refused.
    await assert.rejects(
      prepareJoin(
        resolveNodeConfig({
          dataDir: `${root}/n5`,
          httpPort: 0,
          quicPort: 0,
          tickMs: 20,
        }),
        ticket,
      ),
      (error: unknown) =>
        error instanceof JoinRefusedError && /used already/.test(error.message),
    );
    await waitFor(
      "the learner to catch up",
      () =>
        joiner.node.runner.status().applied >=
          first.node.runner.status().commit,
    );
    assert.deepEqual(first.node.runner.status().conf.learners, [id4]);

    await first.node.promote(id4);
    await waitFor(
      "the promotion",
      () =>
        first.node.runner.status().conf.voters.includes(id4) &&
        !first.node.status().joint,
    );

    // The promotion's second step (leaving the joint configuration) must
    // commit before another change: until then the API refuses (409).
    await retryWhilePending(() => first.node.remove(first.node.id));
    await waitFor(
      "a new leader without the old one",
      () => {
        const l = leader();
        return l !== undefined && l !== first &&
          !l.node.runner.status().conf.voters.includes(first.node.id);
      },
    );
    // The removal revoked the old leader's credential on every survivor.
    await waitFor(
      "the revocation everywhere",
      () =>
        nodes.filter((n) => n !== first).every((n) =>
          n.node.revokedNodes().includes(first.node.id)
        ),
    );
    // The removed node comes back with its identity and credential: its
    // connection is refused and its Raft message (a higher term) changes nothing.
    const firstIndex = nodes.indexOf(first);
    await first.stop();
    nodes.splice(firstIndex, 1);
    const target = nodes.find((n) => n !== joiner)!;
    const termBefore = target.node.runner.status().term;
    const ghost = await transportOf(plans[firstIndex]!.dataDir);
    try {
      ghost.transport.setPeer(quicAddress(target.node.address));
      ghost.transport.send(target.node.address.nodeId as never, {
        type: "heartbeat",
        from: ghost.address.nodeId,
        to: target.node.address.nodeId as never,
        term: (termBefore + 5) as Term,
        commit: 0 as LogIndex,
        sentAt: 0,
        context: new Uint8Array(),
      });
      await waitFor(
        "the revoked node's handshake refused",
        () => logs.get(target)!.some((l) => /"code":"revoked"/.test(l)),
      );
      assert.equal(target.node.runner.status().term, termBefore);
    } finally {
      await ghost.transport.close();
    }
    const survivors = connect(nodes.map((n) => n.url), { token });
    await survivors.kv.set(["after"], new Uint8Array([42]));
    assert.equal(joiner.kvConnectTokens[0], token);
    const fromJoiner = connect(joiner.url, { token });
    assert.deepEqual(
      (await fromJoiner.kv.get(["before", 29])).value,
      new Uint8Array([29]),
    );
    assert.deepEqual(
      (await fromJoiner.kv.get(["after"])).value,
      new Uint8Array([42]),
    );
  } finally {
    for (const node of nodes) await node.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("verifyJoinToken() refuses a token of another cluster, a forged one and an expired one", async () => {
  const { issueJoinToken } = await import("../src/node/join.ts");
  const key = await generateSigningKey();
  const other = await generateSigningKey();
  const now = 1_000_000;
  const token = await issueJoinToken(key, now, 1000);
  await verifyJoinToken(token, key.publicKey, now + 10);
  await assert.rejects(
    verifyJoinToken(token, other.publicKey, now),
    JoinRefusedError,
  );
  await assert.rejects(
    verifyJoinToken(token, key.publicKey, now + 1000),
    /expired/,
  );
  await assert.rejects(
    verifyJoinToken(new Uint8Array([1, 2, 3]), key.publicKey, now),
    /malformed/,
  );
  const forged = await issueJoinToken(other, now, 1000);
  await assert.rejects(
    verifyJoinToken(forged, key.publicKey, now),
    /not signed by this cluster/,
  );
});

Deno.test("prepareJoin() refuses a client ticket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-join-" });
  const { formatTicket } = await import("../src/cluster/ticket.ts");
  const key = await generateSigningKey();
  const ticket = formatTicket({
    kind: "client",
    clusterId: key.publicKey,
    nodes: [{
      nodeKey: key.publicKey,
      httpUrls: ["http://127.0.0.1:1"],
      quicAddresses: [],
    }],
  });
  await assert.rejects(
    prepareJoin(resolveNodeConfig({ dataDir: dir }), ticket),
    /client ticket/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("with autoPromote the leader promotes a joined learner once it has caught up", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-autopromote-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: ServingNode[] = [];
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(
        await serveNode(
          resolveNodeConfig({
            dataDir: plan.dataDir,
            httpPort: httpPorts[i],
            quicPort: plan.quicPort,
            tickMs: 20,
            autoPromote: true,
          }),
          { log: quiet },
        ),
      );
    }
    const leader = () =>
      nodes.find((n) => n.node.runner.status().role === "leader");
    await waitFor("a leader", () => leader() !== undefined);
    const ticket = await leader()!.node.joinTicket();
    const config = await prepareJoin(
      resolveNodeConfig({
        dataDir: `${root}/n4`,
        httpPort: 0,
        quicPort: 0,
        tickMs: 20,
      }),
      ticket,
    );
    const joiner = await serveNode(config, { log: quiet });
    nodes.push(joiner);
    await waitFor("the automatic promotion", () => {
      const conf = leader()?.node.runner.status().conf;
      return conf !== undefined && conf.voters.includes(joiner.node.id) &&
        conf.votersOutgoing.length === 0;
    });
  } finally {
    for (const node of nodes) await node.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("--force-new-cluster turns a lone survivor into a one-node cluster that keeps its data", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-force-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 3);
  const nodes: ServingNode[] = [];
  let survivor: ServingNode | null = null;
  try {
    for (const [i, plan] of plans.entries()) {
      nodes.push(
        await serveNode(
          resolveNodeConfig({
            dataDir: plan.dataDir,
            httpPort: httpPorts[i],
            quicPort: plan.quicPort,
            tickMs: 20,
          }),
          { log: quiet },
        ),
      );
    }
    await waitFor(
      "a leader",
      () => nodes.some((n) => n.node.runner.status().role === "leader"),
    );
    const client = connect(nodes.map((n) => n.url), {
      token: nodes[0]!.kvConnectTokens[0],
    });
    for (let i = 0; i < 20; i++) {
      await client.kv.set(["kept", i], new Uint8Array([i]));
    }
    const commit = Math.max(
      ...nodes.map((n) => n.node.runner.status().commit as number),
    );
    await waitFor(
      "node 1 to apply everything",
      () => nodes[0]!.node.runner.status().applied >= commit,
    );
    for (const node of nodes) await node.stop();
    // The quorum is lost for good: node 1 alone is recovered.
    survivor = await serveNode(
      resolveNodeConfig({
        dataDir: plans[0]!.dataDir,
        httpPort: freeTcpPorts(HOST, 1)[0]!,
        quicPort: 0,
        tickMs: 20,
        forceNewCluster: true,
      }),
      { log: quiet },
    );
    await waitFor(
      "the survivor to lead alone",
      () => survivor!.node.runner.status().role === "leader",
    );
    assert.deepEqual(survivor.node.runner.status().conf.voters, [
      survivor.node.id,
    ]);
    const alone = connect(survivor.url, {
      token: survivor.kvConnectTokens[0],
    });
    assert.deepEqual(
      (await alone.kv.get(["kept", 19])).value,
      new Uint8Array([19]),
    );
    await alone.kv.set(["after"], new Uint8Array([1]));
  } finally {
    await survivor?.stop();
    await Deno.remove(root, { recursive: true });
  }
});
