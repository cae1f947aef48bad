/**
 * CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), table-driven.
 *
 * Why our own: the checksum guards every stored entry, so it must never change
 * under us, and it is twenty lines with a published check value
 * (`crc32("123456789") === 0xcbf43926`, tested). No npm package in the import
 * map offers CRC-32 or xxHash, and pulling one in for this would add a
 * dependency that can change behaviour on upgrade. Slicing-by-8 would be
 * faster; measure (`bench/storage_bench.ts`) before bothering.
 *
 * @module
 */

const TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * Continues a CRC-32 over `bytes`. Start with {@linkcode CRC32_INITIAL} and
 * finish with {@linkcode crc32Final}.
 *
 * @param state The running state.
 * @param bytes The bytes to add.
 * @returns The new running state.
 */
export function crc32Update(state: number, bytes: Uint8Array): number {
  let c = state;
  for (let i = 0; i < bytes.length; i++) {
    c = TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  }
  return c;
}

/** The running state before any byte. */
export const CRC32_INITIAL = 0xffffffff;

/** Turns a running state into the checksum, an unsigned 32-bit integer. */
export function crc32Final(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/**
 * The CRC-32 of `bytes`.
 *
 * @example
 * ```ts
 * import { crc32 } from "./crc32.ts";
 * console.assert(crc32(new TextEncoder().encode("123456789")) === 0xcbf43926);
 * ```
 */
export function crc32(bytes: Uint8Array): number {
  return crc32Final(crc32Update(CRC32_INITIAL, bytes));
}
