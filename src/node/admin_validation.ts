/**
 * Complete validation of membership admin inputs (add-learner, promote,
 * remove, transfer-leader, a join's address), run before anything changes:
 * a refused call leaves the node exactly as it was.
 *
 * @module
 */
import { keyFromNodeId, nodeIdFromKey } from "../cluster/identity.ts";
import { HASH_BYTES } from "../cluster/constants.ts";
import type { RaftStatus } from "../raft/raft_node.ts";
import type { ConfState, NodeId } from "../raft/types.ts";
import { decodeBase64Url, encodeBase64Url } from "../base/base64.ts";
import { ClusterAdminError, type NodeAddress } from "./node_api.ts";

/** Longest URL or host name accepted in an address. */
const ADDRESS_TEXT_MAX = 2048;
/** Bytes of an Ed25519 public key. */
const NODE_KEY_BYTES = 32;

const HOST_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const HOST_NAME = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const IPV6 = /^[0-9A-Fa-f:.]+$/;

function invalid(message: string): ClusterAdminError {
  return new ClusterAdminError("invalid", message);
}

function text(value: unknown, field: string, max = ADDRESS_TEXT_MAX): string {
  if (typeof value !== "string" || value.length === 0) {
    throw invalid(`Invalid '${field}': expected a non-empty string`);
  }
  if (value.length > max) {
    throw invalid(
      `Invalid '${field}': at most ${max} characters, got ${value.length}`,
    );
  }
  return value;
}

/**
 * A node id: canonical lowercase base32 of a 32-byte key.
 *
 * @throws {ClusterAdminError} "invalid" otherwise.
 */
export function validateNodeId(value: unknown, field = "nodeId"): string {
  const id = text(value, field, 128);
  try {
    if (nodeIdFromKey(keyFromNodeId(id)) === id) return id;
  } catch {
    // Reported below.
  }
  throw invalid(
    `Invalid '${field}': expected a node id (base32 of a 32-byte key)`,
  );
}

/** Canonical unpadded base64url of exactly `bytes` bytes. */
function base64UrlBytes(value: unknown, field: string, bytes: number): string {
  const encoded = text(value, field, 256);
  let decoded: Uint8Array;
  try {
    decoded = decodeBase64Url(encoded);
  } catch {
    throw invalid(`Invalid '${field}': expected base64url`);
  }
  if (decoded.length !== bytes) {
    throw invalid(
      `Invalid '${field}': expected ${bytes} bytes, got ${decoded.length}`,
    );
  }
  if (encodeBase64Url(decoded) !== encoded) {
    throw invalid(`Invalid '${field}': expected unpadded canonical base64url`);
  }
  return encoded;
}

/** An `http:` or `https:` origin URL: a host, an optional port, nothing else. */
function validateHttpUrl(value: unknown): string {
  const raw = text(value, "httpUrl");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid("Invalid 'httpUrl': not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid("Invalid 'httpUrl': expected an http: or https: URL");
  }
  if (
    url.hostname === "" || url.username !== "" || url.password !== "" ||
    url.search !== "" || url.hash !== "" || url.pathname !== "/"
  ) {
    throw invalid(
      "Invalid 'httpUrl': expected scheme, host and port only (no credentials, path, query or fragment)",
    );
  }
  if (url.port === "0") throw invalid("Invalid 'httpUrl': port 0");
  return raw;
}

function validateHost(value: unknown): string {
  const host = text(value, "quicHost", 253);
  if (HOST_NAME.test(host)) return host;
  if (host.includes(":") && IPV6.test(host)) {
    try {
      new URL(`http://[${host}]/`);
      return host;
    } catch {
      // Reported below.
    }
  }
  throw invalid("Invalid 'quicHost': expected a host name or an IP address");
}

function validatePort(value: unknown): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 1 ||
    value > 65535
  ) {
    throw invalid("Invalid 'quicPort': expected an integer in [1, 65535]");
  }
  return value;
}

/**
 * Checks every field of a node's address: the id is the base32 of
 * `nodeKey`, the key and certificate hash are 32 bytes, the URL, host and
 * port are well formed.
 *
 * @throws {ClusterAdminError} "invalid", naming the field.
 */
export function validateNodeAddress(address: unknown): NodeAddress {
  if (typeof address !== "object" || address === null) {
    throw invalid("Invalid address: expected an object");
  }
  const a = address as Record<string, unknown>;
  const nodeId = validateNodeId(a.nodeId);
  const nodeKey = base64UrlBytes(a.nodeKey, "nodeKey", NODE_KEY_BYTES);
  if (nodeIdFromKey(decodeBase64Url(nodeKey)) !== nodeId) {
    throw invalid("Invalid 'nodeKey': it is not the key 'nodeId' names");
  }
  return {
    nodeId,
    httpUrl: validateHttpUrl(a.httpUrl),
    quicHost: validateHost(a.quicHost),
    quicPort: validatePort(a.quicPort),
    nodeKey,
    certificateHash: base64UrlBytes(
      a.certificateHash,
      "certificateHash",
      HASH_BYTES,
    ),
  };
}

/** The roles a node id may hold for an admin call to proceed. */
export type AdminTarget = "learner" | "member" | "voter";

/**
 * Checks that `id` is a node id holding `role` in `conf`.
 *
 * @throws {ClusterAdminError} "invalid" for a malformed id, "unknownNode"
 *   when it is not a member, "invalid" when it has the wrong role.
 */
export function validateMemberId(
  value: unknown,
  conf: ConfState,
  role: AdminTarget,
): string {
  const id = validateNodeId(value);
  checkRole(id, conf, role);
  return id;
}

/**
 * That `id` is a member of `conf` in `role`.
 *
 * @throws {ClusterAdminError} "unknownNode" for a non-member, "invalid" for
 *   the wrong role.
 */
export function checkRole(
  id: string,
  conf: ConfState,
  role: AdminTarget,
): void {
  const voter = conf.voters.includes(id as never) ||
    conf.votersOutgoing.includes(id as never);
  const learner = conf.learners.includes(id as never);
  if (!voter && !learner) {
    throw new ClusterAdminError(
      "unknownNode",
      `Cannot act on '${id}' as it is not a member`,
    );
  }
  if (role === "learner" && !learner) {
    throw invalid(`Cannot promote '${id}' as it is already a voter`);
  }
  if (role === "voter" && !voter) {
    throw invalid(`Cannot act on '${id}' as it is a learner, not a voter`);
  }
}

/** Lag (entries behind the commit index) within which a learner may be promoted. */
export const PROMOTE_LAG_MAX = 1000;

/**
 * The promote rule, one definition for the node and the HTTP tests' node: a
 * learner the leader tracks, within {@linkcode PROMOTE_LAG_MAX} entries of
 * the commit index.
 *
 * @throws {ClusterAdminError} "unknownNode", "invalid" (not a learner) or
 *   "notCaughtUp".
 */
export function checkPromotion(id: NodeId, status: RaftStatus): void {
  checkRole(id, status.conf, "learner");
  const match = status.progress?.get(id)?.match;
  if (match === undefined) {
    throw new ClusterAdminError(
      "unknownNode",
      `Cannot promote '${id}' as the leader does not track it`,
    );
  }
  if (status.commit - match > PROMOTE_LAG_MAX) {
    throw new ClusterAdminError(
      "notCaughtUp",
      `Cannot promote '${id.slice(0, 10)}' as it lags the commit index by ${
        status.commit - match
      } entries (at most ${PROMOTE_LAG_MAX})`,
    );
  }
}
