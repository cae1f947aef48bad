/** Provisions an N-node cluster on loopback for in-process node tests. */
import {
  freeTcpPorts,
  freeUdpPorts,
  type PlannedNode,
  provisionCluster,
} from "../../src/node/provision.ts";

/** Loopback host every node test uses. */
export const HOST = "127.0.0.1";

/** Free ports, folders `root/n1…nN`, and `provisionCluster` over them. */
export async function provisionLocalCluster(
  root: string,
  count: number,
): Promise<{ plans: PlannedNode[]; httpPorts: number[] }> {
  const httpPorts = freeTcpPorts(HOST, count);
  const quicPorts = freeUdpPorts(HOST, count);
  const plans = httpPorts.map((httpPort, i) => ({
    dataDir: `${root}/n${i + 1}`,
    httpUrl: `http://${HOST}:${httpPort}`,
    quicHost: HOST,
    quicPort: quicPorts[i]!,
  }));
  await provisionCluster(plans);
  return { plans, httpPorts };
}
