/**
 * Ed25519 signing keys over WebCrypto: the node key and the cluster key are
 * both one of these.
 *
 * @module
 */
import { ENCODED_PUBLIC_KEY_BYTES } from "./constants.ts";
import { decodeBase64Url } from "../base/base64.ts";

/** An Ed25519 key pair able to sign. */
export interface SigningKey {
  /** The raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** Signs `data`; returns the 64-byte signature. */
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** The private key as PKCS #8, for storing. Handle as a secret. */
  exportPkcs8(): Promise<Uint8Array>;
}

function wrap(
  pair: { privateKey: CryptoKey; publicKey: Uint8Array },
): SigningKey {
  return {
    publicKey: pair.publicKey,
    sign: async (data) =>
      new Uint8Array(
        await crypto.subtle.sign(
          "Ed25519",
          pair.privateKey,
          data as BufferSource,
        ),
      ),
    exportPkcs8: async () =>
      new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey)),
  };
}

/** Creates a fresh Ed25519 key pair. */
export async function generateSigningKey(): Promise<SigningKey> {
  const pair = await crypto.subtle.generateKey("Ed25519", true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const publicKey = new Uint8Array(
    await crypto.subtle.exportKey("raw", pair.publicKey),
  );
  return wrap({ privateKey: pair.privateKey, publicKey });
}

/**
 * Rebuilds a key pair from its PKCS #8 private key.
 *
 * @throws {TypeError} When the bytes are not an Ed25519 PKCS #8 key.
 */
export async function importSigningKey(pkcs8: Uint8Array): Promise<SigningKey> {
  let privateKey: CryptoKey;
  try {
    privateKey = await crypto.subtle.importKey(
      "pkcs8",
      pkcs8 as BufferSource,
      "Ed25519",
      true,
      ["sign"],
    );
  } catch (error) {
    throw new TypeError(
      "Cannot import signing key as it is not an Ed25519 PKCS #8 key",
      { cause: error },
    );
  }
  // WebCrypto derives no public key from a private one; JWK export carries it.
  const jwk = await crypto.subtle.exportKey("jwk", privateKey);
  if (typeof jwk.x !== "string") {
    throw new TypeError("Cannot import signing key as it has no public part");
  }
  const publicKey = decodeBase64Url(jwk.x);
  return wrap({ privateKey, publicKey });
}

const verifyKeys = new Map<string, Promise<CryptoKey>>();
const VERIFY_KEY_CACHE_MAX = 1024;

/**
 * Checks an Ed25519 signature. Never throws for bad input: a malformed key
 * or signature simply does not verify.
 */
export async function verifySignature(
  publicKey: Uint8Array,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  if (
    publicKey.length !== ENCODED_PUBLIC_KEY_BYTES || signature.length !== 64
  ) return false;
  const cacheKey = String.fromCharCode(...publicKey);
  let key = verifyKeys.get(cacheKey);
  if (key === undefined) {
    if (verifyKeys.size >= VERIFY_KEY_CACHE_MAX) verifyKeys.clear();
    key = crypto.subtle.importKey(
      "raw",
      publicKey as BufferSource,
      "Ed25519",
      false,
      ["verify"],
    );
    verifyKeys.set(cacheKey, key);
  }
  try {
    return await crypto.subtle.verify(
      "Ed25519",
      await key,
      signature as BufferSource,
      data as BufferSource,
    );
  } catch {
    verifyKeys.delete(cacheKey);
    return false;
  }
}
