/// <reference lib="deno.unstable" />
import assert from "node:assert/strict";
import { decodeBase32, encodeBase32 } from "../src/base/base32.ts";
import { verifyCertificateRecord } from "../src/cluster/certificate.ts";
import {
  encodeCredential,
  issueCredential,
} from "../src/cluster/credential.ts";
import { loadOrCreateNodeIdentity } from "../src/cluster/identity.ts";
import type { Message } from "../src/raft/types.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { makeClusterKey } from "./helpers/transport_cluster.ts";
import { startQuicNode, within } from "./helpers/transport_quic.ts";
import { append } from "./helpers/transport_messages.ts";

Deno.test("QuicTransport: two processes on 127.0.0.1 authenticate and exchange Raft messages", async () => {
  const clusterKey = await makeClusterKey();
  const parent = await startQuicNode(clusterKey);
  const dir = await Deno.makeTempDir({ prefix: "aspen-peer-" });
  let child: Deno.ChildProcess | undefined;
  try {
    // The child's node key is made in its data folder; the cluster key signs its credential.
    const childIdentity = await loadOrCreateNodeIdentity(dir);
    const credential = encodeCredential(
      await issueCredential(clusterKey, childIdentity.publicKey),
    );
    await Deno.writeTextFile(
      `${dir}/peer.json`,
      JSON.stringify({
        clusterId: encodeBase32(clusterKey.publicKey),
        credential: encodeBase32(credential),
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
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-net",
        "--allow-net=127.0.0.1",
        `--allow-read=${dir}`,
        "--no-prompt",
        script,
        dir,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value: first } = await within(
      lines.read(),
      20_000,
      "the child's address",
    );
    const announced = JSON.parse(first ?? "{}");
    // Pin the node key; learn the certificate hash from the node-signed record.
    const record = await verifyCertificateRecord(
      decodeBase32(announced.certificateRecord),
      childIdentity.publicKey,
    );
    assert.ok(
      record,
      "the child's certificate record verifies against its node key",
    );
    parent.transport.setPeer({
      nodeId: childIdentity.nodeId,
      hostname: "127.0.0.1",
      port: announced.port,
      nodeKey: childIdentity.publicKey,
      certificateHash: record.certificateHash,
    });
    const received: Message[] = [];
    parent.transport.onMessage((message) => received.push(message));
    for (let i = 1; i <= 50; i++) {
      parent.transport.send(
        childIdentity.nodeId,
        append(parent.address.nodeId, childIdentity.nodeId, i),
      );
    }
    await waitFor(
      "50 AppendEntries responses",
      () => received.length === 50,
      15_000,
    );
    assert.deepEqual(
      received.map((m) => m.type === "appResp" && m.index),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.ok(received.every((m) => m.from === childIdentity.nodeId));
    const echoed = await parent.transport.request(childIdentity.nodeId, {
      method: "forwardProposal",
      data: new Uint8Array([4, 2]),
    });
    assert.deepEqual(echoed, new Uint8Array([4, 2]));
    // Both directions authenticated: the child dialed back with its own credential.
    assert.ok(
      parent.log.some((e) =>
        e.code === "authenticated" && e.peer === childIdentity.nodeId
      ),
    );
    lines.releaseLock();
  } finally {
    if (child !== undefined) {
      await child.stdin.close().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
    }
    await parent.transport.close();
    await Deno.remove(dir, { recursive: true });
  }
});
