/**
 * The node's TLS certificate (self-signed P-256, short validity) and the
 * record that binds it to the node key. Peers and tickets pin the node key;
 * a node publishes the SHA-256 hash of its current certificate in a record
 * signed by that key, so renewing the certificate never breaks them.
 *
 * @module
 */
import "./_reflect_metadata.ts";
import * as x509 from "@peculiar/x509";
import { Encoder } from "@msgpack/msgpack";
import { decodeMsgpack } from "../protocol/fields.ts";
import { constantTimeEqual } from "../base/bytes.ts";
import { ENCODED_PUBLIC_KEY_BYTES, HASH_BYTES } from "./constants.ts";
import { verifySignature } from "./keys.ts";
import type { NodeIdentity } from "./identity.ts";

const P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const RECORD_LABEL = "aspen-certificate-record-v1";
const encoder = new Encoder();

/** Default certificate validity, in milliseconds (7 days). */
export const DEFAULT_CERTIFICATE_VALIDITY_MS = 7 * 24 * 3600 * 1000;
/** Clock skew allowance before `notBefore`, in milliseconds. */
const NOT_BEFORE_SKEW_MS = 5 * 60 * 1000;

/** A TLS certificate with its key, ready for `QuicEndpoint.listen`. */
export interface NodeCertificate {
  /** Certificate in PEM. */
  readonly certificatePem: string;
  /** P-256 private key in PKCS #8 PEM. A secret. */
  readonly privateKeyPem: string;
  /** SHA-256 of the DER certificate, what clients pin. */
  readonly hash: Uint8Array;
  /** End of validity, in milliseconds since the epoch. */
  readonly notAfterMs: number;
}

/** A node's signed statement of its current certificate hash. */
export interface CertificateRecord {
  /** The node's Ed25519 public key. */
  readonly nodeKey: Uint8Array;
  /** SHA-256 of the certificate's DER. */
  readonly certificateHash: Uint8Array;
  /** End of the certificate's validity, in ms since the epoch. */
  readonly notAfterMs: number;
  /** Node key's signature over the fields above. */
  readonly signature: Uint8Array;
}

/** Options of {@linkcode createNodeCertificate}. */
export interface CertificateOptions {
  /** Validity in milliseconds. Default 7 days; WebTransport hashes allow at most 14. */
  readonly validityMs?: number;
  /** DNS names the certificate names. Default `["localhost"]`. */
  readonly dnsNames?: readonly string[];
  /** IP addresses the certificate names. Default `["127.0.0.1", "::1"]`. */
  readonly ipAddresses?: readonly string[];
  /** The current time, in ms since the epoch. Default `Date.now()`. */
  readonly nowMs?: number;
}

/** Creates a fresh self-signed P-256 certificate for `identity`. */
export async function createNodeCertificate(
  identity: NodeIdentity,
  options: CertificateOptions = {},
): Promise<NodeCertificate> {
  const validityMs = options.validityMs ?? DEFAULT_CERTIFICATE_VALIDITY_MS;
  if (!(validityMs > 0 && validityMs <= 14 * 24 * 3600 * 1000)) {
    throw new RangeError(
      `Cannot create certificate as 'validityMs' must be in (0, 14 days]: current value is ${validityMs}`,
    );
  }
  const nowMs = options.nowMs ?? Date.now();
  const keys = await crypto.subtle.generateKey(P256, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const names = [
    ...(options.dnsNames ?? ["localhost"]).map((value) => ({
      type: "dns" as const,
      value,
    })),
    ...(options.ipAddresses ?? ["127.0.0.1", "::1"]).map((value) => ({
      type: "ip" as const,
      value,
    })),
  ];
  const serial = crypto.getRandomValues(new Uint8Array(8));
  serial[0] = serial[0]! & 0x7f;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: [...serial].map((byte) => byte.toString(16).padStart(2, "0"))
      .join(""),
    name: `CN=aspen-${identity.shortId}`,
    notBefore: new Date(nowMs - NOT_BEFORE_SKEW_MS),
    notAfter: new Date(nowMs + validityMs),
    signingAlgorithm: P256,
    keys,
    extensions: [new x509.SubjectAlternativeNameExtension(names)],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certificatePem: certificate.toString("pem"),
    privateKeyPem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY"),
    hash: new Uint8Array(
      await crypto.subtle.digest("SHA-256", certificate.rawData),
    ),
    notAfterMs: nowMs + validityMs,
  };
}

/** True when `certificate` should be replaced: less than `renewBeforeMs` left. */
export function certificateNeedsRenewal(
  certificate: NodeCertificate,
  nowMs: number,
  renewBeforeMs: number = DEFAULT_CERTIFICATE_VALIDITY_MS / 2,
): boolean {
  return certificate.notAfterMs - nowMs < renewBeforeMs;
}

function recordBody(
  nodeKey: Uint8Array,
  hash: Uint8Array,
  notAfterMs: number,
): Uint8Array {
  return encoder.encode([RECORD_LABEL, nodeKey, hash, notAfterMs]);
}

/** Signs the record publishing `certificate`'s hash with the node key. */
export async function signCertificateRecord(
  identity: NodeIdentity,
  certificate: NodeCertificate,
): Promise<CertificateRecord> {
  const body = recordBody(
    identity.publicKey,
    certificate.hash,
    certificate.notAfterMs,
  );
  return {
    nodeKey: identity.publicKey,
    certificateHash: certificate.hash,
    notAfterMs: certificate.notAfterMs,
    signature: await identity.sign(body),
  };
}

/** Encodes a record for the wire. */
export function encodeCertificateRecord(record: CertificateRecord): Uint8Array {
  return encoder.encode([
    record.nodeKey,
    record.certificateHash,
    record.notAfterMs,
    record.signature,
  ]);
}

/**
 * Decodes a record and checks it was signed by `expectedNodeKey`.
 *
 * @returns The record, or `null` when it is malformed, signed by another
 *   key, or not signed correctly.
 */
export async function verifyCertificateRecord(
  bytes: Uint8Array,
  expectedNodeKey: Uint8Array,
): Promise<CertificateRecord | null> {
  let wire: unknown;
  try {
    wire = decodeMsgpack(bytes);
  } catch {
    return null;
  }
  if (!Array.isArray(wire) || wire.length !== 4) return null;
  const [nodeKey, certificateHash, notAfterMs, signature] = wire;
  if (
    !(nodeKey instanceof Uint8Array) ||
    nodeKey.length !== ENCODED_PUBLIC_KEY_BYTES ||
    !(certificateHash instanceof Uint8Array) ||
    certificateHash.length !== HASH_BYTES ||
    typeof notAfterMs !== "number" || !(signature instanceof Uint8Array)
  ) return null;
  if (!constantTimeEqual(nodeKey, expectedNodeKey)) return null;
  const body = recordBody(nodeKey, certificateHash, notAfterMs);
  if (!(await verifySignature(nodeKey, signature, body))) return null;
  return { nodeKey, certificateHash, notAfterMs, signature };
}
