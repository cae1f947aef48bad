/**
 * Hostile soak (issue 13), HTTP side: a real 3-node cluster of node
 * processes while, at the same time, against every node,
 *
 * - connections are held at the connection cap (idle, slow headers, slow
 *   bodies; each is reopened as soon as the node closes it),
 * - a hostile token holds its whole stream budget (HTTP and KV Connect
 *   watches) and is refused past it,
 * - a flood of oversized and malformed requests (3 MiB bodies, a 10 GB
 *   declared body, bad JSON, no Content-Type, a foreign Host, wrong tokens,
 *   junk join bodies) never gets a 5xx;
 *
 * meanwhile the client module and a stock `Deno.openKv` keep writing, the
 * leader is killed with SIGKILL mid-soak and a new one is elected, every
 * node's RSS stays under {@linkcode RSS_BOUND_MIB}, and every acknowledged
 * write is read back afterwards. Bounded to 3 minutes. (The QUIC side of the
 * soak, WebTransport budgets and oversized pre-handshake frames, belongs to
 * the transport's tests.)
 */
import assert from "node:assert/strict";
import { encodeWatch } from "../src/frontends/kv_connect/mod.ts";
import { encodeKey } from "../src/model/key_codec.ts";
import { connect } from "../mod.ts";
import { withProcessCluster } from "./helpers/process_cluster.ts";

/**
 * RSS no node may pass during the soak, in MiB (documented in README).
 * Measured: 314 MiB in a run on a busy machine (4,580 flood requests), 849
 * MiB in a run with more throughput (20,322 flood requests, many of them
 * 3 MiB bodies): where that memory goes is not known yet.
 */
const RSS_BOUND_MIB = 1024;
const SOAK_MS = 60_000;
const TEST_DEADLINE_MS = 180_000;
const CONNECTIONS_MAX = 48;
const STREAMS_PER_TOKEN = 20;
const LEGIT = "soak-legit-token-0123456789";
const HOSTILE = "soak-hostile-token-0123456789";
const ADMIN = "soak-admin-token-0123456789";
const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const CHILD = new URL("./helpers/process_stock_writer.ts", import.meta.url)
  .pathname;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Holds `count` misbehaving connections on `port` until `until`, reopening closed ones. */
async function holdConnections(
  port: number,
  count: number,
  until: number,
  stats: { opened: number },
): Promise<void> {
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const kind = i % 3;
    while (Date.now() < until) {
      let conn: Deno.Conn;
      try {
        conn = await Deno.connect({ hostname: HOST, port });
      } catch {
        await sleep(200);
        continue;
      }
      stats.opened++;
      let closed = false;
      const reading = (async () => {
        const buffer = new Uint8Array(1024);
        try {
          while ((await conn.read(buffer)) !== null) { /* drain */ }
        } catch { /* reset */ }
        closed = true;
      })();
      try {
        if (kind === 1) {
          await conn.write(encoder.encode("GET /health HTTP/1.1\r\nHo"));
        } else if (kind === 2) {
          await conn.write(encoder.encode(
            `POST /v1/kv/set HTTP/1.1\r\nHost: ${HOST}\r\nAuthorization: Bearer ${HOSTILE}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`,
          ));
        }
        for (
          let step = 0;
          step < 400 && !closed && Date.now() < until;
          step++
        ) {
          if (kind !== 0) await conn.write(encoder.encode(" "));
          await sleep(250);
        }
      } catch { /* closed by the node */ }
      try {
        conn.close();
      } catch { /* closed */ }
      await reading;
    }
  }));
}

/** Opens watches with the hostile token until refused; returns them and the refusal's status. */
async function exhaustStreams(
  url: string,
  databaseId: string,
): Promise<{ open: Response[]; refused: number }> {
  const open: Response[] = [];
  for (let i = 0; i < STREAMS_PER_TOKEN + 5; i++) {
    const response = i % 2 === 0
      ? await fetch(`${url}/v1/kv/watch`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${HOSTILE}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ keys: [["soak", "watched"]] }),
      })
      : await fetch(`${url}/kv/strong/watch`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${HOSTILE}`,
          "content-type": "application/x-protobuf",
          "x-denokv-version": "3",
          "x-denokv-database-id": databaseId,
        },
        body: encodeWatch({ keys: [encodeKey(["soak", "w"])] }) as BodyInit,
      });
    if (response.status !== 200) {
      await response.body?.cancel();
      return { open, refused: response.status };
    }
    open.push(response);
  }
  return { open, refused: 200 };
}

/** The flood: each request must get a 4xx (or a refused connection), never a 5xx. */
async function flood(
  urls: readonly string[],
  until: number,
  fiveHundreds: string[],
  counts: { sent: number },
): Promise<void> {
  const big = "x".repeat(3 * 1024 * 1024);
  const cases: ((url: string) => RequestInit & { path: string })[] = [
    () => ({
      path: "/v1/kv/set",
      method: "POST",
      headers: {
        authorization: `Bearer ${LEGIT}`,
        "content-type": "application/json",
      },
      body: big,
    }),
    () => ({
      path: "/v1/kv/get",
      method: "POST",
      headers: {
        authorization: `Bearer ${LEGIT}`,
        "content-type": "application/json",
      },
      body: "{",
    }),
    () => ({
      path: "/v1/kv/set",
      method: "POST",
      headers: { authorization: `Bearer ${LEGIT}` },
      body: encoder.encode('{"key":["a"]}'),
    }),
    () => ({
      path: "/v1/kv/get",
      method: "POST",
      headers: {
        authorization: "Bearer wrong-token-0123456789",
        "content-type": "application/json",
      },
      body: '{"key":["a"]}',
    }),
    () => ({
      path: "/v1/cluster/join",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"token":5,"address":null}',
    }),
    () => ({
      path: "/v1/cluster/snapshot",
      method: "GET",
      headers: { authorization: `Bearer ${LEGIT}` },
    }),
    () => ({
      path: "/v1/kv/watch",
      method: "POST",
      headers: {
        authorization: `Bearer ${LEGIT}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ keys: [["k".repeat(3000)]] }),
    }),
  ];
  let i = 0;
  while (Date.now() < until) {
    const url = urls[i % urls.length]!;
    const { path, ...init } = cases[i % cases.length]!(url);
    i++;
    try {
      const response = await fetch(`${url}${path}`, {
        ...init,
        signal: AbortSignal.timeout(10_000),
      });
      await response.body?.cancel();
      counts.sent++;
      if (response.status >= 500 && response.status !== 503) {
        fiveHundreds.push(`${path}: ${response.status}`);
      }
    } catch {
      // Refused at the connection cap, or the node is the one killed.
      await sleep(50);
    }
  }
}

async function rssMib(pid: number): Promise<number | null> {
  const output = await new Deno.Command("ps", {
    args: ["-o", "rss=", "-p", String(pid)],
    stdout: "piped",
    stderr: "null",
  }).output();
  const kib = Number(new TextDecoder().decode(output.stdout).trim());
  return Number.isFinite(kib) && kib > 0 ? kib / 1024 : null;
}

Deno.test({
  name:
    "hostile soak: connections and streams at their caps and a flood of bad requests, while the client module and stock Deno.openKv keep writing through a leader kill",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const testDeadline = Date.now() + TEST_DEADLINE_MS;
    await withProcessCluster({
      count: 3,
      token: LEGIT,
      env: {
        ASPEN_TOKENS: `${LEGIT},${HOSTILE}`,
        ASPEN_ADMIN_TOKENS: ADMIN,
      },
      config: {
        // Room beside the held ones for the hostile streams and the real clients.
        httpConnectionsMax: CONNECTIONS_MAX + STREAMS_PER_TOKEN + 16,
        httpConnectionsPerAddressMax: CONNECTIONS_MAX + STREAMS_PER_TOKEN + 16,
        httpHeaderTimeoutMs: 2_000,
        httpBodyTimeoutMs: 3_000,
        httpIdleTimeoutMs: 3_000,
        streamsMax: STREAMS_PER_TOKEN + 30,
        streamsPerTokenMax: STREAMS_PER_TOKEN,
      },
    }, async (cluster) => {
      let leader = await cluster.waitForLeader();
      const until = Date.now() + SOAK_MS;
      const ports = cluster.nodes.map((n) => n.httpPort);
      const connStats = { opened: 0 };
      const holding = ports.map((port) =>
        holdConnections(port, CONNECTIONS_MAX, until, connStats)
      );
      const fiveHundreds: string[] = [];
      const floodCounts = { sent: 0 };
      const flooding = flood(cluster.urls, until, fiveHundreds, floodCounts);

      // The hostile token takes its whole stream budget on the first follower.
      const entry = (leader + 1) % 3;
      const metadata = await (await fetch(`${cluster.node(entry).url}/kv`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${LEGIT}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ supportedVersions: [3] }),
      })).json() as { databaseId: string };
      const streams = await exhaustStreams(
        cluster.node(entry).url,
        metadata.databaseId,
      );
      assert.equal(streams.open.length, STREAMS_PER_TOKEN);
      assert.equal(streams.refused, 429);

      // Stock Deno.openKv writes through that follower.
      const stock = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--unstable-kv",
          "--allow-net=127.0.0.1",
          "--allow-env=DENO_KV_ACCESS_TOKEN",
          CHILD,
          `${cluster.node(entry).url}/kv`,
          "100000",
        ],
        env: { DENO_KV_ACCESS_TOKEN: LEGIT, NO_COLOR: "1" },
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const stockAcked = new Map<number, string>();
      const stockWrong: string[] = [];
      const stockReading = (async () => {
        let rest = "";
        for await (
          const text of stock.stdout.pipeThrough(new TextDecoderStream())
        ) {
          const parts = (rest + text).split("\n");
          rest = parts.pop() ?? "";
          for (const line of parts) {
            if (line.trim() === "") continue;
            const event = JSON.parse(line);
            if ("ack" in event) stockAcked.set(event.ack, event.versionstamp);
            if ("wrong" in event) stockWrong.push(event.wrong);
          }
        }
      })();

      // The client module writes, sequentially, to every node.
      const acked = new Map<number, string>();
      const writing = (async () => {
        using client = connect(cluster.urls, {
          token: LEGIT,
          timeoutMs: 15_000,
        });
        for (let n = 0; Date.now() < until && n < 100_000; n++) {
          try {
            const result = await client.kv.set(["soak", n], `v${n}`);
            acked.set(n, result.versionstamp);
          } catch {
            await sleep(100);
          }
        }
      })();

      // RSS samples, every second.
      let rssMax = 0;
      const sampling = (async () => {
        while (Date.now() < until) {
          for (let i = 0; i < 3; i++) {
            const pid = cluster.pid(i);
            if (pid === null) continue;
            const rss = await rssMib(pid);
            if (rss !== null) rssMax = Math.max(rssMax, rss);
          }
          await sleep(1_000);
        }
      })();

      // Mid-soak: kill -9 the leader; a new one is elected within the usual time.
      await sleep(SOAK_MS / 3);
      const ackedBeforeKill = acked.size;
      assert.ok(ackedBeforeKill > 0, "writes went through under attack");
      await cluster.kill(leader);
      const killedAt = Date.now();
      const newLeader = await cluster.waitForLeader(30_000);
      const electionMs = Date.now() - killedAt;
      assert.notEqual(newLeader, leader);
      await sleep(SOAK_MS / 6);
      await cluster.restart(leader);
      leader = newLeader;

      await Promise.all([writing, flooding, sampling, ...holding]);
      await stock.stdin.close().catch(() => {});
      const stopTimer = setTimeout(() => {
        try {
          stock.kill("SIGKILL");
        } catch { /* exited */ }
      }, 20_000);
      await stock.status;
      clearTimeout(stopTimer);
      await stockReading;
      for (const response of streams.open) {
        await response.body?.cancel().catch(() => {});
      }

      console.log(
        `soak: ${acked.size} client writes (${ackedBeforeKill} before the kill), ${stockAcked.size} stock writes, ${floodCounts.sent} flood requests, ${connStats.opened} hostile connections, election ${electionMs} ms, RSS max ${
          rssMax.toFixed(0)
        } MiB`,
      );
      assert.deepEqual(fiveHundreds, [], "no 5xx but 503 under the flood");
      assert.ok(
        acked.size > ackedBeforeKill,
        "writes went on after the kill",
      );
      assert.ok(stockAcked.size > 0, "the stock client wrote");
      assert.deepEqual(stockWrong, []);
      assert.ok(rssMax > 0 && rssMax < RSS_BOUND_MIB, `RSS ${rssMax} MiB`);
      assert.ok(
        connStats.opened > 3 * CONNECTIONS_MAX,
        "held connections were freed and reopened",
      );

      // Nothing acknowledged is lost.
      await cluster.waitForLeader(30_000);
      using reader = connect(cluster.urls, { token: LEGIT, timeoutMs: 15_000 });
      for (const [n, versionstamp] of acked) {
        const entry = await reader.kv.get(["soak", n]);
        assert.equal(entry.versionstamp, versionstamp, `client write ${n}`);
      }
      for (const [n, versionstamp] of stockAcked) {
        const entry = await reader.kv.get(["stock", n]);
        assert.equal(entry.versionstamp, versionstamp, `stock write ${n}`);
      }
      assert.ok(Date.now() < testDeadline, "the soak kept to 3 minutes");
    });
  },
});
