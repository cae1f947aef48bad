/**
 * Starts QUIC transports on 127.0.0.1 for tests and the bench.
 *
 * @module
 */
/// <reference lib="deno.unstable" />
import { QuicTransport } from "../../src/transport/quic_transport.ts";
import type { QuicPeerAddress } from "../../src/transport/quic_peer_link.ts";
import type {
  QuicTransportOptions,
  TransportLogEvent,
} from "../../src/transport/quic_options.ts";
import { makeMember, type TestMember } from "./transport_cluster.ts";
import type { SigningKey } from "../../src/cluster/keys.ts";

/** A running QUIC transport with its member material and log. */
export interface QuicTestNode {
  readonly member: TestMember;
  readonly transport: QuicTransport;
  readonly log: TransportLogEvent[];
  readonly address: QuicPeerAddress;
}

/** Starts a node of `clusterKey`'s cluster on 127.0.0.1. */
export async function startQuicNode(
  clusterKey: SigningKey,
  options: Partial<QuicTransportOptions> & { member?: TestMember } = {},
): Promise<QuicTestNode> {
  const member = options.member ?? await makeMember(clusterKey);
  const log: TransportLogEvent[] = [];
  const transport = await QuicTransport.listen({
    membership: member.context,
    certificate: member.certificate,
    certificateRecord: member.certificateRecord,
    hostname: "127.0.0.1",
    log: (event) => log.push(event),
    handshakeTimeoutMs: 2000,
    reconnectBaseMs: 20,
    reconnectMaxMs: 200,
    connectTimeoutMs: 2000,
    ...options,
  });
  return {
    member,
    transport,
    log,
    address: {
      nodeId: member.identity.nodeId,
      hostname: "127.0.0.1",
      port: transport.addr.port,
      nodeKey: member.identity.publicKey,
      certificateHash: member.certificate.hash,
    },
  };
}

/** Introduces every node to every other. */
export function meshQuicNodes(nodes: readonly QuicTestNode[]): void {
  for (const node of nodes) {
    for (const other of nodes) {
      if (other !== node) node.transport.setPeer(other.address);
    }
  }
}

/** Opens a raw QUIC connection to `node`, pinned to its certificate. */
export function rawConnect(
  node: QuicTestNode,
  alpn = "aspen/1",
  endpoint?: Deno.QuicEndpoint,
): Promise<Deno.QuicConn> {
  return Deno.connectQuic({
    hostname: "127.0.0.1",
    port: node.address.port,
    alpnProtocols: [alpn],
    serverName: "localhost",
    endpoint,
    maxIdleTimeout: 2000,
    serverCertificateHashes: [{
      algorithm: "sha-256",
      value: node.address.certificateHash,
    }],
  } as Deno.ConnectQuicOptions<false>);
}

/** Waits for `promise`, failing after `ms`. */
export function within<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
