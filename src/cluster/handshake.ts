/**
 * Peer authentication, run in the application because the QUIC server
 * cannot see client certificates. Over the connection's first stream:
 *
 * 1. client → `hello`: version, purpose (`raft` or `join`), cluster id, its
 *    node key, a fresh nonce.
 * 2. server → `challenge`: its node key, its fresh nonce, its member
 *    credential, its certificate record, and its signature over the
 *    transcript (both nonces, both keys, cluster id, purpose and the hash of
 *    the TLS certificate the server serves).
 * 3. client → `proof`: its member credential (or, for `join`, a join token)
 *    and its signature over the same transcript with the client label.
 * 4. server → `welcome`, or `close` with a reason at any step.
 *
 * Both signatures cover both nonces, so a proof recorded on one connection
 * fails on any other; the certificate hash ties the transcript to the TLS
 * session the client pinned. Nothing else is accepted on a connection until
 * this completes.
 *
 * @module
 */
import { Encoder } from "@msgpack/msgpack";
import type { Envelope, HandshakePurpose } from "../protocol/envelope.ts";
import { PROTOCOL_VERSION } from "../protocol/limits.ts";
import type { NodeId } from "../raft/types.ts";
import { constantTimeEqual } from "../base/bytes.ts";
import { ENCODED_PUBLIC_KEY_BYTES, NONCE_BYTES } from "./constants.ts";
import {
  type CertificateRecord,
  verifyCertificateRecord,
} from "./certificate.ts";
import { verifyCredential } from "./credential.ts";
import { type NodeIdentity, nodeIdFromKey } from "./identity.ts";
import { verifySignature } from "./keys.ts";

const TRANSCRIPT_LABEL = "aspen-handshake-v1";
const encoder = new Encoder();

/** Why a handshake failed; sent as the close code. */
export type HandshakeFailure =
  | "unexpectedFrame"
  | "versionMismatch"
  | "badPurpose"
  | "wrongCluster"
  | "malformedKey"
  | "replayedNonce"
  | "badSignature"
  | "badCredential"
  | "revoked"
  | "joinTokenForRaft"
  | "badJoinToken"
  | "wrongPeer"
  | "badCertificateRecord"
  | "refused";

/** A handshake did not complete; nothing from that peer reaches Raft. */
export class HandshakeError extends Error {
  override name = "HandshakeError";
  /** What failed. */
  readonly code: HandshakeFailure;
  /** True when the peer refused us (its close reason), false when we refused it. */
  readonly remote: boolean;

  constructor(code: HandshakeFailure, message: string, remote = false) {
    super(message);
    this.code = code;
    this.remote = remote;
  }
}

/** A framed, ordered, two-way channel (one stream of a connection). */
export interface FrameChannel {
  /** Writes one envelope. */
  send(envelope: Envelope): Promise<void>;
  /** Reads the next envelope; rejects when the stream fails or ends. */
  receive(): Promise<Envelope>;
}

/** What a node knows about itself and its cluster to authenticate. */
export interface MembershipContext {
  readonly identity: NodeIdentity;
  /** The cluster's public key. */
  readonly clusterId: Uint8Array;
  /** This node's encoded member credential; null while it has none (joining). */
  readonly credential: Uint8Array | null;
  /** Node ids whose credentials are revoked, read at every handshake. */
  readonly revoked: { has(nodeId: string): boolean };
  /** Accepts or refuses a join token; absent means joins are refused. */
  readonly acceptJoinToken?: (token: Uint8Array) => boolean;
}

/** The authenticated far end of a connection. */
export interface AuthenticatedPeer {
  readonly nodeId: NodeId;
  readonly nodeKey: Uint8Array;
  /** `raft` peers may send Raft messages; `join` peers only a join request. */
  readonly purpose: HandshakePurpose;
  /** The server's verified certificate record (client side only). */
  readonly certificateRecord?: CertificateRecord;
}

/** Remembers recent client nonces to name replays; bounded. */
export class NonceRegistry {
  readonly #seen = new Set<string>();
  readonly #capacity: number;

  constructor(capacity = 4096) {
    this.#capacity = capacity;
  }

  /** Records `nonce`; false when it was seen recently. */
  record(nonce: Uint8Array): boolean {
    const key = String.fromCharCode(...nonce);
    if (this.#seen.has(key)) return false;
    if (this.#seen.size >= this.#capacity) {
      const oldest = this.#seen.values().next().value;
      if (oldest !== undefined) this.#seen.delete(oldest);
    }
    this.#seen.add(key);
    return true;
  }
}

interface Transcript {
  readonly clusterId: Uint8Array;
  readonly purpose: string;
  readonly clientKey: Uint8Array;
  readonly clientNonce: Uint8Array;
  readonly serverKey: Uint8Array;
  readonly serverNonce: Uint8Array;
  readonly certificateHash: Uint8Array;
}

function transcriptBytes(role: "client" | "server", t: Transcript): Uint8Array {
  return encoder.encode([
    TRANSCRIPT_LABEL,
    role,
    t.clusterId,
    t.purpose,
    t.clientKey,
    t.clientNonce,
    t.serverKey,
    t.serverNonce,
    t.certificateHash,
  ]);
}

async function expect<Kind extends Envelope["kind"]>(
  channel: FrameChannel,
  kind: Kind,
): Promise<Extract<Envelope, { kind: Kind }>> {
  const envelope = await channel.receive();
  if (envelope.kind === "close") {
    throw new HandshakeError(
      (envelope.code as HandshakeFailure) ?? "refused",
      `Peer refused the handshake: ${envelope.reason}`,
      true,
    );
  }
  if (envelope.kind !== kind) {
    throw new HandshakeError(
      "unexpectedFrame",
      `Cannot continue handshake as '${kind}' was expected: got '${envelope.kind}'`,
    );
  }
  return envelope as Extract<Envelope, { kind: Kind }>;
}

async function checkMember(
  context: MembershipContext,
  credential: Uint8Array | null,
  nodeKey: Uint8Array,
): Promise<void> {
  if (credential === null) {
    throw new HandshakeError(
      "badCredential",
      "Cannot accept peer as it presented no member credential",
    );
  }
  const verdict = await verifyCredential(
    credential,
    context.clusterId,
    nodeKey,
  );
  if (typeof verdict === "string") {
    throw new HandshakeError(
      verdict === "wrongCluster" ? "wrongCluster" : "badCredential",
      `Cannot accept peer's member credential: ${verdict}`,
    );
  }
  const id = nodeIdFromKey(nodeKey);
  if (context.revoked.has(id)) {
    throw new HandshakeError(
      "revoked",
      `Cannot accept peer as its credential is revoked: '${id}'`,
    );
  }
}

/** Sends a close with the failure's reason, ignoring a broken channel. */
async function refuse(channel: FrameChannel, error: unknown): Promise<never> {
  if (error instanceof HandshakeError && !error.remote) {
    await channel.send({
      kind: "close",
      code: error.code,
      reason: error.message,
    }).catch(() => {});
  }
  throw error;
}

/**
 * Runs the server side of the handshake.
 *
 * @param certificateHash Hash of the certificate this server's TLS serves.
 * @param certificateRecord This node's encoded certificate record.
 * @throws {HandshakeError} After sending the peer a close with the reason.
 */
export async function acceptHandshake(
  channel: FrameChannel,
  context: MembershipContext,
  certificateHash: Uint8Array,
  certificateRecord: Uint8Array,
  nonces: NonceRegistry,
): Promise<AuthenticatedPeer> {
  try {
    const hello = await expect(channel, "hello");
    if (hello.version !== PROTOCOL_VERSION) {
      throw new HandshakeError(
        "versionMismatch",
        `Cannot accept peer as its protocol version is unsupported: ${hello.version}`,
      );
    }
    if (hello.purpose !== "raft" && hello.purpose !== "join") {
      throw new HandshakeError(
        "badPurpose",
        `Cannot accept peer as its purpose is unknown: '${hello.purpose}'`,
      );
    }
    if (!constantTimeEqual(hello.clusterId, context.clusterId)) {
      throw new HandshakeError(
        "wrongCluster",
        "Cannot accept peer as it belongs to another cluster",
      );
    }
    if (
      hello.nodeKey.length !== ENCODED_PUBLIC_KEY_BYTES ||
      hello.nonce.length !== NONCE_BYTES
    ) {
      throw new HandshakeError(
        "malformedKey",
        "Cannot accept peer as its node key or nonce has the wrong length",
      );
    }
    if (!nonces.record(hello.nonce)) {
      throw new HandshakeError(
        "replayedNonce",
        "Cannot accept peer as its nonce was already used: a replayed handshake",
      );
    }
    if (context.credential === null) {
      throw new HandshakeError(
        "refused",
        "Cannot accept peers before this node holds a member credential",
      );
    }
    const transcript: Transcript = {
      clusterId: context.clusterId,
      purpose: hello.purpose,
      clientKey: hello.nodeKey,
      clientNonce: hello.nonce,
      serverKey: context.identity.publicKey,
      serverNonce: crypto.getRandomValues(new Uint8Array(NONCE_BYTES)),
      certificateHash,
    };
    await channel.send({
      kind: "challenge",
      nodeKey: transcript.serverKey,
      nonce: transcript.serverNonce,
      credential: context.credential,
      certificateRecord,
      signature: await context.identity.sign(
        transcriptBytes("server", transcript),
      ),
    });
    const proof = await expect(channel, "proof");
    if (
      !(await verifySignature(
        hello.nodeKey,
        proof.signature,
        transcriptBytes("client", transcript),
      ))
    ) {
      throw new HandshakeError(
        "badSignature",
        "Cannot accept peer as its handshake signature does not verify",
      );
    }
    if (hello.purpose === "raft") {
      if (proof.credential === null && proof.joinToken !== null) {
        throw new HandshakeError(
          "joinTokenForRaft",
          "Cannot accept a join token for Raft traffic",
        );
      }
      await checkMember(context, proof.credential, hello.nodeKey);
    } else if (
      proof.joinToken === null ||
      !(context.acceptJoinToken?.(proof.joinToken) ?? false)
    ) {
      throw new HandshakeError(
        "badJoinToken",
        "Cannot accept peer as its join token is missing or not valid",
      );
    }
    await channel.send({ kind: "welcome" });
    return {
      nodeId: nodeIdFromKey(hello.nodeKey),
      nodeKey: hello.nodeKey,
      purpose: hello.purpose,
    };
  } catch (error) {
    return refuse(channel, error);
  }
}

/** What the dialing side expects of the server and offers it. */
export interface InitiateOptions {
  /** The server's node key, as pinned by the address book or ticket. */
  readonly expectedNodeKey: Uint8Array;
  /** Hash of the certificate the TLS connection was pinned to. */
  readonly certificateHash: Uint8Array;
  /** Default `raft`. */
  readonly purpose?: HandshakePurpose;
  /** Sent instead of the credential when `purpose` is `join`. */
  readonly joinToken?: Uint8Array;
}

/**
 * Runs the client side of the handshake.
 *
 * @throws {HandshakeError} When the server is not who it should be, or refused us.
 */
export async function initiateHandshake(
  channel: FrameChannel,
  context: MembershipContext,
  options: InitiateOptions,
): Promise<AuthenticatedPeer> {
  try {
    const purpose = options.purpose ?? "raft";
    const clientNonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
    await channel.send({
      kind: "hello",
      version: PROTOCOL_VERSION,
      purpose,
      clusterId: context.clusterId,
      nodeKey: context.identity.publicKey,
      nonce: clientNonce,
    });
    const challenge = await expect(channel, "challenge");
    if (!constantTimeEqual(challenge.nodeKey, options.expectedNodeKey)) {
      throw new HandshakeError(
        "wrongPeer",
        "Cannot accept server as its node key is not the pinned one",
      );
    }
    const transcript: Transcript = {
      clusterId: context.clusterId,
      purpose,
      clientKey: context.identity.publicKey,
      clientNonce,
      serverKey: challenge.nodeKey,
      serverNonce: challenge.nonce,
      certificateHash: options.certificateHash,
    };
    if (
      !(await verifySignature(
        challenge.nodeKey,
        challenge.signature,
        transcriptBytes("server", transcript),
      ))
    ) {
      throw new HandshakeError(
        "badSignature",
        "Cannot accept server as its handshake signature does not verify",
      );
    }
    const record = await verifyCertificateRecord(
      challenge.certificateRecord,
      challenge.nodeKey,
    );
    if (
      record === null ||
      !constantTimeEqual(record.certificateHash, options.certificateHash)
    ) {
      throw new HandshakeError(
        "badCertificateRecord",
        "Cannot accept server as its certificate record does not match",
      );
    }
    await checkMember(context, challenge.credential, challenge.nodeKey);
    await channel.send({
      kind: "proof",
      credential: purpose === "raft" ? context.credential : null,
      // Sent whenever given; the server alone decides what a token admits.
      joinToken: options.joinToken ?? null,
      signature: await context.identity.sign(
        transcriptBytes("client", transcript),
      ),
    });
    await expect(channel, "welcome");
    return {
      nodeId: nodeIdFromKey(challenge.nodeKey),
      nodeKey: challenge.nodeKey,
      purpose: "raft",
      certificateRecord: record,
    };
  } catch (error) {
    return refuse(channel, error);
  }
}
