/**
 * The cluster key and member credentials. The cluster key (Ed25519) is made
 * at `init`; its public key is the cluster id. A member credential is a
 * node key signed by the cluster key, issued at init or when a join is
 * admitted. Checking one needs only the cluster id, no membership view, so a
 * lagging node still accepts its leader; removal revokes it through a
 * revocation set kept in replicated state.
 *
 * @module
 */
import { Encoder } from "@msgpack/msgpack";
import { decodeMsgpack } from "../protocol/fields.ts";
import { encodeBase32 } from "../base/base32.ts";
import { constantTimeEqual } from "../base/bytes.ts";
import { ENCODED_PUBLIC_KEY_BYTES } from "./constants.ts";
import { type SigningKey, verifySignature } from "./keys.ts";

const CREDENTIAL_LABEL = "aspen-member-credential-v1";
const encoder = new Encoder();

/** Bytes of a join token. */
export const JOIN_TOKEN_BYTES = 32;

/** A node key's membership in one cluster, signed by the cluster key. */
export interface MemberCredential {
  /** The cluster's public key (its id). */
  readonly clusterId: Uint8Array;
  /** The member's node key. */
  readonly nodeKey: Uint8Array;
  /** When it was issued, in ms since the epoch. */
  readonly issuedAtMs: number;
  /** Cluster key's signature over the fields above. */
  readonly signature: Uint8Array;
}

/** Why a credential was refused. */
export type CredentialProblem =
  | "malformed"
  | "wrongCluster"
  | "wrongNode"
  | "badSignature";

/** The printable cluster id: lowercase base32 of the cluster public key. */
export function formatClusterId(clusterId: Uint8Array): string {
  return encodeBase32(clusterId);
}

function credentialBody(
  clusterId: Uint8Array,
  nodeKey: Uint8Array,
  issuedAtMs: number,
): Uint8Array {
  return encoder.encode([CREDENTIAL_LABEL, clusterId, nodeKey, issuedAtMs]);
}

/** Issues a credential for `nodeKey`, signed by `clusterKey`. */
export async function issueCredential(
  clusterKey: SigningKey,
  nodeKey: Uint8Array,
  issuedAtMs: number = Date.now(),
): Promise<MemberCredential> {
  if (nodeKey.length !== ENCODED_PUBLIC_KEY_BYTES) {
    throw new RangeError(
      `Cannot issue credential as the node key must be 32 bytes: current length is ${nodeKey.length}`,
    );
  }
  const body = credentialBody(clusterKey.publicKey, nodeKey, issuedAtMs);
  return {
    clusterId: clusterKey.publicKey,
    nodeKey,
    issuedAtMs,
    signature: await clusterKey.sign(body),
  };
}

/** Encodes a credential for the wire or the data folder. */
export function encodeCredential(credential: MemberCredential): Uint8Array {
  return encoder.encode([
    credential.clusterId,
    credential.nodeKey,
    credential.issuedAtMs,
    credential.signature,
  ]);
}

/**
 * Decodes and checks a credential: it must be for `expectedNodeKey`, in
 * cluster `clusterId`, and signed by that cluster's key.
 *
 * @returns The credential, or the problem found.
 */
export async function verifyCredential(
  bytes: Uint8Array,
  clusterId: Uint8Array,
  expectedNodeKey: Uint8Array,
): Promise<MemberCredential | CredentialProblem> {
  let wire: unknown;
  try {
    wire = decodeMsgpack(bytes);
  } catch {
    return "malformed";
  }
  if (!Array.isArray(wire) || wire.length !== 4) return "malformed";
  const [credentialCluster, nodeKey, issuedAtMs, signature] = wire;
  if (
    !(credentialCluster instanceof Uint8Array) ||
    !(nodeKey instanceof Uint8Array) ||
    typeof issuedAtMs !== "number" || !(signature instanceof Uint8Array)
  ) return "malformed";
  if (!constantTimeEqual(credentialCluster, clusterId)) return "wrongCluster";
  if (!constantTimeEqual(nodeKey, expectedNodeKey)) return "wrongNode";
  const body = credentialBody(credentialCluster, nodeKey, issuedAtMs);
  if (!(await verifySignature(credentialCluster, signature, body))) {
    return "badSignature";
  }
  return { clusterId: credentialCluster, nodeKey, issuedAtMs, signature };
}

/** Creates a random join token. A secret: print only on request. */
export function createJoinToken(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(JOIN_TOKEN_BYTES));
}
