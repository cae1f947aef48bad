/**
 * Builds clusters of identities, credentials and certificates for transport
 * tests, and an in-memory pair of frame channels.
 *
 * @module
 */
import {
  createNodeCertificate,
  encodeCertificateRecord,
  encodeCredential,
  generateNodeIdentity,
  generateSigningKey,
  issueCredential,
  type MembershipContext,
  type NodeCertificate,
  type NodeIdentity,
  signCertificateRecord,
  type SigningKey,
} from "../../src/cluster/mod.ts";
import type { FrameChannel } from "../../src/cluster/handshake.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
} from "../../src/protocol/envelope.ts";

/** One member: identity, certificate, record and membership context. */
export interface TestMember {
  readonly identity: NodeIdentity;
  readonly certificate: NodeCertificate;
  readonly certificateRecord: Uint8Array;
  readonly context: MembershipContext;
  readonly revoked: Set<string>;
}

/** Makes a member of the cluster of `clusterKey` (or a joiner with no credential). */
export async function makeMember(
  clusterKey: SigningKey,
  options: { credential?: boolean; joinTokens?: Uint8Array[] } = {},
): Promise<TestMember> {
  const identity = await generateNodeIdentity();
  const certificate = await createNodeCertificate(identity, {
    validityMs: 3600_000,
  });
  const record = encodeCertificateRecord(
    await signCertificateRecord(identity, certificate),
  );
  const credential = options.credential === false
    ? null
    : encodeCredential(await issueCredential(clusterKey, identity.publicKey));
  const revoked = new Set<string>();
  const tokens = (options.joinTokens ?? []).map((token) => token.join(","));
  return {
    identity,
    certificate,
    certificateRecord: record,
    revoked,
    context: {
      identity,
      clusterId: clusterKey.publicKey,
      credential,
      revoked,
      acceptJoinToken: (token) => tokens.includes(token.join(",")),
    },
  };
}

/** A fresh cluster key. */
export function makeClusterKey(): Promise<SigningKey> {
  return generateSigningKey();
}

/**
 * Two connected in-memory channels; envelopes pass through the codec. Every
 * envelope sent either way is also recorded, for replay tests.
 */
export function channelPair(): {
  client: FrameChannel;
  server: FrameChannel;
  sentByClient: Envelope[];
  sentByServer: Envelope[];
} {
  const make = (inbox: Envelope[], waiters: ((e: Envelope) => void)[]) => ({
    push(envelope: Envelope) {
      const copy = decodeEnvelope(encodeEnvelope(envelope));
      const waiter = waiters.shift();
      if (waiter) waiter(copy);
      else inbox.push(copy);
    },
    receive(): Promise<Envelope> {
      const next = inbox.shift();
      if (next) return Promise.resolve(next);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error("Channel receive timed out")),
          2000,
        );
        waiters.push((envelope) => {
          clearTimeout(timer);
          resolve(envelope);
        });
      });
    },
  });
  const toServer = make([], []);
  const toClient = make([], []);
  const sentByClient: Envelope[] = [];
  const sentByServer: Envelope[] = [];
  return {
    client: {
      send: (envelope) => {
        sentByClient.push(envelope);
        toServer.push(envelope);
        return Promise.resolve();
      },
      receive: () => toClient.receive(),
    },
    server: {
      send: (envelope) => {
        sentByServer.push(envelope);
        toClient.push(envelope);
        return Promise.resolve();
      },
      receive: () => toServer.receive(),
    },
    sentByClient,
    sentByServer,
  };
}
