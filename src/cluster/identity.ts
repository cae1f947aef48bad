/**
 * Node identity: an Ed25519 key pair created on first start and kept in the
 * data folder (mode 0600). The node id is the lowercase base32 of the public
 * key; logs show its first characters, as iroh shows endpoint ids.
 *
 * @module
 */
import { type NodeId, nodeId } from "../raft/types.ts";
import { decodeBase32, encodeBase32 } from "../base/base32.ts";
import { ENCODED_PUBLIC_KEY_BYTES, SHORT_ID_CHARS } from "./constants.ts";
import {
  generateSigningKey,
  importSigningKey,
  type SigningKey,
} from "./keys.ts";

/** File in the data folder holding the node's private key (PKCS #8). */
export const NODE_KEY_FILE = "node.key";

/** A node's key pair and the id derived from it. */
export interface NodeIdentity extends SigningKey {
  /** Lowercase base32 of the public key (52 characters). */
  readonly nodeId: NodeId;
  /** The first characters of `nodeId`, for logs. */
  readonly shortId: string;
}

/** The node id of a raw Ed25519 public key. */
export function nodeIdFromKey(publicKey: Uint8Array): NodeId {
  if (publicKey.length !== ENCODED_PUBLIC_KEY_BYTES) {
    throw new RangeError(
      `Cannot derive node id as the key must be ${ENCODED_PUBLIC_KEY_BYTES} bytes: current length is ${publicKey.length}`,
    );
  }
  return nodeId(encodeBase32(publicKey));
}

/**
 * The public key a node id names.
 *
 * @throws {SyntaxError} When `id` is not base32 of a 32-byte key.
 */
export function keyFromNodeId(id: string): Uint8Array {
  const key = decodeBase32(id);
  if (key.length !== ENCODED_PUBLIC_KEY_BYTES) {
    throw new SyntaxError(
      `Cannot read node id as it must encode 32 bytes: current value is '${id}'`,
    );
  }
  return key;
}

/** The short form of a node id, for logs. */
export function shortNodeId(id: string): string {
  return id.slice(0, SHORT_ID_CHARS);
}

/** Wraps a signing key as a node identity. */
export function identityFromKey(key: SigningKey): NodeIdentity {
  const id = nodeIdFromKey(key.publicKey);
  return { ...key, nodeId: id, shortId: shortNodeId(id) };
}

/** Creates a node identity that lives only in memory (tests, tools). */
export async function generateNodeIdentity(): Promise<NodeIdentity> {
  return identityFromKey(await generateSigningKey());
}

/**
 * Loads the node key from `dataDir`, creating it (mode 0600) on first start.
 *
 * @param dataDir The node's data folder; must exist.
 * @throws {Error} When the key file is readable by group or others, since a
 *   leaked node key lets anyone impersonate the node.
 */
export async function loadOrCreateNodeIdentity(
  dataDir: string,
): Promise<NodeIdentity> {
  const path = `${dataDir}/${NODE_KEY_FILE}`;
  try {
    const info = await Deno.stat(path);
    if (info.mode !== null && (info.mode & 0o077) !== 0) {
      throw new Error(
        `Cannot use node key as its file is readable by others: '${path}' has mode ${
          (info.mode & 0o777).toString(8)
        }`,
      );
    }
    return identityFromKey(await importSigningKey(await Deno.readFile(path)));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const key = await generateSigningKey();
  // createNew: two processes starting at once must not overwrite each other.
  await Deno.writeFile(path, await key.exportPkcs8(), {
    mode: 0o600,
    createNew: true,
  });
  return identityFromKey(key);
}
