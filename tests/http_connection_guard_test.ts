/**
 * Connections cannot exhaust a node (issue 13, finding 1): twice the cap of
 * idle, slow-header and slow-body connections are held against a real
 * node; it accepts no more than its cap, frees every held connection on
 * time (header, body and idle deadlines), keeps a watch stream that waits
 * on its response, and then serves writes again. A node process under a
 * descriptor limit smaller than the connections thrown at it survives
 * (accept errors are handled) and fits its cap to the limit.
 */
import assert from "node:assert/strict";
import { connect } from "../mod.ts";
import {
  DESCRIPTOR_RESERVE,
  DESCRIPTORS_PER_CONNECTION,
  fitConnectionCap,
} from "../src/frontends/http/descriptors.ts";
import { resolveNodeConfig } from "../src/node/config.ts";
import { freeTcpPorts, freeUdpPorts } from "../src/node/provision.ts";
import { serveNode } from "../src/server/serve.ts";
import { waitFor } from "./helpers/wait_for.ts";

const HOST = "127.0.0.1";
const CAP = 20;
const DEADLINE_MS = 1_500;
const encoder = new TextEncoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A held connection: how it misbehaves, and when the node closed it. */
interface Held {
  readonly kind: "idle" | "slowHeaders" | "slowBody";
  readonly conn: Deno.Conn;
  closedAt: number | null;
}

/** Sends `kind`'s bytes slowly (bounded: 60 steps) and records the close. */
async function misbehave(held: Held, token: string): Promise<void> {
  const read = (async () => {
    const buffer = new Uint8Array(1024);
    try {
      while ((await held.conn.read(buffer)) !== null) {
        // An answer (a refusal) is fine; the close is what is timed.
      }
    } catch {
      // Reset by the node.
    }
    held.closedAt ??= Date.now();
  })();
  try {
    if (held.kind === "slowHeaders") {
      await held.conn.write(
        encoder.encode("POST /v1/kv/set HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
      );
      for (let i = 0; i < 60 && held.closedAt === null; i++) {
        await held.conn.write(encoder.encode("X"));
        await sleep(250);
      }
    } else if (held.kind === "slowBody") {
      await held.conn.write(
        encoder.encode(
          `POST /v1/kv/set HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n`,
        ),
      );
      for (let i = 0; i < 60 && held.closedAt === null; i++) {
        await held.conn.write(encoder.encode(" "));
        await sleep(250);
      }
    }
  } catch {
    // The node closed it.
  }
  await read;
}

Deno.test("twice the cap of idle, slow-header and slow-body connections: the node holds at most its cap, frees them on time, keeps a waiting watch, and serves writes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-conns-" });
  const serving = await serveNode(
    resolveNodeConfig({
      dataDir: dir,
      httpPort: freeTcpPorts(HOST, 1)[0]!,
      quicPort: 0,
      tickMs: 20,
      httpConnectionsMax: CAP,
      httpConnectionsPerAddressMax: CAP,
      httpHeaderTimeoutMs: DEADLINE_MS,
      httpBodyTimeoutMs: DEADLINE_MS,
      httpIdleTimeoutMs: DEADLINE_MS,
    }),
    { log: () => {} },
  );
  const token = serving.kvConnectTokens[0]!;
  const port = Number(new URL(serving.url).port);
  const held: Held[] = [];
  let watch: Response | null = null;
  try {
    await waitFor(
      "a leader",
      () => serving.node.runner.status().role === "leader",
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    using client = connect(serving.url, { token, timeoutMs: 10_000 });
    // A watch waits on its response: never idle, whatever the deadline.
    watch = await fetch(`${serving.url}/v1/kv/watch`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ keys: [["watched"]] }),
    });
    assert.equal(watch.status, 200);
    const lines = watch.body!.pipeThrough(new TextDecoderStream()).getReader();

    const kinds = ["idle", "slowHeaders", "slowBody"] as const;
    for (let i = 0; i < 2 * CAP; i++) {
      held.push({
        kind: kinds[i % 3]!,
        conn: await Deno.connect({ hostname: HOST, port }),
        closedAt: null,
      });
    }
    const openedAt = Date.now();
    const behaving = held.map((h) => misbehave(h, token));
    await waitFor(
      "the refusals past the cap",
      () => serving.http.stats().closed.connectionsMax >= CAP,
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    assert.ok(serving.http.stats().open <= CAP);

    // Every held connection is closed by the node, on time.
    await waitFor(
      "every held connection to be closed",
      () => held.every((h) => h.closedAt !== null),
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    await Promise.all(behaving);
    const slowest = Math.max(...held.map((h) => h.closedAt! - openedAt));
    // Deadline 1.5 s, swept every 0.2 s: generous slack for a loaded machine.
    assert.ok(slowest < 15_000, `slowest close after ${slowest} ms`);
    const { closed } = serving.http.stats();
    assert.ok(closed.headerTimeout >= 1, JSON.stringify(closed));
    assert.ok(closed.bodyTimeout >= 1, JSON.stringify(closed));
    await waitFor("only the watch left", () => serving.http.stats().open <= 2, {
      timeoutMs: 20_000,
      intervalMs: 50,
    });

    // Writes are served again, and the watch (older than every deadline) sees one.
    await client.kv.set(["watched"], encoder.encode("after"));
    let seen = "";
    const until = Date.now() + 15_000;
    while (!seen.includes("YWZ0ZXI") && Date.now() < until) {
      const { value, done } = await lines.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /YWZ0ZXI/, "the watch outlived the idle deadline");
    await lines.cancel();
    watch = null;

    // An idle keep-alive connection is closed after its deadline.
    const idle = await Deno.connect({ hostname: HOST, port });
    await idle.write(
      encoder.encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    );
    const buffer = new Uint8Array(4096);
    const first = await idle.read(buffer);
    assert.ok(first !== null && first > 0);
    const idleFrom = Date.now();
    let end: number | null = 0;
    while (end !== null && Date.now() - idleFrom < 20_000) {
      end = await idle.read(buffer).catch(() => null);
    }
    assert.equal(end, null, "the node closed the idle connection");
    idle.close();
    assert.ok(serving.http.stats().closed.idleTimeout >= 1);
  } finally {
    await watch?.body?.cancel().catch(() => {});
    for (const h of held) {
      try {
        h.conn.close();
      } catch {
        // Closed already.
      }
    }
    await serving.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fitConnectionCap() keeps the descriptor reserve and warns below it", () => {
  assert.deepEqual(fitConnectionCap(512, null), { cap: 512, warning: null });
  assert.deepEqual(fitConnectionCap(512, 1_000_000), {
    cap: 512,
    warning: null,
  });
  const tight = fitConnectionCap(512, 1024);
  assert.equal(
    tight.cap,
    Math.floor((1024 - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_CONNECTION),
  );
  assert.match(tight.warning!, /descriptors can be opened/);
});

Deno.test("a node process under ulimit -n 400 survives 600 idle connections and serves again once they are freed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aspen-fd-" });
  const httpPort = freeTcpPorts(HOST, 1)[0]!;
  const quicPort = freeUdpPorts(HOST, 1)[0]!;
  const config = `${dir}/config.json`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      httpHeaderTimeoutMs: 2_000,
      httpConnectionsPerAddressMax: 1_000,
      tickMs: 20,
    }),
  );
  const repo = new URL("../", import.meta.url).pathname;
  const command = [
    "ulimit -n 400 &&",
    `exec "${Deno.execPath()}" run --unstable-net --allow-net=${HOST}`,
    `--allow-read=${dir},${repo}src --allow-write=${dir}/data`,
    `--allow-env ${repo}cli/aspen.ts node start --data-dir ${dir}/data`,
    `--http-port ${httpPort} --quic-port ${quicPort} --config ${config}`,
  ].join(" ");
  const child = new Deno.Command("bash", {
    args: ["-c", command],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  const url = `http://${HOST}:${httpPort}`;
  const conns: Deno.Conn[] = [];
  let exited = false;
  void child.status.then(() => exited = true);
  try {
    await waitFor("the node to answer", async () => {
      if (exited) return true;
      try {
        return (await fetch(`${url}/health`)).status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs: 60_000, intervalMs: 50 });
    assert.ok(!exited, "the node started");
    for (let i = 0; i < 600 && !exited; i++) {
      try {
        conns.push(await Deno.connect({ hostname: HOST, port: httpPort }));
      } catch {
        break; // The kernel's backlog is full: enough.
      }
    }
    await sleep(1_000);
    assert.ok(!exited, "the node is alive with every connection held");
    // Once the header deadline frees them, the node answers again.
    await waitFor("the node to answer again", async () => {
      if (exited) return true;
      try {
        const response = await fetch(`${url}/health`, {
          signal: AbortSignal.timeout(2_000),
        });
        await response.body?.cancel();
        return response.status === 200;
      } catch {
        return false;
      }
    }, { timeoutMs: 60_000, intervalMs: 50 });
    assert.ok(!exited, "the node is still alive");
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the node.
      }
    }
    try {
      child.kill("SIGTERM");
    } catch {
      // Exited.
    }
    const status = await child.status;
    const [stdout, stderr] = await output;
    assert.doesNotMatch(stderr, /Uncaught/);
    if (!status.success && status.signal !== "SIGTERM") {
      console.error(stdout, stderr);
    }
    assert.match(stderr, /descriptors can be opened/, "the cap was fitted");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveGuarded() closes a stalled TLS handshake at the header deadline and still serves TLS clients", async () => {
  const { createNodeCertificate } = await import(
    "../src/cluster/certificate.ts"
  );
  const { generateNodeIdentity } = await import("../src/cluster/identity.ts");
  const { serveGuarded } = await import(
    "../src/frontends/common/connection_guard.ts"
  );
  const certificate = await createNodeCertificate(
    await generateNodeIdentity(),
    { ipAddresses: [HOST] },
  );
  const server = serveGuarded(() => new Response("ok"), {
    hostname: HOST,
    port: 0,
    tls: { cert: certificate.certificatePem, key: certificate.privateKeyPem },
    limits: {
      connectionsMax: 8,
      perAddressMax: 8,
      headerTimeoutMs: 500,
      bodyTimeoutMs: 500,
      idleTimeoutMs: 500,
    },
    log: () => {},
  });
  const client = Deno.createHttpClient({
    caCerts: [certificate.certificatePem],
  });
  try {
    // TCP only: no ClientHello ever comes.
    const stalled = await Deno.connect({
      hostname: HOST,
      port: server.addr.port,
    });
    const buffer = new Uint8Array(1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      stalled.read(buffer).catch(() => null),
      new Promise<"open">((resolve) => {
        timer = setTimeout(() => resolve("open"), 15_000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(n, null, "the node closed the stalled handshake");
    stalled.close();
    assert.ok(server.stats().closed.headerTimeout >= 1);
    const response = await fetch(`https://${HOST}:${server.addr.port}/`, {
      client,
    });
    assert.equal(await response.text(), "ok");
  } finally {
    client.close();
    await server.shutdown();
  }
});
