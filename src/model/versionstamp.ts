/**
 * Versionstamps: 10 bytes, the commit's log index (8 bytes big-endian) then
 * a 2-byte big-endian counter. Derived only from the log, so every replica
 * computes the same one; strictly increasing with the index.
 *
 * @module
 */
import type { LogIndex } from "../raft/types.ts";
import type { Versionstamp } from "./types.ts";
import { fromHex, toHex } from "../base/bytes.ts";

/** Bytes in a versionstamp. */
export const VERSIONSTAMP_BYTES = 10;
/** Largest counter value (2 bytes). */
export const VERSIONSTAMP_COUNTER_MAX = 0xffff;

/**
 * Builds the versionstamp of the command at `index`.
 *
 * @example
 * ```ts
 * import { makeVersionstamp, versionstampToString } from "./versionstamp.ts";
 * import { logIndex } from "../raft/types.ts";
 * import assert from "node:assert/strict";
 * assert.equal(versionstampToString(makeVersionstamp(logIndex(258), 1)), "00000000000001020001");
 * ```
 *
 * @param index The log index (a safe integer ≥ 1).
 * @param counter The position within the entry, 0..65535.
 * @throws {RangeError} When `index` or `counter` is out of range.
 */
export function makeVersionstamp(index: LogIndex, counter = 0): Versionstamp {
  if (!Number.isSafeInteger(index) || index < 1) {
    throw new RangeError(
      `Cannot make versionstamp: 'index' must be a safe integer ≥ 1: current value is ${index}`,
    );
  }
  if (
    !Number.isInteger(counter) || counter < 0 ||
    counter > VERSIONSTAMP_COUNTER_MAX
  ) {
    throw new RangeError(
      `Cannot make versionstamp: 'counter' must be in 0..65535: current value is ${counter}`,
    );
  }
  // Byte by byte: a DataView (and the BigInt it needs) costs more than this.
  const out = new Uint8Array(VERSIONSTAMP_BYTES);
  const high = Math.floor(index / 0x1_0000_0000);
  const low = index >>> 0;
  out[0] = high >>> 24;
  out[1] = (high >>> 16) & 0xff;
  out[2] = (high >>> 8) & 0xff;
  out[3] = high & 0xff;
  out[4] = low >>> 24;
  out[5] = (low >>> 16) & 0xff;
  out[6] = (low >>> 8) & 0xff;
  out[7] = low & 0xff;
  out[8] = counter >>> 8;
  out[9] = counter & 0xff;
  return out;
}

/** The log index a versionstamp carries. */
export function versionstampIndex(versionstamp: Versionstamp): LogIndex {
  const view = new DataView(
    versionstamp.buffer,
    versionstamp.byteOffset,
    versionstamp.byteLength,
  );
  return Number(view.getBigUint64(0)) as LogIndex;
}

/** The 20-character lower-case hex form Deno shows (`"00000000000000010000"`). */
export function versionstampToString(versionstamp: Versionstamp): string {
  return toHex(versionstamp);
}

/**
 * Parses the 20-character hex form.
 *
 * @throws {TypeError} When `text` is not 20 hex characters.
 */
export function versionstampFromString(text: string): Versionstamp {
  if (text.length !== VERSIONSTAMP_BYTES * 2) {
    throw new TypeError(
      `Cannot parse versionstamp: expected 20 hex characters, received '${text}'`,
    );
  }
  return fromHex(text);
}

/** True for the all-zero versionstamp, which a check reads as "absent". */
export function isZeroVersionstamp(versionstamp: Versionstamp): boolean {
  for (const byte of versionstamp) if (byte !== 0) return false;
  return true;
}
