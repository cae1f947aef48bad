/**
 * The reserved key space: every key starting with `ff`, which no Deno KV
 * key encoding starts with (every key part begins with a type tag below
 * `0x30`, and list selectors end at `prefix + ff`). Services keep their
 * internal rows there (the keyspace table is the state host's registry);
 * user KV writes are refused there and reads stop before it.
 *
 * @module
 */

/** First byte of every internal key; never the first byte of a Deno KV key. */
export const INTERNAL_KEY_BYTE = 0xff;
/** The smallest internal key: user reads end before it. */
export const INTERNAL_KEYS_START = new Uint8Array([INTERNAL_KEY_BYTE]);
