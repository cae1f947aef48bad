/**
 * The cluster's access tokens. The founding members hold the cluster key
 * and derive the same two tokens from it; a joined node (which never
 * receives the key) gets them in its join response and keeps them in the
 * same files: the **data** token (HTTP API data routes and KV Connect,
 * kept in `access.token`) and the **admin** token (membership, backups,
 * joins, kept in `admin.token`). A token from one node is accepted by every
 * node, after a failover too. Tokens the operator configures (`tokens`,
 * `adminTokens`) replace the derived ones of their scope.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { toHex } from "../base/bytes.ts";

/** File holding the cluster's data token. */
export const DATA_TOKEN_FILE = "access.token";
/** File holding the cluster's admin token. */
export const ADMIN_TOKEN_FILE = "admin.token";

const LABELS = {
  data: "aspen-client-token-v1",
  admin: "aspen-admin-token-v1",
} as const;

const encoder = new TextEncoder();

/** The token of `scope` derived from the cluster key's bytes (48 hex digits). */
export function deriveToken(
  clusterKey: Uint8Array,
  scope: "data" | "admin",
): string {
  return toHex(
    hmac(sha256, clusterKey, encoder.encode(LABELS[scope])).subarray(0, 24),
  );
}

/** The tokens a node accepts, per scope. */
export interface AccessTokens {
  readonly data: readonly string[];
  readonly admin: readonly string[];
}

/**
 * The node's tokens: configured ones, else derived from the folder's
 * cluster key (the file `clusterKeyFile` in `dataDir`; the tokens are
 * written to `access.token` / `admin.token`, 0600). A folder without a
 * cluster key keeps a random token in the file instead.
 */
export async function loadAccessTokens(
  dataDir: string,
  configured: { tokens: readonly string[]; adminTokens: readonly string[] },
  clusterKeyFile: string,
): Promise<AccessTokens> {
  const clusterKey = await readOptional(
    `${dataDir}/${clusterKeyFile}`,
    Deno.readFile,
  );
  const data = configured.tokens.length > 0
    ? [...configured.tokens]
    : [await tokenFile(dataDir, DATA_TOKEN_FILE, clusterKey, "data")];
  const admin = configured.adminTokens.length > 0
    ? [...configured.adminTokens]
    : [await tokenFile(dataDir, ADMIN_TOKEN_FILE, clusterKey, "admin")];
  return { data, admin };
}

async function tokenFile(
  dataDir: string,
  name: string,
  clusterKey: Uint8Array | null,
  scope: "data" | "admin",
): Promise<string> {
  const path = `${dataDir}/${name}`;
  const stored = (await readOptional(path, Deno.readTextFile))?.trim() ??
    null;
  const token = clusterKey === null
    ? stored ?? toHex(crypto.getRandomValues(new Uint8Array(24)))
    : deriveToken(clusterKey, scope);
  if (stored !== token) {
    await Deno.writeTextFile(path, `${token}\n`, { mode: 0o600 });
    await Deno.chmod(path, 0o600);
  }
  return token;
}

/** The file's contents, or null when it does not exist. */
async function readOptional<T>(
  path: string,
  read: (path: string) => Promise<T>,
): Promise<T | null> {
  try {
    return await read(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
