/// <reference lib="deno.unstable" />
/**
 * Issue 12 item 7: after a peer is killed (no QUIC close) and restarts on
 * its port, this node stops sending into the dead connection as soon as the
 * restarted peer dials in, instead of at the QUIC idle timeout (set to a
 * minute here, so the old behaviour cannot pass).
 */
import assert from "node:assert/strict";
import { encodeBase32 } from "../src/base/base32.ts";
import { verifyCertificateRecord } from "../src/cluster/certificate.ts";
import {
  encodeCredential,
  issueCredential,
} from "../src/cluster/credential.ts";
import {
  loadOrCreateNodeIdentity,
  type NodeIdentity,
} from "../src/cluster/identity.ts";
import { decodeBase32 } from "../src/base/base32.ts";
import type { Message } from "../src/raft/types.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { makeClusterKey } from "./helpers/transport_cluster.ts";
import {
  type QuicTestNode,
  startQuicNode,
  within,
} from "./helpers/transport_quic.ts";
import { append } from "./helpers/transport_messages.ts";
import { RESET_MIN_LINK_AGE_MS } from "../src/transport/quic_transport.ts";

const IDLE_MS = 60_000;

interface Child {
  readonly process: Deno.ChildProcess;
  readonly port: number;
  readonly certificateHash: Uint8Array;
}

async function spawnPeer(
  dir: string,
  identity: NodeIdentity,
  parent: QuicTestNode,
  clusterKey: Parameters<typeof issueCredential>[0],
  port?: number,
): Promise<Child> {
  const credential = encodeCredential(
    await issueCredential(clusterKey, identity.publicKey),
  );
  await Deno.writeTextFile(
    `${dir}/peer.json`,
    JSON.stringify({
      clusterId: encodeBase32(clusterKey.publicKey),
      credential: encodeBase32(credential),
      idleTimeoutMs: IDLE_MS,
      persistCertificate: true,
      ...(port === undefined ? {} : { port }),
      parent: {
        nodeId: parent.address.nodeId,
        port: parent.address.port,
        nodeKey: encodeBase32(parent.address.nodeKey),
        certificateHash: encodeBase32(parent.address.certificateHash),
      },
    }),
  );
  const script =
    new URL("./helpers/transport_peer_process.ts", import.meta.url).pathname;
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-net",
      "--allow-net=127.0.0.1",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      "--no-prompt",
      script,
      dir,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = process.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const { value } = await within(lines.read(), 30_000, "the child's address");
  lines.releaseLock();
  const announced = JSON.parse(value ?? "{}");
  const record = await verifyCertificateRecord(
    decodeBase32(announced.certificateRecord),
    identity.publicKey,
  );
  assert.ok(record, "the child's certificate record verifies");
  return {
    process,
    port: announced.port,
    certificateHash: record.certificateHash,
  };
}

async function kill(child: Child): Promise<void> {
  try {
    child.process.kill("SIGKILL");
  } catch { /* already exited */ }
  await child.process.status;
  await child.process.stdout.cancel().catch(() => {});
  await child.process.stdin.close().catch(() => {});
}

async function killAndRestart(waitPastDamping: boolean): Promise<void> {
  const clusterKey = await makeClusterKey();
  const parent = await startQuicNode(clusterKey, { idleTimeoutMs: IDLE_MS });
  const dir = await Deno.makeTempDir({ prefix: "aspen-restart-" });
  const children: Child[] = [];
  try {
    const identity = await loadOrCreateNodeIdentity(dir);
    const received: Message[] = [];
    parent.transport.onMessage((message) => received.push(message));
    const exchange = async (child: Child, index: number, what: string) => {
      parent.transport.setPeer({
        nodeId: identity.nodeId,
        hostname: "127.0.0.1",
        port: child.port,
        nodeKey: identity.publicKey,
        certificateHash: child.certificateHash,
      });
      // Bounded: one AppendEntries every 100 ms for at most 30 s.
      for (let i = 0; i < 300; i++) {
        parent.transport.send(
          identity.nodeId,
          append(parent.address.nodeId, identity.nodeId, index),
        );
        if (
          received.some((m) => m.type === "appResp" && m.index === index)
        ) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(
        `No answer from ${what} within 30 s: ${
          JSON.stringify(parent.log.map((e) => `${e.code}: ${e.message}`))
        }`,
      );
    };
    const first = await spawnPeer(dir, identity, parent, clusterKey);
    children.push(first);
    await exchange(first, 1, "the first process");
    if (waitPastDamping) {
      // Links older than this are reset at once; younger ones are probed.
      await new Promise((resolve) =>
        setTimeout(resolve, RESET_MIN_LINK_AGE_MS + 200)
      );
    }
    await kill(first);
    // The restarted peer binds the same port and serves the same
    // certificate (as a node does), so its address is unchanged; it dials
    // the parent at start.
    const second = await spawnPeer(
      dir,
      identity,
      parent,
      clusterKey,
      first.port,
    );
    children.push(second);
    await waitFor(
      "the restarted peer's connection",
      () =>
        parent.log.filter((e) =>
          e.code === "authenticated" && e.peer === identity.nodeId
        ).length >= 2,
      30_000,
    );
    assert.deepEqual(second.certificateHash, first.certificateHash);
    await exchange(second, 2, "the restarted process");
    assert.ok(parent.log.some((e) => e.code === "peerReconnected"));
  } finally {
    for (const child of children) await kill(child);
    await parent.transport.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("QuicTransport reconnects at once to a peer that was killed and restarted", () =>
  killAndRestart(true));

Deno.test("QuicTransport probes a young link when its peer reconnects, and reconnects when the probe goes unanswered", () =>
  killAndRestart(false));
