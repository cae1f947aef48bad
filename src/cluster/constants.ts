/** Bytes of a raw Ed25519 public key. */
export const ENCODED_PUBLIC_KEY_BYTES = 32;
/** Bytes of a handshake nonce. */
export const NONCE_BYTES = 32;
/** Bytes of a SHA-256 hash. */
export const HASH_BYTES = 32;
/** Characters of a node id's short form, as shown in logs. */
export const SHORT_ID_CHARS = 10;
