/**
 * The checksum stored with each entry: CRC-32 of (index, term, type, data),
 * index and term as 8-byte little-endian integers and type as one byte, so a
 * row moved to another index or given another term fails the check too.
 *
 * @module
 */
import type { EntryType } from "../raft/types.ts";
import { CRC32_INITIAL, crc32Final, crc32Update } from "./crc32.ts";

const header = new Uint8Array(17);
const headerView = new DataView(header.buffer);
const TWO_TO_32 = 2 ** 32;

/** The stored code of an entry type. */
export function entryTypeCode(type: EntryType): number {
  return type === "normal" ? 0 : 1;
}

/** The entry type of a stored code, or null for an unknown code. */
export function entryTypeOf(code: number): EntryType | null {
  return code === 0 ? "normal" : code === 1 ? "confChange" : null;
}

/** The checksum of one entry as stored. */
export function entryChecksum(
  index: number,
  term: number,
  typeCode: number,
  data: Uint8Array,
): number {
  headerView.setUint32(0, index >>> 0, true);
  headerView.setUint32(4, Math.floor(index / TWO_TO_32), true);
  headerView.setUint32(8, term >>> 0, true);
  headerView.setUint32(12, Math.floor(term / TWO_TO_32), true);
  header[16] = typeCode;
  return crc32Final(crc32Update(crc32Update(CRC32_INITIAL, header), data));
}
