/**
 * Joining a running cluster. A member holding the cluster key (a founding
 * node) issues a join token: a nonce and an expiry signed by the cluster key,
 * so any member can check it with the cluster id (the cluster's public key).
 * A token admits a join request only, never Raft traffic, and admits one
 * node: the leader records its use through the log before admitting.
 *
 * The new node sends `POST /v1/cluster/join` with the token and its address to
 * the leader; the leader (which must hold the cluster key) replicates the new
 * member's address, adds it as a learner, and answers with what the node
 * needs: its member credential (its node key signed by the cluster key) and
 * the cluster's ids and members. The private cluster key never leaves the
 * founding nodes, so a leaked ticket cannot mint credentials.
 *
 * @module
 */
import { ADMIN_TOKEN_FILE, DATA_TOKEN_FILE } from "../cluster/access_tokens.ts";
import { decode, encode } from "@msgpack/msgpack";
import { decodeBase32 } from "../base/base32.ts";
import { encodeCredential, issueCredential } from "../cluster/credential.ts";
import { loadOrCreateNodeIdentity } from "../cluster/identity.ts";
import { type SigningKey, verifySignature } from "../cluster/keys.ts";
import { parseTicket } from "../cluster/ticket.ts";
import { SqliteLogStore } from "../storage/sqlite_log_store.ts";
import type { NodeConfig } from "./config.ts";
import {
  DATA_FILES,
  ensureDataDir,
  loadOrCreateCertificate,
  readClusterFile,
  writeClusterFile,
} from "./data_dir.ts";
import { freeTcpPorts, freeUdpPorts } from "./provision.ts";
import { decodeBase64Url, encodeBase64Url } from "../base/base64.ts";
import type { NodeAddress } from "../protocol/cluster.ts";

/** Default life of a join token, in milliseconds. */
export const JOIN_TOKEN_TTL_MS = 60 * 60 * 1000;

const LABEL = "aspen-join-token-v1";

/** A join token that is malformed, forged, for another cluster, or expired. */
export class JoinRefusedError extends Error {
  override name = "JoinRefusedError";
}

function signedBody(
  clusterId: Uint8Array,
  nonce: Uint8Array,
  expiresAtMs: number,
): Uint8Array {
  return encode([LABEL, clusterId, nonce, expiresAtMs]);
}

/** Issues a join token signed by the cluster key. */
export async function issueJoinToken(
  clusterKey: SigningKey,
  nowMs: number,
  ttlMs = JOIN_TOKEN_TTL_MS,
): Promise<Uint8Array> {
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  const expiresAtMs = nowMs + ttlMs;
  const signature = await clusterKey.sign(
    signedBody(clusterKey.publicKey, nonce, expiresAtMs),
  );
  return encode([nonce, expiresAtMs, signature]);
}

/** A verified join token: its nonce (hex, the key of its single use) and expiry. */
export interface VerifiedJoinToken {
  readonly nonce: string;
  readonly expiresAtMs: number;
}

/**
 * Checks a join token against the cluster id. Whether it was used already
 * is the replicated state's to say (the leader records each use through Raft).
 *
 * @throws {JoinRefusedError} With the reason.
 */
export async function verifyJoinToken(
  token: Uint8Array,
  clusterId: Uint8Array,
  nowMs: number,
): Promise<VerifiedJoinToken> {
  let parts: unknown;
  try {
    parts = decode(token);
  } catch {
    throw new JoinRefusedError("Join token is malformed");
  }
  if (!Array.isArray(parts) || parts.length !== 3) {
    throw new JoinRefusedError("Join token is malformed");
  }
  const [nonce, expiresAtMs, signature] = parts as [unknown, unknown, unknown];
  if (
    !(nonce instanceof Uint8Array) || typeof expiresAtMs !== "number" ||
    !(signature instanceof Uint8Array)
  ) {
    throw new JoinRefusedError("Join token is malformed");
  }
  if (
    !(await verifySignature(
      clusterId,
      signature,
      signedBody(clusterId, nonce, expiresAtMs),
    ))
  ) {
    throw new JoinRefusedError("Join token is not signed by this cluster");
  }
  if (expiresAtMs <= nowMs) {
    throw new JoinRefusedError("Join token has expired");
  }
  const hex = Array.from(nonce, (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
  return { nonce: hex, expiresAtMs };
}

/** What a joining node sends. */
export interface JoinRequest {
  /** The join token, base64url. */
  readonly token: string;
  readonly address: NodeAddress;
}

/** What the leader answers. */
export interface JoinResponse {
  readonly clusterId: string;
  readonly databaseId: string;
  /** The new node's member credential, base64url. */
  readonly credential: string;
  /** Current voters (the new node starts as a learner). */
  readonly voters: readonly string[];
  readonly members: readonly NodeAddress[];
  /**
   * The cluster's derived data and admin tokens (a joined node holds no
   * cluster key to derive them from), so every member accepts the same ones.
   */
  readonly tokens: { readonly data: string; readonly admin: string };
}

/** Issues the credential for a joining node. */
export async function credentialFor(
  clusterKey: SigningKey,
  nodeKey: string,
): Promise<string> {
  return encodeBase64Url(
    encodeCredential(
      await issueCredential(clusterKey, decodeBase64Url(nodeKey)),
    ),
  );
}

/** Path of the join request (outside the API's bearer-token check). */
export const JOIN_ROUTE = "/v1/cluster/join";

/**
 * Sends a join request to each URL in turn, following a 421 to the leader,
 * until one admits it.
 *
 * @throws {JoinRefusedError} When the token is refused.
 * @throws {Error} When no node could be reached.
 */
export async function requestJoin(
  urls: readonly string[],
  request: JoinRequest,
  timeoutMs = 30_000,
): Promise<JoinResponse> {
  const deadline = Date.now() + timeoutMs;
  const queue = [...urls];
  let lastError = "no node URL in the ticket";
  for (let attempt = 0; attempt < 50 && Date.now() < deadline; attempt++) {
    const url = queue.shift();
    if (url === undefined) {
      queue.push(...urls);
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    try {
      const response = await fetch(new URL(JOIN_ROUTE, url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now())),
      });
      const body = await response.json() as JoinResponse & {
        error?: {
          message: string;
          leaderUrl?: string;
          details?: { leaderUrl?: string };
        };
      };
      const leaderUrl = body.error?.details?.leaderUrl ??
        body.error?.leaderUrl;
      if (response.ok) return body;
      lastError = `${url}: ${response.status} ${body.error?.message ?? ""}`;
      if (response.status === 403) {
        throw new JoinRefusedError(body.error?.message ?? "Join refused");
      }
      if (response.status === 421 && leaderUrl) {
        queue.unshift(leaderUrl);
      }
    } catch (error) {
      if (error instanceof JoinRefusedError) throw error;
      lastError = `${url}: ${(error as Error).message}`;
    }
  }
  throw new Error(`Cannot join the cluster: ${lastError}`);
}

/** The cluster id (public key) of a base32 cluster id. */
export function clusterIdBytes(clusterId: string): Uint8Array {
  return decodeBase32(clusterId);
}

/**
 * Prepares a data folder to join the cluster a join ticket names, unless it
 * already belongs to a cluster (then a restart with `--join` is harmless).
 * Fixes the ports first, since the leader records them.
 *
 * @returns The configuration with its ports fixed.
 * @throws {TypeError} For a client ticket or a malformed one.
 */
export async function prepareJoin(
  config: NodeConfig,
  ticketText: string,
): Promise<NodeConfig> {
  if ((await readClusterFile(config.dataDir)) !== null) return config;
  const ticket = parseTicket(ticketText);
  if (ticket.kind !== "join") {
    throw new TypeError(
      "Cannot join with a client ticket: ask a member for one with 'aspen cluster join-ticket'",
    );
  }
  await ensureDataDir(config.dataDir);
  const identity = await loadOrCreateNodeIdentity(config.dataDir);
  const certificate = await loadOrCreateCertificate(config.dataDir, identity, [
    config.quicHost,
  ]);
  const httpPort = config.httpPort === 0
    ? freeTcpPorts(config.httpHost, 1)[0]!
    : config.httpPort;
  const quicPort = config.quicPort === 0
    ? freeUdpPorts(config.quicHost, 1)[0]!
    : config.quicPort;
  // An empty log: the folder is complete, not an identity that lost its log.
  SqliteLogStore.open({ path: `${config.dataDir}/${DATA_FILES.log}` }).close();
  const host = config.httpHost.includes(":")
    ? `[${config.httpHost}]`
    : config.httpHost;
  const address: NodeAddress = {
    nodeId: identity.nodeId,
    httpUrl: `http://${host}:${httpPort}`,
    quicHost: config.quicHost,
    quicPort,
    nodeKey: encodeBase64Url(identity.publicKey),
    certificateHash: encodeBase64Url(certificate.hash),
  };
  const response = await requestJoin(ticket.nodes.flatMap((n) => n.httpUrls), {
    token: encodeBase64Url(ticket.joinToken),
    address,
  });
  // Only the cluster's public key: a joined node never holds the private
  // key, so a leaked join ticket cannot mint credentials.
  await Deno.writeFile(
    `${config.dataDir}/${DATA_FILES.clusterKey}.pub`,
    decodeBase32(response.clusterId),
    { mode: 0o600 },
  );
  // The cluster's tokens, kept where loadAccessTokens reads them.
  for (
    const [file, token] of [
      [DATA_TOKEN_FILE, response.tokens?.data],
      [ADMIN_TOKEN_FILE, response.tokens?.admin],
    ] as const
  ) {
    if (typeof token !== "string" || !/^[0-9a-f]{16,128}$/.test(token)) {
      throw new JoinRefusedError(
        "Join response carries no valid cluster tokens",
      );
    }
    await Deno.writeTextFile(`${config.dataDir}/${file}`, `${token}\n`, {
      mode: 0o600,
    });
  }
  await writeClusterFile(config.dataDir, {
    clusterId: response.clusterId,
    databaseId: response.databaseId,
    credential: response.credential,
    voters: response.voters,
    members: [
      ...response.members.filter((m) => m.nodeId !== identity.nodeId),
      address,
    ],
  });
  return { ...config, httpPort, quicPort };
}
