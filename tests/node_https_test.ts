/** The client listener over HTTPS, and the request metrics it feeds. */
import assert from "node:assert/strict";
import { createNodeCertificate } from "../src/cluster/certificate.ts";
import { generateNodeIdentity } from "../src/cluster/identity.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts } from "../src/node/provision.ts";
import { serveNode } from "../src/server/serve.ts";

Deno.test("serveNode() serves HTTPS with the configured certificate and counts requests in /metrics", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-https-" });
  const certificate = await createNodeCertificate(
    await generateNodeIdentity(),
    { ipAddresses: ["127.0.0.1"] },
  );
  await Deno.writeTextFile(`${dir}/cert.pem`, certificate.certificatePem);
  await Deno.writeTextFile(`${dir}/key.pem`, certificate.privateKeyPem);
  const config = resolveNodeConfig({
    dataDir: `${dir}/data`,
    httpPort: freeTcpPorts("127.0.0.1", 1)[0]!,
    quicPort: 0,
    tickMs: 20,
    httpsCertFile: `${dir}/cert.pem`,
    httpsKeyFile: `${dir}/key.pem`,
  });
  const serving = await serveNode(config, { log: () => {} });
  const client = Deno.createHttpClient({
    caCerts: [certificate.certificatePem],
  });
  try {
    assert.match(serving.url, /^https:\/\//);
    const deadline = Date.now() + 10_000;
    let health = 0;
    while (health !== 200 && Date.now() < deadline) {
      const response = await fetch(`${serving.url}/health`, { client });
      health = response.status;
      await response.body?.cancel();
      if (health !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(health, 200);
    // Plain HTTP on the HTTPS port does not get an answer.
    await assert.rejects(
      fetch(serving.url.replace("https:", "http:") + "/health").then((r) =>
        r.text()
      ),
    );
    const metrics = await (await fetch(`${serving.url}/metrics`, {
      client,
      headers: { authorization: `Bearer ${serving.kvConnectTokens[0]}` },
    })).text();
    assert.match(
      metrics,
      /aspen_http_request_ms_count\{group="health",status="2xx"\} [1-9]/,
    );
    assert.match(metrics, /aspen_raft_is_leader 1/);
  } finally {
    client.close();
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resolveNodeConfig() needs both HTTPS files or neither", () => {
  assert.throws(
    () => resolveNodeConfig({ httpsCertFile: "cert.pem" }),
    /both 'httpsCertFile' and 'httpsKeyFile'/,
  );
});
