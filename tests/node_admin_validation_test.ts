/**
 * Issue 13 finding 7: every membership admin call validates its input
 * completely before anything changes. Each refused call gets a typed 4xx and
 * leaves the cluster status, the tickets and the log exactly as they were.
 */
import assert from "node:assert/strict";
import { resolveNodeConfig } from "../src/node/config.ts";
import { provisionLocalCluster } from "./helpers/node_plan.ts";
import { serveNode, type ServingNode } from "../src/server/serve.ts";
import { generateNodeIdentity } from "../src/cluster/identity.ts";
import { encodeBase64Url } from "../src/base/base64.ts";
import { waitFor } from "./helpers/wait_for.ts";

const TOKEN = "admin-validation-token-0123456789";

async function call(
  node: ServingNode,
  path: string,
  body: unknown,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${node.url}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKEN}`,
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function ticketStatus(node: ServingNode): Promise<number> {
  const response = await fetch(`${node.url}/v1/cluster/ticket`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  await response.body?.cancel();
  return response.status;
}

/** What a refused call must leave unchanged. */
function observe(node: ServingNode) {
  const status = node.node.status();
  return {
    members: status.members.map(({ id, role, httpUrl }) => ({
      id,
      role,
      httpUrl,
    })),
    leaderHttpUrl: status.leaderHttpUrl,
    commitIndex: status.commitIndex,
    lastIndex: node.node.runner.status().lastIndex,
    joint: status.joint,
    ticket: node.node.clientTicket(),
  };
}

async function newAddress(port: number) {
  const identity = await generateNodeIdentity();
  return {
    nodeId: identity.nodeId as string,
    httpUrl: `http://127.0.0.1:${port}`,
    quicHost: "127.0.0.1",
    quicPort: port,
    nodeKey: encodeBase64Url(identity.publicKey),
    certificateHash: encodeBase64Url(new Uint8Array(32).fill(7)),
  };
}

Deno.test("refused admin calls (add-learner, promote, remove, transfer-leader) change nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-admin-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 1);
  const node = await serveNode(
    resolveNodeConfig({
      dataDir: plans[0]!.dataDir,
      httpPort: httpPorts[0],
      quicPort: plans[0]!.quicPort,
      tickMs: 20,
      // One token for both scopes: this test is about validation.
      tokens: [TOKEN],
      adminTokens: [TOKEN],
    }),
    { log: () => {} },
  );
  try {
    await waitFor("a leader", () => node.node.status().role === "leader");
    const self = node.node.address;
    // One valid learner (never started: a learner does not count for quorum).
    const learner = await newAddress(9);
    const added = await call(node, "/v1/cluster/add-learner", learner);
    assert.equal(added.status, 200, JSON.stringify(added.body));
    await waitFor(
      "the learner in the configuration",
      () => {
        const s = node.node.runner.status();
        return s.conf.learners.includes(learner.nodeId as never) &&
          s.commit === s.lastIndex && s.applied === s.commit;
      },
    );
    const other = await newAddress(10);
    const refused: Array<[string, unknown]> = [
      ["/v1/cluster/add-learner", { ...other, nodeKey: "not base64url!" }],
      ["/v1/cluster/add-learner", { ...other, nodeKey: "AAAA" }],
      ["/v1/cluster/add-learner", { ...other, nodeKey: learner.nodeKey }],
      ["/v1/cluster/add-learner", { ...other, nodeId: "n1" }],
      ["/v1/cluster/add-learner", { ...other, certificateHash: "AAAA" }],
      ["/v1/cluster/add-learner", { ...other, httpUrl: "not a url" }],
      ["/v1/cluster/add-learner", { ...other, httpUrl: "ftp://127.0.0.1:1" }],
      ["/v1/cluster/add-learner", {
        ...other,
        httpUrl: "http://user:pw@127.0.0.1:1",
      }],
      ["/v1/cluster/add-learner", { ...other, httpUrl: "http://h:1/x?y" }],
      ["/v1/cluster/add-learner", { ...other, quicHost: "bad host" }],
      ["/v1/cluster/add-learner", { ...other, quicHost: "" }],
      ["/v1/cluster/add-learner", { ...other, quicPort: 0 }],
      ["/v1/cluster/add-learner", { ...other, quicPort: 70_000 }],
      ["/v1/cluster/add-learner", { ...other, quicPort: 1.5 }],
      // This node's own id, pointing at the caller.
      ["/v1/cluster/add-learner", {
        ...self,
        httpUrl: "http://127.0.0.1:1",
        quicPort: 1,
      }],
      // An existing member: refused, and its address is not rewritten.
      ["/v1/cluster/add-learner", { ...learner, httpUrl: "http://evil:1" }],
      ["/v1/cluster/promote", { nodeId: "not-a-node-id" }],
      ["/v1/cluster/promote", { nodeId: other.nodeId }],
      ["/v1/cluster/promote", { nodeId: self.nodeId }],
      ["/v1/cluster/remove", { nodeId: "AAAA" }],
      ["/v1/cluster/remove", { nodeId: other.nodeId }],
      ["/v1/cluster/transfer-leader", { nodeId: "x".repeat(52) }],
      ["/v1/cluster/transfer-leader", { nodeId: other.nodeId }],
      ["/v1/cluster/transfer-leader", { nodeId: learner.nodeId }],
    ];
    const before = observe(node);
    for (const [path, body] of refused) {
      const what = `${path} ${JSON.stringify(body)}`;
      const reply = await call(node, path, body);
      assert.ok(
        reply.status >= 400 && reply.status < 500,
        `${what}: expected a 4xx, got ${reply.status} ${
          JSON.stringify(reply.body)
        }`,
      );
      assert.deepEqual(observe(node), before, `${what} changed the node`);
      assert.equal(await ticketStatus(node), 200, `${what}: ticket`);
      await node.node.joinTicket();
    }
  } finally {
    await node.stop();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
