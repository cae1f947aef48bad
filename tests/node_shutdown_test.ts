/**
 * Issue 12 item 7: graceful shutdown is bounded. A watch stream never ends
 * by itself, and it used to hold `server.shutdown()` (and so SIGTERM) for
 * ever; now in-flight requests get the grace period, then the node stops.
 */
import assert from "node:assert/strict";
import { resolveNodeConfig } from "../src/node/config.ts";
import { provisionLocalCluster } from "./helpers/node_plan.ts";
import { serveNode } from "../src/server/serve.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { within } from "./helpers/transport_quic.ts";

const TOKEN = "shutdown-test-token-0123456789ab";

Deno.test("stop() finishes within the grace period while a watch stream is open", async () => {
  const root = await Deno.makeTempDir({ prefix: "aspen-shutdown-" });
  const { plans, httpPorts } = await provisionLocalCluster(root, 1);
  const lines: string[] = [];
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: plans[0]!.dataDir,
      httpPort: httpPorts[0],
      quicPort: plans[0]!.quicPort,
      tickMs: 20,
      tokens: [TOKEN],
    }),
    { log: (line) => lines.push(line), shutdownGraceMs: 300 },
  );
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  try {
    await waitFor("a leader", () => serving.node.status().role === "leader");
    const response = await fetch(`${serving.url}/v1/kv/watch`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${TOKEN}`,
      },
      body: JSON.stringify({ keys: [["watched"]] }),
    });
    assert.equal(response.status, 200);
    reader = response.body!.getReader();
    // The first frame: the stream is live and in flight.
    const first = await within(reader.read(), 10_000, "the first frame");
    assert.equal(first.done, false);
    await within(serving.stop(), 30_000, "stop() with a watch open");
    assert.ok(
      lines.some((line) => /requests still open/.test(line)),
      "the forced stop is logged",
    );
  } finally {
    await reader?.cancel().catch(() => {});
    await within(serving.stop(), 30_000, "stop()").catch(() => {});
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});
