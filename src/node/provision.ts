/**
 * Prepares the data folders of a new multi-node cluster before any node
 * starts: identities, certificates, one cluster key, each node's credential,
 * and the same member list in every `cluster.json`. Used by `aspen dev
 * cluster` and the tests; a production cluster grows by joins instead.
 *
 * @module
 */
import {
  encodeCredential,
  formatClusterId,
  issueCredential,
} from "../cluster/credential.ts";
import { loadOrCreateNodeIdentity } from "../cluster/identity.ts";
import { generateSigningKey } from "../cluster/keys.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import { encodeBase64Url } from "../base/base64.ts";
import {
  DATA_FILES,
  ensureDataDir,
  loadOrCreateCertificate,
  writeClusterFile,
} from "./data_dir.ts";
import type { NodeAddress } from "../protocol/cluster.ts";

/** Where one node of the new cluster will live. */
export interface PlannedNode {
  readonly dataDir: string;
  readonly httpUrl: string;
  readonly quicHost: string;
  readonly quicPort: number;
}

/**
 * Writes every folder of a new cluster whose voters are all `nodes`.
 *
 * @returns The members' addresses, in the order given.
 * @throws {RangeError} When a folder already belongs to a cluster.
 */
export async function provisionCluster(
  nodes: readonly PlannedNode[],
): Promise<NodeAddress[]> {
  const clusterKey = await generateSigningKey();
  const databaseId = crypto.randomUUID();
  const prepared = [];
  for (const node of nodes) {
    await ensureDataDir(node.dataDir);
    try {
      await Deno.stat(`${node.dataDir}/${DATA_FILES.cluster}`);
      throw new RangeError(
        `Cannot provision '${node.dataDir}' as it already belongs to a cluster`,
      );
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const identity = await loadOrCreateNodeIdentity(node.dataDir);
    const certificate = await loadOrCreateCertificate(node.dataDir, identity, [
      node.quicHost,
    ]);
    const credential = encodeCredential(
      await issueCredential(clusterKey, identity.publicKey),
    );
    // An empty log: the folder is complete, not an identity that lost its log.
    SqliteLogStore.open({ path: `${node.dataDir}/${DATA_FILES.log}` }).close();
    const address: NodeAddress = {
      nodeId: identity.nodeId,
      httpUrl: node.httpUrl,
      quicHost: node.quicHost,
      quicPort: node.quicPort,
      nodeKey: encodeBase64Url(identity.publicKey),
      certificateHash: encodeBase64Url(certificate.hash),
    };
    prepared.push({ node, address, credential });
  }
  const members = prepared.map((p) => p.address);
  for (const { node, credential } of prepared) {
    await writeClusterFile(node.dataDir, {
      clusterId: formatClusterId(clusterKey.publicKey),
      databaseId,
      credential: encodeBase64Url(credential),
      voters: members.map((m) => m.nodeId),
      members,
    });
    await Deno.writeFile(
      `${node.dataDir}/${DATA_FILES.clusterKey}`,
      await clusterKey.exportPkcs8(),
      { mode: 0o600 },
    );
    await Deno.writeFile(
      `${node.dataDir}/${DATA_FILES.clusterKey}.pub`,
      clusterKey.publicKey,
      { mode: 0o600 },
    );
  }
  return members;
}

/** Finds `count` free UDP ports on `host` (bound then released; fine for dev and tests). */
export function freeUdpPorts(host: string, count: number): number[] {
  const sockets = Array.from(
    { length: count },
    () => Deno.listenDatagram({ hostname: host, port: 0, transport: "udp" }),
  );
  const ports = sockets.map((s) => (s.addr as Deno.NetAddr).port);
  for (const s of sockets) s.close();
  return ports;
}

/** Finds `count` free TCP ports on `host`. */
export function freeTcpPorts(host: string, count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: host, port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}
